"""Checkpoints: exact resume on every backend and optimizer, atomic writes, and refusal of broken files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import damaged, savez_writes_half_then_fails
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_xp import backend as backends
from mnist_xp import checkpoint, data, modelfile, nn, npzio
from mnist_xp.errors import CheckpointError
from mnist_xp.loop import TrainState, fit
from mnist_xp.optim import adam, momentum, sgd

SIZES = [784, 16, 10]
SETTINGS = {"hidden": [16], "lr": 0.05, "seed": 3}
OPTIMIZERS = {"sgd": sgd, "momentum": lambda: momentum(nesterov=True), "adam": adam}


@pytest.fixture(scope="module")
def mnist_sample():
    """The first 256 real training images, on the host."""
    train, _ = data.load_raw()
    return data.preprocess_images(train.images[:256]), data.one_hot(train.labels[:256])


def start(xp, optimizer, dtype="float32"):
    params = nn.init_params(SIZES, backends.standard_normal(backends.host_rng(1), xp, dtype), "he")
    return TrainState(params, optimizer.init(params))


def train(state, X, Y, optimizer, epochs, **extra):
    return fit(state, X, Y, optimizer=optimizer, learning_rate=0.05, epochs=epochs, batch_size=64, seed=3, **extra)


def saved_sample_run(folder, mnist_sample, optimizer, epochs):
    """The path of a checkpoint taken after ``epochs`` epochs on the sample images, in ``folder``."""
    xp = backends.namespace("cpu")
    X, Y = (xp.asarray(a, dtype=xp.float32) for a in mnist_sample)
    path = folder / "run.npz"
    checkpoint.save(path, checkpoint.snapshot(train(start(xp, optimizer), X, Y, optimizer, epochs), SETTINGS))
    return path


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_resumed_training_is_bit_identical(backend, mnist_sample, tmp_path, name):
    X, Y = (backend.asarray(a, "float32") for a in mnist_sample)
    optimizer = OPTIMIZERS[name]()
    straight = train(start(backend.xp, optimizer), X, Y, optimizer, 4)

    first_half = train(start(backend.xp, optimizer), X, Y, optimizer, 2)
    path = tmp_path / "run.npz"
    checkpoint.save(path, checkpoint.snapshot(first_half, SETTINGS))
    saved = checkpoint.load(path)
    assert saved.settings == SETTINGS and saved.epoch == 2 and saved.step == 8
    resumed = train(checkpoint.restore(saved, backend.xp, optimizer, SIZES, "float32"), X, Y, optimizer, 4)

    assert resumed.step == straight.step and resumed.losses == straight.losses
    for (W1, b1), (W2, b2) in zip(straight.params, resumed.params):
        np.testing.assert_array_equal(backend.to_numpy(W1), backend.to_numpy(W2))
        np.testing.assert_array_equal(backend.to_numpy(b1), backend.to_numpy(b2))


def test_history_and_metrics_survive_a_round_trip(mnist_sample, tmp_path):
    xp = backends.namespace("cpu")
    X, Y = (xp.asarray(a, dtype=xp.float32) for a in mnist_sample)
    optimizer = adam()

    def add_metrics(state, result):
        result.metrics["val_accuracy"] = np.float32(0.5) + result.epoch  # NumPy scalars are saved as numbers
        result.metrics["note"] = "ok"

    state = train(start(xp, optimizer), X, Y, optimizer, 2, on_epoch=add_metrics)
    path = tmp_path / "run.npz"
    checkpoint.save(path, checkpoint.snapshot(state, SETTINGS))
    saved = checkpoint.load(path)
    assert [r.metrics for r in saved.history] == [{"val_accuracy": 1.5, "note": "ok"}, {"val_accuracy": 2.5, "note": "ok"}]
    assert [r.loss for r in saved.history] == state.losses
    assert isinstance(saved.opt_state[0], int) and saved.opt_state[0] == state.opt_state[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]


def test_snapshot_is_a_copy_that_training_cannot_change():
    xp = backends.namespace("cpu")
    state = start(xp, sgd())
    kept = checkpoint.snapshot(state, SETTINGS)
    before = kept.params[0][0].copy()
    state.params[0][0][...] = 7.0  # an optimizer that updates in place must not touch the snapshot
    np.testing.assert_array_equal(kept.params[0][0], before)


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    xp = backends.namespace("cpu")
    path = tmp_path / "run.npz"
    good = checkpoint.snapshot(start(xp, momentum()), SETTINGS)
    checkpoint.save(path, good)
    savez_writes_half_then_fails(monkeypatch)  # half the new file reaches the disk before the failure
    with pytest.raises(CheckpointError, match="run.npz: cannot write \\(No space left on device\\)"):
        checkpoint.save(path, good)
    monkeypatch.undo()
    assert checkpoint.load(path).epoch == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]


def test_restore_refuses_a_checkpoint_that_does_not_fit_the_run(tmp_path):
    xp = backends.namespace("cpu")
    path = tmp_path / "run.npz"
    checkpoint.save(path, checkpoint.snapshot(start(xp, momentum()), SETTINGS))
    saved = checkpoint.load(path)
    with pytest.raises(CheckpointError, match="optimizer state does not have the layout this optimizer uses"):
        checkpoint.restore(saved, xp, adam(), SIZES, "float32")
    with pytest.raises(CheckpointError, match="parameters are 784-16-10 float32, but its settings say 784-32-10 float32"):
        checkpoint.restore(saved, xp, momentum(), [784, 32, 10], "float32")
    with pytest.raises(CheckpointError, match="but its settings say 784-16-10 float64"):
        checkpoint.restore(saved, xp, momentum(), SIZES, "float64")


@pytest.fixture(scope="module")
def momentum_run(tmp_path_factory, mnist_sample):
    """The bytes of a checkpoint taken after two epochs with momentum."""
    return saved_sample_run(tmp_path_factory.mktemp("momentum"), mnist_sample, momentum(), 2).read_bytes()


def rewrite(path, change):
    arrays = npzio.read_npz(path)
    meta = json.loads(str(arrays["meta"]))
    change(meta, arrays)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


def set_meta(key, value):
    return lambda meta, arrays: meta.__setitem__(key, value)


@pytest.mark.parametrize(
    "change, message",
    [
        (set_meta("format", "mnist-xp-model"), "not an mnist-xp checkpoint"),
        (set_meta("version", 2), "checkpoint format version 2 is not supported"),
        (set_meta("epoch", -1), "epoch -1 is not a whole number >= 0"),
        (set_meta("step", 1), "1 steps cannot make 2 epochs"),
        (set_meta("settings", [1]), "settings are not a JSON object"),
        (lambda m, a: m.pop("history"), "checkpoint description has fields"),
        (lambda m, a: m["history"].pop(), r"history does not hold one record per epoch done \(2\)"),
        (lambda m, a: m["history"][1].update(epoch=5), "history record 2 is invalid"),
        (lambda m, a: m["history"][0].update(loss=float("nan")), "history record 1 is invalid"),
        (lambda m, a: m["history"][0]["metrics"].update(x=[1, 2]), "history record 1 is invalid"),
        (lambda m, a: m["history"][0].update(extra=1), "history record 1 has the wrong fields"),
        (lambda m, a: a.pop("param1"), "params names array 'param1', which is missing"),
        (lambda m, a: a.update(stray=np.zeros(2)), "unexpected arrays stray"),
        (lambda m, a: m["params"]["list"][0].update(list=m["params"]["list"][0].pop("tuple")), "layer 0 is not a"),
        (lambda m, a: m["params"]["list"][1]["tuple"].__setitem__(1, {"array": "param1"}), "which is reused"),
        (lambda m, a: m["params"]["list"].__setitem__(0, {"set": []}), 'params has an invalid entry {"set": \\[\\]}'),
        (lambda m, a: a.update(param2=a["param2"][:8]), "layer 1 has shapes \\(8, 10\\)"),
        (lambda m, a: a.update(param3=a["param3"].astype(np.float64)), "layer 1 has dtypes float32 and float64"),
        (lambda m, a: a["param0"].__setitem__((0, 0), np.inf), "NaN or infinite values in the parameters"),
        (lambda m, a: a["opt1"].__setitem__(0, np.nan), "NaN or infinite values in the optimizer state"),
        (lambda m, a: set_opt_state(m, a, {"list": [{"float": float("inf")}]}), "NaN or infinite values in the optimizer"),
        (lambda m, a: a.update(opt0=np.array(["x"])), "array opt0 has unsupported dtype"),
        (lambda m, a: m.__setitem__("params", json.loads("[" * 40 + "]" * 40)), "params has an invalid entry"),
        (lambda m, a: set_opt_state(m, a, nested(20)), "optimizer state is nested more than 16 levels deep"),
    ],
)
def test_load_refuses_broken_checkpoints(tmp_path, momentum_run, change, message):
    path = tmp_path / "run.npz"
    path.write_bytes(momentum_run)
    checkpoint.load(path)
    rewrite(path, change)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(path)


def set_opt_state(meta, arrays, node):
    """Replace the optimizer state by ``node``, dropping its arrays."""
    meta["opt_state"] = node
    for name in [name for name in arrays if name.startswith("opt")]:
        del arrays[name]


def nested(depth):
    node = {"int": 0}
    for _ in range(depth):
        node = {"list": [node]}
    return node


def test_load_refuses_model_files_and_garbage(tmp_path):
    model = tmp_path / "model.npz"
    modelfile.save(model, [(np.zeros((4, 2), np.float32), np.zeros(2, np.float32))], "relu")
    with pytest.raises(CheckpointError, match="model.npz: not an mnist-xp checkpoint"):
        checkpoint.load(model)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CheckpointError, match="garbage.npz: not a readable mnist-xp checkpoint"):
        checkpoint.load(garbage)
    with pytest.raises(CheckpointError, match="absent.npz: file not found"):
        checkpoint.load(tmp_path / "absent.npz")
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint"):
        checkpoint.load(tmp_path)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def paths_of(node, prefix=()):
    """Every path (tuple of keys and indices) into a JSON value."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from paths_of(child, (*prefix, key))


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory, mnist_sample):
    path = saved_sample_run(tmp_path_factory.mktemp("fuzz"), mnist_sample, adam(), 1)
    arrays = npzio.read_npz(path)
    return path, arrays, json.loads(str(arrays.pop("meta")))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_descriptions_load_or_fail_with_a_checkpoint_error(saved_run, data):
    path, arrays, meta = saved_run
    meta = json.loads(json.dumps(meta))
    where = data.draw(st.sampled_from(list(paths_of(meta))[1:]))
    parent = meta
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] = data.draw(JSON)
    target = path.with_name("fuzzed.npz")
    np.savez(target, meta=np.array(json.dumps(meta)), **arrays)
    try:
        saved = checkpoint.load(target)
    except CheckpointError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(target))
    else:
        assert len(saved.history) == saved.epoch and all(np.isfinite(a).all() for layer in saved.params for a in layer)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    damage=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, 10**6),
)
def test_damaged_checkpoint_files_load_or_fail_with_a_checkpoint_error(tmp_path_factory, momentum_run, damage, cut):
    path = tmp_path_factory.getbasetemp() / "damaged.npz"
    path.write_bytes(damaged(momentum_run, damage, cut))
    try:
        saved = checkpoint.load(path)
    except CheckpointError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path))
    else:
        assert saved.epoch == 2 and saved.layer_sizes == SIZES
