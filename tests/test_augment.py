"""Shift augmentation: images move as asked, offsets follow the seed, and training uses them."""

from __future__ import annotations

import numpy as np
import pytest
from array_api_compat import array_namespace
from small_model import first_weights_after_fit

from mnist_xp import augment
from mnist_xp import backend as backends


def test_shifted_images_move_and_fill_with_zeros(backend):
    images = np.arange(1.0, 2 * 3 * 4 + 1).reshape(2, 3, 4)
    expected = np.zeros_like(images)
    expected[:, 1:, :3] = images[:, :2, 1:]  # one down, one left
    moved = augment.shift_images(backend.asarray(images.reshape(2, 12)), 1, -1, shape=(3, 4))
    np.testing.assert_array_equal(backend.to_numpy(moved), expected.reshape(2, 12))
    back = augment.shift_images(moved, -1, 1, shape=(3, 4))
    kept = np.zeros_like(images)
    kept[:, :2, 1:] = images[:, :2, 1:]  # what left the frame is gone
    np.testing.assert_array_equal(backend.to_numpy(back), kept.reshape(2, 12))


def test_a_zero_offset_leaves_the_images_alone(backend):
    X = backend.asarray(np.random.default_rng(0).uniform(size=(3, 784)))
    assert augment.shift_images(X, 0, 0) is X


def test_a_shifted_mnist_digit_is_the_same_digit_moved(backend):
    digit = np.zeros((28, 28))
    digit[10:18, 12:15] = 1.0  # a short bar, well inside the frame
    moved = backend.to_numpy(augment.shift_images(backend.asarray(digit.reshape(1, 784)), -2, 3)).reshape(28, 28)
    assert moved.sum() == digit.sum()
    np.testing.assert_array_equal(np.argwhere(moved), np.argwhere(digit) + [-2, 3])


def moved_by_assignment(images, down: int, right: int):
    """``images`` (n, rows, cols) moved as a slice assignment moves them: the reference for ``shift_images``."""
    _, rows, cols = images.shape
    moved = np.zeros_like(images)
    moved[:, max(down, 0) : rows + min(down, 0), max(right, 0) : cols + min(right, 0)] = images[
        :, max(-down, 0) : rows - max(down, 0), max(-right, 0) : cols - max(right, 0)
    ]
    return moved


def test_every_offset_moves_images_as_a_slice_assignment_does(backend):
    images = np.random.default_rng(1).standard_normal((3, 5, 7))  # negative values too: no sign may flip
    X = backend.asarray(images.reshape(3, 35))
    for down in range(-5, 6):
        for right in range(-7, 8):
            moved = backend.to_numpy(augment.shift_images(X, down, right, shape=(5, 7)))
            expected = moved_by_assignment(images, down, right).reshape(3, 35)
            np.testing.assert_array_equal(moved, expected)
            assert moved.tobytes() == expected.tobytes()  # bit for bit: no -0.0 where a 0.0 was


@pytest.mark.parametrize("library", ["jax", "torch"])
def test_offsets_given_as_arrays_move_images_too(library):
    # Inside a compiled epoch the offsets are traced arrays, not integers: no early return, no slicing by them.
    xp = array_namespace(pytest.importorskip({"jax": "jax.numpy", "torch": "torch"}[library]).zeros(1))
    images = np.random.default_rng(2).standard_normal((2, 5, 7)).astype(np.float32)
    X = backends.to_device(images.reshape(2, 35), xp)

    def shift(X, offset):
        return augment.shift_images(X, offset[0], offset[1], shape=(5, 7))

    if library == "jax":
        import jax

        shift = jax.jit(shift)
    for down, right in [(0, 0), (2, -3), (-1, 6)]:
        moved = backends.to_host(shift(X, backends.to_device(np.array([down, right]), xp)))
        np.testing.assert_array_equal(moved, moved_by_assignment(images, down, right).reshape(2, 35))


def test_offsets_cover_the_range_and_follow_seed_and_epoch():
    offsets = augment.batch_offsets(0, 1, 2000, 2)
    assert len(offsets) == 2000 and {down for down, _ in offsets} == {right for _, right in offsets} == {-2, -1, 0, 1, 2}
    assert offsets == augment.batch_offsets(0, 1, 2000, 2)
    assert offsets != augment.batch_offsets(0, 2, 2000, 2) != augment.batch_offsets(1, 1, 2000, 2)
    assert all(isinstance(value, int) for pair in offsets[:5] for value in pair)


@pytest.mark.parametrize("batch_size", [16, None], ids=["mini-batch", "full-batch"])
def test_fit_with_shifts_trains_differently_and_repeatably(batch_size):
    xp = backends.namespace("cpu")
    rng = np.random.default_rng(0)
    images = np.zeros((64, 28, 28))
    images[:, 6:22, 6:22] = rng.uniform(size=(64, 16, 16))  # a blank border, which full-batch training could compact away
    X, Y = xp.asarray(images.reshape(64, 784)), xp.asarray(np.eye(3)[rng.integers(0, 3, 64)])

    def train(shift):
        return first_weights_after_fit(X, Y, 16, batch_size, epochs=3, shift=shift)

    shifted = train(2)
    np.testing.assert_array_equal(shifted, train(2))
    assert not np.allclose(shifted, train(0))
    border_weights = shifted.reshape(28, 28, 16)[:6]  # only shifted images reach the border rows' weights
    assert np.any(border_weights != train(0).reshape(28, 28, 16)[:6])
