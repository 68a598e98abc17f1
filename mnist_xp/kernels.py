"""Single-pass optimizer updates for NumPy arrays, compiled by Numba (the optional ``numba`` extra).

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


class Kernels(NamedTuple):
    momentum: object
    adam: object


KERNELS = Kernels(momentum, adam)
