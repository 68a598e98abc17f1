"""Training-image augmentation: each batch moved by a random pixel or two.

A digit a pixel off-centre is still the same digit. Moving every batch by its own random
offset shows the network each image at several positions over a run, so it learns less of
where the strokes sit in the frame and more of their shapes.
"""

from __future__ import annotations

from array_api_compat import array_namespace

from .backend import host_generator
from .data import IMAGE_SHAPE


def batch_offsets(seed: int, epoch: int, batches: int, most: int) -> list[tuple[int, int]]:
    """Each batch's (down, right) offset in ``epoch``, each in [-most, most]: a pure function of (seed, epoch)."""
    draws = host_generator("shift", seed, epoch).integers(-most, most + 1, size=(batches, 2))
    return [(int(down), int(right)) for down, right in draws]


def shift_images(X, down: int, right: int, shape: tuple[int, int] = IMAGE_SHAPE):
    """Flattened images ``X`` moved ``down`` and ``right`` pixels (negative: up, left); uncovered pixels are 0."""
    if not down and not right:
        return X
    xp = array_namespace(X)
    rows, cols = shape
    images = xp.reshape(X, (X.shape[0], rows, cols))
    moved = xp.zeros_like(images)
    moved[:, max(down, 0) : rows + min(down, 0), max(right, 0) : cols + min(right, 0)] = images[
        :, max(-down, 0) : rows - max(down, 0), max(-right, 0) : cols - max(right, 0)
    ]
    return xp.reshape(moved, X.shape)
