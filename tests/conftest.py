"""The ``backend`` fixture: every test that takes it runs on NumPy, array-api-strict and CuPy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from array_api_compat import array_namespace

from mnist_xp import backend as backends
from mnist_xp.errors import BackendError


@dataclass(frozen=True)
class Backend:
    name: str
    xp: object

    def asarray(self, host, dtype="float64"):
        return backends.to_device(np.asarray(host), self.xp, dtype)

    def to_numpy(self, array):
        return backends.to_host(array)


def _cupy_namespace():
    try:
        return backends.namespace("gpu")
    except BackendError as exc:
        pytest.skip(f"CuPy backend unavailable: {exc}")


@pytest.fixture
def gpu():
    """Skips the test unless CuPy and a CUDA GPU are present."""
    _cupy_namespace()


@pytest.fixture(params=["numpy", "array_api_strict", "cupy"])
def backend(request):
    if request.param == "numpy":
        return Backend("numpy", backends.namespace("cpu"))
    if request.param == "array_api_strict":
        strict = pytest.importorskip("array_api_strict")
        return Backend("array_api_strict", array_namespace(strict.asarray(0.0)))
    return Backend("cupy", _cupy_namespace())
