"""Device names to namespaces, and arrays to and from the device."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from mnist_xp import backend as backends
from mnist_xp.errors import BackendError


def test_cpu_is_numpy():
    xp = backends.namespace("cpu")
    assert isinstance(xp.asarray([1.0]), np.ndarray)


def test_unknown_device_is_refused():
    with pytest.raises(BackendError, match="unknown device 'tpu'"):
        backends.namespace("tpu")


@pytest.mark.parametrize("dtype", backends.DTYPES)
def test_to_device_and_back_keeps_values_and_dtype(backend, dtype):
    host = np.arange(6.0).reshape(2, 3)
    back = backend.to_numpy(backends.to_device(host, backend.xp, dtype))
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, host)


def test_host_draws_are_identical_on_every_backend(backend):
    normal = backends.standard_normal(backends.host_rng(5), backend.xp, "float64")
    np.testing.assert_array_equal(backend.to_numpy(normal((3, 2))), np.random.RandomState(5).standard_normal((3, 2)))


def test_serial_blas_gives_the_same_products_and_only_for_small_numpy_batches():
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(64, 300)), rng.normal(size=(300, 200))
    with backends.serial_blas(A, rows=64):
        serial = A @ B
        assert {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"} == {1}
    np.testing.assert_allclose(serial, A @ B, rtol=1e-12, atol=1e-12)
    assert isinstance(backends.serial_blas(A, rows=backends.SERIAL_BLAS_MAX_ROWS + 1), contextlib.nullcontext)
    strict = pytest.importorskip("array_api_strict")
    assert isinstance(backends.serial_blas(strict.asarray([1.0]), rows=1), contextlib.nullcontext)
