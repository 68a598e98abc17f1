"""Model files: round trip, and refusal of anything that is not a valid network."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnist_xp import modelfile
from mnist_xp.errors import ModelFileError


def host_params(sizes=(784, 16, 10), dtype=np.float32):
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(a, b)).astype(dtype), rng.normal(size=b).astype(dtype)) for a, b in zip(sizes[:-1], sizes[1:])]


def test_round_trip_keeps_arrays_and_description(tmp_path):
    params = host_params()
    path = tmp_path / "m.npz"
    modelfile.save(path, params, "tanh", extra={"note": "x"})
    loaded, meta = modelfile.load(path)
    assert meta["layer_sizes"] == [784, 16, 10] and meta["activation"] == "tanh" and meta["dtype"] == "float32"
    assert meta["extra"] == {"note": "x"}
    for (W, b), (W2, b2) in zip(params, loaded):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def rewrite(path, change):
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    np.savez(path, **arrays)


def with_meta(**updates):
    def change(arrays):
        meta = json.loads(str(arrays["meta"])) | updates
        arrays["meta"] = np.array(json.dumps(meta))

    return change


@pytest.mark.parametrize(
    "change, message",
    [
        (with_meta(version=99), "model format version 99 is not supported"),
        (with_meta(format="other"), "not an mnist-xp model file"),
        (with_meta(activation="swish"), "unknown activation 'swish'"),
        (with_meta(dtype="int8"), "unsupported dtype 'int8'"),
        (with_meta(layer_sizes=[784, -3, 10]), "invalid layer sizes"),
        (with_meta(layer_sizes=[784, 17, 10]), r"array W0 has shape \(784, 16\), expected \(784, 17\)"),
        (lambda a: a.pop("b1"), "array b1 is missing"),
        (lambda a: a.update(W1=a["W1"].astype(np.float64)), "array W1 has dtype float64, expected float32"),
        (lambda a: a.update(extra=np.zeros(3)), "unexpected arrays extra"),
        (lambda a: a["W0"].__setitem__((0, 0), np.nan), "layer 0 holds NaN or infinite values"),
        (lambda a: a.pop("meta"), "no model description"),
        (lambda a: a.update(meta=np.array("{not json")), "not valid JSON"),
        (with_meta(extra=[0.9]), "the training record is not a JSON object"),
        (with_meta(extra={"history": [{"epoch": "x"}]}), "the stored training history is malformed"),
        (with_meta(extra={"history": "epoch 1"}), "the stored training history is malformed"),
    ],
)
def test_load_refuses_invalid_models(tmp_path, change, message):
    path = tmp_path / "m.npz"
    modelfile.save(path, host_params(), "relu")
    rewrite(path, change)
    with pytest.raises(ModelFileError, match=message):
        modelfile.load(path)


def test_a_stored_history_loads_back(tmp_path):
    record = {"epoch": 1, "loss": 0.5, "seconds": 0.1, "learning_rate": 0.1, "metrics": {"test_accuracy": 0.9}}
    modelfile.save(tmp_path / "m.npz", host_params(), "relu", extra={"history": [record], "test_accuracy": 0.9})
    assert modelfile.load(tmp_path / "m.npz")[1]["extra"] == {"history": [record], "test_accuracy": 0.9}


def test_load_refuses_missing_and_garbage_files(tmp_path):
    with pytest.raises(ModelFileError, match="file not found"):
        modelfile.load(tmp_path / "absent.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip archive")
    with pytest.raises(ModelFileError, match="not a readable mnist-xp model file"):
        modelfile.load(garbage)


def test_load_never_unpickles(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, meta=np.array([{"format": "mnist-xp-model"}], dtype=object))
    with pytest.raises(ModelFileError, match="not a readable mnist-xp model file"):
        modelfile.load(path)
