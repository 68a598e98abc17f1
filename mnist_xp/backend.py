"""Devices and array namespaces: the only module that knows NumPy from CuPy.

Everything else receives arrays and asks them for their namespace (``array_namespace``),
so the network's math never names a library.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from array_api_compat import array_namespace, is_cupy_array, is_cupy_namespace, is_numpy_array, is_numpy_namespace

from .errors import GPU_INSTALL_HINT, BackendError, SettingError, first_line

DEVICES = ("cpu", "gpu")
DTYPES = ("float32", "float64")

__all__ = [
    "DEVICES",
    "DTYPES",
    "array_namespace",
    "namespace",
    "to_device",
    "to_host",
    "synchronize",
    "host_rng",
    "standard_normal",
    "serial_blas",
    "row_blocks",
    "map_blocks",
    "fused_kernels",
    "keep_freed_memory",
    "uniform_sampler",
    "STREAMS",
    "host_generator",
]

SERIAL_BLAS_MAX_ROWS = 64
"""Batches up to this many rows have products too small to share between CPU threads."""

BLOCK_ROWS = 8192
"""NumPy batches of more rows than this are split into blocks of at most this many, one per thread."""


def namespace(device: str):
    """Return the array namespace for ``device`` ('cpu' is NumPy, 'gpu' is CuPy).

    An unknown name is a ``SettingError``; a device this machine cannot use, a ``BackendError``.
    """
    if device == "cpu":
        return array_namespace(np.empty(0))
    if device == "gpu":
        return _cupy_namespace()
    raise SettingError("device", f"{device!r} is not one of {', '.join(DEVICES)}")


def _cupy_namespace():
    try:
        import cupy
    except ImportError:
        raise BackendError("gpu", f"needs CuPy, which is not installed; {GPU_INSTALL_HINT}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken: CuPy raises its own runtime error types
        raise BackendError("gpu", f"needs a CUDA GPU, but CUDA reports: {first_line(exc)}") from None
    if count < 1:
        raise BackendError("gpu", "needs a CUDA GPU, and none is visible on this machine")
    return array_namespace(cupy.empty(0))


def device_name(xp) -> str:
    """'gpu' for CuPy's namespace, 'cpu' for any other (NumPy, or a host namespace such as array-api-strict)."""
    return "gpu" if is_cupy_namespace(xp) else "cpu"


def to_device(host_array, xp, dtype: str | None = None):
    """Copy a NumPy array into namespace ``xp`` (optionally casting to ``dtype`` by name)."""
    target = getattr(xp, dtype) if dtype is not None else None
    return xp.asarray(host_array, dtype=target)


def to_host(array) -> np.ndarray:
    """Return a NumPy copy (or view) of an array from any supported namespace."""
    if is_numpy_array(array):
        return np.asarray(array)
    if is_cupy_array(array):
        return array.get()
    return np.from_dlpack(array)


def synchronize(array) -> None:
    """Wait until the device holding ``array`` has finished its queued work (for honest timings)."""
    if is_cupy_array(array):
        import cupy

        cupy.cuda.get_current_stream().synchronize()


def host_rng(seed: int) -> np.random.RandomState:
    """A seeded host generator; NumPy's legacy ``RandomState`` so the tutorial's draws are reproduced."""
    return np.random.RandomState(seed)


def standard_normal(rng: np.random.RandomState, xp, dtype: str):
    """A sampler ``normal(shape)`` drawing on the host from ``rng`` and moving the draw to ``xp``.

    Drawing on the host makes every backend start from the very same parameters.
    """

    def normal(shape):
        return to_device(rng.standard_normal(shape), xp, dtype)

    return normal


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread():
    try:
        controller = _blas_controller()
    except ImportError:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def serial_blas(array, rows: int):
    """A context in which NumPy's BLAS runs on one thread when batches of ``rows`` rows are small.

    Splitting a product of a few dozen rows across threads saves little, and when the cores are
    shared each hand-over can wait a whole scheduler slice; from 128 rows two threads win (the
    README's Benchmarks give the figures).
    Results agree with the threaded ones to rounding (the blocking may differ).
    Elsewhere (CuPy, other namespaces, large batches, or without threadpoolctl) it does nothing.
    """
    if not is_numpy_array(array) or rows > SERIAL_BLAS_MAX_ROWS:
        return contextlib.nullcontext()
    return _one_blas_thread()


def row_blocks(array, rows: int) -> list[tuple[int, int]]:
    """Row ranges ``(start, stop)`` that split a batch of ``rows`` rows of ``array`` into blocks for ``map_blocks``.

    A NumPy batch of more than ``BLOCK_ROWS`` rows becomes the fewest blocks of at most that
    many rows, of sizes as equal as can be; any other batch stays one block. The split depends on
    the row count alone, never on the number of cores, so a result computed block by block is
    the same on every machine.
    """
    if not is_numpy_array(array) or rows <= BLOCK_ROWS:
        return [(0, rows)]
    count = -(-rows // BLOCK_ROWS)
    bounds = [rows * i // count for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


@functools.cache
def _block_pool() -> ThreadPoolExecutor:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return ThreadPoolExecutor(max_workers=cores or 1, thread_name_prefix="mnist-xp-block")


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


def fused_kernels(xp):
    """Single-pass optimizer updates for arrays of namespace ``xp`` (``kernels.Kernels``), or None.

    On NumPy with Numba installed (the ``numba`` extra), ``kernels.KERNELS``: they give the
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


STREAMS = {"order": 0, "dropout": 1, "shift": 2, "validation": 3}
"""Every use of randomness in a run has its own tag, first in the key of its draws, so that no two
uses ever draw the same numbers, whatever their other key parts (seed, epoch, batch) are. The
initial weights come from ``host_rng(seed)`` alone, as the tutorial drew them."""


def host_generator(stream: str, *key: int) -> np.random.Generator:
    """A host generator for ``stream`` (a name in ``STREAMS``) whose draws are a pure function of ``key``."""
    return np.random.default_rng([STREAMS[stream], *key])


def uniform_sampler(xp, stream: str, *key: int):
    """A sampler ``uniform(shape, dtype)`` of U[0, 1) draws in ``xp`` for ``stream``, seeded by the integers ``key``.

    The draws are a pure function of the stream and ``key`` (e.g. seed, epoch, batch), so training
    randomness such as dropout masks needs no generator state to resume. NumPy and CuPy draw on
    their own device; other namespaces (array-api-strict) draw on the host and copy the result over.
    """
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
    return lambda shape, dtype: to_device(generator.random(shape, dtype=getattr(np, dtype)), xp)
