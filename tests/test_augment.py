"""Shift augmentation: images move as asked, offsets follow the seed, and training uses them."""

from __future__ import annotations

import numpy as np
import pytest
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
