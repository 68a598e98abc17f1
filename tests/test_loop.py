"""The training loop on real MNIST images: learning happens, runs repeat, backends agree."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mnist_xp import backend as backends
from mnist_xp import data, metrics, nn
from mnist_xp.loop import TrainState, batch_slices, epoch_order, fit
from mnist_xp.optim import adam, momentum, sgd


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


def plain_numpy_run(X, Y, *, seed, epochs, batch_size, lr):
    """``train_small``'s run (784-32-10, ReLU, softmax cross-entropy, SGD) transcribed in plain NumPy.

    Written without ``nn``, ``optim`` or ``fit``, so that a mistake there cannot hide in the
    reference too; only the inputs are shared: the data, the tutorial's initial draws and the
    seeded batch order. Returns the parameters and the epoch losses (sample-weighted batch means).
    """
    rng = np.random.RandomState(seed)
    W1 = rng.standard_normal((784, 32)) * math.sqrt(2.0 / 784)
    W2 = rng.standard_normal((32, 10)) * math.sqrt(2.0 / 32)
    b1, b2 = np.zeros(32), np.zeros(10)
    n, losses = X.shape[0], []
    for epoch in range(1, epochs + 1):
        order, total = epoch_order(seed, epoch, n), 0.0
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            x, y, m = X[rows], Y[rows], len(rows)
            hidden = np.maximum(x @ W1 + b1, 0.0)
            logits = hidden @ W2 + b2
            shifted = logits - logits.max(axis=1, keepdims=True)
            log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            total += -(y * log_p).sum() / m * (m / n)
            d_logits = (np.exp(log_p) - y) / m
            d_hidden = (d_logits @ W2.T) * (hidden > 0)
            W2, b2, W1, b1 = (
                W2 - lr * hidden.T @ d_logits, b2 - lr * d_logits.sum(axis=0),
                W1 - lr * x.T @ d_hidden, b1 - lr * d_hidden.sum(axis=0),
            )  # fmt: skip
        losses.append(total)
    return [(W1, b1), (W2, b2)], losses


@pytest.fixture(scope="module")
def plain_numpy_reference():
    dataset = data.load(backends.namespace("cpu"), "float64", limit=2000)
    return plain_numpy_run(dataset.X_train, dataset.Y_train, seed=0, epochs=2, batch_size=128, lr=0.5)


def test_every_backend_trains_as_a_plain_numpy_transcription(backend, plain_numpy_reference):
    # NumPy included: the reference is computed by a different route, not by the library on NumPy.
    params, losses = plain_numpy_reference
    trained, _ = train_small(backend.xp, batch_size=128, epochs=2)
    assert trained.losses == pytest.approx(losses, rel=1e-10)
    for (W_ref, b_ref), (W, b) in zip(params, trained.params):
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


def keras_adam_by_hand(p, gradients, lr, epsilon=1e-7, weight_decay=0.0, beta1=0.9, beta2=0.999):
    """One scalar parameter through Keras's Adam (``keras.optimizers.Adam.update_step``), step by step.

    m <- m + (g - m)(1 - beta1); v <- v + (g^2 - v)(1 - beta2);
    lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t); p <- p - lr_t m / (sqrt(v) + epsilon).
    Keras's AdamW first decays the weight apart from the gradient: p <- p - lr wd p.
    """
    m = v = 0.0
    for t, g in enumerate(gradients, start=1):
        p -= lr * weight_decay * p
        m += (g - m) * (1 - beta1)
        v += (g * g - v) * (1 - beta2)
        lr_t = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        p -= lr_t * m / (math.sqrt(v) + epsilon)
    return p


def pytorch_adam_by_hand(p, gradients, lr, epsilon=1e-7, beta1=0.9, beta2=0.999):
    """The same with PyTorch's epsilon placement: p <- p - lr m_hat / (sqrt(v_hat) + epsilon)."""
    m = v = 0.0
    for t, g in enumerate(gradients, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p -= lr * (m / (1 - beta1**t)) / (math.sqrt(v / (1 - beta2**t)) + epsilon)
    return p


def run_adam(backend, optimizer, start, gradients, lr):
    """``start`` (W of shape (1, k), b) through ``optimizer`` with per-step gradients; final (W, b) on the host."""
    params = [tuple(backend.asarray(a) for a in start)]
    state = optimizer.init(params)
    for W_grad, b_grad in gradients:
        params, state = optimizer.update(params, [(backend.asarray(W_grad), backend.asarray(b_grad))], state, lr)
    return [backend.to_numpy(a) for a in params[0]]


def test_adam_is_keras_rule_with_its_epsilon_where_epsilon_matters(backend):
    # One step from p = 1 with g = 1e-6 and lr = 1e-3: epsilon / |g| = 0.1, so Keras moves
    # lr sqrt(0.001) / (sqrt(0.001) + 0.1) = 2.4025e-4, where PyTorch's placement moves lr / 1.1.
    W, _ = run_adam(backend, adam(), ([[1.0]], [0.0]), [([[1e-6]], [0.0])], 1e-3)
    np.testing.assert_allclose(W, [[1.0 - 2.4025307335204216e-4]], rtol=1e-14)

    # Four steps of changing gradients: tiny ones (epsilon dominates sqrt(v)) and one large (it does not).
    start = ([[0.5, -1.0, 2.0]], [0.1, -0.2])
    scales = [[1e-6, -3e-6, 2e-7], [5e-7, 1e-3]]
    factors = [1.0, -0.5, 2.0, 0.25]
    gradients = [([[s * f for s in scales[0]]], [s * f for s in scales[1]]) for f in factors]
    W, b = run_adam(backend, adam(), start, gradients, 0.01)
    ours = [*W[0], *b]
    flat_start = [*start[0][0], *start[1]]
    flat_scales = [*scales[0], *scales[1]]
    keras = [keras_adam_by_hand(p, [s * f for f in factors], 0.01) for p, s in zip(flat_start, flat_scales)]
    pytorch = [pytorch_adam_by_hand(p, [s * f for f in factors], 0.01) for p, s in zip(flat_start, flat_scales)]
    np.testing.assert_allclose(ours, keras, rtol=1e-12)
    # Where the gradients are tiny the two placements differ by far more than rounding.
    assert all(abs(o - t) > 1e-3 for o, t in zip(ours[:4], pytorch[:4]))


def test_adamw_decays_apart_from_the_gradient_before_the_adam_step(backend):
    # Decaying after the step, or adding wd p to the gradient (L2), gives other numbers.
    start, scales, factors = ([[1.5, -2.0]], [0.3]), [0.3, 0.05, -1.2], [1.0, -2.0, 0.5]
    gradients = [([[scales[0] * f, scales[1] * f]], [scales[2] * f]) for f in factors]
    W, b = run_adam(backend, adam(weight_decay=0.05), start, gradients, 0.1)
    expected = [
        keras_adam_by_hand(p, [s * f for f in factors], 0.1, weight_decay=0.05)
        for p, s in zip([1.5, -2.0, 0.3], scales)
    ]
    np.testing.assert_allclose([*W[0], *b], expected, rtol=1e-12)


def test_adamw_decays_weights_without_gradient(backend):
    params = [(backend.asarray([[2.0]]), backend.asarray([1.0]))]
    grads = [(backend.asarray([[0.0]]), backend.asarray([0.0]))]
    optimizer = adam(weight_decay=0.1)
    new, _ = optimizer.update(params, grads, optimizer.init(params), 0.5)
    np.testing.assert_allclose(backend.to_numpy(new[0][0]), [[2.0 - 0.5 * 0.1 * 2.0]])
