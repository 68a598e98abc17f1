"""Whole runs on every backend: the same seed gives NumPy's run, and checkpoints and model files move between them.

Each test takes ``engine``, a backend other than NumPy as ``(backend, device)``: PyTorch and JAX on the
CPU, CuPy where a GPU is present. A few short runs each, on the first few hundred images.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import warnings
from dataclasses import replace

import numpy as np
import pytest
from helpers import run_main

from mnist_xp import DEFAULT, MLPClassifier, Model, load_mnist, nn, train
from mnist_xp import backend as backends
from mnist_xp.checkpoint import load as load_checkpoint
from mnist_xp.data import DataSource

RUN = replace(DEFAULT, hidden=(24,), epochs=3, batch_size=100, lr=0.2, optimizer="nesterov", dtype="float64")
"""Dropout on the hidden and input layers, label smoothing, a cosine schedule: every random stream but the shifts."""
RUN = replace(RUN, dropout=0.2, input_dropout=0.1, label_smoothing=0.1, schedule="cosine", warmup=0.5)
LIMIT = 600


@functools.cache
def numpy_run(config=RUN, limit=LIMIT):
    return train(config, limit=limit)


def test_load_mnist_puts_the_data_on_the_backend_and_device(engine):
    name, device = engine
    dataset = load_mnist(device, "float32", limit=50, backend=name)
    assert backends.place_of(dataset.X_train) == backends.place_of(dataset.Y_test) == (name, device)
    assert dataset.source == DataSource(None, 50, device, name)
    np.testing.assert_array_equal(backends.to_host(dataset.X_train), load_mnist(limit=50, dtype="float32").X_train)


def test_a_seed_gives_numpys_run_on_every_backend(engine):
    name, device = engine
    result = train(RUN, limit=LIMIT, backend=name, device=device)
    reference = numpy_run()
    assert (result.model.backend, result.model.device) == (name, device)
    assert backends.place_of(result.state.params[0][0]) == (name, device)
    # The same batches and dropout masks: the losses agree to float64 rounding, not just to a few digits.
    assert result.losses == pytest.approx(reference.losses, rel=1e-10)
    for (W, b), (W_ref, b_ref) in zip(result.model.params, reference.model.params):
        np.testing.assert_allclose(W, W_ref, rtol=1e-8, atol=1e-11)
        np.testing.assert_allclose(b, b_ref, rtol=1e-8, atol=1e-11)
    assert result.test["confusion_matrix"] == reference.test["confusion_matrix"]


def test_jax_in_float32_needs_no_64_bit_mode_and_warns_of_nothing():
    pytest.importorskip("jax")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # JAX warns where an int64 or float64 asked for becomes 32 bits
        result = train(replace(RUN, dtype="float32", epochs=1), limit=LIMIT, backend="jax")
        binary = nn.predicted_class(backends.to_device(np.array([[0.2], [0.7]]), result.state.params[0][0], "float32"))
    assert result.losses == pytest.approx(numpy_run(replace(RUN, dtype="float32", epochs=1)).losses, rel=1e-5)
    assert backends.to_host(binary).tolist() == [0, 1]


@pytest.mark.parametrize("direction", ["from numpy", "to numpy"])
def test_a_checkpoint_saved_on_one_backend_resumes_on_another(engine, tmp_path, direction):
    name, device = engine
    config = replace(RUN, dtype="float32", epochs=2)
    saved_on, resumed_on = ((None, "cpu"), (name, device))[:: 1 if direction == "from numpy" else -1]
    path = tmp_path / "run.npz"
    stop_after_one = lambda state, result: result.epoch == 1
    train(config, limit=LIMIT, backend=saved_on[0], device=saved_on[1], checkpoint=path, on_epoch=stop_after_one)
    assert load_checkpoint(path).epoch == 1
    resumed = train(resume_from=path, backend=resumed_on[0], device=resumed_on[1])
    straight = numpy_run(config)
    assert backends.place_of(resumed.state.params[0][0])[0] == (resumed_on[0] or "numpy")
    assert resumed.state.epoch == 2 and resumed.state.step == straight.state.step
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5)
    for (W, b), (W_ref, b_ref) in zip(resumed.model.params, straight.model.params):
        assert W.dtype == np.float32
        np.testing.assert_allclose(W, W_ref, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(b, b_ref, rtol=1e-4, atol=1e-6)


def test_a_model_file_saved_on_one_backend_predicts_alike_on_every_other(engine, tmp_path):
    name, device = engine
    path = tmp_path / "model.npz"
    train(replace(RUN, epochs=1), limit=LIMIT, backend=name, device=device).model.save(path)
    images = load_mnist(limit=50, dtype="float64").X_test[:200]
    on_numpy = Model.load(path)
    on_engine = Model.load(path, device, backend=name)
    assert repr(on_engine).endswith(f"float64, backend={name!r}, device={device!r})")
    _, params_there = on_engine._device_params()
    assert backends.place_of(params_there[0][0]) == (name, device)
    np.testing.assert_allclose(on_engine.predict_proba(images), on_numpy.predict_proba(images), rtol=1e-10, atol=1e-13)
    labels = load_mnist(limit=50).y_test[:200]
    assert (
        on_engine.evaluate(images, labels)["confusion_matrix"] == on_numpy.evaluate(images, labels)["confusion_matrix"]
    )


def test_the_estimator_fits_on_the_backend_as_on_numpy(engine):
    pytest.importorskip("sklearn")
    name, device = engine
    dataset = load_mnist(limit=300, dtype="float64")
    X, y = backends.to_host(dataset.X_train), dataset.y_train
    settings = {"hidden_layer_sizes": (16,), "max_iter": 3, "random_state": 0, "dtype": "float64", "batch_size": 100}
    with pytest.warns(Warning):  # three epochs do not meet scikit-learn's stopping rule
        fitted = MLPClassifier(**settings, backend=name, device=device).fit(X, y)
    with pytest.warns(Warning):
        reference = MLPClassifier(**settings).fit(X, y)
    assert fitted.loss_curve_ == pytest.approx(reference.loss_curve_, rel=1e-10)
    np.testing.assert_allclose(fitted.predict_proba(X[:40]), reference.predict_proba(X[:40]), rtol=1e-8, atol=1e-12)
    assert fitted.model_.backend == name
    fitted.set_params(backend=None, device="cpu", warm_start=True)
    with pytest.raises(ValueError, match="hidden_layer_sizes, dtype, backend or device changed"):
        fitted.fit(X, y)


SEED_RUN = ("--recipe", "seed", "--epochs", "3", "--limit", "300")


def train_report(tmp_path, label: str, *options) -> tuple[str, dict]:
    """The training command's output and ``--report`` of a run in a new process."""
    report = tmp_path / f"{label}.json"
    result = subprocess.run(
        [sys.executable, "-m", "mnist_xp.train", *options, "--report", str(report)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, json.loads(report.read_text())


@pytest.fixture(scope="module")
def numpy_seed_report(tmp_path_factory):
    return train_report(tmp_path_factory.mktemp("numpy"), "numpy", *SEED_RUN)[1]


def test_the_training_command_runs_the_seed_recipe_in_float64_on_the_backend(engine, tmp_path, numpy_seed_report):
    name, device = engine
    out, on_engine = train_report(tmp_path, name, *SEED_RUN, "--backend", name, "--device", device)
    assert f"float64 on {device} ({name})" in out.splitlines()[0]
    losses = [record["loss"] for record in on_engine["history"]]
    assert losses == pytest.approx([record["loss"] for record in numpy_seed_report["history"]], rel=1e-10)
    assert on_engine["test"]["confusion_matrix"] == numpy_seed_report["test"]["confusion_matrix"]


@pytest.mark.parametrize("name, title", [("torch", "PyTorch"), ("jax", "JAX")])
def test_a_backend_that_is_not_installed_is_one_line_with_its_install_command(monkeypatch, capsys, name, title):
    monkeypatch.setitem(sys.modules, "jax.numpy" if name == "jax" else name, None)
    monkeypatch.setitem(sys.modules, name, None)  # as if the library were not installed
    code, out, err = run_main(["--backend", name, "--limit", "10", "--epochs", "1"], capsys)
    assert (code, out) == (1, "")
    assert (
        err
        == f"error: --backend {name} needs {title}, which is not installed; install it with: pip install 'mnist-xp[{name}]'\n"
    )


def test_every_command_that_places_a_network_takes_a_backend():
    from mnist_xp.cli import predict, tune
    from mnist_xp.cli import train as train_command

    for command in (train_command, predict, tune):
        options = {action.dest: action for action in command.build_parser()._actions}
        assert tuple(options["backend"].choices) == backends.BACKENDS and options["backend"].default is None
        assert tuple(options["device"].choices) == backends.DEVICES and options["device"].default == "cpu"


def test_the_predict_command_gives_numpys_answers_on_the_backend(engine, tmp_path, capsys, monkeypatch):
    image = pytest.importorskip("PIL.Image", reason="needs Pillow: pip install 'mnist-xp[plot]'")
    from mnist_xp.cli import predict

    name, device = engine
    model = tmp_path / "model.npz"
    numpy_run(replace(RUN, epochs=1, dtype="float32")).model.save(model)
    digits = load_mnist(limit=10).X_test[:3]
    paths = [tmp_path / f"digit{i}.png" for i in range(3)]
    for digit, path in zip(digits, paths):
        image.fromarray(255 - np.rint(digit * 255).astype(np.uint8).reshape(28, 28)).save(path)
    monkeypatch.setattr(backends, "allow_float64", lambda backend: None)  # JAX's 64-bit mode stays as the test has it
    loaded = []
    load = Model.load_digit_classifier
    monkeypatch.setattr(
        predict.Model, "load_digit_classifier", lambda *args, **kw: loaded.append(load(*args, **kw)) or loaded[-1]
    )
    answers = []
    for options in ((), ("--backend", name, "--device", device)):
        code = predict.main([str(model), *map(str, paths), "--json", *options])
        out, err = capsys.readouterr()
        assert (code, err) == (0, "")
        answers.append(json.loads(out))
    assert [(model.backend, model.device) for model in loaded] == [("numpy", "cpu"), (name, device)]
    assert [[entry["digit"] for entry in record["top"]] for record in answers[1]] == [
        [entry["digit"] for entry in record["top"]] for record in answers[0]
    ]
    # Printed to six places: float32 results a rounding apart may print one unit apart.
    for on_engine, on_numpy in zip(answers[1], answers[0], strict=True):
        assert [entry["probability"] for entry in on_engine["top"]] == pytest.approx(
            [entry["probability"] for entry in on_numpy["top"]], abs=2e-6
        )


def test_a_device_the_backend_does_not_offer_is_a_usage_error_naming_the_option(capsys):
    code, out, err = run_main(["--backend", "numpy", "--device", "gpu"], capsys)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        "python -m mnist_xp.train: error: argument --device: 'gpu' is not a device of backend 'numpy', which offers cpu"
    )
