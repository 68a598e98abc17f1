"""The callbacks a run is made of: divergence stops it, checkpoints on schedule, early stopping keeps the best
epoch, and signals become exceptions."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import numpy as np
import pytest

from mnist_xp import checkpoint, guard
from mnist_xp.callbacks import CheckpointKeeper, DivergenceGuard, EarlyStopping, divergence
from mnist_xp.config import TrainConfig
from mnist_xp.errors import DivergenceError
from mnist_xp.loop import EpochResult, TrainState

SETTINGS = {"lr": 0.5}


def state_at(epoch, value=1.0):
    params = [(np.full((3, 2), value, np.float32), np.zeros(2, np.float32))]
    history = [EpochResult(e, 0.5, 0.1, 0.5) for e in range(1, epoch + 1)]
    return TrainState(params, [], epoch=epoch, step=2 * epoch, history=history)


def run_at(epoch, value=1.0):
    """What a callback sees of a run: its config and its state after ``epoch`` epochs."""
    return SimpleNamespace(config=TrainConfig(lr=0.5), state=state_at(epoch, value))


def test_divergence_names_the_loss_or_the_layer(backend):
    params = [(backend.asarray(W, "float32"), backend.asarray(b, "float32")) for W, b in state_at(1).params]
    assert divergence(params, 0.5) is None
    assert divergence(params, float("nan")) == "the loss is nan"
    assert divergence(params, float("inf")) == "the loss is inf"
    params = [(params[0][0], backend.asarray([0.0, np.inf], "float32"))]
    assert divergence(params, 0.5) == "layer 0's biases hold NaN or infinite values"


def test_the_guard_raises_a_typed_error_that_names_no_option():
    run = run_at(3, value=np.nan)
    with pytest.raises(DivergenceError) as stop:
        DivergenceGuard().on_epoch_end(run, run.state.history[-1])
    error = stop.value
    assert (error.epoch, error.learning_rate, error.lower) == (3, 0.5, 0.05)
    assert str(error) == (
        "training diverged in epoch 3: layer 0's weights hold NaN or infinite values (learning rate 0.5); "
        "try a lower learning rate, e.g. 0.05"
    )
    assert "--" not in str(error)
    run = run_at(1)
    assert DivergenceGuard().on_epoch_end(run, run.state.history[-1]) is None


def test_keeper_writes_every_n_epochs_and_at_the_end(tmp_path):
    path = tmp_path / "run.npz"
    keeper = CheckpointKeeper(path, SETTINGS, every=2)
    keeper.on_train_begin(run_at(0))
    for epoch in (1, 2, 3):
        run = run_at(epoch)
        keeper.on_epoch_end(run, run.state.history[-1])
        assert checkpoint.load(path).epoch == 2 if epoch >= 2 else not path.exists()
    assert keeper.save().epoch == 3 and checkpoint.load(path).epoch == 3
    assert checkpoint.load(path).settings == SETTINGS


def test_keeper_before_the_first_epoch_keeps_the_starting_state(tmp_path):
    path = tmp_path / "run.npz"
    keeper = CheckpointKeeper(path, SETTINGS)
    assert keeper.save() is None and not path.exists()
    keeper.on_train_begin(run_at(0))
    assert keeper.save().epoch == 0 and checkpoint.load(path).epoch == 0


def epochs_of(stopper, values, monitor="val_loss"):
    """Feed ``values`` of ``monitor`` to ``stopper`` epoch by epoch, each with parameters equal to its epoch."""
    stops = []
    for epoch, value in enumerate(values, start=1):
        run = run_at(epoch, value=float(epoch))
        result = EpochResult(epoch, value if monitor == "loss" else 1.0, 0.1, 0.5, {monitor: value})
        stops.append(bool(stopper.on_epoch_end(run, result)))
    return stops


def test_early_stopping_waits_patience_epochs_and_restores_the_best():
    stopper = EarlyStopping("val_loss", patience=2)
    assert epochs_of(stopper, [0.9, 0.5, 0.6, 0.5]) == [False, False, False, True]
    assert stopper.best_epoch == 2 and stopper.best_value == 0.5
    run = SimpleNamespace(params=None)
    stopper.on_train_end(run)
    assert float(run.params[0][0][0, 0]) == 2.0  # epoch 2's weights, not the last epoch's


def test_early_stopping_on_a_score_to_maximise_with_a_minimum_gain():
    stopper = EarlyStopping("val_accuracy", mode="max", patience=2, min_delta=0.01, restore_best_weights=False)
    assert epochs_of(stopper, [0.5, 0.505, 0.509], "val_accuracy") == [False, False, True]
    assert stopper.best_epoch == 3 and stopper.best_params is None
    run = SimpleNamespace(params="last")
    stopper.on_train_end(run)
    assert run.params == "last"


def test_early_stopping_without_patience_only_records():
    stopper = EarlyStopping("loss", patience=None)
    assert epochs_of(stopper, [0.5, 0.6, 0.7, 0.8], "loss") == [False] * 4
    assert stopper.best_epoch == 1 and stopper.scores == [0.5, 0.6, 0.7, 0.8]


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


def test_a_stop_in_a_held_block_waits_for_its_end():
    steps = []
    with pytest.raises(guard.Interrupted) as stop:
        with guard.interrupts_raise() as interrupts:
            with interrupts.held():
                with interrupts.held():
                    os.kill(os.getpid(), signal.SIGTERM)
                    for _ in range(1000):  # the handler runs here, and only notes the signal
                        pass
                    steps.append("inner block done")
                steps.append("outer block done")
            steps.append("after the blocks")
    assert steps == ["inner block done", "outer block done"]
    assert stop.value.exit_code == 143
    assert interrupts.pending is None and not interrupts.holding
