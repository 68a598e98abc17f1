"""The run's guard: divergence stops, checkpoints on schedule, the last good state kept, signals as exceptions."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from mnist_xp import checkpoint, guard
from mnist_xp.errors import DivergenceError
from mnist_xp.training import EpochResult, TrainState

SETTINGS = {"lr": 0.5}


def state_at(epoch, value=1.0):
    params = [(np.full((3, 2), value, np.float32), np.zeros(2, np.float32))]
    history = [EpochResult(e, 0.5, 0.1, 0.5) for e in range(1, epoch + 1)]
    return TrainState(params, [], epoch=epoch, step=2 * epoch, history=history)


def test_divergence_names_the_loss_or_the_layer(backend):
    state = state_at(1)
    state.params = [(backend.asarray(W, "float32"), backend.asarray(b, "float32")) for W, b in state.params]
    assert guard.divergence(state, state.history[0]) is None
    assert guard.divergence(state, EpochResult(1, float("nan"), 0.1, 0.5)) == "the loss is nan"
    assert guard.divergence(state, EpochResult(1, float("inf"), 0.1, 0.5)) == "the loss is inf"
    W, b = state.params[0]
    state.params = [(W, backend.asarray([0.0, np.inf], "float32"))]
    assert guard.divergence(state, state.history[0]) == "layer 0's biases hold NaN or infinite values"


def test_keeper_writes_every_n_epochs_and_at_the_end(tmp_path):
    path = tmp_path / "run.npz"
    keeper = guard.Keeper(state_at(0), SETTINGS, path, every=2)
    keeper.on_epoch(state_at(1), state_at(1).history[-1])
    assert not path.exists()
    keeper.on_epoch(state_at(2), state_at(2).history[-1])
    assert checkpoint.load(path).epoch == 2
    keeper.on_epoch(state_at(3), state_at(3).history[-1])
    assert checkpoint.load(path).epoch == 2
    assert keeper.save().epoch == 3 and checkpoint.load(path).epoch == 3
    assert checkpoint.load(path).settings == SETTINGS


def test_keeper_stops_on_divergence_and_keeps_the_last_good_state(tmp_path):
    path = tmp_path / "run.npz"
    keeper = guard.Keeper(state_at(0), SETTINGS, path, every=5)
    for epoch in (1, 2):
        keeper.on_epoch(state_at(epoch), state_at(epoch).history[-1])
    bad = state_at(3, value=np.nan)
    with pytest.raises(DivergenceError) as stop:
        keeper.on_epoch(bad, bad.history[-1])
    assert str(stop.value) == (
        "training diverged in epoch 3: layer 0's weights hold NaN or infinite values (learning rate 0.5); "
        f"try a lower learning rate, e.g. --lr 0.05; the last good state (epoch 2) is in {path}: --resume {path} --lr 0.05"
    )
    saved = checkpoint.load(path)
    assert saved.epoch == 2 and np.isfinite(saved.params[0][0]).all()


def test_keeper_without_a_path_only_watches():
    keeper = guard.Keeper(state_at(0), SETTINGS)
    keeper.on_epoch(state_at(1), state_at(1).history[-1])
    assert keeper.save() is None
    with pytest.raises(DivergenceError, match=r"in epoch 1: the loss is nan \(learning rate 0.5\); try .* --lr 0.05$"):
        keeper.on_epoch(state_at(1), EpochResult(1, float("nan"), 0.1, 0.5))


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_become_interrupted_inside_the_block_only(signum, code):
    before = signal.getsignal(signum)
    with pytest.raises(guard.Interrupted) as stop:
        with guard.interrupts_raise():
            os.kill(os.getpid(), signum)
            for _ in range(1000):  # the handler runs between bytecodes, at the latest in this loop
                pass
    assert stop.value.exit_code == code and str(stop.value) == signal.Signals(signum).name
    assert signal.getsignal(signum) is before
