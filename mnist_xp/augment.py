"""Training-image augmentation: batches moved by a pixel or two, and images distorted one by one.

A digit a pixel off-centre is still the same digit. Moving every batch by its own random
offset shows the network each image at several positions over a run, so it learns less of
where the strokes sit in the frame and more of their shapes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from array_api_compat import array_namespace, device

from .backend import fused_kernels, host_generator, to_device
from .data import IMAGE_SHAPE
from .values import dtype_name, is_whole_number


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


@dataclass(frozen=True)
class Distortion:
    """Random affine and elastic distortions, a new one for every image of every batch.

    Each output pixel is read, by bilinear interpolation, from a point of the original image:
    the pixel's own position moved by an affine map about the image's centre (a rotation of up to
    ``rotate`` degrees, each axis scaled by up to ``zoom``, a horizontal shear of up to ``shear``
    degrees) and then by an elastic displacement field (Simard, Steinkraus and Platt, 2003): in
    each direction a random field smoothed by a Gaussian of width ``sigma`` pixels and scaled by
    ``elastic`` (their alpha). Points outside the frame read 0. All zero, it leaves the images as
    they are.

    Simard draws a number in [-1, 1) for every pixel and smooths the draws. Smoothing keeps only
    the slow waves of a field, so the field is drawn here as the few smooth waves that matter
    (``field_basis``) with a random weight each: the same spread and the same correlation between
    any two pixels, to 1e-5 of the field's variance, from 64 numbers per direction at sigma 4
    instead of 784.
    """

    elastic: float = 0.0
    sigma: float = 4.0
    rotate: float = 0.0
    zoom: float = 0.0
    shear: float = 0.0
    shape: tuple[int, int] = IMAGE_SHAPE

    @property
    def active(self) -> bool:
        return bool(self.elastic or self.rotate or self.zoom or self.shear)

    @property
    def waves(self) -> tuple[int, int]:
        """How many of ``field_basis``'s waves the field takes along the rows and along the columns."""
        return tuple(field_basis(size, self.sigma).shape[1] for size in self.shape)

    @property
    def draws(self) -> int:
        """U[0, 1) numbers an image takes: four for the affine map, then, for an elastic field, one per
        pair of waves (down, across) in each direction."""
        down, across = self.waves
        return AFFINE_DRAWS + (2 * down * across if self.elastic else 0)

    def describe(self) -> str:
        """The settings in a few words, e.g. 'elastic alpha 34, sigma 4; rotation up to 10 degrees'."""
        parts = []
        if self.elastic:
            parts.append(f"elastic alpha {self.elastic:g}, sigma {self.sigma:g}")
        if self.rotate:
            parts.append(f"rotation up to {self.rotate:g} degrees")
        if self.zoom:
            parts.append(f"scaling by up to {100 * self.zoom:g} %")
        if self.shear:
            parts.append(f"shear up to {self.shear:g} degrees")
        return "; ".join(parts) or "none"

    def __call__(self, X, uniform):
        """The flattened images ``X`` (rows of ``shape``'s pixels), distorted as ``uniform`` says:
        one row of ``draws`` U[0, 1) numbers per image, so that a seed fixes the distortions."""
        if not self.active:
            return X
        xp = array_namespace(X)
        signed = 2 * uniform - 1
        affine, weights = signed[:, :AFFINE_DRAWS], signed[:, AFFINE_DRAWS:] if self.elastic else None
        field = None if weights is None else self.field(weights, X)
        kernels = fused_kernels(xp)
        if kernels is not None:  # the same arithmetic in one pass (NumPy with Numba)
            rotate, shear = math.radians(self.rotate), math.radians(self.shear)
            fused = kernels.resample(X, affine, field, rotate, self.zoom, shear, self.shape)
            if fused is not None:
                return fused
        source_row, source_col = self._affine_sources(xp, affine, X)
        if field is not None:
            source_row, source_col = source_row + field[:, 0, ...], source_col + field[:, 1, ...]
        return xp.reshape(bilinear(X, source_row, source_col, self.shape), X.shape)

    def bases(self, like):
        """``field_basis`` along the rows (rows, down) and, scaled by alpha, along the columns transposed
        (across, cols), in ``like``'s namespace, device and dtype."""
        rows, cols = (to_device(field_basis(size, self.sigma).copy(), like, dtype_name(like)) for size in self.shape)
        xp = array_namespace(like)
        return rows, self.elastic * xp.permute_dims(cols, (1, 0))

    def field(self, weights, like):
        """Every image's displacement field, (images, 2, rows, cols) pixels, from its signed draws
        ``weights``: (images, 2 * down * across) numbers in [-1, 1).

        A direction's field is ``alpha * B_rows @ Z @ B_cols.T`` for the image's (down, across) matrix
        ``Z`` of weights, read from the draws as ``Z.T``: two matrix products for the whole batch.
        """
        xp = array_namespace(like)
        (rows, cols), (down, across), count = self.shape, self.waves, weights.shape[0]
        basis_rows, basis_cols = self.bases(like)
        # Z.T @ basis_rows.T for every image and direction: (count, 2, across, rows).
        waves = xp.reshape(weights, (count * 2 * across, down)) @ xp.permute_dims(basis_rows, (1, 0))
        waves = xp.permute_dims(xp.reshape(waves, (count, 2, across, rows)), (0, 1, 3, 2))
        return xp.reshape(xp.reshape(waves, (count * 2 * rows, across)) @ basis_cols, (count, 2, rows, cols))

    def _affine_sources(self, xp, signed, like):
        """Each pixel's point in the original under each image's affine map, as (row, column)
        arrays of shape (images, rows, cols)."""
        rows, cols = self.shape
        where = device(like)
        row = xp.reshape(xp.arange(rows, dtype=like.dtype, device=where), (1, rows, 1)) - (rows - 1) / 2
        col = xp.reshape(xp.arange(cols, dtype=like.dtype, device=where), (1, 1, cols)) - (cols - 1) / 2
        if not (self.rotate or self.zoom or self.shear):
            return row + (rows - 1) / 2, col + (cols - 1) / 2
        per_image = [xp.reshape(signed[:, k], (-1, 1, 1)) for k in range(AFFINE_DRAWS)]
        angle, zoom_row, zoom_col, shear = per_image
        angle = angle * math.radians(self.rotate)
        cos, sin = xp.cos(angle), xp.sin(angle)
        # Source = centre + rotation(shear(scale(pixel - centre))): a larger scale shows a larger digit.
        down = row / (1 + self.zoom * zoom_row)
        across = col / (1 + self.zoom * zoom_col)
        across = across + xp.tan(shear * math.radians(self.shear)) * down
        return cos * down - sin * across + (rows - 1) / 2, sin * down + cos * across + (cols - 1) / 2


