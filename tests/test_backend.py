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


@pytest.mark.parametrize(
    "device, backend, name, complaint",
    [
        ("tpu", None, "device", "'tpu' is not one of cpu, gpu, mps"),
        ("cpu", "tensorflow", "backend", "'tensorflow' is not one of numpy, cupy, torch, jax"),
        ("mps", None, "device", "'mps' is not a device of backend 'numpy', which offers cpu"),
        ("mps", "jax", "device", "'mps' is not a device of backend 'jax', which offers cpu, gpu"),
        ("cpu", "cupy", "device", "'cpu' is not a device of backend 'cupy', which offers gpu"),
    ],
)
def test_unknown_names_and_devices_a_backend_lacks_are_setting_errors_naming_the_parameter(device, backend, name, complaint):
    with pytest.raises(SettingError) as refused:
        backends.namespace(device, backend)
    assert (refused.value.name, refused.value.complaint) == (name, complaint)
    assert str(refused.value) == f"{name}: {complaint}"


@pytest.mark.parametrize(
    "device, backend, module, name, message",
    [
        ("gpu", None, "cupy", "device", "device 'gpu' needs CuPy, which is not installed; install it with: pip install 'mnist-xp[gpu]'"),
        ("gpu", "cupy", "cupy", "backend", "backend 'cupy' needs CuPy, which is not installed; install it with: pip install 'mnist-xp[gpu]'"),
        ("cpu", "torch", "torch", "backend", "backend 'torch' needs PyTorch, which is not installed; install it with: pip install 'mnist-xp[torch]'"),
        ("cpu", "jax", "jax.numpy", "backend", "backend 'jax' needs JAX, which is not installed; install it with: pip install 'mnist-xp[jax]'"),
    ],
)
def test_a_library_that_is_not_installed_is_one_line_naming_the_parameter_that_asked_for_it(
    monkeypatch, device, backend, module, name, message
):
    monkeypatch.setitem(sys.modules, module, None)  # as if the library were not installed
    with pytest.raises(BackendError) as lacking:
        backends.namespace(device, backend)
    assert str(lacking.value) == message
    assert (lacking.value.name, lacking.value.value) == (name, backend or device)


@pytest.mark.parametrize(
    "device, backend, problem",
    [
        ("gpu", "torch", "needs a GPU that PyTorch can use (CUDA or ROCm), and it finds none"),
        ("mps", "torch", "needs Apple silicon and a PyTorch build with MPS, and it finds none"),
        ("gpu", "jax", "needs JAX built for a GPU; install it with: pip install -U 'jax[cuda12]'"),
    ],
)
def test_a_device_the_machine_lacks_is_a_backend_error_naming_the_device(device, backend, problem):
    library = pytest.importorskip(backend)
    present = {
        ("gpu", "torch"): lambda: library.cuda.is_available(),
        ("mps", "torch"): lambda: library.backends.mps.is_available(),
        ("gpu", "jax"): lambda: any(found.platform != "cpu" for found in library.devices()),
    }[device, backend]
    if present():
        pytest.skip(f"this machine has the device {device!r} for {backend}")
    with pytest.raises(BackendError) as lacking:
        backends.namespace(device, backend)
    assert (lacking.value.name, lacking.value.value, lacking.value.problem) == ("device", device, problem)


def test_every_backend_names_its_arrays_place(backend):
    expected = {"cupy": ("cupy", "gpu"), "torch": ("torch", "cpu"), "jax": ("jax", "cpu")}.get(backend.name, ("numpy", "cpu"))
    assert backends.place_of(backend.asarray([1.0])) == expected


@pytest.mark.parametrize("dtype", backends.DTYPES)
def test_to_device_and_back_keeps_values_and_dtype(backend, dtype):
    host = np.arange(6.0).reshape(2, 3)
    on_device = backends.to_device(host, backend.xp, dtype)
    back = backend.to_numpy(on_device)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, host)
    like = backend.to_numpy(backends.to_device(host[:1], on_device))  # an array as the destination: its place
    np.testing.assert_array_equal(like, host[:1])
    backends.synchronize(on_device)


def test_float64_on_jax_without_its_64_bit_mode_is_refused_instead_of_computed_in_float32():
    pytest.importorskip("jax")
    xp = backends.namespace("cpu", "jax")
    with pytest.raises(SettingError, match="^dtype: float64 on backend 'jax' needs JAX's 64-bit mode: set JAX_ENABLE_X64=1"):
        backends.to_device(np.ones(2), xp)
    assert backends.to_device(np.ones(2), xp, "float32").dtype == xp.float32


def test_float64_on_mps_is_refused_before_pytorch_is_asked():
    torch = pytest.importorskip("torch")
    mps = backends.Place("torch", "mps", backends.namespace("cpu", "torch"), torch.device("mps"))
    with pytest.raises(SettingError, match="^dtype: float64 is not offered by PyTorch on device 'mps': use float32$"):
        backends.to_device(np.ones(2), mps)
    with pytest.raises(SettingError, match="mps"):
        backends.to_device(np.ones(2, np.float32), mps, "float64")


def test_allow_float64_turns_on_jax_64_bit_mode_for_the_process_only_when_asked():
    pytest.importorskip("jax")
    script = (
        "import numpy as np\n"
        "from mnist_xp import backend\n"
        "xp = backend.namespace('cpu', 'jax')\n"
        "backend.allow_float64('numpy')\n"
        "try:\n    backend.to_device(np.ones(2), xp)\nexcept ValueError:\n    print('refused')\n"
        "backend.allow_float64('jax')\n"
        "print(backend.to_device(np.ones(2), xp).dtype)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["refused", "float64"]


def test_host_draws_are_identical_on_every_backend(backend):
    normal = backends.standard_normal(backends.host_rng(5), backend.xp, "float64")
    np.testing.assert_array_equal(backend.to_numpy(normal((3, 2))), np.random.RandomState(5).standard_normal((3, 2)))


def test_uniform_draws_are_numpys_on_every_backend_but_cupy(backend):
    if backend.name == "cupy":
        pytest.skip("CuPy draws on the GPU with its own generator")
    like = backend.asarray([0.0])
    draws = backends.uniform_sampler(like, "dropout", 3, 1, 4)((5, 2), "float64")
    assert backends.place_of(draws) == backends.place_of(like)
    expected = backends.uniform_sampler(np, "dropout", 3, 1, 4)((5, 2), "float64")
    np.testing.assert_array_equal(backend.to_numpy(draws), expected)


def test_serial_blas_runs_numpys_blas_on_one_thread_and_leaves_other_libraries_alone():
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(600, 300)), rng.normal(size=(300, 200))
    with backends.serial_blas(A):
        serial = A @ B
        assert {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"} == {1}
    np.testing.assert_allclose(serial, A @ B, rtol=1e-12, atol=1e-12)
    strict = pytest.importorskip("array_api_strict")
    assert isinstance(backends.serial_blas(strict.asarray([1.0])), contextlib.nullcontext)


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
