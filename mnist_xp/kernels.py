"""Single-pass optimizer updates and distortions for NumPy arrays, compiled by Numba.

``optim.py`` writes each update rule once against the array API: for Adam that is a dozen
passes over every parameter array, each its own NumPy call, and on small batches the passes
over the first layer's weights are a large part of the step (the README's Benchmarks give the
figures; plain SGD's two passes gain nothing from fusing, and have no kernel). These kernels do
the same arithmetic, in the same order and precision, in one pass, so their results are those
of ``optim.py`` bit for bit (``tests/test_kernels.py`` checks it). ``backend.fused_kernels``
hands them to the optimizers for NumPy arrays; each returns None for arrays it does not take
(another dtype or layout), and the update rule then runs its own lines.

Importing this module compiles the kernels, or loads them from Numba's cache after the first time.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

FLOAT_TYPES = (np.float32, np.float64)


def _signatures(arrays: int, scalars: int) -> list:
    """One signature per float type: ``arrays`` contiguous 1-D arrays, then ``scalars`` numbers, all of that type."""
    return [numba.void(*([numba.from_dtype(t)[::1]] * arrays + [numba.from_dtype(t)] * scalars)) for t in FLOAT_TYPES]


@numba.njit(_signatures(5, 3), cache=True, nogil=True, error_model="numpy")
def _momentum(p, g, v, p_new, v_new, rate, beta, nesterov):
    for i in range(p.shape[0]):
        step = g[i] * rate
        velocity = v[i] * beta - step
        v_new[i] = velocity
        p_new[i] = (velocity * beta + p[i]) - step if nesterov != 0 else p[i] + velocity


@numba.njit(_signatures(7, 6), cache=True, nogil=True, error_model="numpy")
def _adam(p, g, m, v, p_new, m_new, v_new, keep1, keep2, epsilon, step, decay, decoupled):
    for i in range(p.shape[0]):
        gradient = g[i]
        first = (gradient - m[i]) * keep1 + m[i]
        second = (gradient * gradient - v[i]) * keep2 + v[i]
        m_new[i] = first
        v_new[i] = second
        weight = p[i]
        if decoupled != 0:
            weight = weight - decay * weight
        p_new[i] = weight - (first / (np.sqrt(second) + epsilon)) * step


def _flat(arrays):
    """1-D views of NumPy arrays of one float dtype and shape, all C-contiguous; None if they are not all such."""
    first = arrays[0]
    if not isinstance(first, np.ndarray) or first.dtype.type not in FLOAT_TYPES:
        return None
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype != first.dtype or a.shape != first.shape or not a.flags.c_contiguous:
            return None
    return [a.reshape(-1) for a in arrays]


def _outputs(like, count: int):
    arrays = [np.empty_like(like) for _ in range(count)]
    return arrays, [a.reshape(-1) for a in arrays]


def momentum(p, g, v, rate, beta, nesterov):
    """``(p_new, v_new)`` as ``optim.momentum`` computes them, or None for arrays this kernel does not take."""
    flat = _flat([p, g, v])
    if flat is None:
        return None
    arrays, out = _outputs(p, 2)
    kind = p.dtype.type
    _momentum(*flat, *out, kind(rate), kind(beta), kind(bool(nesterov)))
    return tuple(arrays)


def adam(p, g, m, v, keep1, keep2, epsilon, step, decay, decoupled):
    """``(p_new, m_new, v_new)`` as ``optim.adam`` computes them, or None for arrays this kernel does not take.

    ``keep1`` and ``keep2`` are 1 - beta1 and 1 - beta2, ``step`` the bias-corrected learning rate,
    ``decay`` the learning rate times AdamW's weight decay, applied when ``decoupled`` is true.
    """
    flat = _flat([p, g, m, v])
    if flat is None:
        return None
    arrays, out = _outputs(p, 3)
    kind = p.dtype.type
    _adam(*flat, *out, kind(keep1), kind(keep2), kind(epsilon), kind(step), kind(decay), kind(bool(decoupled)))
    return tuple(arrays)


def _resample_signatures() -> list:
    """Images (n, pixels), affine draws (n, 4), field (n, 2, rows, cols), the grid's row and column offsets
    from the centre, the numbers (``resample``) and the output, all of one float type, for each float type."""
    signatures = []
    for t in FLOAT_TYPES:
        kind = numba.from_dtype(t)
        signatures.append(numba.void(kind[:, ::1], kind[:, ::1], kind[:, :, :, ::1], kind[::1], kind[::1], kind[::1],
                                     kind[:, ::1]))  # fmt: skip
    return signatures


@numba.njit(_resample_signatures(), cache=True, nogil=True, error_model="numpy")
def _resample(X, affine, field, row, col, numbers, out):
    rotate, zoom, shear, centre_row, centre_col, affine_on, one, zero, high_row, high_col = numbers
    rows, cols = row.shape[0], col.shape[0]
    pixels = rows * cols
    # As ``augment.bilinear``: each image in a frame with a border of zeros (one line before, two
    # after), every point clipped into it, four pixels read with no test of where they fall.
    wide = cols + 3
    frame = np.zeros((rows + 3) * wide, X.dtype)
    source_row, source_col = np.empty(pixels, X.dtype), np.empty(pixels, X.dtype)
    down_by, right_by, corner = np.empty(pixels, X.dtype), np.empty(pixels, X.dtype), np.empty(pixels, np.int32)
    # Each pass but the last is a loop without branches, which the compiler runs on vectors.
    for i in range(X.shape[0]):
        for r in range(rows):
            for c in range(cols):
                frame[(r + 1) * wide + c + 1] = X[i, r * cols + c]
        if affine_on != zero:
            angle = affine[i, 0] * rotate
            cos, sin = np.cos(angle), np.sin(angle)
            zoom_row, zoom_col = one + zoom * affine[i, 1], one + zoom * affine[i, 2]
            slant = np.tan(affine[i, 3] * shear)
            for r in range(rows):
                down = row[r] / zoom_row
                for c in range(cols):
                    across = col[c] / zoom_col + slant * down
                    source_row[r * cols + c] = cos * down - sin * across + centre_row
                    source_col[r * cols + c] = sin * down + cos * across + centre_col
        else:
            for r in range(rows):
                for c in range(cols):
                    source_row[r * cols + c], source_col[r * cols + c] = row[r] + centre_row, col[c] + centre_col
        if field.shape[0] != 0:
            for r in range(rows):
                for c in range(cols):
                    source_row[r * cols + c] += field[i, 0, r, c]
                    source_col[r * cols + c] += field[i, 1, r, c]
        for at in range(pixels):
            framed_row = min(max(source_row[at] + one, zero), high_row)
            framed_col = min(max(source_col[at] + one, zero), high_col)
            top, left = np.floor(framed_row), np.floor(framed_col)
            down_by[at], right_by[at] = framed_row - top, framed_col - left
            corner[at] = np.int32(top) * wide + np.int32(left)
        for at in range(pixels):
            read = corner[at]
            upper_left, upper_right = frame[read], frame[read + 1]
            lower_left, lower_right = frame[read + wide], frame[read + wide + 1]
            upper = upper_left + right_by[at] * (upper_right - upper_left)
            lower = lower_left + right_by[at] * (lower_right - lower_left)
            out[i, at] = upper + down_by[at] * (lower - upper)


def resample(X, affine, field, rotate, zoom, shear, shape):
    """``augment.Distortion``'s images in one pass: ``X`` read at each pixel's point under the affine map that
    the signed draws ``affine`` (n, 4) give, moved by ``field`` (n, 2, rows, cols; None without); None for
    arrays this kernel does not take. ``rotate`` and ``shear`` are in radians; no affine map if all are 0."""
    rows, cols = shape
    kind = X.dtype.type if isinstance(X, np.ndarray) else None
    if kind not in FLOAT_TYPES or type(affine) is not np.ndarray or affine.dtype != X.dtype:
        return None
    if field is not None and (type(field) is not np.ndarray or field.dtype != X.dtype):
        return None
    X, affine = np.ascontiguousarray(X), np.ascontiguousarray(affine)
    field = np.zeros((0, 2, rows, cols), X.dtype) if field is None else np.ascontiguousarray(field)
    row = np.arange(rows, dtype=X.dtype) - kind((rows - 1) / 2)
    col = np.arange(cols, dtype=X.dtype) - kind((cols - 1) / 2)
    affine_on = bool(rotate or zoom or shear)
    numbers = np.array([rotate, zoom, shear, (rows - 1) / 2, (cols - 1) / 2, affine_on, 1, 0, rows + 1, cols + 1], kind)
    out = np.empty_like(X)
    _resample(X, affine, field, row, col, numbers, out)
    return out


class Kernels(NamedTuple):
    momentum: object
    adam: object
    resample: object


KERNELS = Kernels(momentum, adam, resample)
