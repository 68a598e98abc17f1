"""Schedules, the validation split, early stopping, the evaluation report and the recipes' optimizers."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

import mnist_xp
from mnist_xp import backend as backends
from mnist_xp import data, metrics, nn, schedules
from mnist_xp.callbacks import EarlyStopping, ValidationMetrics
from mnist_xp.config import RECIPES, TrainConfig
from mnist_xp.errors import MnistXpError
from mnist_xp.holdout import carve, split_indices
from mnist_xp.loop import EpochResult, TrainState
from mnist_xp.pipeline import make_optimizer, make_schedule


def test_step_decay_multiplies_by_the_factor_every_interval():
    schedule = schedules.step_decay(0.4, every=10, factor=0.5)
    assert [schedule(s) for s in (0, 9, 10, 19, 20, 35)] == [0.4, 0.4, 0.2, 0.2, 0.1, 0.05]


def test_cosine_runs_from_the_rate_to_the_floor():
    schedule = schedules.cosine(0.2, total_steps=100, final_rate=0.02)
    assert schedule(0) == pytest.approx(0.2)
    assert schedule(50) == pytest.approx(0.11)
    assert schedule(100) == pytest.approx(0.02) and schedule(150) == pytest.approx(0.02)
    rates = [schedule(s) for s in range(101)]
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:]))


def test_warmup_ramps_linearly_then_follows_the_schedule():
    schedule = schedules.with_warmup(schedules.constant(0.3), warmup_steps=4)
    assert [schedule(s) for s in range(6)] == pytest.approx([0.075, 0.15, 0.225, 0.3, 0.3, 0.3])
    assert schedules.with_warmup(schedules.constant(0.3), 0)(0) == 0.3


def test_make_cosine_with_warmup_peaks_after_the_warmup_and_ends_at_zero():
    schedule = schedules.make("cosine", 0.1, total_steps=110, warmup_steps=10)
    assert schedule(0) == pytest.approx(0.01)
    assert schedule(9) == pytest.approx(0.1) and schedule(10) == pytest.approx(0.1)
    assert schedule(60) == pytest.approx(0.05)
    assert schedule(110) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError):
        schedules.make("linear", 0.1, 10)


def test_recipe_schedule_counts_epochs_in_steps():
    settings = replace(RECIPES["default"], lr=1.0, epochs=6, schedule="step", step_every=2, step_factor=0.5)
    schedule = make_schedule(settings, steps_per_epoch=10)
    assert [schedule(s) for s in (0, 19, 20, 40, 59)] == [1.0, 1.0, 0.5, 0.25, 0.25]


def adam_move(t: int, g: float, lr: float) -> float:
    """How far step t of Keras's Adam (epsilon 1e-7) moves under a constant gradient g.

    m_t = (1 - 0.9^t) g and v_t = (1 - 0.999^t) g^2, so lr_t m_t / (sqrt(v_t) + eps), with
    lr_t = lr sqrt(1 - 0.999^t) / (1 - 0.9^t), is lr r g / (r |g| + eps) where r = sqrt(1 - 0.999^t).
    """
    root = math.sqrt(1 - 0.999**t)
    return lr * root * g / (root * abs(g) + 1e-7)


def adamw_two_steps(p: float, g: float, lr: float, decay: float) -> float:
    """Two AdamW steps: each first decays p by lr * decay * p, then takes Adam's step."""
    p = p * (1 - lr * decay) - adam_move(1, g, lr)
    return p * (1 - lr * decay) - adam_move(2, g, lr)


# Two steps from p with a constant gradient g at lr 0.1 (momentum 0.5), worked out by hand:
# momentum: v1 = -lr g, p1 = p - lr g; v2 = 0.5 v1 - lr g = -1.5 lr g, p2 = p - 2.5 lr g.
# nesterov: p1 = p + 0.5 v1 - lr g = p - 1.5 lr g; p2 = p1 + 0.5 v2 - lr g = p - 3.25 lr g.
TWO_STEPS = {
    "sgd": lambda p, g: p - 2 * 0.1 * g,
    "momentum": lambda p, g: p - 2.5 * 0.1 * g,
    "nesterov": lambda p, g: p - 3.25 * 0.1 * g,
    "adam": lambda p, g: p - adam_move(1, g, 0.1) - adam_move(2, g, 0.1),
    "adamw": lambda p, g: adamw_two_steps(p, g, 0.1, 0.004),  # Keras's default decay when none is given
}


