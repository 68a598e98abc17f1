"""L2, dropout (hidden and input) and label smoothing: gradients against finite differences, dropout's scaling, its absence at evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check_gradients, device_params, tiny_problem
from small_model import first_weights_after_fit

from mnist_xp import backend as backends
from mnist_xp import metrics, nn
from mnist_xp.loop import TrainState, batch_dropout, fit
from mnist_xp.optim import sgd


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_l2_gradient_matches_finite_differences(backend, activation):
    host_params, X_host, Y_host = tiny_problem([5, 4, 3])
    params = device_params(backend, host_params)
    check_gradients(backend, params, host_params, backend.asarray(X_host), backend.asarray(Y_host), activation, l2=0.3)


def test_l2_penalty_is_half_the_sum_of_squared_weights(backend):
    host_params, X_host, Y_host = tiny_problem([5, 4, 3])
    params = device_params(backend, host_params)
    X, Y = backend.asarray(X_host), backend.asarray(Y_host)
    expected = 0.5 * 0.3 * sum(np.sum(W**2) for W, _ in host_params)
    assert float(nn.loss(params, X, Y, "relu", l2=0.3)) - float(nn.loss(params, X, Y, "relu")) == pytest.approx(expected)
    penalised, _ = nn.loss_and_grads(params, X, Y, "relu", l2=0.3)
    assert float(penalised) == pytest.approx(float(nn.loss(params, X, Y, "relu", l2=0.3)))


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_dropout_gradient_matches_finite_differences_for_fixed_masks(backend, activation):
    host_params, X_host, Y_host = tiny_problem([5, 6, 4, 3])
    params = device_params(backend, host_params)
    rng = np.random.default_rng(3)
    uniforms = [backend.asarray(rng.random((7, 6))), backend.asarray(rng.random((7, 4)))]
    dropout = nn.dropout_masks(uniforms, 0.4)
    check_gradients(backend, params, host_params, backend.asarray(X_host), backend.asarray(Y_host), activation, dropout)


@pytest.mark.parametrize("hidden_rate", [0.0, 0.4])
def test_input_dropout_gradient_matches_finite_differences_for_fixed_masks(backend, hidden_rate):
    host_params, X_host, Y_host = tiny_problem([5, 6, 4, 3])
    params = device_params(backend, host_params)
    rng = np.random.default_rng(4)
    hidden = nn.dropout_masks([backend.asarray(rng.random((7, 6))), backend.asarray(rng.random((7, 4)))], 0.4)
    input_mask = nn.dropout_mask(backend.asarray(rng.random((7, 5))), 0.3)
    dropout = (hidden if hidden_rate else nn.Dropout(0.0, []))._replace(input_mask=input_mask)
    check_gradients(backend, params, host_params, backend.asarray(X_host), backend.asarray(Y_host), "relu", dropout)


def test_input_dropout_multiplies_the_inputs_by_their_mask(backend):
    host_params, X_host, _ = tiny_problem([4, 3, 2])
    params = device_params(backend, host_params)
    input_mask = nn.dropout_mask(backend.asarray(np.array([[0.9, 0.1, 0.6, 0.2]] * 7)), 0.5)
    dropped = nn.forward(params, backend.asarray(X_host), "relu", nn.Dropout(0.0, [], input_mask))
    on_masked = nn.forward(params, backend.asarray(X_host * np.array([2.0, 0.0, 2.0, 0.0])), "relu")
    for got, expected in zip(dropped, on_masked):
        np.testing.assert_allclose(backend.to_numpy(got), backend.to_numpy(expected))


def test_dropout_masks_are_zero_or_scaled_by_the_keep_probability(backend):
    uniform = backends.uniform_sampler(backend.xp, "dropout", 5, 1, 2)
    u = uniform((400, 300), "float64")
    mask = backend.to_numpy(nn.dropout_masks([u], 0.25).masks[0])
    assert set(np.unique(mask)) == {0.0, 1 / 0.75}
    np.testing.assert_array_equal(mask == 0, backend.to_numpy(u) < 0.25)
    assert abs(mask.mean() - 1.0) < 0.02  # inverted dropout keeps the expected activation
    assert abs((mask == 0).mean() - 0.25) < 0.01


def test_dropout_multiplies_each_hidden_output_by_its_mask(backend):
    host_params, X_host, _ = tiny_problem([5, 4, 3])
    params = device_params(backend, host_params)
    masks = nn.dropout_masks([backend.asarray(np.array([[0.9, 0.1, 0.6, 0.2]] * 7))], 0.5)
    plain = backend.to_numpy(nn.forward(params, backend.asarray(X_host), "relu")[1])
    dropped = backend.to_numpy(nn.forward(params, backend.asarray(X_host), "relu", masks)[1])
    np.testing.assert_allclose(dropped, plain * np.array([2.0, 0.0, 2.0, 0.0]))


def test_uniform_draws_are_a_pure_function_of_the_key(backend):
    first = backend.to_numpy(backends.uniform_sampler(backend.xp, "dropout", 1, 2, 3)((4, 5), "float32"))
    again = backend.to_numpy(backends.uniform_sampler(backend.xp, "dropout", 1, 2, 3)((4, 5), "float32"))
    other = backend.to_numpy(backends.uniform_sampler(backend.xp, "dropout", 1, 2, 4)((4, 5), "float32"))
    stream = backend.to_numpy(backends.uniform_sampler(backend.xp, "shift", 1, 2, 3)((4, 5), "float32"))
    assert not np.array_equal(first, stream)
    assert first.dtype == np.float32 and ((0 <= first) & (first < 1)).all()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_batch_dropout_depends_on_seed_epoch_and_batch_only():
    xp = backends.namespace("cpu")
    params = [(xp.zeros((3, 8)), xp.zeros(8)), (xp.zeros((8, 2)), xp.zeros(2))]
    mask = batch_dropout(params, 5, 0.5, 0, 1, 2, "float64").masks[0]
    np.testing.assert_array_equal(mask, batch_dropout(params, 5, 0.5, 0, 1, 2, "float64").masks[0])
    for key in [(1, 1, 2), (0, 2, 2), (0, 1, 3)]:
        assert not np.array_equal(mask, batch_dropout(params, 5, 0.5, *key, "float64").masks[0])
    assert batch_dropout(params, 5, 0.0, 0, 1, 2, "float64") is None
    assert batch_dropout(params[1:], 5, 0.5, 0, 1, 2, "float64") is None


def test_batch_input_dropout_masks_every_pixel_and_leaves_the_hidden_masks_as_they_were():
    xp = backends.namespace("cpu")
    params = [(xp.zeros((300, 8)), xp.zeros(8)), (xp.zeros((8, 2)), xp.zeros(2))]
    both = batch_dropout(params, 50, 0.5, 0, 1, 2, "float64", input_rate=0.2)
    np.testing.assert_array_equal(both.masks[0], batch_dropout(params, 50, 0.5, 0, 1, 2, "float64").masks[0])
    assert both.input_mask.shape == (50, 300)
    assert set(np.unique(both.input_mask)) == {0.0, 1 / 0.8}
    assert abs((both.input_mask == 0).mean() - 0.2) < 0.02
    inputs_only = batch_dropout(params, 50, 0.0, 0, 1, 2, "float64", input_rate=0.2)
    assert inputs_only.rate == 0.0 and inputs_only.masks == [] and inputs_only.input_mask.shape == (50, 300)
    assert batch_dropout(params[1:], 50, 0.5, 0, 1, 2, "float64", input_rate=0.2).masks == []


@pytest.mark.parametrize("batch_size", [16, None], ids=["mini-batch", "full-batch"])
def test_fit_with_input_dropout_trains_differently_and_repeatably(batch_size):
    xp = backends.namespace("cpu")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 40))
    X[:, :20] = 0.0  # columns that full-batch training would otherwise compact away
    X, Y = xp.asarray(X), xp.asarray(np.eye(3)[rng.integers(0, 3, 64)])

    def train(input_dropout):
        return first_weights_after_fit(X, Y, 16, batch_size, input_dropout=input_dropout)

    dropped = train(0.3)
    np.testing.assert_array_equal(dropped, train(0.3))
    assert not np.allclose(dropped, train(0.0))


def test_training_with_dropout_is_repeatable_and_evaluation_has_no_dropout():
    xp = backends.namespace("cpu")
    rng = np.random.default_rng(0)
    X, Y = xp.asarray(rng.normal(size=(64, 6))), xp.asarray(np.eye(3)[rng.integers(0, 3, 64)])

    def train():
        params = nn.init_params([6, 16, 3], backends.standard_normal(backends.host_rng(1), xp, "float64"))
        optimizer = sgd()
        state = TrainState(params, optimizer.init(params))
        return fit(state, X, Y, optimizer=optimizer, learning_rate=0.1, epochs=2, batch_size=16, dropout=0.5)

    first, second = train(), train()
    for (W1, _), (W2, _) in zip(first.params, second.params):
        np.testing.assert_array_equal(W1, W2)
    classes, loss = metrics.predictions_and_loss(first.params, X, Y)
    np.testing.assert_array_equal(classes, nn.predict(first.params, X).argmax(axis=1))
    assert loss == pytest.approx(float(nn.loss(first.params, X, Y)))
    masks = batch_dropout(first.params, 64, 0.5, 0, 1, 0, "float64")
    assert float(nn.loss(first.params, X, Y, dropout=masks)) != pytest.approx(loss)


def test_smoothed_labels_keep_their_class_and_sum_to_one(backend):
    Y = backend.asarray(np.eye(10)[[3, 7]])
    smoothed = backend.to_numpy(nn.smooth_labels(Y, 0.1))
    np.testing.assert_allclose(smoothed[0], [0.01] * 3 + [0.91] + [0.01] * 6)
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0)
    one_unit = backend.to_numpy(nn.smooth_labels(backend.asarray(np.array([[1.0], [0.0]])), 0.2))
    np.testing.assert_allclose(one_unit, [[0.9], [0.1]])  # a sigmoid unit counts as two classes


@pytest.mark.parametrize("sizes", [[5, 4, 3], [3, 4, 1]], ids=["softmax", "sigmoid"])
def test_gradient_on_smoothed_targets_matches_finite_differences(backend, sizes):
    host_params, X_host, Y_host = tiny_problem(sizes)
    params = device_params(backend, host_params)
    Y = nn.smooth_labels(backend.asarray(Y_host), 0.2)
    check_gradients(backend, params, host_params, backend.asarray(X_host), Y, "relu")


def test_fit_with_label_smoothing_trains_on_the_smoothed_targets():
    xp = backends.namespace("cpu")
    rng = np.random.default_rng(0)
    X, Y = xp.asarray(rng.normal(size=(64, 6))), xp.asarray(np.eye(3)[rng.integers(0, 3, 64)])

    def train(targets, smoothing):
        params = nn.init_params([6, 8, 3], backends.standard_normal(backends.host_rng(1), xp, "float64"))
        optimizer = sgd()
        state = TrainState(params, optimizer.init(params))
        return fit(state, X, targets, optimizer=optimizer, learning_rate=0.1, epochs=2, batch_size=16, label_smoothing=smoothing)

    smoothed = train(Y, 0.3)
    by_hand = train(nn.smooth_labels(Y, 0.3), 0.0)
    plain = train(Y, 0.0)
    np.testing.assert_array_equal(smoothed.params[0][0], by_hand.params[0][0])
    assert smoothed.losses == by_hand.losses
    assert not np.array_equal(smoothed.params[0][0], plain.params[0][0])
