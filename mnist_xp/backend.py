"""Backends, devices and array namespaces: the only module that knows one array library from another.

A run is placed by two names: its backend (the library: numpy, cupy, torch or jax) and its
device (cpu, gpu, or mps for PyTorch on Apple silicon). ``place`` turns them into a ``Place``:
the library's namespace (through array-api-compat) and the library's own device. Everything
else receives arrays and asks them for their namespace (``array_namespace``), so the network's
math never names a library; what differs between libraries (placement, host copies, waiting for
the device, where random draws are made) is here.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from array_api_compat import (
    array_namespace,
    device,
    is_array_api_obj,
    is_cupy_array,
    is_cupy_namespace,
    is_jax_array,
    is_jax_namespace,
    is_numpy_array,
    is_numpy_namespace,
    is_torch_array,
)

from .errors import BackendError, SettingError, first_line

BACKENDS = ("numpy", "cupy", "torch", "jax")
DEVICES = ("cpu", "gpu", "mps")
DTYPES = ("float32", "float64")

__all__ = [
    "BACKENDS",
    "DEVICES",
    "DTYPES",
    "Place",
    "place",
    "place_of",
    "default_backend",
    "check_choice",
    "array_namespace",
    "namespace",
    "to_device",
    "to_host",
    "synchronize",
    "allow_float64",
    "host_rng",
    "standard_normal",
    "serial_blas",
    "row_blocks",
    "map_blocks",
    "made_ahead",
    "fused_kernels",
    "keep_freed_memory",
    "uniform_sampler",
    "STREAMS",
    "host_generator",
]

SERIAL_ROWS = 512
"""NumPy batches of up to this many rows run on one BLAS thread; larger ones in blocks (``row_blocks``)."""

BLOCK_ROWS = 8192
"""NumPy batches of more than ``SERIAL_ROWS`` rows are split into at least two blocks of at most this many rows."""


@dataclass(frozen=True)
class Library:
    """An array library the engine runs on: its ``title``, the ``module`` of its arrays, the package extra
    that installs it, the ``devices`` it offers, and ``locate(module, device)``, its own device for a device
    name (raising a ``BackendError`` where this machine lacks it)."""

    title: str
    module: str
    extra: str
    devices: tuple[str, ...]
    locate: Callable


def _numpy_device(numpy, name):
    return "cpu"


def _cupy_device(cupy, name):
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken: CuPy raises its own runtime error types
        raise BackendError("device", name, f"needs a CUDA GPU, but CUDA reports: {first_line(exc)}") from None
    if count < 1:
        raise BackendError("device", name, "needs a CUDA GPU, and none is visible on this machine")
    return cupy.cuda.Device()


def _torch_device(torch, name):
    if name == "gpu" and not torch.cuda.is_available():  # ROCm builds answer through torch.cuda too
        raise BackendError("device", name, "needs a GPU that PyTorch can use (CUDA or ROCm), and it finds none")
    if name == "mps" and not torch.backends.mps.is_available():
        raise BackendError("device", name, "needs Apple silicon and a PyTorch build with MPS, and it finds none")
    return torch.device({"cpu": "cpu", "gpu": "cuda", "mps": "mps"}[name])


def _jax_device(jnp, name):
    import jax

    try:
        return jax.devices(name)[0]
    except RuntimeError:
        raise BackendError(
            "device", name, "needs JAX built for a GPU; install it with: pip install -U 'jax[cuda12]'"
        ) from None


LIBRARIES = {
    "numpy": Library("NumPy", "numpy", "", ("cpu",), _numpy_device),
    "cupy": Library("CuPy", "cupy", "gpu", ("gpu",), _cupy_device),
    "torch": Library("PyTorch", "torch", "torch", ("cpu", "gpu", "mps"), _torch_device),
    "jax": Library("JAX", "jax.numpy", "jax", ("cpu", "gpu"), _jax_device),
}
"""Every backend by name. Devices: cpu, gpu (CUDA, or ROCm where the library supports it), mps (Apple silicon)."""


def default_backend(device: str) -> str:
    """The backend a device runs on when none is named: CuPy for 'gpu', NumPy otherwise."""
    return "cupy" if device == "gpu" else "numpy"


def check_choice(device: str = "cpu", backend: str | None = None) -> str:
    """Check the names ``device`` and ``backend`` (None: ``default_backend``), and return the backend's name.

    An unknown name, or a device the backend does not offer, is a ``SettingError``; nothing is imported.
    """
    if device not in DEVICES:
        raise SettingError("device", f"{device!r} is not one of {', '.join(DEVICES)}")
    if backend is not None and backend not in BACKENDS:
        raise SettingError("backend", f"{backend!r} is not one of {', '.join(BACKENDS)}")
    name = default_backend(device) if backend is None else backend
    offered = LIBRARIES[name].devices
    if device not in offered:
        raise SettingError("device", f"{device!r} is not a device of backend {name!r}, which offers {', '.join(offered)}")
    return name


@dataclass(frozen=True)
class Place:
    """Where a run's arrays live: the ``backend`` and ``device`` names, the namespace ``xp`` and the
    library's own device object ``target``."""

    backend: str
    device: str
    xp: object
    target: object