def from_config(config) -> Distortion:
    """The distortions a ``TrainConfig``'s settings ask for."""
    return Distortion(config.elastic, config.elastic_sigma, config.rotate, config.zoom, config.shear)


AFFINE_DRAWS = 4
"""An image's affine map takes four numbers: its angle, its two scales and its shear."""


@functools.cache
def field_basis(size: int, sigma: float) -> np.ndarray:
    """The smooth waves an elastic field is made of along a line of ``size`` pixels: (size, waves), float64.

    Simard's field along a line is ``G @ u``, ``G`` the Gaussian smoothing matrix
    (``gaussian_matrix``) and ``u`` independent draws in [-1, 1): its covariance is ``G @ G.T / 3``.
    The eigenvectors of ``G @ G.T``, each scaled by the square root of its eigenvalue, give the same
    covariance with weights of the same spread; the widest sigma needs two of them, sigma 1 all.
    Only the waves that carry all but ``FIELD_TOLERANCE`` of the variance are kept. Computed once
    on the host in float64, with each wave's sign fixed, so every backend draws the same field.
    """
    host = np.empty(0, np.float64)
    smoothing = np.asarray(gaussian_matrix(array_namespace(host), size, sigma, host))
    variances, waves = np.linalg.eigh(smoothing @ smoothing.T)
    variances, waves = np.clip(variances[::-1], 0, None), waves[:, ::-1]
    missing = 1 - np.cumsum(variances) / np.sum(variances)
    kept = int(np.argmax(missing <= FIELD_TOLERANCE)) + 1
    waves = waves[:, :kept]
    # Each wave's sign: its first entry of any size is positive.
    first = np.argmax(np.abs(waves) > 1e-3 * np.max(np.abs(waves), axis=0), axis=0)
    basis = waves * np.sign(waves[first, np.arange(kept)]) * np.sqrt(variances[:kept])
    basis.flags.writeable = False
    return basis


