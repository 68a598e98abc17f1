"""Checkpoints: a training run's whole state in one .npz file, so that it can be resumed bit for bit.

A checkpoint holds the parameters and the optimizer state as arrays, and ``meta``: a JSON
text with the format version, the run's settings, the epochs and steps done, the history,
and the layout of the two trees (nested lists and tuples of arrays and numbers) the arrays
belong to. It is written atomically and read with the model files' pickle-free reader, which
allocates nothing beyond what the file holds; loading checks everything before it is used.

Epochs are the unit: a checkpoint is always taken between two epochs, and the batch order
of every epoch is a pure function of (seed, epoch), so no generator state needs saving.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from array_api_compat import is_array_api_obj

from .backend import DTYPES, to_device, to_host
from .errors import CheckpointError
from .loop import TrainState, history_from_records, history_records
from .npzio import decode_description, read_npz, write_npz_atomically
from .values import is_finite_number, is_whole_number

FORMAT = "mnist-xp-checkpoint"
FORMAT_VERSION = 1
MAX_DEPTH = 16
_META_KEYS = {"format", "version", "settings", "epoch", "step", "history", "params", "opt_state"}


@dataclass(frozen=True)
class Checkpoint:
    """A run between two epochs, on the host: NumPy arrays, plain numbers and the run's settings."""

    settings: dict
    params: list
    opt_state: object
    epoch: int
    step: int
    history: list
    source: str = "checkpoint"

    @property
    def layer_sizes(self) -> list[int]:
        return [int(self.params[0][0].shape[0])] + [int(W.shape[1]) for W, _ in self.params]


def snapshot(state: TrainState, settings: dict) -> Checkpoint:
    """Copy ``state`` to the host, so that training can go on while the copy is kept or written."""
    return Checkpoint(
        settings=json.loads(json.dumps(settings, default=_json_scalar)),
        params=_host_copy(state.params),
        opt_state=_host_copy(state.opt_state),
        epoch=int(state.epoch),
        step=int(state.step),
        history=[dataclasses.replace(result, metrics=dict(result.metrics)) for result in state.history],
    )


def _host_copy(tree):
    if isinstance(tree, (list, tuple)):
        return type(tree)(_host_copy(item) for item in tree)
    if isinstance(tree, np.generic):
        return tree.item()
    if is_array_api_obj(tree):
        return np.array(to_host(tree), copy=True)
    return tree


def _json_scalar(value):
    """json.dumps' fallback: NumPy scalars (a float32 metric, say) become Python numbers."""
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.size == 1):
        return value.item()
    raise TypeError(f"{type(value).__name__} cannot be saved in a checkpoint")