def place(device: str = "cpu", backend: str | None = None) -> Place:
    """The ``Place`` of ``device`` on ``backend`` (None: CuPy for 'gpu', NumPy otherwise).

    An unknown name is a ``SettingError``; a library that is not installed or a device this
    machine lacks, a ``BackendError`` naming the parameter that asked for it.
    """
    name = check_choice(device, backend)
    library = LIBRARIES[name]
    try:
        module = importlib.import_module(library.module)
    except ImportError:
        asked = ("backend", name) if backend is not None else ("device", device)
        raise BackendError(
            *asked, f"needs {library.title}, which is not installed; install it with: pip install 'mnist-xp[{library.extra}]'"
        ) from None
    target = library.locate(module, device)
    return Place(name, device, array_namespace(module.empty(0)), target)


def namespace(device: str = "cpu", backend: str | None = None):
    """The array namespace of ``device`` on ``backend`` (see ``place``): 'cpu' alone is NumPy, 'gpu' alone CuPy."""
    return place(device, backend).xp


def place_of(array) -> tuple[str, str]:
    """The (backend, device) names of an array; arrays of other namespaces (array-api-strict) count as NumPy's."""
    if is_cupy_array(array):
        return "cupy", "gpu"
    if is_torch_array(array):
        kind = array.device.type
        return "torch", {"cuda": "gpu"}.get(kind, kind)
    if is_jax_array(array):
        kind = next(iter(array.devices())).platform
        return "jax", "cpu" if kind == "cpu" else "gpu"
    return "numpy", "cpu"


def _destination(where):
    """The namespace and library device that ``where`` (a ``Place``, an array, or a namespace) stands for."""
    if isinstance(where, Place):
        return where.xp, where.target
    if is_array_api_obj(where):
        return array_namespace(where), device(where)
    return where, None


def to_device(host_array, where, dtype: str | None = None):
    """Copy a NumPy array to ``where`` (optionally casting to ``dtype`` by name).

    ``where`` is a ``Place``, an array (the copy goes to its namespace and device) or a namespace (its
    default device). float64 on JAX needs its 64-bit mode (``allow_float64``): without it a
    ``SettingError``, where JAX itself would quietly compute in float32.
    """
    xp, target = _destination(where)
    wanted = dtype if dtype is not None else getattr(host_array, "dtype", None)
    if str(wanted) == "float64":
        _check_float64(xp, target)
    return xp.asarray(host_array, dtype=None if dtype is None else getattr(xp, dtype), device=target)


def _check_float64(xp, target) -> None:
    """Refuse float64 where the library would not compute in it: JAX outside its 64-bit mode, PyTorch on MPS."""
    if is_jax_namespace(xp):
        import jax

        if jax.dtypes.canonicalize_dtype(np.float64) != np.float64:
            raise SettingError(
                "dtype",
                "float64 on backend 'jax' needs JAX's 64-bit mode: set JAX_ENABLE_X64=1 in the environment, "
                "or call jax.config.update('jax_enable_x64', True) first",
            )
    elif getattr(target, "type", None) == "mps":
        raise SettingError("dtype", "float64 is not offered by PyTorch on device 'mps': use float32")


def allow_float64(backend: str | None) -> None:
    """Let ``backend``'s library compute in float64 in this whole process: JAX's 64-bit mode (the others always can).

    Process-wide, so only the commands call it, for the processes they own; the library never does.
    Without the library it does nothing (``place`` says how to install it).
    """
    if backend != "jax":
        return
    try:
        import jax
    except ImportError:
        return
    jax.config.update("jax_enable_x64", True)


