"""Saving and loading trained networks as ``.npz`` files that load without pickle.

A model file holds the arrays ``W0, b0, W1, b1, ...`` and ``meta``: a JSON text with the
format version, the layer sizes, the activation and the dtype, and ``extra``, what training
recorded (its history among them). Loading checks every array against that description, and
the history's records, before anything is used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .backend import DTYPES
from .config import MAX_LAYER_SIZE
from .errors import ModelFileError
from .loop import history_from_records
from .nn import ACTIVATIONS
from .npzio import decode_description, read_npz, write_npz_atomically
from .values import dtype_name, is_whole_number

FORMAT = "mnist-xp-model"
FORMAT_VERSION = 1


def metadata(params, activation: str) -> dict:
    """The description saved beside a network's parameters, as a dict ready for JSON."""
    sizes = [int(params[0][0].shape[0])] + [int(W.shape[1]) for W, _ in params]
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "layer_sizes": sizes,
        "activation": activation,
        "dtype": dtype_name(params[0][0]),
    }


def save(path: Path | str, host_params, activation: str, extra: dict | None = None) -> None:
    """Write host (NumPy) parameters and their description to ``path`` atomically.

    The file is written beside its destination, flushed to disk and renamed over it, so an
    interrupted save never leaves a half-written model behind.
    """
    path = Path(path)
    meta = metadata(host_params, activation) | {"extra": extra or {}}
    arrays = {"meta": np.array(json.dumps(meta))}
    for i, (W, b) in enumerate(host_params):
        arrays[f"W{i}"], arrays[f"b{i}"] = W, b
    write_npz_atomically(path, arrays, ModelFileError)


def load(path: Path | str):
    """Return ``(host_params, meta)`` from a model file, after checking it describes a valid network."""
    path = Path(path)
    arrays = read_npz(path, ModelFileError, "model file")
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
    meta = decode_description(path, arrays.get("meta"), ModelFileError, "model", "model file", FORMAT, FORMAT_VERSION)
    sizes = meta.get("layer_sizes")
    if (
        not isinstance(sizes, list)
        or len(sizes) < 2
        or not all(is_whole_number(n) and 0 < n <= MAX_LAYER_SIZE for n in sizes)
    ):
        raise ModelFileError(f"{path}: invalid layer sizes {sizes!r}")
    if meta.get("activation") not in ACTIVATIONS:
        raise ModelFileError(f"{path}: unknown activation {meta.get('activation')!r}")
    if meta.get("dtype") not in DTYPES:
        raise ModelFileError(f"{path}: unsupported dtype {meta.get('dtype')!r}")
    extra = meta.get("extra") or {}
    if not isinstance(extra, dict):
        raise ModelFileError(f"{path}: the training record is not a JSON object")
    if extra.get("history") is not None:
        try:
            history_from_records(extra["history"])
        except ValueError as exc:
            raise ModelFileError(f"{path}: the stored training history is malformed ({exc})") from None
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