def save(path: Path | str, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically: a crash leaves the previous file whole."""
    path = Path(path)
    arrays: dict = {}
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "settings": checkpoint.settings,
        "epoch": checkpoint.epoch,
        "step": checkpoint.step,
        "history": history_records(checkpoint.history),
        "params": _encode(checkpoint.params, "param", arrays),
        "opt_state": _encode(checkpoint.opt_state, "opt", arrays),
    }
    arrays["meta"] = np.array(json.dumps(meta, default=_json_scalar))
    write_npz_atomically(path, arrays, error=CheckpointError)


def _encode(tree, prefix: str, arrays: dict, counter: list | None = None):
    """A tree of lists, tuples, host arrays and numbers to JSON; its arrays go into ``arrays``."""
    counter = [0] if counter is None else counter
    if isinstance(tree, (list, tuple)):
        return {type(tree).__name__: [_encode(item, prefix, arrays, counter) for item in tree]}
    if is_whole_number(tree):
        return {"int": tree}
    if isinstance(tree, float):
        return {"float": tree}
    if not isinstance(tree, np.ndarray):
        raise TypeError(f"a {type(tree).__name__} cannot be saved in a checkpoint's state")
    name = f"{prefix}{counter[0]}"
    counter[0] += 1
    arrays[name] = tree
    return {"array": name}


def load(path: Path | str) -> Checkpoint:
    """Read and check a checkpoint; any problem is a one-line CheckpointError naming the file."""
    path = Path(path)
    arrays = read_npz(path, error=CheckpointError, kind="checkpoint")
    meta = _parse_meta(path, arrays.pop("meta", None))
    used: set = set()
    params = _decode(path, meta["params"], arrays, used, "params")
    opt_state = _decode(path, meta["opt_state"], arrays, used, "optimizer state")
    unused = sorted(set(arrays) - used)
    if unused:
        raise CheckpointError(f"{path}: unexpected arrays {', '.join(unused)}")
    _check_params(path, params)
    _check_finite(path, opt_state, "the optimizer state")
    return Checkpoint(
        settings=meta["settings"],
        params=params,
        opt_state=opt_state,
        epoch=meta["epoch"],
        step=meta["step"],
        history=_parse_history(path, meta["history"], meta["epoch"]),
        source=str(path),
    )


def _parse_meta(path: Path, raw) -> dict:
    meta = decode_description(path, raw, CheckpointError, "checkpoint", "checkpoint", FORMAT, FORMAT_VERSION)
    if set(meta) != _META_KEYS:
        raise CheckpointError(
            f"{path}: checkpoint description has fields {sorted(meta)}, expected {sorted(_META_KEYS)}"
        )
    if not isinstance(meta["settings"], dict):
        raise CheckpointError(f"{path}: the run's settings are not a JSON object")
    for key in ("epoch", "step"):
        if not is_whole_number(meta[key]) or meta[key] < 0:
            raise CheckpointError(f"{path}: {key} {meta[key]!r} is not a whole number >= 0")
    if meta["step"] < meta["epoch"]:
        raise CheckpointError(f"{path}: {meta['step']} steps cannot make {meta['epoch']} epochs")
    return meta


def _decode(path: Path, node, arrays: dict, used: set, what: str, depth: int = 0):
    """JSON back to a tree, taking each array it names from ``arrays`` exactly once."""
    if depth > MAX_DEPTH:
        raise CheckpointError(f"{path}: {what} is nested more than {MAX_DEPTH} levels deep")
    if not isinstance(node, dict) or len(node) != 1:
        raise CheckpointError(f"{path}: {what} has an invalid entry {_short(node)}")
    (kind, value), = node.items()
    if kind in ("list", "tuple") and isinstance(value, list):
        items = [_decode(path, item, arrays, used, what, depth + 1) for item in value]
        return items if kind == "list" else tuple(items)
    if kind == "int" and is_whole_number(value):
        return value
    if kind == "float" and isinstance(value, float):
        return value
    if kind == "array" and isinstance(value, str):
        if value not in arrays or value in used:
            problem = "reused" if value in used else "missing"
            raise CheckpointError(f"{path}: {what} names array {value!r}, which is {problem}")
        array = arrays[value]
        if array.dtype.kind not in "biuf":
            raise CheckpointError(f"{path}: array {value} has unsupported dtype {array.dtype}")
        used.add(value)
        return array
    raise CheckpointError(f"{path}: {what} has an invalid entry {_short(node)}")


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_params(path: Path, params) -> None:
    """Parameters must be a network: [(W, b), ...] with chained shapes, one float dtype, finite values."""
    if not isinstance(params, list) or not params:
        raise CheckpointError(f"{path}: the parameters are not a list of layers")
    for i, layer in enumerate(params):
        if not (isinstance(layer, tuple) and len(layer) == 2 and all(isinstance(a, np.ndarray) for a in layer)):
            raise CheckpointError(f"{path}: layer {i} is not a (W, b) pair of arrays")
        W, b = layer
        expected_in = params[i - 1][0].shape[1] if i else None
        if W.ndim != 2 or b.shape != (W.shape[1],) or W.size == 0 or expected_in not in (None, W.shape[0]):
            raise CheckpointError(f"{path}: layer {i} has shapes {W.shape} and {b.shape}, which do not chain")
        if str(W.dtype) not in DTYPES or b.dtype != W.dtype or W.dtype != params[0][0].dtype:
            raise CheckpointError(f"{path}: layer {i} has dtypes {W.dtype} and {b.dtype}, expected one of {DTYPES}")
    _check_finite(path, params, "the parameters")


def _check_finite(path: Path, tree, what: str) -> None:
    leaves = _leaves(tree)
    if not all(np.isfinite(leaf).all() if isinstance(leaf, np.ndarray) else is_finite_number(leaf) for leaf in leaves):
        raise CheckpointError(f"{path}: NaN or infinite values in {what}")


def _leaves(tree) -> list:
    if isinstance(tree, (list, tuple)):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [tree]


def _parse_history(path: Path, history, epoch: int) -> list:
    """JSON records back to EpochResults: one per epoch done, numbered 1, 2, ..."""
    if not isinstance(history, list) or len(history) != epoch:
        raise CheckpointError(f"{path}: the history does not hold one record per epoch done ({epoch})")
    try:
        return history_from_records(history)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def restore(checkpoint: Checkpoint, xp, optimizer, layer_sizes: list[int], dtype: str) -> TrainState:
    """A TrainState on namespace ``xp`` from ``checkpoint``, after checking that it fits the run.

    The parameters must have ``layer_sizes`` and ``dtype``; the optimizer state must have the
    very layout (nesting, array shapes and dtypes, number types) that ``optimizer.init`` makes.
    """
    path = checkpoint.source
    if checkpoint.layer_sizes != list(layer_sizes) or str(checkpoint.params[0][0].dtype) != dtype:
        raise CheckpointError(
            f"{path}: the parameters are {'-'.join(map(str, checkpoint.layer_sizes))} {checkpoint.params[0][0].dtype}, "
            f"but its settings say {'-'.join(map(str, layer_sizes))} {dtype}"
        )
    params = [(to_device(W, xp), to_device(b, xp)) for W, b in checkpoint.params]
    _check_like(path, checkpoint.opt_state, optimizer.init(params), "optimizer state")
    return TrainState(
        params=params,
        opt_state=_to_device_tree(checkpoint.opt_state, xp),
        epoch=checkpoint.epoch,
        step=checkpoint.step,
        history=list(checkpoint.history),
    )


def _check_like(path, value, template, where: str) -> None:
    if isinstance(template, (list, tuple)):
        if type(value) is not type(template) or len(value) != len(template):
            raise CheckpointError(f"{path}: {where} does not have the layout this optimizer uses")
        for i, (item, expected) in enumerate(zip(value, template)):
            _check_like(path, item, expected, f"{where}[{i}]")
    elif is_array_api_obj(template):
        expected = to_host(template)
        if not isinstance(value, np.ndarray) or value.shape != expected.shape or value.dtype != expected.dtype:
            raise CheckpointError(f"{path}: {where} is not a {expected.dtype} array of shape {expected.shape}")
    elif type(value) is not type(template):
        raise CheckpointError(f"{path}: {where} is {value!r}, expected a {type(template).__name__}")


def _to_device_tree(tree, xp):
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_device_tree(item, xp) for item in tree)
    if isinstance(tree, np.ndarray):
        return to_device(tree, xp)
    return tree