def to_host(array) -> np.ndarray:
    """Return a NumPy copy (or view) of an array from any supported namespace."""
    if is_numpy_array(array):
        return np.asarray(array)
    if is_cupy_array(array):
        return array.get()
    if is_torch_array(array):
        return array.detach().cpu().numpy()
    if is_jax_array(array):
        return np.asarray(array)
    return np.from_dlpack(array)


def synchronize(array) -> None:
    """Wait until the device holding ``array`` has finished its queued work (for honest timings)."""
    if is_cupy_array(array):
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    elif is_torch_array(array) and array.device.type != "cpu":
        import torch

        (torch.cuda if array.device.type == "cuda" else torch.mps).synchronize()
    elif is_jax_array(array):
        array.block_until_ready()


def host_rng(seed: int) -> np.random.RandomState:
    """A seeded host generator; NumPy's legacy ``RandomState`` so the tutorial's draws are reproduced."""
    return np.random.RandomState(seed)


def standard_normal(rng: np.random.RandomState, where, dtype: str):
    """A sampler ``normal(shape)`` drawing on the host from ``rng`` and moving the draw to ``where`` (see ``to_device``).

    Drawing on the host makes every backend start from the very same parameters.
    """

    def normal(shape):
        return to_device(rng.standard_normal(shape), where, dtype)

    return normal


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread():
    return _blas_threads(1)


def _blas_threads(count: int):
    try:
        controller = _blas_controller()
    except ImportError:
        return contextlib.nullcontext()
    return controller.limit(limits=count, user_api="blas")


def serial_blas(array, threads: int = 1):
    """A context in which NumPy's BLAS runs on one thread (or ``threads``), for training steps on ``array``'s batches.

    A seed then gives the same weights on any number of cores: OpenBLAS rounds a product
    differently on every thread count, while a batch of up to ``SERIAL_ROWS`` rows runs on
    one thread and a larger one in blocks of rows each on one thread (``row_blocks``, ``map_blocks``).
    One thread also keeps a step fast when another process busies a core: threads that share
    a product wait for the slowest, and a busy core can hold one for a whole scheduler slice
    (the README's "On a busy machine" gives the figures). More ``threads`` share the products
    of a batch of up to ``SERIAL_ROWS`` rows: faster on a quiet machine, with weights that
    depend on the count.
    Elsewhere (CuPy, other namespaces, or without threadpoolctl) it does nothing.
    """
    if not is_numpy_array(array):
        return contextlib.nullcontext()
    return _blas_threads(threads)


