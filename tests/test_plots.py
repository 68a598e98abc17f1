"""Pictures: each is a PNG of its stated size with something drawn on it, from the library and from both commands."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from small_model import ACTIVATION, small_model

pytest.importorskip("matplotlib", reason="needs matplotlib: pip install 'mnist-xp[plot]'")
Image = pytest.importorskip("PIL.Image", reason="needs Pillow: pip install 'mnist-xp[plot]'")

from mnist_xp import modelfile, plots
from mnist_xp.cli import show, train
from mnist_xp.loop import history_from_records

PICTURES = ["samples", "curves", "confusion", "misclassified", "weights"]


def check_picture(path, kind, least_spread=10.0):
    """A valid PNG of the size FIGSIZES gives, with more than a blank page on it."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = (round(inches * plots.DPI) for inches in plots.FIGSIZES[kind])
        assert image.size == (width, height)
        gray = np.asarray(image.convert("L"), dtype=np.float64)
    assert gray.std() > least_spread
    assert (gray < 128).mean() > 0.001


def host_images(dataset):
    return dataset.X_train.reshape(-1, 28, 28), dataset.y_train, dataset.X_test.reshape(-1, 28, 28), dataset.y_test


def test_without_a_history_every_picture_but_the_curves_is_written(tmp_path):
    params, _, dataset = small_model()
    written = plots.write_pictures(tmp_path / "pictures", params, ACTIVATION, *host_images(dataset), None)
    kinds = [kind for kind in PICTURES if kind != "curves"]
    assert written == [tmp_path / "pictures" / f"{kind}.png" for kind in kinds]
    for path, kind in zip(written, kinds):
        check_picture(path, kind)


def test_curves_without_accuracies_show_the_loss_alone(tmp_path):
    history = [{"epoch": e, "loss": 1.0 / e, "seconds": 0.1, "learning_rate": 0.1, "metrics": {}} for e in range(1, 6)]
    assert len(history_from_records(history)) == 5
    check_picture(plots.training_curves(tmp_path / "curves.png", history), "curves")


def test_no_mistakes_and_a_layer_wider_than_shown_still_draw(tmp_path):
    labels = np.arange(20) % 10
    digits = small_model()[2].X_test[:20, :].reshape(-1, 28, 28)
    nothing_wrong = plots.misclassified_grid(tmp_path / "m.png", digits, labels, labels, np.ones(20))
    check_picture(nothing_wrong, "misclassified", least_spread=3.0)
    weights = np.random.default_rng(0).normal(size=(784, 100))
    check_picture(plots.first_layer_weights(tmp_path / "w.png", weights), "weights")


def test_train_with_plots_writes_them_and_saves_the_history(tmp_path):
    model, folder = tmp_path / "model.npz", tmp_path / "pictures"
    result = subprocess.run(
        [sys.executable, "-m", "mnist_xp.train", "--limit", "2000", "--epochs", "3", "--hidden", "32", "--lr", "0.2",
         "--plots", str(folder), "--save", str(model)],
        capture_output=True, text=True, env=dict(os.environ), timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"pictures written to {folder}: samples.png, curves.png" in result.stdout
    for kind in PICTURES:
        check_picture(folder / f"{kind}.png", kind)
    history = modelfile.load(model)[1]["extra"]["history"]
    assert [record["epoch"] for record in history] == [1, 2, 3]
    final = float(result.stdout.split("test accuracy ")[1].split()[0]) / 100
    assert history[-1]["metrics"]["test_accuracy"] == pytest.approx(final, abs=5e-5)
    assert set(history[-1]["metrics"]) == {"train_accuracy", "test_accuracy", "test_loss"}


def test_show_draws_a_saved_model_and_its_stored_curves(tmp_path, capsys):
    params, history, dataset = small_model()
    modelfile.save(tmp_path / "m.npz", params, ACTIVATION, extra={"history": history})
    assert show.main([str(tmp_path / "m.npz"), "--plots", str(tmp_path / "pictures")]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'm.npz'}: 784-64-10 relu, float32, trained 5 epochs" in out
    assert f"test accuracy {100 * history[-1]['metrics']['test_accuracy']:.2f} % on 10,000 test images" in out
    for kind in PICTURES:
        check_picture(tmp_path / "pictures" / f"{kind}.png", kind)


GOOD_RECORD = {"epoch": 1, "loss": 0.5, "seconds": 0.1, "learning_rate": 0.1, "metrics": {"test_accuracy": 0.9}}


@pytest.mark.parametrize(
    "records",
    [
        ["epoch 1"],
        [GOOD_RECORD | {"loss": "low"}],
        {"epoch": 1},
        [GOOD_RECORD | {"epoch": 2}],
        [GOOD_RECORD | {"metrics": {"test_accuracy": [0.9]}}],
        [GOOD_RECORD | {"loss": float("nan")}],
    ],
)
def test_a_malformed_stored_history_is_refused(records):
    history_from_records([GOOD_RECORD])
    with pytest.raises(ValueError):
        history_from_records(records)


def test_show_errors_are_one_line(tmp_path, capsys):
    params = small_model()[0]
    modelfile.save(tmp_path / "m.npz", params, ACTIVATION, extra={"history": [{"epoch": "x"}]})
    (tmp_path / "file").write_text("")
    cases = [
        ([str(tmp_path / "absent.npz")], "absent.npz: file not found"),
        ([str(tmp_path / "m.npz")], "m.npz: the stored training history is malformed"),
    ]
    for args, message in cases:
        assert show.main(args) == 1
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err


def test_missing_matplotlib_is_reported_before_training(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert train.main(["--limit", "100", "--epochs", "1", "--plots", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err == "error: pictures need matplotlib, which is not installed; install it with: pip install 'mnist-xp[plot]'\n"
    assert captured.out == ""


def test_a_plots_path_that_is_a_file_is_an_error(tmp_path, capsys):
    params, history, dataset = small_model()
    (tmp_path / "taken").write_text("")
    with pytest.raises(Exception, match="cannot create the pictures' folder"):
        plots.write_pictures(tmp_path / "taken", params, ACTIVATION, *host_images(dataset), history)
