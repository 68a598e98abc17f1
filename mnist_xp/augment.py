"""Training-image augmentation: each batch moved by a random pixel or two.

A digit a pixel off-centre is still the same digit. Moving every batch by its own random
offset shows the network each image at several positions over a run, so it learns less of
where the strokes sit in the frame and more of their shapes.
"""

from __future__ import annotations

from array_api_compat import array_namespace, device

from .backend import host_generator
from .data import IMAGE_SHAPE
from .values import is_whole_number


def batch_offsets(seed: int, epoch: int, batches: int, most: int) -> list[tuple[int, int]]:
    """Each batch's (down, right) offset in ``epoch``, each in [-most, most]: a pure function of (seed, epoch)."""
    draws = host_generator("shift", seed, epoch).integers(-most, most + 1, size=(batches, 2))
    return [(int(down), int(right)) for down, right in draws]


def shift_images(X, down, right, shape: tuple[int, int] = IMAGE_SHAPE):
    """Flattened images ``X`` moved ``down`` and ``right`` pixels (negative: up, left); uncovered pixels are 0.

    The offsets are integers or 0-d integer arrays, traced ones included (inside a compiled
    epoch): the images are rolled and the pixels that wrapped around are zeroed, with no
    assignment into an array, which some libraries (JAX) do not allow.
    """
    if is_whole_number(down) and is_whole_number(right) and not down and not right:
        return X
    xp = array_namespace(X)
    rows, cols = shape
    images = xp.reshape(X, (X.shape[0], rows, cols))
    rolled = xp.roll(images, shift=(down, right), axis=(1, 2))
    row = xp.reshape(xp.arange(rows, device=device(X)), (rows, 1))
    col = xp.reshape(xp.arange(cols, device=device(X)), (1, cols))
    covered = (row >= down) & (row < rows + down) & (col >= right) & (col < cols + right)
    moved = xp.where(covered, rolled, xp.zeros((), dtype=X.dtype, device=device(X)))
    return xp.reshape(moved, X.shape)