def row_blocks(array, rows: int) -> list[tuple[int, int]]:
    """Row ranges ``(start, stop)`` that split a batch of ``rows`` rows of ``array`` into blocks for ``map_blocks``.

    A NumPy batch of more than ``SERIAL_ROWS`` rows becomes the fewest blocks, at least two, of at
    most ``BLOCK_ROWS`` rows, of sizes as equal as can be; any other batch stays one block. The
    split depends on the row count alone, never on the number of cores, so a result computed
    block by block is the same on every machine.
    """
    if not is_numpy_array(array) or rows <= SERIAL_ROWS:
        return [(0, rows)]
    count = max(2, -(-rows // BLOCK_ROWS))
    bounds = [rows * i // count for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _cores() -> int:
    """The cores this process may run on."""
    return (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()) or 1


@functools.cache
def _block_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_cores(), thread_name_prefix="mnist-xp-block")


if hasattr(os, "register_at_fork"):
    # A forked child inherits the pool but not its threads: it makes a pool of its own.
    os.register_at_fork(after_in_child=_block_pool.cache_clear)


def map_blocks(fn, blocks):
    """``[fn(start, stop) for (start, stop) in blocks]``, with several blocks computed side by side.

    NumPy's element-wise functions run on one core, and on large arrays they are bound by memory;
    a block per core spreads them over every core the process may use, and keeps each block's
    arrays small enough to stay in cache. NumPy and its BLAS release the GIL, so threads suffice;
    meanwhile the BLAS runs on one thread, as each block has a core of its own. The results come
    back in the blocks' order, whatever order they finish in.
    """
    if len(blocks) == 1:
        return [fn(*blocks[0])]
    with _one_blas_thread():
        return list(_block_pool().map(lambda block: fn(*block), blocks))


def made_ahead(fn, count: int, like):
    """``fn(0)``, ``fn(1)``, ... ``fn(count - 1)`` in turn, each next one made on another core while the
    caller works with the one before.

    Training steps on NumPy leave the other cores idle (``serial_blas``): work that the next step
    needs and that does not depend on this one, such as the next batch's distortions, is done there
    meanwhile. The results are those of ``fn`` however the work is shared. Elsewhere (arrays
    ``like`` of another namespace, or a single core) each is made when it is asked for.
    """
    if not is_numpy_array(like) or _cores() < 2:
        yield from (fn(index) for index in range(count))
        return
    pool = _block_pool()
    pending = pool.submit(fn, 0) if count else None
    for index in range(count):
        made = pending.result()
        pending = pool.submit(fn, index + 1) if index + 1 < count else None
        yield made


def fused_kernels(xp):
    """Single-pass optimizer updates for arrays of namespace ``xp`` (``kernels.Kernels``), or None.

    On NumPy with Numba importable (a dependency), ``kernels.KERNELS``: they give the
    update rules' results bit for bit, in one pass instead of up to a dozen. Elsewhere (CuPy,
    other namespaces, or without Numba) None, and the rules run their own lines.
    """
    if not is_numpy_namespace(xp):
        return None
    try:
        from .kernels import KERNELS
    except ImportError:
        return None
    return KERNELS


GLIBC_M_TRIM_THRESHOLD = -1
GLIBC_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 2**20
"""Blocks below this come from the heap: glibc's largest allowed value, above one 60,000 x 128 float32 array."""
TRIM_THRESHOLD_BYTES = 256 * 2**20
"""Freed heap memory up to this much stays with the process instead of going back to the kernel."""


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed arrays' memory for reuse (process-wide); True if it took effect.

    Every training step frees and allocates arrays of the same few sizes. With glibc's default
    thresholds, blocks of a few hundred KiB are handed back to the kernel when freed and come
    back as fresh pages, one page fault per 4 KiB touched (the README's Benchmarks say what that
    costs). With both thresholds raised they are reused from the heap instead. Only the
    allocator's bookkeeping changes, never a result. Does nothing on other C libraries.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(GLIBC_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(GLIBC_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


STREAMS = {"order": 0, "dropout": 1, "shift": 2, "validation": 3, "distort": 4}
"""Every use of randomness in a run has its own tag, first in the key of its draws, so that no two
uses ever draw the same numbers, whatever their other key parts (seed, epoch, batch) are. The
initial weights come from ``host_rng(seed)`` alone, as the tutorial drew them."""


def host_generator(stream: str, *key: int) -> np.random.Generator:
    """A host generator for ``stream`` (a name in ``STREAMS``) whose draws are a pure function of ``key``."""
    return np.random.default_rng([STREAMS[stream], *key])


def uniform_sampler(where, stream: str, *key: int):
    """A sampler ``uniform(shape, dtype)`` of U[0, 1) draws for ``stream`` on ``where`` (a namespace, or an array
    whose namespace and device the draws go to), seeded by the integers ``key``.

    The draws are a pure function of the stream and ``key`` (e.g. seed, epoch, batch), so training
    randomness such as dropout masks needs no generator state to resume. NumPy and CuPy draw on
    their own device; every other library (PyTorch, JAX, array-api-strict) gets NumPy's draws,
    made on the host and copied over, so that a seed gives the same masks there as on NumPy.
    """
    xp = where if not is_array_api_obj(where) else array_namespace(where)
    seed = int(np.random.SeedSequence([STREAMS[stream], *key]).generate_state(1, np.uint64)[0])
    if is_cupy_namespace(xp):
        import cupy

        # A new generator per batch: counter-based Philox starts at once, where CuPy's default
        # XORWOW first sets up 256,000 states (the README's GPU section gives the times).
        generator = cupy.random.Generator(cupy.random.Philox4x3210(seed))
        return lambda shape, dtype: generator.random(shape, dtype=getattr(cupy, dtype))
    generator = np.random.default_rng(seed)
    if is_numpy_namespace(xp):
        return lambda shape, dtype: generator.random(shape, dtype=getattr(np, dtype))
    return lambda shape, dtype: to_device(generator.random(shape, dtype=getattr(np, dtype)), where)
