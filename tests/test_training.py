"""The training loop on real MNIST images: learning happens, runs repeat, backends agree."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_xp import backend as backends
from mnist_xp import data, metrics, nn
from mnist_xp.optim import adam, momentum, sgd
from mnist_xp.training import TrainState, batch_slices, epoch_order, fit


def train_small(xp, *, dtype="float64", epochs=3, batch_size=None, seed=0, limit=2000, lr=0.5):
    dataset = data.load(xp, dtype, limit=limit)
    normal = backends.standard_normal(backends.host_rng(seed), xp, dtype)
    params = nn.init_params([784, 32, 10], normal, "he")
    optimizer = sgd()
    state = fit(
        TrainState(params, optimizer.init(params)),
        dataset.X_train,
        dataset.Y_train,
        optimizer=optimizer,
        learning_rate=lr,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
    )
    return state, dataset


@pytest.mark.parametrize(
    "batch_size, lr, least_accuracy", [(None, 0.2, 0.5), (100, 0.5, 0.85)], ids=["full-batch", "mini-batch"]
)
def test_loss_falls_and_accuracy_rises_on_real_images(backend, batch_size, lr, least_accuracy):
    state, dataset = train_small(backend.xp, epochs=6, batch_size=batch_size, limit=3000, lr=lr)
    losses = state.losses
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:]))
    accuracy = metrics.accuracy(metrics.predictions_and_loss(state.params, dataset.X_test)[0], dataset.y_test)
    assert accuracy > least_accuracy


def test_same_seed_gives_identical_weights_on_cpu():
    xp = backends.namespace("cpu")
    first, _ = train_small(xp, batch_size=64, epochs=2, seed=7)
    second, _ = train_small(xp, batch_size=64, epochs=2, seed=7)
    other, _ = train_small(xp, batch_size=64, epochs=2, seed=8)
    for (W1, b1), (W2, b2) in zip(first.params, second.params):
        np.testing.assert_array_equal(W1, W2)
        np.testing.assert_array_equal(b1, b2)
    assert not np.array_equal(first.params[0][0], other.params[0][0])


def test_backends_agree_with_numpy(backend):
    reference, _ = train_small(backends.namespace("cpu"), batch_size=128, epochs=2)
    trained, _ = train_small(backend.xp, batch_size=128, epochs=2)
    for (W_ref, b_ref), (W, b) in zip(reference.params, trained.params):
        np.testing.assert_allclose(backend.to_numpy(W), W_ref, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(backend.to_numpy(b), b_ref, rtol=1e-7, atol=1e-9)


def test_epoch_order_is_a_seeded_permutation():
    order = epoch_order(3, 1, 50)
    assert sorted(order) == list(range(50))
    np.testing.assert_array_equal(order, epoch_order(3, 1, 50))
    assert not np.array_equal(order, epoch_order(3, 2, 50))


def test_batch_slices_cover_every_sample_once():
    assert batch_slices(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert batch_slices(10, None) == [(0, 10)]


def test_sgd_update_is_gradient_descent(backend):
    params = [(backend.asarray([[1.0, 2.0]]), backend.asarray([0.5, -0.5]))]
    grads = [(backend.asarray([[0.5, -1.0]]), backend.asarray([1.0, 1.0]))]
    optimizer = sgd()
    new, _ = optimizer.update(params, grads, optimizer.init(params), 0.1)
    np.testing.assert_allclose(backend.to_numpy(new[0][0]), [[0.95, 2.1]])
    np.testing.assert_allclose(backend.to_numpy(new[0][1]), [0.4, -0.6])


def test_momentum_accumulates_velocity(backend):
    params = [(backend.asarray([[1.0]]), backend.asarray([0.0]))]
    grads = [(backend.asarray([[1.0]]), backend.asarray([2.0]))]
    optimizer = momentum(beta=0.5)
    state = optimizer.init(params)
    params, state = optimizer.update(params, grads, state, 0.1)
    params, state = optimizer.update(params, grads, state, 0.1)
    # v1 = -0.1 g, v2 = 0.5 v1 - 0.1 g = -0.15 g; p = 1 - 0.25 g
    np.testing.assert_allclose(backend.to_numpy(params[0][0]), [[0.75]])
    np.testing.assert_allclose(backend.to_numpy(params[0][1]), [-0.5])


def test_adam_first_steps_match_the_closed_form(backend):
    # With a constant gradient g, m_t / sqrt(v_t) after bias correction is sign(g): each step moves lr.
    params = [(backend.asarray([[1.0, -1.0]]), backend.asarray([0.0]))]
    grads = [(backend.asarray([[0.3, -2.0]]), backend.asarray([0.5]))]
    optimizer = adam(epsilon=0.0)
    state = optimizer.init(params)
    for _ in range(3):
        params, state = optimizer.update(params, grads, state, 0.01)
    np.testing.assert_allclose(backend.to_numpy(params[0][0]), [[0.97, -0.97]], rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(params[0][1]), [-0.03], rtol=1e-12)
    assert state[0] == 3


def test_adamw_decays_weights_without_gradient(backend):
    params = [(backend.asarray([[2.0]]), backend.asarray([1.0]))]
    grads = [(backend.asarray([[0.0]]), backend.asarray([0.0]))]
    optimizer = adam(weight_decay=0.1)
    new, _ = optimizer.update(params, grads, optimizer.init(params), 0.5)
    np.testing.assert_allclose(backend.to_numpy(new[0][0]), [[2.0 - 0.5 * 0.1 * 2.0]])
