"""Device names to namespaces, and arrays to and from the device."""

from __future__ import annotations

import contextlib
import platform
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from mnist_xp import backend as backends
from mnist_xp.errors import BackendError, SettingError


def test_cpu_is_numpy():
    xp = backends.namespace("cpu")
    assert isinstance(xp.asarray([1.0]), np.ndarray)


def test_unknown_device_is_a_setting_error_naming_the_parameter():
    with pytest.raises(SettingError, match="^device: 'tpu' is not one of cpu, gpu$") as refused:
        backends.namespace("tpu")
    assert refused.value.name == "device" and refused.value.complaint == "'tpu' is not one of cpu, gpu"


def test_a_device_the_machine_lacks_is_a_backend_error_naming_the_device(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # as if CuPy were not installed
    with pytest.raises(BackendError, match="^device 'gpu' needs CuPy, which is not installed; install it with") as lacking:
        backends.namespace("gpu")
    assert lacking.value.device == "gpu" and lacking.value.problem.startswith("needs CuPy")


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


FAULTS_IN_TRAINING = """
import resource, numpy as np
from mnist_xp import nn, optim
from mnist_xp.loop import TrainState, fit
rng = np.random.default_rng(0)
X = rng.random((6000, 784), dtype=np.float32)
Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 6000)]
params = nn.init_params([784, 128, 10], lambda shape: rng.standard_normal(shape).astype(np.float32))
optimizer = optim.momentum(0.9, nesterov=True)
faults = []
fit(TrainState(params, optimizer.init(params)), X, Y, optimizer=optimizer, learning_rate=0.01, epochs=3,
    batch_size=128, on_epoch=lambda state, result: faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt))
print(faults[-1] - faults[0])
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="keep_freed_memory tunes glibc's malloc")
def test_training_reuses_freed_memory_instead_of_faulting_in_fresh_pages():
    # With glibc's default thresholds these two epochs of 47 steps take 10,000 to 18,000 page faults.
    result = subprocess.run([sys.executable, "-c", FAULTS_IN_TRAINING], capture_output=True, text=True, check=True)
    assert int(result.stdout) < 200
    assert backends.keep_freed_memory() is True


def test_every_random_stream_has_its_own_tag_and_draws():
    tags = list(backends.STREAMS.values())
    assert len(set(tags)) == len(tags)
    # The same key parts in two streams must not give the same draws: the epoch order of seed 2,
    # epoch 5 once drew exactly what the validation split of seed 5 drew.
    draws = {name: backends.host_generator(name, 2, 5).permutation(100) for name in backends.STREAMS}
    assert len({tuple(order) for order in draws.values()}) == len(draws)
