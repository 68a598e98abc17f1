"""Saving and loading trained networks as ``.npz`` files that load without pickle.

A model file holds the arrays ``W0, b0, W1, b1, ...`` and ``meta``: a JSON text with the
format version, the layer sizes, the activation and the dtype. Loading checks every array
against that description before anything is used.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import ModelFileError
from .nn import ACTIVATIONS

FORMAT = "mnist-xp-model"
FORMAT_VERSION = 1
DTYPES = ("float32", "float64")


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


def write_npz_atomically(path: Path, arrays: dict) -> None:
    """Write ``arrays`` as an uncompressed .npz at ``path`` via a temporary file and a rename."""
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_npz(path: Path | str) -> dict:
    """Read every array of an .npz file with pickle disabled; any failure is a ModelFileError."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise ModelFileError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a folder, not a model file") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable mnist-xp model file ({_first_line(exc)})") from None


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


def parse_meta(path: Path, arrays: dict) -> dict:
    """Decode and validate the ``meta`` entry of a model file."""
    raw = arrays.get("meta")
    if raw is None or raw.dtype.kind != "U" or raw.shape != ():
        raise ModelFileError(f"{path}: no model description (not an mnist-xp model file)")
    try:
        meta = json.loads(str(raw))
    except ValueError:
        raise ModelFileError(f"{path}: model description is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an mnist-xp model file")
    if meta.get("version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format version {meta.get('version')!r} is not supported (this version reads {FORMAT_VERSION})"
        )
    sizes = meta.get("layer_sizes")
    if (
        not isinstance(sizes, list)
        or len(sizes) < 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 1_000_000 for n in sizes)
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
