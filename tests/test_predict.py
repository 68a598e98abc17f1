"""The predict command: its output for real test digits saved as images, and each bad input's one-line error."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from small_model import ACTIVATION, small_model

Image = pytest.importorskip("PIL.Image", reason="needs Pillow: pip install 'mnist-xp[plot]'")

from mnist_xp import Model, load_digit, modelfile, nn
from mnist_xp.cli import predict, show
from mnist_xp.errors import ModelFileError

try:
    import cupy  # noqa: F401

    HAS_CUPY = True
except ImportError:
    HAS_CUPY = False


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A saved small model and three real test digits as dark-on-light PNG files."""
    folder = tmp_path_factory.mktemp("predict")
    params, _, dataset = small_model()
    model = folder / "model.npz"
    modelfile.save(model, params, ACTIVATION)
    digits = []
    for i in range(3):
        digit = np.rint(dataset.X_test[i, :] * 255).astype(np.uint8).reshape(28, 28)
        digits.append(folder / f"digit{i}.png")
        Image.fromarray(255 - digit).resize((84, 84)).save(digits[-1])
    return model, digits


def expected_probabilities(path):
    params = modelfile.load(path.parent / "model.npz")[0]
    return nn.predict(params, load_digit(path).reshape(1, -1).astype(np.float32), ACTIVATION)[0]


def run_predict(capsys, *args):
    code = predict.main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_the_three_likeliest_digits_of_each_image(files, capsys):
    model, digits = files
    code, out, err = run_predict(capsys, model, *digits)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 3
    for path, line in zip(digits, lines):
        probabilities = expected_probabilities(path)
        top = np.argsort(-probabilities)[:3]
        assert line == f"{path}: " + "  ".join(f"{k} ({100 * probabilities[k]:.1f} %)" for k in top)


def test_json_output_holds_digits_and_probabilities(files, capsys):
    model, digits = files
    code, out, _ = run_predict(capsys, model, *digits, "--json")
    assert code == 0
    records = json.loads(out)
    assert [record["image"] for record in records] == [str(path) for path in digits]
    labels = small_model()[2].y_test[:3]
    for record, path, label in zip(records, digits, labels):
        probabilities = expected_probabilities(path)
        top = record["top"]
        assert [entry["digit"] for entry in top] == list(np.argsort(-probabilities)[:3])
        assert [entry["probability"] for entry in top] == pytest.approx(probabilities[[e["digit"] for e in top]], abs=1e-6)
    assert sum(record["top"][0]["digit"] == label for record, label in zip(records, labels)) >= 2


def test_runs_as_a_module_from_the_command_line(files):
    model, digits = files
    result = subprocess.run(
        [sys.executable, "-m", "mnist_xp.predict", str(model), str(digits[0])],
        capture_output=True, text=True, env=dict(os.environ), timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{digits[0]}: ")


def write_bad_inputs(folder, digit):
    (folder / "notes.txt").write_text("not a picture\n")
    Image.new("L", (40, 40), 255).save(folder / "blank.png")
    (folder / "cut.png").write_bytes(digit.read_bytes()[:120])
    (folder / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip archive")
    modelfile.save(folder / "sigmoid.npz", [(np.zeros((784, 1), np.float32), np.zeros(1, np.float32))], "relu")
    params = modelfile.load(folder / "model.npz")[0]
    modelfile.save(folder / "history.npz", params, ACTIVATION, extra={"history": [{"epoch": 1}]})


@pytest.mark.parametrize(
    "model, image, message",
    [
        ("model.npz", "notes.txt", "notes.txt: not an image file (or a format Pillow cannot read)"),
        ("model.npz", "blank.png", "blank.png: the image is blank (no digit stands out from the background)"),
        ("model.npz", "cut.png", "cut.png: cannot read the image (image file is truncated)"),
        ("model.npz", "absent.png", "absent.png: file not found"),
        ("model.npz", ".", ": is a folder, not an image file"),
        ("absent.npz", "digit0.png", "absent.npz: file not found"),
        ("garbage.npz", "digit0.png", "garbage.npz: not a readable mnist-xp model file"),
        ("sigmoid.npz", "digit0.png", "the model maps 784 inputs to 1 outputs; recognizing digits needs 784 inputs"),
        ("history.npz", "digit0.png", "history.npz: the stored training history is malformed"),
    ],
)
def test_bad_input_is_a_one_line_error(files, capsys, model, image, message):
    folder = files[0].parent
    write_bad_inputs(folder, files[1][0])
    code, out, err = run_predict(capsys, folder / model, folder / image)
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err


def test_predict_and_show_load_a_digit_classifier_from_the_library(files, capsys):
    model = Model.load_digit_classifier(files[0])
    assert model.layer_sizes == [784, 64, 10] and model.activation == ACTIVATION
    folder = files[0].parent
    write_bad_inputs(folder, files[1][0])
    message = "the model maps 784 inputs to 1 outputs; recognizing digits needs 784 inputs (28x28 images) and 10"
    with pytest.raises(ModelFileError, match=r"sigmoid\.npz: " + re.escape(message)):
        Model.load_digit_classifier(folder / "sigmoid.npz")
    assert show.main([str(folder / "sigmoid.npz")]) == 1
    assert message in capsys.readouterr().err


def test_good_images_are_still_recognized_beside_a_bad_one(files, capsys):
    model, digits = files
    folder = model.parent
    write_bad_inputs(folder, digits[0])
    code, out, err = run_predict(capsys, model, digits[0], folder / "notes.txt", digits[1])
    assert code == 1
    assert [line.split(":")[0] for line in out.splitlines()] == [str(digits[0]), str(digits[1])]
    assert err.splitlines() == [f"error: {folder / 'notes.txt'}: not an image file (or a format Pillow cannot read)"]


def test_a_missing_image_argument_is_a_usage_error(files, capsys):
    with pytest.raises(SystemExit) as stop:
        predict.main([str(files[0])])
    assert stop.value.code == 2
    assert "the following arguments are required: IMAGE" in capsys.readouterr().err


def test_gpu_gives_the_cpu_answers(gpu, files, capsys):
    model, digits = files
    on_cpu = run_predict(capsys, model, *digits, "--json")
    on_gpu = run_predict(capsys, model, *digits, "--json", "--device", "gpu")
    assert on_gpu[0] == on_cpu[0] == 0
    cpu_records, gpu_records = json.loads(on_cpu[1]), json.loads(on_gpu[1])
    for cpu_record, gpu_record in zip(cpu_records, gpu_records, strict=True):
        assert [entry["digit"] for entry in gpu_record["top"]] == [entry["digit"] for entry in cpu_record["top"]]
        # Printed to six places: float32 results a rounding apart may print one unit apart.
        assert [entry["probability"] for entry in gpu_record["top"]] == pytest.approx(
            [entry["probability"] for entry in cpu_record["top"]], abs=2e-6
        )


@pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed: the missing-CuPy message cannot be shown")
def test_gpu_without_cupy_is_a_one_line_error(files, capsys):
    code, out, err = run_predict(capsys, files[0], files[1][0], "--device", "gpu")
    assert code == 1 and out == ""
    assert err == "error: --device gpu needs CuPy, which is not installed; install it with: pip install 'mnist-xp[gpu]'\n"


def test_missing_pillow_is_one_line_before_any_image(files, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    code, out, err = run_predict(capsys, files[0], *files[1])
    assert code == 1 and out == ""
    assert err == "error: reading images needs Pillow, which is not installed; install it with: pip install 'mnist-xp[plot]'\n"
