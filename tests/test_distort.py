"""Affine and elastic distortions: the exact identity, scipy's interpolation, Simard's field, one batch on every backend."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from mnist_xp import DEFAULT, augment, load_mnist, train
from mnist_xp.loop import distorted

STRONG = augment.Distortion(elastic=34.0, sigma=4.0, rotate=15.0, zoom=0.2, shear=15.0)
"""Every distortion at once, each well beyond what training uses."""


def draws(count: int, distortion=STRONG, seed: int = 0):
    return np.random.default_rng(seed).random((count, distortion.draws))


@pytest.fixture(scope="module")
def digits():
    """The first 32 training images of MNIST as float64 host arrays, values in [0, 1]."""
    return load_mnist(limit=32, dtype="float64").X_train


def test_no_distortion_returns_the_images_themselves(backend):
    X = backend.asarray(np.random.default_rng(0).uniform(size=(3, 784)))
    assert augment.Distortion()(X, None) is X
    assert not augment.Distortion(sigma=9.0).active


@pytest.mark.parametrize(
    "distortion",
    [
        augment.Distortion(elastic=34.0),
        augment.Distortion(rotate=30.0, zoom=0.3, shear=20.0),
        STRONG,
    ],
    ids=["elastic", "affine", "both"],
)
def test_zero_draws_give_the_identity_exactly(backend, digits, distortion):
    # Draws of 1/2 are signed draws of 0: a zero field, angle 0, scale 1, shear 0.
    half = np.full((len(digits), distortion.draws), 0.5)
    got = backend.to_numpy(distortion(backend.asarray(digits), backend.asarray(half)))
    assert got.tobytes() == digits.tobytes()


def test_reading_at_any_point_is_scipys_bilinear_interpolation():
    rng = np.random.default_rng(1)
    images = rng.uniform(size=(4, 28, 28))
    rows, cols = rng.uniform(-4, 32, size=(2, 4, 28, 28))  # far outside the frame too
    rows[:, 0, :5] = np.arange(5)  # whole coordinates, and the frame's edges
    cols[:, 0, :5] = [0, 27, 27.5, 28, -0.5]
    got = augment.bilinear(images.reshape(4, 784), rows, cols)
    for image, row, col, one in zip(images, rows, cols, got):
        expected = ndimage.map_coordinates(image, [row, col], order=1, mode="grid-constant", cval=0.0)
        np.testing.assert_allclose(one, expected, rtol=1e-12, atol=1e-12)


def test_the_gaussian_matrix_is_scipys_gaussian_filter():
    lines = np.random.default_rng(2).uniform(-1, 1, size=(3, 40))
    for sigma in (1.0, 2.5, 4.0, 6.0, 14.0):  # the kernel cut off inside the line, and beyond it
        smoothing = augment.gaussian_matrix(np, 40, sigma, lines)
        expected = ndimage.gaussian_filter1d(lines, sigma, mode="constant", cval=0.0)
        np.testing.assert_allclose(lines @ smoothing.T, expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("sigma", [1.0, 2.5, 4.0, 8.0, 28.0])
def test_the_fields_waves_keep_simards_covariance(sigma):
    # Simard's field along a line, G @ u with u uniform on [-1, 1), has covariance G @ G.T / 3;
    # ours, basis @ w with w uniform on [-1, 1), has basis @ basis.T / 3.
    smoothing = augment.gaussian_matrix(np, 28, sigma, np.empty(0))
    simard = smoothing @ smoothing.T
    basis = augment.field_basis(28, sigma)
    np.testing.assert_allclose(basis @ basis.T, simard, rtol=0, atol=1e-5 * np.trace(simard))
    assert basis.shape[1] == 28 if sigma == 1.0 else basis.shape[1] < 28
    gram = basis.T @ basis  # waves at right angles, the widest first
    np.testing.assert_allclose(gram, np.diag(np.diag(gram)), atol=1e-12)
    assert np.all(np.diff(np.diag(gram)) <= 0)
    first = basis[np.argmax(np.abs(basis) > 1e-3 * np.abs(basis).max(axis=0), axis=0), np.arange(basis.shape[1])]
    assert np.all(first > 0)  # each wave's sign fixed, so every machine draws the same field


def test_an_elastic_field_spreads_and_correlates_as_simards_does():
    distortion = augment.Distortion(elastic=1.0, sigma=4.0)
    assert distortion.waves == (8, 8) and distortion.draws == 4 + 2 * 64
    ours = distortion.field(2 * draws(4000, distortion)[:, 4:] - 1, np.empty(0))
    uniform = np.random.default_rng(5).uniform(-1, 1, size=(4000, 28, 28))
    simard = ndimage.gaussian_filter(uniform, (0, 4.0, 4.0), mode="constant", cval=0.0)
    for field in (ours[:, 0], ours[:, 1]):
        # The spread at each pixel (smaller near the edges), and the correlation with the pixel 3 to the right.
        np.testing.assert_allclose(field.std(axis=0), simard.std(axis=0), rtol=0.06)
        lag = [np.mean(f[:, :, :-3] * f[:, :, 3:]) / np.mean(f[:, :, :-3] ** 2) for f in (field, simard)]
        assert lag[0] == pytest.approx(lag[1], abs=0.02)


def test_a_field_is_two_products_with_the_waves():
    distortion = augment.Distortion(elastic=7.0, sigma=3.0, shape=(20, 30))
    down, across = distortion.waves
    weights = 2 * draws(5, distortion)[:, 4:] - 1
    rows, cols = augment.field_basis(20, 3.0), augment.field_basis(30, 3.0)
    Z = weights.reshape(5, 2, across, down).transpose(0, 1, 3, 2)
    expected = 7.0 * np.einsum("ra,ndab,cb->ndrc", rows, Z, cols)
    np.testing.assert_allclose(distortion.field(weights, weights), expected, rtol=1e-12, atol=1e-12)
    assert augment.Distortion(rotate=5.0).draws == 4  # no field, no draws for it


def test_a_quarter_turn_turns_the_digit(digits):
    # Draws of 0 are signed draws of -1: the full angle one way, here -90 degrees, and no scaling or shear.
    turn = augment.Distortion(rotate=90.0)
    low = np.zeros((len(digits), turn.draws))
    low[:, 1:3] = 0.5
    got = turn(digits, low).reshape(-1, 28, 28)
    np.testing.assert_allclose(got, np.rot90(digits.reshape(-1, 28, 28), k=1, axes=(1, 2)), atol=1e-12)


def test_zooming_in_makes_the_digit_bigger(digits):
    # MNIST's digits fit a 20-pixel box: at 1.2 times, 24 pixels, they still fit the frame.
    zoom = augment.Distortion(zoom=0.2)
    big, small = np.full((len(digits), zoom.draws), 0.5), np.full((len(digits), zoom.draws), 0.5)
    big[:, 1:3], small[:, 1:3] = 1.0, 0.0  # scale 1.2 on both axes; scale 0.8
    ink = digits.sum(axis=1)
    for draws_of, scale in ((big, 1.2), (small, 0.8)):  # ink grows with the area; interpolation blurs a little
        ratios = zoom(digits, draws_of).sum(axis=1) / ink
        assert np.mean(ratios) == pytest.approx(scale**2, rel=0.01)
        np.testing.assert_allclose(ratios, scale**2, rtol=0.1)


def test_distorted_images_keep_shape_type_and_range(backend, digits):
    for dtype in ("float32", "float64"):
        X = backend.asarray(digits, dtype)
        got = STRONG(X, backend.asarray(draws(len(digits)), dtype))
        assert got.shape == X.shape and got.dtype == X.dtype
        host = backend.to_numpy(got)
        assert host.min() >= 0.0 and host.max() <= 1.0
        assert not np.allclose(host, digits, atol=0.1)  # truly moved


def test_a_seed_gives_numpys_distorted_batch_on_every_backend(backend, digits):
    from mnist_xp.loop import CompactInputs

    host = distorted(CompactInputs(digits.astype(np.float32), None), STRONG, 7, 3, 5).X
    X = backend.asarray(digits, "float32")
    got = backend.to_numpy(distorted(CompactInputs(X, None), STRONG, 7, 3, 5).X)
    np.testing.assert_allclose(got, host, atol=2e-5)
    other = distorted(CompactInputs(digits.astype(np.float32), None), STRONG, 7, 3, 6).X
    assert not np.allclose(other, host, atol=0.1)  # another batch, other distortions


def test_training_distorts_every_batch_and_follows_the_seed():
    config = replace(DEFAULT, hidden=(16,), epochs=2, batch_size=50, elastic=30.0, rotate=10.0)
    first = train(config, limit=200, measure_test=False)
    again = train(config, limit=200, measure_test=False)
    plain = train(replace(config, elastic=0.0, rotate=0.0), limit=200, measure_test=False)
    assert first.losses == again.losses
    assert first.losses != plain.losses
    np.testing.assert_array_equal(first.model.params[0][0], again.model.params[0][0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "distortion",
    [augment.Distortion(elastic=34.0), augment.Distortion(rotate=30.0, zoom=0.3, shear=20.0), STRONG],
    ids=["elastic", "affine", "both"],
)
def test_the_one_pass_kernel_distorts_as_the_array_code_does(digits, monkeypatch, dtype, distortion):
    pytest.importorskip("numba")
    # Ink up to every edge, which MNIST's digits never have: what lies outside the frame must read 0.
    noise = np.random.default_rng(4).uniform(size=digits.shape)
    X, uniform = np.concatenate([digits, noise]).astype(dtype), draws(2 * len(digits), distortion).astype(dtype)
    fused = distortion(X, uniform)
    monkeypatch.setattr(augment, "fused_kernels", lambda xp: None)
    plain = distortion(X, uniform)
    assert fused.dtype == plain.dtype == X.dtype and fused.shape == plain.shape
    # The same operations in the same order; only sin, cos and tan may round otherwise.
    np.testing.assert_allclose(fused, plain, rtol=0, atol=5e-6 if dtype == "float32" else 1e-13)
    if distortion.rotate == 0:
        assert fused.tobytes() == plain.tobytes()


def test_images_of_another_shape_distort_too(backend):
    distortion = augment.Distortion(elastic=10.0, sigma=2.0, rotate=20.0, shape=(5, 7))
    images = np.random.default_rng(3).uniform(size=(4, 35))
    X = backend.asarray(images)
    half = np.full((4, distortion.draws), 0.5)
    assert backend.to_numpy(distortion(X, backend.asarray(half))).tobytes() == images.tobytes()
    moved = backend.to_numpy(distortion(X, backend.asarray(draws(4, distortion))))
    assert moved.shape == (4, 35) and not np.allclose(moved, images)