@pytest.mark.parametrize("name, weight_decay", [*((name, None) for name in TWO_STEPS), ("adamw", 0.01)])
def test_make_optimizer_gives_each_name_its_update_rule(name, weight_decay):
    config = replace(RECIPES["default"], optimizer=name, momentum=0.5, weight_decay=weight_decay)
    optimizer = make_optimizer(config)
    start, grads = [(np.array([[1.0, -2.0]]), np.array([0.5]))], [(np.array([[0.2, -0.4]]), np.array([3.0]))]
    params, state = start, optimizer.init(start)
    for _ in range(2):
        params, state = optimizer.update(params, grads, state, 0.1)
    rule = TWO_STEPS[name] if weight_decay is None else (lambda p, g: adamw_two_steps(p, g, 0.1, weight_decay))
    expected = [rule(p, g) for p, g in zip([1.0, -2.0, 0.5], [0.2, -0.4, 3.0])]
    np.testing.assert_allclose([*params[0][0][0], *params[0][1]], expected, rtol=1e-12)


def test_weight_decay_is_refused_for_optimizers_other_than_adamw():
    with pytest.raises(ValueError, match="weight_decay: applies to adamw only"):
        replace(RECIPES["default"], optimizer="adam", weight_decay=0.01)


def test_nesterov_looks_ahead_along_the_velocity():
    params = [(np.array([[1.0]]), np.array([0.0]))]
    grads = [(np.array([[1.0]]), np.array([2.0]))]
    optimizer = make_optimizer(replace(RECIPES["default"], optimizer="nesterov", momentum=0.5))
    new, _ = optimizer.update(params, grads, optimizer.init(params), 0.1)
    # v = -0.1 g; p <- p + 0.5 v - 0.1 g = p - 0.15 g
    np.testing.assert_allclose(new[0][0], [[0.85]])
    np.testing.assert_allclose(new[0][1], [-0.3])


@pytest.mark.parametrize("name, expected", [("momentum", [0.9, 0.75]), ("nesterov", [0.85, 0.675])])
def test_momentum_accumulates_a_velocity_over_steps(name, expected):
    # beta 0.5, lr 0.1, gradient 1: v = -0.1 then -0.15; momentum p += v, Nesterov p += 0.5 v - 0.1.
    optimizer = make_optimizer(replace(RECIPES["default"], optimizer=name, momentum=0.5))
    params, grads = [(np.array([[1.0]]), np.array([0.0]))], [(np.array([[1.0]]), np.array([0.0]))]
    state = optimizer.init(params)
    for want in expected:
        params, state = optimizer.update(params, grads, state, 0.1)
        np.testing.assert_allclose(params[0][0], [[want]])
    np.testing.assert_allclose(state[0][0], [[-0.15]])


def test_validation_split_is_disjoint_complete_and_seeded():
    train, val = split_indices(seed=3, n=1000, size=100)
    assert len(val) == 100 and len(train) == 900
    assert not set(train) & set(val)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(1000))
    again_train, again_val = split_indices(3, 1000, 100)
    np.testing.assert_array_equal(val, again_val)
    assert not np.array_equal(val, split_indices(4, 1000, 100)[1])
    for size in (0, 1000):
        with pytest.raises(MnistXpError):
            split_indices(3, 1000, size)


def test_carved_validation_images_come_from_training_and_leave_it():
    xp = backends.namespace("cpu")
    dataset = data.load(xp, "float32", limit=600)
    training, validation = carve(dataset, 100, seed=0)
    assert training.X_train.shape == (500, 784) and validation.X_test.shape == (100, 784)
    train_rows = {row.tobytes() for row in np.asarray(training.X_train)}
    val_rows = [row.tobytes() for row in np.asarray(validation.X_test)]
    all_rows = {row.tobytes() for row in np.asarray(dataset.X_train)}
    assert set(val_rows) <= all_rows and len(train_rows | set(val_rows)) == len(all_rows)
    assert not train_rows & set(val_rows)
    np.testing.assert_array_equal(np.asarray(validation.Y_test).argmax(axis=1), validation.y_test)
    np.testing.assert_array_equal(training.X_test, dataset.X_test)  # the test set is untouched


