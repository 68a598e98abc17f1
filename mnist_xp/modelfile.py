"""Saving and loading trained networks as ``.npz`` files that load without pickle.

A model file holds the arrays ``W0, b0, W1, b1, ...`` and ``meta``: a JSON text with the
format version, the layer sizes, the activation and the dtype. Loading checks every array
against that description before anything is used.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import MnistXpError, ModelFileError
from .nn import ACTIVATIONS

FORMAT = "mnist-xp-model"
FORMAT_VERSION = 1
DTYPES = ("float32", "float64")
MAX_LAYER_SIZE = 1_000_000


def describe(params, activation: str) -> dict:
    """The metadata saved beside a network's parameters."""
    sizes = [int(params[0][0].shape[0])] + [int(W.shape[1]) for W, _ in params]
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "layer_sizes": sizes,
        "activation": activation,
        "dtype": str(params[0][0].dtype).split(".")[-1],
    }


def save(path: Path | str, host_params, activation: str, extra: dict | None = None) -> None:
    """Write host (NumPy) parameters and their description to ``path`` atomically.

    The file is written beside its destination, flushed to disk and renamed over it, so an
    interrupted save never leaves a half-written model behind.
    """
    path = Path(path)
    meta = describe(host_params, activation) | {"extra": extra or {}}
    arrays = {"meta": np.array(json.dumps(meta))}
    for i, (W, b) in enumerate(host_params):
        arrays[f"W{i}"], arrays[f"b{i}"] = W, b
    write_npz_atomically(path, arrays)


def write_npz_atomically(path: Path, arrays: dict, error: type[MnistXpError] = ModelFileError) -> None:
    """Write ``arrays`` as an uncompressed .npz at ``path`` via a temporary file and a rename.

    The rename is flushed to disk too, so after a crash ``path`` holds either the old file or
    the new one, whole. A file system error becomes an ``error`` naming ``path``.
    """
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise error(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual mode
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        _fsync_folder(folder)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise error(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the system lets folders be opened)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def read_npz(path: Path | str, error: type[MnistXpError] = ModelFileError, kind: str = "model file") -> dict:
    """Read every array of an uncompressed .npz file; any failure is an ``error`` naming the file.

    Nothing is unpickled, and nothing is allocated beyond what the file holds: the archive's
    members must be stored uncompressed and together no larger than the file, and each
    member's .npy header must describe exactly the bytes stored after it.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise error(f"{path}: is a folder, not a {kind}")
        if path.exists() and not path.is_file():
            raise error(f"{path}: not a regular file")
        size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            for member in members:
                if member.compress_type != zipfile.ZIP_STORED or member.compress_size != member.file_size:
                    raise ValueError(f"member {member.filename!r} is compressed; only uncompressed .npz files are read")
            claimed = sum(member.file_size for member in members)
            if claimed > size:
                raise ValueError(f"its members claim {claimed} bytes in a {size}-byte file")
            arrays = {}
            for member in members:
                name = member.filename.removesuffix(".npy")
                if name == member.filename or name in arrays:
                    raise ValueError(f"unexpected member {member.filename!r}")
                with archive.open(member) as stream:
                    arrays[name] = _parse_npy(stream.read(), name)
            return arrays
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, NotImplementedError, RuntimeError) as exc:
        raise error(f"{path}: not a readable mnist-xp {kind} ({_first_line(exc)})") from None


_NPY_KINDS = "biufU"  # booleans, integers, floats and text: never objects, records or raw bytes


def _parse_npy(raw: bytes, name: str) -> np.ndarray:
    """One .npy member to a (writable) array, after checking its header against its length (ValueError if not)."""
    stream = io.BytesIO(raw)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise ValueError(f"array {name}: .npy format version {version} is not supported")
    if dtype.kind not in _NPY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"array {name}: element type {dtype.str} is not supported")
    if any(n < 0 for n in shape):
        raise ValueError(f"array {name}: invalid shape {shape}")
    stored = len(raw) - stream.tell()
    if stored != math.prod(shape) * dtype.itemsize:
        raise ValueError(f"array {name}: header says shape {shape} of {dtype.str}, but {stored} bytes are stored")
    array = np.frombuffer(bytearray(raw[stream.tell() :]), dtype=dtype)
    return array.reshape(shape, order="F" if fortran_order else "C")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def load(path: Path | str):
    """Return ``(host_params, meta)`` from a model file, after checking it describes a valid network."""
    path = Path(path)
    arrays = read_npz(path)
    meta = parse_meta(path, arrays)
    sizes, dtype = meta["layer_sizes"], meta["dtype"]
    expected = {"meta"}
    params = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = _checked_array(path, arrays, f"W{i}", (fan_in, fan_out), dtype)
        b = _checked_array(path, arrays, f"b{i}", (fan_out,), dtype)
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise ModelFileError(f"{path}: layer {i} holds NaN or infinite values")
        params.append((W, b))
        expected |= {f"W{i}", f"b{i}"}
    unexpected = sorted(set(arrays) - expected)
    if unexpected:
        raise ModelFileError(f"{path}: unexpected arrays {', '.join(unexpected)}")
    return params, meta


def decode_description(path: Path, raw, error: type[Exception], noun: str, kind: str, fmt: str, version: int) -> dict:
    """The JSON object in an npz file's ``meta`` entry, checked to be ``fmt`` at ``version``.

    ``error`` is raised for anything else, in words naming the ``noun``'s description and the
    ``kind`` of file (model file, checkpoint).
    """
    if raw is None or raw.dtype.kind != "U" or raw.shape != ():
        raise error(f"{path}: no {noun} description (not an mnist-xp {kind})")
    try:
        meta = json.loads(str(raw))
    except (ValueError, RecursionError):
        raise error(f"{path}: {noun} description is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise error(f"{path}: not an mnist-xp {kind}")
    if meta.get("version") != version:
        raise error(f"{path}: {noun} format version {meta.get('version')!r} is not supported (this version reads {version})")
    return meta


def parse_meta(path: Path, arrays: dict) -> dict:
    """Decode and validate the ``meta`` entry of a model file."""
    meta = decode_description(path, arrays.get("meta"), ModelFileError, "model", "model file", FORMAT, FORMAT_VERSION)
    sizes = meta.get("layer_sizes")
    if (
        not isinstance(sizes, list)
        or len(sizes) < 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and 0 < n <= MAX_LAYER_SIZE for n in sizes)
    ):
        raise ModelFileError(f"{path}: invalid layer sizes {sizes!r}")
    if meta.get("activation") not in ACTIVATIONS:
        raise ModelFileError(f"{path}: unknown activation {meta.get('activation')!r}")
    if meta.get("dtype") not in DTYPES:
        raise ModelFileError(f"{path}: unsupported dtype {meta.get('dtype')!r}")
    return meta


def _checked_array(path: Path, arrays: dict, name: str, shape: tuple, dtype: str) -> np.ndarray:
    array = arrays.get(name)
    if array is None:
        raise ModelFileError(f"{path}: array {name} is missing")
    if array.shape != shape:
        raise ModelFileError(f"{path}: array {name} has shape {array.shape}, expected {shape}")
    if array.dtype != np.dtype(dtype):
        raise ModelFileError(f"{path}: array {name} has dtype {array.dtype}, expected {dtype}")
    return array
