"""The public API: load_mnist, train, TrainResult and Model, as a notebook uses them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from helpers import host_weights, same_weights

import mnist_xp
from mnist_xp import DEFAULT, Model, load_mnist, nn, train
from mnist_xp.errors import ModelFileError, UsageError

SMALL = replace(DEFAULT, hidden=(32,), epochs=2, lr=0.3)


@pytest.fixture(scope="module")
def data():
    return load_mnist(limit=2000)


@pytest.fixture(scope="module")
def result(data):
    return train(SMALL, data=data)


def test_the_public_names_are_documented_and_few():
    assert set(mnist_xp.__all__) == {
        "DEFAULT", "RECIPES", "Dataset", "MLPClassifier", "MnistXpError", "Model", "TrainConfig", "TrainResult",
        "load_digit", "load_mnist", "train",
    }
    for name in mnist_xp.__all__:
        if name != "MLPClassifier":
            assert getattr(mnist_xp, name).__doc__


def test_train_returns_a_tested_model_and_its_history(result, data):
    assert result.config == SMALL and [r.epoch for r in result.history] == [1, 2]
    assert result.losses[1] < result.losses[0]
    assert 0.8 < result.test_accuracy <= 1.0 and result.test["samples"] == 10_000
    assert result.model.layer_sizes == [784, 32, 10] and result.model.dtype == "float32"
    assert result.model.extra["test_accuracy"] == result.test_accuracy
    assert result.train_seconds > 0 and result.best_epoch is None
    probabilities = result.model.predict_proba(data.X_test)
    expected = nn.predict(result.state.params, data.X_test)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=0)
    assert np.mean(result.model.predict(data.X_test) == data.y_test) == pytest.approx(result.test_accuracy)


def test_a_recipe_name_works_and_equals_its_config(data):
    by_name = train("fast", data=load_mnist(limit=600))
    by_config = train(mnist_xp.RECIPES["fast"], data=load_mnist(limit=600))
    assert by_name.losses == by_config.losses
    with pytest.raises(UsageError, match="unknown recipe 'quick'"):
        train("quick", data=data)


def test_the_model_reads_images_in_every_usual_form(result, data):
    model = result.model
    rows = data.X_test[:3]
    expected = model.predict_proba(rows)
    np.testing.assert_array_equal(model.predict_proba(rows.reshape(3, 28, 28)), expected)
    one = model.predict_proba(rows[0])  # a single row takes another BLAS path: equal to rounding
    np.testing.assert_allclose(one, expected[:1], atol=1e-6)
    np.testing.assert_array_equal(model.predict_proba(rows[0].reshape(28, 28)), one)
    pixels = np.round(rows * 255).astype(np.uint8)
    np.testing.assert_allclose(model.predict_proba(pixels), model.predict_proba(pixels / 255.0), atol=1e-6)
    with pytest.raises(ValueError, match="reads 784 features per sample, X has 10"):
        model.predict(np.zeros((2, 10)))


def test_evaluate_reports_accuracy_loss_and_confusion(result, data):
    report = result.model.evaluate(data.X_test, data.y_test)
    assert report == result.test
    assert np.trace(report["confusion_matrix"]) == round(report["accuracy"] * 10_000)


def test_save_and_load_give_the_same_model(result, data, tmp_path):
    path = tmp_path / "model.npz"
    result.model.save(path)
    loaded = Model.load(path)
    assert repr(loaded) == repr(result.model) and loaded.history == result.model.history
    np.testing.assert_array_equal(loaded.predict_proba(data.X_test[:50]), result.model.predict_proba(data.X_test[:50]))
    path.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a readable mnist-xp model file"):
        Model.load(path)


def test_a_checkpointed_run_resumes_to_the_same_weights(data, tmp_path):
    straight = train(replace(SMALL, epochs=3), data=data)
    half = tmp_path / "half.npz"
    train(SMALL, data=data, checkpoint=half)
    resumed = train(replace(SMALL, epochs=3), data=data, resume_from=half)
    assert resumed.losses == straight.losses
    for (W1, b1), (W2, b2) in zip(straight.model.params, resumed.model.params):
        np.testing.assert_array_equal(W1, W2)
        np.testing.assert_array_equal(b1, b2)
    with pytest.raises(ValueError, match="hidden: cannot be changed when resuming"):
        train(replace(SMALL, hidden=(64,)), data=data, resume_from=half)


def test_ctrl_c_in_a_notebook_keeps_the_last_finished_epoch(data, tmp_path):
    path = tmp_path / "run.npz"

    def interrupt_after_two(state, result):
        if result.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as raised:
        train(replace(SMALL, epochs=5), data=data, checkpoint=path, on_epoch=interrupt_after_two)
    assert raised.value.saved.epoch == 1  # the interrupted epoch never finished
    resumed = train(replace(SMALL, epochs=5), data=data, resume_from=path)
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4, 5]


def test_the_data_must_be_in_the_configs_dtype(data):
    with pytest.raises(UsageError, match="the data is float32, but the config asks for float64"):
        train(replace(SMALL, dtype="float64"), data=data)


def test_early_stopping_keeps_the_best_epochs_weights(data):
    weights = []  # each epoch's, as training left them

    def record(state, result):
        weights.append(host_weights(state.params))

    result = train(replace(SMALL, epochs=6, lr=1.0, val=500, patience=1), data=data, on_epoch=record)
    losses = [r.metrics["val_loss"] for r in result.history]
    best = 1 + int(np.argmin(losses))
    assert result.best_epoch == best and len(weights) == len(result.history) == best + 1 < 6  # patience 1
    assert same_weights(result.model.params, weights[best - 1])
    assert not same_weights(result.model.params, weights[-1])
    assert same_weights(result.state.params, weights[-1])  # the state is where training stopped
    assert result.test == result.model.evaluate(data.X_test, data.y_test)  # the test report is the kept weights'


def test_a_run_resumed_without_data_loads_the_checkpointed_slice(tmp_path):
    path = tmp_path / "run.npz"
    first = train(replace(SMALL, epochs=1), limit=700, checkpoint=path)
    resumed = train(replace(SMALL, epochs=2), resume_from=path)
    assert resumed.state.step == 2 * first.state.step  # the same 700 images, not all 60,000
    assert train(limit=300).config is DEFAULT