def test_early_stopping_stops_after_patience_and_keeps_the_best_epoch():
    xp = backends.namespace("cpu")
    rng = np.random.default_rng(0)
    X = xp.asarray(rng.normal(size=(40, 4)))
    labels = rng.integers(0, 3, 40)
    dataset = data.Dataset(X, None, None, X, xp.asarray(np.eye(3)[labels]), labels)
    validation, stopper = ValidationMetrics(), EarlyStopping("val_loss", patience=2)
    params = nn.init_params([4, 5, 3], backends.standard_normal(backends.host_rng(0), xp, "float64"))
    # Fake epochs: the parameters of epoch 2 are the best ones; later ones are scaled copies that do worse.
    candidates = [[(W * s, b) for W, b in params] for s in (3.0, 0.0, 5.0, 8.0, 9.0)]
    stops = []
    for epoch, candidate in enumerate(candidates, start=1):
        run = SimpleNamespace(config=TrainConfig(), validation=dataset, state=TrainState(candidate, None, epoch=epoch))
        result = EpochResult(epoch, 1.0, 0.0, 0.1)
        validation.on_epoch_end(run, result)
        stops.append(stopper.on_epoch_end(run, result))
        assert {"val_loss", "val_accuracy"} <= set(result.metrics)
    assert stopper.best_epoch == 2 and stopper.best_value == pytest.approx(math.log(3))
    assert stops == [False, False, False, True, True]
    np.testing.assert_array_equal(stopper.best_params[0][0], candidates[1][0][0])
    assert stopper.best_params[0][0] is not candidates[1][0][0]


def test_training_stops_when_early_stopping_says_so():
    dataset = data.load(backends.namespace("cpu"), "float64", limit=400)
    # A huge learning rate makes the validation loss rise after the first epoch.
    config = TrainConfig(hidden=(8,), lr=50.0, epochs=10, batch_size=50, dtype="float64", val=100, patience=1)
    result = mnist_xp.train(config, data=dataset)
    assert result.state.epoch < 10 and result.state.epoch == result.best_epoch + 1
    assert all("val_accuracy" in epoch.metrics for epoch in result.history)


def test_confusion_matrix_and_report_match_a_hand_count():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
    predicted = np.array([0, 1, 0, 1, 1, 2, 0, 2, 1, 0])
    # true 0: predicted 0,1,0,0 -> [3, 1, 0]; true 1: 1,1 -> [0, 2, 0]; true 2: 2,0,2,1 -> [1, 1, 2]
    expected = [[3, 1, 0], [0, 2, 0], [1, 1, 2]]
    report = metrics.summarize(labels, predicted, loss=0.25, num_classes=4)
    assert report["confusion_matrix"] == [row + [0] for row in expected] + [[0, 0, 0, 0]]
    assert report["accuracy"] == pytest.approx(7 / 10)
    assert report["per_class_accuracy"][:3] == pytest.approx([0.75, 1.0, 0.5]) and report["per_class_accuracy"][3] is None
    assert report["class_samples"] == [4, 2, 4, 0] and report["samples"] == 10 and report["loss"] == 0.25
    table = metrics.format_table(report)
    assert "overall accuracy 70.00 %, loss 0.2500, 10 images" in table
    assert table.splitlines()[4].split("|")[1].split() == ["1", "1", "2", "0"]


def test_evaluate_report_on_real_images_and_json(tmp_path):
    xp = backends.namespace("cpu")
    dataset = data.load(xp, "float64", limit=100)
    params = nn.init_params([784, 10], backends.standard_normal(backends.host_rng(0), xp, "float64"))
    report = metrics.evaluate_report(params, dataset.X_test, dataset.Y_test, dataset.y_test)
    predicted = np.asarray(nn.predict(params, dataset.X_test)).argmax(axis=1)
    assert report["accuracy"] == pytest.approx(np.mean(predicted == dataset.y_test))
    assert report["loss"] == pytest.approx(float(nn.loss(params, dataset.X_test, dataset.Y_test)))
    assert np.sum(report["confusion_matrix"]) == 10_000
    path = tmp_path / "sub" / "report.json"
    metrics.write_json(path, report)
    assert json.loads(path.read_text()) == report
