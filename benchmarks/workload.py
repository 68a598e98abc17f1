"""The benchmarked work, written down once: network shape, data, FLOP counts, result records."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import NamedTuple

import pytest
from array_api_compat import array_namespace

from mnist_xp import DEFAULT, backend, load_mnist, nn
from mnist_xp.optim import sgd
from mnist_xp.pipeline import initial_state

LAYERS = (784, 128, 10)
LIBRARIES = ("torch", "jax")
"""The libraries our engine also runs on, beside NumPy and CuPy, eager and compiled."""
BATCH_SIZES = (32, 128)
ADAM_LR = 1e-3
SGD_LR = 0.1
SEED = 0


def forward_flop(n: int, layers=LAYERS) -> int:
    """Multiply-adds of the forward pass, counted as 2 FLOP each: one product per layer."""
    return sum(2 * n * fan_in * fan_out for fan_in, fan_out in itertools.pairwise(layers))


def backward_flop(n: int, layers=LAYERS) -> int:
    """Every layer's weight gradient, plus the gradient passed back through every layer but the first."""
    pairs = list(itertools.pairwise(layers))
    return sum(2 * n * a * b for a, b in pairs) + sum(2 * n * a * b for a, b in pairs[1:])


def step_flop(n: int, layers=LAYERS) -> int:
    """One training step: forward and backward products (the element-wise work is not counted)."""
    return forward_flop(n, layers) + backward_flop(n, layers)


@cache
def mnist(device: str, dtype: str, limit: int | None = None):
    """The real MNIST training set (the first ``limit`` images; all 60,000 by default) on ``device``: (X, Y, labels)."""
    dataset = load_mnist(device, dtype, limit=limit)
    return dataset.X_train, dataset.Y_train, dataset.y_train


def host_params(dtype: str):
    """He-initialised parameters drawn on the host, the same for every library."""
    config = replace(DEFAULT, hidden=LAYERS[1:-1], dtype=dtype, seed=SEED)
    return initial_state(config, list(LAYERS), backend.namespace("cpu"), sgd()).params


def record(benchmark, *, impl: str, work: str, device: str, dtype: str, samples: int, flop: int, batch="full") -> None:
    """Label a benchmark for the report and add samples/s and GFLOP/s from its median."""
    benchmark.extra_info.update(
        impl=impl, work=work, device=device, dtype=dtype, batch=batch, samples=samples, gflop=flop / 1e9
    )
    stats = getattr(benchmark, "stats", None)
    if stats:
        median = stats.stats.median
        benchmark.extra_info.update(samples_per_s=samples / median, gflop_per_s=flop / 1e9 / median)


def floor_products(X, Y, params):
    """The five products of one step and nothing else, as a thunk: X W1, A1 W2; A1^T dZ2, dZ2 W2^T, X^T dZ1."""
    (W1, _), (W2, _) = params
    A1 = nn.relu(X @ W1)
    dZ2 = Y - 0.5

    def products():
        X @ W1
        A1 @ W2
        A1.T @ dZ2
        dZ1 = dZ2 @ W2.T
        return X.T @ dZ1

    return products


class Engine(NamedTuple):
    """Our engine on another library: its namespace, a copier of host arrays into it, and ``wait(arrays)``,
    which returns once the work queued for ``arrays`` is done."""

    xp: object
    to_xp: Callable
    wait: Callable


def engine(library: str, device: str) -> Engine:
    """Our engine on ``library`` ('torch' or 'jax') on ``device``. Skips where the library is missing or,
    on 'gpu', sees no GPU (JAX: where its default device is not one)."""
    if library == "torch":
        torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'mnist-xp[bench]'")
        if device == "gpu" and not torch.cuda.is_available():
            pytest.skip("this PyTorch sees no CUDA GPU")
        target = "cuda" if device == "gpu" else "cpu"
        wait = (lambda arrays: torch.cuda.synchronize()) if device == "gpu" else (lambda arrays: None)
        return Engine(array_namespace(torch.zeros(1)), lambda host: torch.asarray(host, device=target), wait)
    jax = pytest.importorskip("jax", reason="JAX is not installed")
    if (device == "gpu") != (jax.default_backend() == "gpu"):
        pytest.skip(f"JAX runs on its {jax.default_backend()} here")
    return Engine(array_namespace(jax.numpy.zeros(1)), jax.numpy.asarray, jax.block_until_ready)
