"""Compiled training: a JAX epoch as one program and a torch.compile'd step train as the eager steps do."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from array_api_compat import array_namespace
from helpers import run_main

from mnist_xp import DEFAULT, augment, compiled, data, nn, schedules, train
from mnist_xp import backend as backends
from mnist_xp.errors import SettingError
from mnist_xp.loop import TrainState, fit
from mnist_xp.optim import adam, momentum, sgd

LAYERS = [784, 16, 10]
LIMIT = 100
"""Three batches of 32 and a last one of 4: both programs of a compiled epoch run."""

RUNS = {
    "sgd": dict(optimizer=sgd(), learning_rate=0.3, batch_size=32),
    "adam-everything": dict(
        optimizer=adam(),
        learning_rate=schedules.make("cosine", 1e-2, total_steps=8, warmup_steps=3),
        batch_size=32,
        dropout=0.2,
        input_dropout=0.1,
        l2=1e-3,
        label_smoothing=0.1,
        shift=1,
        distortion=augment.Distortion(elastic=30.0, rotate=10.0, zoom=0.1, shear=10.0),
    ),
    "full-batch-momentum": dict(
        optimizer=momentum(), learning_rate=0.2, batch_size=None, dropout=0.3, l2=1e-3,
        distortion=augment.Distortion(elastic=20.0, sigma=3.0),
    ),  # fmt: skip
}
"""Each ``fit`` option a compiled epoch must take over from the eager loop, and both shapes of epoch. The
optimizers are made once, so that every test of a run reuses the programs compiled for it."""


def namespace(name: str):
    """The namespace of ``jax.numpy`` or ``torch`` (CPU) through array-api-compat; skips where it is missing."""
    library = pytest.importorskip({"jax": "jax.numpy", "torch": "torch"}[name])
    return array_namespace(library.zeros(1))


@pytest.fixture(scope="module")
def mnist():
    """The first ``LIMIT`` training images and their labels as float32 host arrays."""
    dataset = data.load(backends.namespace("cpu"), "float32", limit=LIMIT)
    return dataset.X_train, dataset.Y_train


def run(xp, mnist, settings, *, compile):
    """Two epochs of ``fit`` with ``settings`` (``RUNS``) on the images in namespace ``xp``, from seed-0 weights."""
    options = dict(settings)
    optimizer = options.pop("optimizer")
    X, Y = (backends.to_device(host, xp, "float32") for host in mnist)
    params = nn.init_params(LAYERS, backends.standard_normal(backends.host_rng(0), xp, "float32"))
    state = TrainState(params, optimizer.init(params))
    return fit(state, X, Y, optimizer=optimizer, epochs=2, seed=0, compile=compile, **options)


def host_params(state):
    return [backends.to_host(array) for pair in state.params for array in pair]


def assert_same_run(state, reference, rtol=2e-5, atol=2e-6):
    """The same epochs and steps, the losses and weights equal to float32 rounding."""
    assert (state.epoch, state.step) == (reference.epoch, reference.step)
    np.testing.assert_allclose(state.losses, reference.losses, rtol=rtol)
    for got, expected in zip(host_params(state), host_params(reference)):
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", ["adam-everything", "full-batch-momentum"])
def test_a_compiled_jax_epoch_is_the_eager_one(mnist, name):
    xp = namespace("jax")
    eager = run(xp, mnist, RUNS[name], compile=False)
    scanned = run(xp, mnist, RUNS[name], compile=True)
    # XLA fuses the distortions' coordinate arithmetic (with fused multiply-adds): pixels differ in their
    # last bits, which Adam's per-weight scaling lifts to a few 1e-6 on weights whose gradients are near 0.
    assert_same_run(scanned, eager, atol=1e-5)
    if name == "adam-everything":  # Adam's step count is a number again, as checkpoints keep it
        assert isinstance(scanned.opt_state[0], int) and scanned.opt_state[0] == eager.opt_state[0] == 8


@pytest.mark.parametrize("name", ["sgd", "adam-everything"])
def test_a_compiled_jax_run_draws_numpys_batches_masks_and_shifts(mnist, name):
    # Another library's eager float32 steps round differently, but only a little: a batch, mask or
    # shift drawn otherwise would move the weights far more.
    host = run(backends.namespace("cpu"), mnist, RUNS[name], compile=False)
    scanned = run(namespace("jax"), mnist, RUNS[name], compile=True)
    assert_same_run(scanned, host, rtol=1e-4, atol=1e-5)


def test_a_resumed_compiled_run_is_the_uninterrupted_one(tmp_path):
    dataset = data.load(namespace("jax"), "float32", limit=LIMIT)
    config = replace(DEFAULT, hidden=(16,), epochs=3, batch_size=32, optimizer="adam", lr=1e-2, dropout=0.2, shift=1)
    straight = train(config, data=dataset)
    train(replace(config, epochs=1), data=dataset, checkpoint=tmp_path / "run.npz")
    resumed = train(config, data=dataset, resume_from=tmp_path / "run.npz")
    assert resumed.losses == straight.losses
    for got, expected in zip(resumed.model.params, straight.model.params):
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


def test_train_compiles_jax_runs_unless_told_not_to(mnist, monkeypatch):
    xp = namespace("jax")
    X, Y = (backends.to_device(host, xp, "float32") for host in mnist)
    dataset = data.Dataset(X, Y, None, X[:10], Y[:10], np.argmax(mnist[1][:10], axis=1))
    config = replace(DEFAULT, hidden=(16,), epochs=2, batch_size=LIMIT, dtype="float32")
    programs = []
    scan = compiled.scan
    monkeypatch.setattr(compiled, "scan", lambda *args: programs.append(args[0]) or scan(*args))
    by_default = train(config, data=dataset)
    assert len(programs) == 2  # one whole batch an epoch
    eager = train(config, data=dataset, compile=False)
    assert len(programs) == 2
    np.testing.assert_allclose(by_default.losses, eager.losses, rtol=2e-5)


@pytest.mark.parametrize("name", ["adam-everything", "full-batch-momentum"])
def test_a_compiled_torch_step_is_the_eager_one(mnist, name, monkeypatch):
    # Inductor's code generation takes half a minute on two busy cores; the same capture of the
    # step by Dynamo and AOTAutograd, run without it, checks what this project controls.
    xp = namespace("torch")
    monkeypatch.setattr(compiled, "TORCH_BACKEND", "aot_eager")
    eager = run(xp, mnist, RUNS[name], compile=False)
    stepped = run(xp, mnist, RUNS[name], compile=True)
    assert_same_run(stepped, eager)


def test_compile_is_refused_where_nothing_compiles(mnist):
    with pytest.raises(SettingError, match=r"^compile: applies to the jax and torch backends; numpy runs") as caught:
        run(backends.namespace("cpu"), mnist, RUNS["sgd"], compile=True)
    assert caught.value.name == "compile"


def test_only_jax_compiles_unless_told():
    assert compiled.wanted(None, namespace("jax")) and compiled.wanted(True, namespace("jax"))
    assert not compiled.wanted(False, namespace("jax"))
    assert not compiled.wanted(None, namespace("torch")) and compiled.wanted(True, namespace("torch"))
    assert not compiled.wanted(None, backends.namespace("cpu"))
    with pytest.raises(SettingError):
        compiled.wanted(True, backends.namespace("cpu"))


def test_numbers_become_arrays_and_come_back_as_numbers():
    xp = namespace("jax")
    like = backends.to_device(np.zeros(2), xp, "float32")
    state = [7, [(like, 0.5)], ()]
    arrays = compiled.numbers_as_arrays(state, like)
    assert arrays[0].shape == () and arrays[0].dtype == like.dtype and arrays[1][0][0] is like
    back = compiled.numbers_back([arrays[0] + 1, [(like, arrays[1][0][1] * 2)], ()], state)
    assert back == [8, [(like, 1.0)], ()] and isinstance(back[1], list)
    assert type(back[0]) is int and type(back[1][0][1]) is float


def test_the_training_command_refuses_compile_on_numpy(capsys):
    code, _, err = run_main(["--compile", "--limit", "100", "--epochs", "1"], capsys)
    assert code == 2
    assert "argument --compile: applies to the jax and torch backends; numpy runs its steps as they are" in err
