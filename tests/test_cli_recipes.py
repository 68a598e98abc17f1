"""The recipe, optimizer, regularisation and report options end to end."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from helpers import host_weights, run_main, run_train, same_weights

from mnist_xp import RECIPES, Model, TrainConfig, checkpoint, train


def run_keeping_everything(capsys, tmp_path, *args):
    """The training command in this process, writing a checkpoint, the model and a report into ``tmp_path``.

    Returns its output, the checkpoint (the state where training stopped), the model and the report.
    """
    paths = {name: tmp_path / name for name in ("run.npz", "model.npz", "report.json")}
    written = ["--checkpoint", paths["run.npz"], "--save", paths["model.npz"], "--report", paths["report.json"]]
    code, out, err = run_main([*args, *written], capsys)
    assert code == 0, err
    report = json.loads(paths["report.json"].read_text())
    return out, checkpoint.load(paths["run.npz"]), Model.load(paths["model.npz"]), report


def test_keras_recipe_runs_adam_at_batch_32(capsys, tmp_path):
    args = ["--recipe", "keras", "--epochs", "1", "--limit", "1000"]
    _, saved, model, report = run_keeping_everything(capsys, tmp_path, *args)
    assert saved.step == 32  # 1,000 images in batches of 32
    steps, first_moments, second_moments = saved.opt_state  # Adam's state: its step count and two moment estimates
    assert steps == 32 and len(first_moments) == len(second_moments) == 2
    keras = replace(RECIPES["keras"], epochs=1)
    assert report["settings"] == keras.to_dict() | {"limit": 1000}
    assert same_weights(model.params, train(keras, limit=1000).model.params)


def test_fast_recipe_runs_nesterov_with_cosine_decay_and_label_smoothing(capsys, tmp_path):
    args = ["--recipe", "fast", "--epochs", "1", "--limit", "1000"]
    _, saved, model, report = run_keeping_everything(capsys, tmp_path, *args)
    assert saved.step == 8  # 1,000 images in batches of 128
    assert [velocity[0].shape for velocity in saved.opt_state] == [(784, 128), (128, 10)]  # momentum's state
    fast = replace(RECIPES["fast"], epochs=1)
    assert report["settings"] == fast.to_dict() | {"limit": 1000}
    assert same_weights(model.params, train(fast, limit=1000).model.params)
    for without in ({"label_smoothing": 0.0}, {"schedule": "constant", "warmup": 0.0}):
        assert not same_weights(model.params, train(replace(fast, **without), limit=1000).model.params)


def test_report_holds_history_validation_metrics_and_confusion_matrix(tmp_path):
    report_path = tmp_path / "report.json"
    result = run_train(
        "--limit", "2000", "--epochs", "2", "--val", "500", "--dropout", "0.2", "--input-dropout", "0.1", "--l2", "1e-4",
        "--optimizer", "nesterov", "--schedule", "cosine", "--warmup", "0.5", "--label-smoothing", "0.1", "--shift", "1",
        "--report", str(report_path),
    )
    assert result.returncode == 0, result.stderr
    assert "1500 training images" in result.stdout
    assert "optimizer nesterov (momentum 0.9), cosine schedule, warm-up 0.5 epochs, dropout 0.2, input dropout 0.1, l2 0.0001, label smoothing 0.1, shifts of up to 1 px, validation 500 images" in result.stdout
    report = json.loads(report_path.read_text())
    assert [entry["epoch"] for entry in report["history"]] == [1, 2]
    assert all(0 <= entry["metrics"]["val_accuracy"] <= 1 and entry["metrics"]["val_loss"] > 0 for entry in report["history"])
    test = report["test"]
    assert sum(map(sum, test["confusion_matrix"])) == 10_000 == test["samples"]
    accuracy_line = next(line for line in result.stdout.splitlines() if line.startswith("test accuracy"))
    assert float(accuracy_line.split()[2]) == pytest.approx(100 * test["accuracy"], abs=0.005)
    assert "overall accuracy" in result.stdout and "<- predicted" in result.stdout
    assert report["settings"]["dropout"] == 0.2 and report["settings"]["val"] == 500
    assert report["settings"]["label_smoothing"] == 0.1 and report["settings"]["input_dropout"] == 0.1
    assert report["settings"]["shift"] == 1


def test_patience_stops_early_and_saves_the_best_epochs_weights(capsys, tmp_path):
    args = ["--limit", "1000", "--epochs", "30", "--val", "300", "--patience", "1", "--lr", "20", "--log-every", "1"]
    out, saved, model, report = run_keeping_everything(capsys, tmp_path, *args)
    losses = [entry["metrics"]["val_loss"] for entry in report["history"]]
    best = 1 + int(np.argmin(losses))
    assert report["best_epoch"] == best and report["epochs_run"] == len(losses) == best + 1 < 30  # patience 1
    assert f"early stopping: kept the weights of epoch {best} " in out
    weights = []  # each epoch's, from the same run through the library
    config = TrainConfig.from_dict({name: value for name, value in report["settings"].items() if name != "limit"})
    train(config, limit=1000, on_epoch=lambda state, result: weights.append(host_weights(state.params)))
    assert same_weights(saved.params, weights[-1])  # the same run: the checkpoint holds where it stopped
    assert same_weights(model.params, weights[best - 1])
    assert not same_weights(model.params, weights[-1])


def test_resumed_run_with_dropout_schedule_and_validation_is_bit_identical(capsys, tmp_path):
    common = [
        "--limit", "600", "--hidden", "32", "--batch-size", "100", "--optimizer", "nesterov", "--lr", "0.05",
        "--schedule", "step", "--step-every", "1", "--step-factor", "0.5", "--warmup", "0.5",
        "--dropout", "0.3", "--l2", "1e-4", "--val", "100",
    ]
    straight, half = tmp_path / "straight.npz", tmp_path / "half.npz"
    assert run_main([*common, "--epochs", "4", "--checkpoint", straight], capsys)[0] == 0
    assert run_main([*common, "--epochs", "2", "--checkpoint", half], capsys)[0] == 0
    code, out, _ = run_main(["--resume", half, "--epochs", "4"], capsys)
    assert code == 0 and f"resuming {half} after epoch 2" in out
    expected, resumed = checkpoint.load(straight), checkpoint.load(half)
    assert resumed.step == expected.step == 20
    assert [r.loss for r in resumed.history] == [r.loss for r in expected.history]
    assert [r.metrics["val_loss"] for r in resumed.history] == [r.metrics["val_loss"] for r in expected.history]
    for (W1, b1), (W2, b2) in zip(expected.params, resumed.params):
        np.testing.assert_array_equal(W1, W2)
        np.testing.assert_array_equal(b1, b2)
