"""The training command end to end in a subprocess, and each of its bad-input paths."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import BAD_OPTIONS_BY_STAGE, run_train

from mnist_xp import data, modelfile

try:
    import cupy  # noqa: F401

    HAS_CUPY = True
except ImportError:
    HAS_CUPY = False


def test_trains_reports_accuracy_and_saves_a_model(tmp_path):
    model = tmp_path / "out" / "model.npz"
    result = run_train("--limit", "3000", "--epochs", "3", "--hidden", "64,32", "--save", str(model), "--log-every", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("mnist-xp: 784-64-32-10 relu, 3000 training images, 3 epochs, batch 128")
    assert [line.split()[1] for line in lines if line.startswith("epoch")] == ["1/3", "2/3", "3/3"]
    accuracy_line = next(line for line in lines if line.startswith("test accuracy"))
    accuracy = float(accuracy_line.split()[2])
    assert 80 < accuracy < 100
    params, meta = modelfile.load(model)
    assert meta["layer_sizes"] == [784, 64, 32, 10] and meta["activation"] == "relu" and meta["dtype"] == "float32"
    assert meta["extra"]["test_accuracy"] == pytest.approx(accuracy / 100, abs=5e-5)
    assert [W.shape for W, _ in params] == [(784, 64), (64, 32), (32, 10)]


def test_help_lists_the_options():
    result = run_train("--help")
    assert result.returncode == 0
    for option in ("--device", "--epochs", "--lr", "--batch-size", "--hidden", "--activation", "--init", "--dtype",
                   "--seed", "--limit", "--save", "--log-every", "--recipe", "--data-dir", "--label-smoothing",
                   "--dropout", "--input-dropout", "--shift"):
        assert option in result.stdout
    assert "(default cpu)" in result.stdout and "(default 15)" in result.stdout
    assert "default: None" not in result.stdout  # options without a fixed default name the recipe's in their help


@pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed: the missing-CuPy message cannot be shown")
def test_gpu_without_cupy_is_a_one_line_error():
    result = run_train("--device", "gpu", "--limit", "100", "--epochs", "1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: --device gpu needs CuPy, which is not installed; install it with: pip install 'mnist-xp[gpu]'"
    ]


def train_report(tmp_path, name, *args):
    """Run the training command with ``--report``; its stdout and the report."""
    report = tmp_path / f"{name}.json"
    result = run_train(*args, "--report", str(report))
    assert result.returncode == 0, result.stderr
    return result.stdout, json.loads(report.read_text())


def epoch_losses(report):
    return [entry["loss"] for entry in report["history"]]


TWIN_RUN = (
    "--limit", "3000", "--epochs", "3", "--hidden", "64,32", "--dtype", "float64", "--optimizer", "nesterov",
    "--lr", "0.1", "--schedule", "cosine", "--warmup", "1", "--l2", "1e-4", "--label-smoothing", "0.1", "--val", "500",
)  # fmt: skip


def test_a_gpu_run_matches_the_cpu_run(gpu, tmp_path):
    """The weights and the batch order are drawn on the host, so in float64 the backends agree to rounding."""
    _, on_cpu = train_report(tmp_path, "cpu", *TWIN_RUN, "--device", "cpu")
    out, on_gpu = train_report(tmp_path, "gpu", *TWIN_RUN, "--device", "gpu")
    assert "float64 on gpu" in out.splitlines()[0]
    assert epoch_losses(on_gpu) == pytest.approx(epoch_losses(on_cpu), rel=1e-9)
    assert on_gpu["history"][-1]["metrics"] == pytest.approx(on_cpu["history"][-1]["metrics"], rel=1e-9)
    assert on_gpu["test"]["loss"] == pytest.approx(on_cpu["test"]["loss"], rel=1e-9)
    assert on_gpu["test"]["confusion_matrix"] == on_cpu["test"]["confusion_matrix"]


def test_gpu_dropout_runs_repeat_and_learn(gpu, tmp_path):
    """Dropout masks come from CuPy's generator: the same seed gives the same run, another seed another."""
    run = ("--device", "gpu", "--limit", "3000", "--epochs", "3", "--dropout", "0.3", "--input-dropout", "0.1")
    _, first = train_report(tmp_path, "first", *run)
    _, again = train_report(tmp_path, "again", *run)
    _, other = train_report(tmp_path, "other", *run, "--seed", "1")
    assert epoch_losses(again) == epoch_losses(first)
    assert again["test"]["confusion_matrix"] == first["test"]["confusion_matrix"]
    assert epoch_losses(other) != epoch_losses(first)
    assert first["test"]["accuracy"] > 0.8  # 85-88 % in such runs; 10 % is chance


@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["unbuffered", "buffered"])
def test_a_reader_that_went_away_ends_the_run_without_a_traceback(unbuffered):
    """As with ``... | head``: the run's output has nowhere to go."""
    env = dict(os.environ, PYTHONUNBUFFERED=unbuffered)
    command = [sys.executable, "-m", "mnist_xp.train", "--limit", "500", "--epochs", "2"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
        process.stdout.close()
        errors = process.stderr.read()
    assert process.returncode == 1 and errors == ""


def write_broken_dataset(folder: Path) -> None:
    for stem in data.FILES.values():
        (folder / f"{stem}.gz").write_bytes((data.BUNDLED_DIR / f"{stem}.gz").read_bytes())
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big")))


@pytest.mark.parametrize(
    "args, code, message",
    [
        *((argv, 2, message) for argv, message in BAD_OPTIONS_BY_STAGE),
        (["--data-dir", "/nonexistent/folder"], 1, "error: /nonexistent/folder: data folder not found"),
    ],
)
def test_bad_input_gives_a_one_line_error(args, code, message):
    result = run_train(*args)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_broken_data_folder_error_names_the_file(tmp_path):
    write_broken_dataset(tmp_path)
    result = run_train("--data-dir", str(tmp_path), "--epochs", "1")
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path}/t10k-labels-idx1-ubyte.gz: truncated: header says (10,) (18 bytes), file has 8 bytes"


def test_recipe_settings_can_be_overridden():
    result = run_train("--recipe", "seed", "--epochs", "2", "--limit", "500", "--dtype", "float32")
    assert result.returncode == 0, result.stderr
    assert "500 training images, 2 epochs, batch full, lr 0.01, float32 on cpu" in result.stdout


def test_saved_model_predicts_like_the_trained_run(tmp_path):
    model = tmp_path / "model.npz"
    assert run_train("--limit", "2000", "--epochs", "2", "--save", str(model)).returncode == 0
    params, _ = modelfile.load(model)
    test, labels = data.load_raw()[1].images, data.load_raw()[1].labels
    X = data.preprocess_images(test).astype(np.float32)
    hidden = np.maximum(X @ params[0][0] + params[0][1], 0)
    accuracy = np.mean((hidden @ params[1][0] + params[1][1]).argmax(axis=1) == labels)
    saved = modelfile.load(model)[1]["extra"]["test_accuracy"]
    assert accuracy == pytest.approx(saved, abs=2e-4)