FIELD_TOLERANCE = 1e-5
"""The share of Simard's field's variance that the waves left out of ``field_basis`` may carry."""


def gaussian_matrix(xp, size: int, sigma: float, like):
    """The symmetric (size, size) matrix that smooths a line of ``size`` values by a Gaussian of width ``sigma``.

    Entry (i, j) weights value j by exp(-(i - j)^2 / (2 sigma^2)) where |i - j| is at most four
    widths (0 beyond), over the sum of the weights of all such offsets: inside the frame the weights
    add up to 1, and beyond its edges the values are taken as 0. This is
    ``scipy.ndimage.gaussian_filter`` at its default truncation and ``mode="constant"``.
    """
    where = device(like)
    radius = int(GAUSSIAN_WIDTHS * sigma + 0.5)
    offsets = xp.arange(-radius, radius + 1, dtype=like.dtype, device=where)
    total = xp.sum(xp.exp(-(offsets**2) / (2 * sigma**2)))
    index = xp.arange(size, dtype=like.dtype, device=where)
    gaps = xp.reshape(index, (size, 1)) - xp.reshape(index, (1, size))
    weights = xp.exp(-(gaps**2) / (2 * sigma**2))
    return xp.where(xp.abs(gaps) <= radius, weights, xp.zeros_like(weights)) / total


GAUSSIAN_WIDTHS = 4.0
"""The smoothing Gaussian is cut off this many widths from its centre, as scipy's is by default."""


def bilinear(X, source_row, source_col, shape: tuple[int, int] = IMAGE_SHAPE):
    """Images read at the points (``source_row``, ``source_col``) of the flattened images ``X`` by
    bilinear interpolation, with 0 outside the frame; shape (images, rows, cols).

    The images get a border of zeros and every point is clipped into the bordered frame, so
    that each point reads four pixels of its own image with no test of where it falls; at whole
    coordinates it reads its pixel exactly. This is ``scipy.ndimage.map_coordinates`` at
    ``order=1, mode="grid-constant"``, for a batch, in any namespace.
    """
    xp = array_namespace(X)
    rows, cols = shape
    count, where = X.shape[0], device(X)
    # The border: one row and column of zeros before the image, two after (a point on the last
    # border line reads the one after it, with weight 0). Pixel (r, c) sits at (r + 1, c + 1).
    high, wide = rows + 3, cols + 3
    images = xp.reshape(X, (count, rows, cols))
    images = xp.concat([_zeros(xp, X, (count, 1, cols)), images, _zeros(xp, X, (count, 2, cols))], axis=1)
    images = xp.concat([_zeros(xp, X, (count, high, 1)), images, _zeros(xp, X, (count, high, 2))], axis=2)
    framed = xp.reshape(images, (-1,))
    row = xp.clip(source_row + 1, 0.0, float(rows + 1))
    col = xp.clip(source_col + 1, 0.0, float(cols + 1))
    top, left = xp.floor(row), xp.floor(col)
    down, right = row - top, col - left
    index = xp.__array_namespace_info__().default_dtypes(device=where)["indexing"]
    first = xp.reshape(xp.arange(count, dtype=index, device=where) * (high * wide), (count, 1, 1))
    corner = xp.reshape(first + xp.astype(top, index) * wide + xp.astype(left, index), (-1,))

    def read(offset):
        return xp.reshape(xp.take(framed, corner + offset, axis=0), (count, rows, cols))

    upper_left, upper_right = read(0), read(1)
    lower_left, lower_right = read(wide), read(wide + 1)
    upper = upper_left + right * (upper_right - upper_left)
    lower = lower_left + right * (lower_right - lower_left)
    return upper + down * (lower - upper)


def _zeros(xp, like, shape):
    return xp.zeros(shape, dtype=like.dtype, device=device(like))
