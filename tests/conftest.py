"""The ``backend`` fixture: every test that takes it runs on NumPy, array-api-strict, CuPy, PyTorch and JAX.

PyTorch and JAX run on the CPU here; CuPy and the GPU devices only where a GPU is present.
A library that is not installed skips its tests with the command that installs it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import pytest
from array_api_compat import array_namespace

from mnist_xp import backend as backends
from mnist_xp.errors import BackendError

BACKENDS = ["numpy", "array_api_strict", "cupy", "torch", "jax"]


@dataclass(frozen=True)
class Backend:
    name: str
    xp: object

    def asarray(self, host, dtype="float64"):
        return backends.to_device(np.asarray(host), self.xp, dtype)

    def to_numpy(self, array):
        return backends.to_host(array)


def available(name: str, device: str = "cpu"):
    """The namespace of backend ``name`` on ``device``; skips the test (saying how to install it) if absent."""
    try:
        return backends.namespace(device, name)
    except BackendError as exc:
        pytest.skip(f"{name} backend unavailable: {exc}")


@pytest.fixture
def gpu():
    """Skips the test unless CuPy and a CUDA GPU are present."""
    available("cupy", "gpu")


def float64_everywhere(name: str):
    """A context in which backend ``name`` computes in float64: JAX's 64-bit mode, for JAX (nothing elsewhere)."""
    if name != "jax":
        return contextlib.nullcontext()
    import jax

    return jax.enable_x64(True)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """A backend on the CPU (CuPy on the GPU), its float64 available: the tests compare against NumPy in float64."""
    if request.param == "array_api_strict":
        strict = pytest.importorskip("array_api_strict")
        yield Backend("array_api_strict", array_namespace(strict.asarray(0.0)))
        return
    xp = available(request.param, "gpu" if request.param == "cupy" else "cpu")
    with float64_everywhere(request.param):
        yield Backend(request.param, xp)


@pytest.fixture(params=["torch", "jax", "cupy"])
def engine(request):
    """A backend other than NumPy that runs whole trainings, as ``(backend, device)``: PyTorch and JAX on the
    CPU, CuPy on the GPU. float64 is available, as with ``backend``."""
    device = "gpu" if request.param == "cupy" else "cpu"
    available(request.param, device)
    with float64_everywhere(request.param):
        yield request.param, device
