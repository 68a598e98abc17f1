"""The recipe, optimizer, regularisation and report options end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_cli import run_train
from test_cli_resilience import run_main

from mnist_xp import checkpoint

def test_keras_recipe_runs_adam_at_batch_32():
    result = run_train("--recipe", "keras", "--epochs", "1", "--limit", "1000")
    assert result.returncode == 0, result.stderr
    assert "1000 training images, 1 epochs, batch 32, lr 0.001, float32 on cpu" in result.stdout
    assert "optimizer adam, constant schedule" in result.stdout


def test_fast_recipe_runs_nesterov_with_cosine_decay_and_label_smoothing():
    result = run_train("--recipe", "fast", "--epochs", "1", "--limit", "1000")
    assert result.returncode == 0, result.stderr
    assert "1000 training images, 1 epochs, batch 128, lr 0.3, float32 on cpu" in result.stdout
    assert "optimizer nesterov (momentum 0.9), cosine schedule, warm-up 0.5 epochs, label smoothing 0.1" in result.stdout


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


def test_patience_stops_early_and_restores_the_best_epoch():
    result = run_train("--limit", "1000", "--epochs", "30", "--val", "300", "--patience", "1", "--lr", "20", "--log-every", "1")
    assert result.returncode == 0, result.stderr
    epochs = [line for line in result.stdout.splitlines() if line.startswith("epoch")]
    assert len(epochs) < 30
    assert "early stopping: kept the weights of epoch" in result.stdout


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--dropout", "1"], 2, "argument --dropout: '1' must be at least 0 and below 1"),
        (["--input-dropout", "-0.2"], 2, "argument --input-dropout: '-0.2' must be a finite number >= 0"),
        (["--label-smoothing", "-0.1"], 2, "argument --label-smoothing: '-0.1' must be a finite number >= 0"),
        (["--shift", "5"], 2, "argument --shift: '5' is outside 0..4"),
        (["--shift", "1.5"], 2, "argument --shift: '1.5' is not a whole number"),
        (["--l2", "-0.1"], 2, "argument --l2: '-0.1' must be a finite number >= 0"),
        (["--optimizer", "rmsprop"], 2, "argument --optimizer: invalid choice: 'rmsprop'"),
        (["--schedule", "linear"], 2, "argument --schedule: invalid choice: 'linear'"),
        (["--patience", "3"], 2, "argument --patience: needs a validation split: set val (--val N)"),
        (["--optimizer", "adam", "--weight-decay", "0.1"], 2, "argument --weight-decay: applies to adamw only"),
        (["--val", "60000"], 2, "error: --val 60000 must leave some training images: choose 1..59999"),
    ],
)
def test_bad_optimization_options_give_a_one_line_error(args, code, message):
    result = run_train(*args)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


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
