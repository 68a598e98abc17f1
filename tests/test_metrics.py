"""The one batched run of a network over many samples, and the three that go through it: ``Model``,
``MLPClassifier`` and ``predictions_and_loss``."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from mnist_xp import Model, metrics, nn

ROWS = metrics.EVAL_BATCH + 3
"""One whole batch and a few rows more: every caller runs two batches, the second a short one."""


def random_params(sizes, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(0, (2 / a) ** 0.5, (a, b)).astype(dtype), rng.normal(0, 0.1, b).astype(dtype))
        for a, b in itertools.pairwise(sizes)
    ]


def samples(rows, features, seed=1):
    return np.random.default_rng(seed).random((rows, features))


def test_batches_cover_the_rows_in_order_on_every_backend(backend):
    params = [(backend.asarray(W), backend.asarray(b)) for W, b in random_params([6, 5, 3])]
    X = samples(23, 6)
    batches = list(metrics.logits_in_batches(params, X, "tanh", batch_size=10))
    assert [(rows.start, rows.stop) for rows, _ in batches] == [(0, 10), (10, 20), (20, 23)]
    whole = backend.to_numpy(nn.forward(params, backend.asarray(X), "tanh")[-1])
    np.testing.assert_allclose(np.concatenate([backend.to_numpy(z) for _, z in batches]), whole, rtol=1e-12)
    expected = backend.to_numpy(nn.predict(params, backend.asarray(X), "tanh"))
    np.testing.assert_allclose(metrics.class_probabilities(params, X, "tanh", batch_size=10), expected, rtol=1e-12)


def test_predictions_and_loss_weigh_each_batch_by_its_rows():
    params = random_params([6, 5, 3])
    X, labels = samples(23, 6), np.arange(23) % 3
    Y = np.eye(3)[labels]
    predicted, loss = metrics.predictions_and_loss(params, X, Y, "sigmoid", batch_size=10)
    logits = nn.forward(params, X, "sigmoid")[-1]
    assert np.array_equal(predicted, np.argmax(logits, axis=1))
    assert loss == pytest.approx(float(nn.output_loss(logits, Y)), rel=1e-12)


def test_model_predict_proba_runs_every_batch():
    model = Model(random_params([784, 8, 10], "float32"), "leaky_relu")
    X = samples(ROWS, 784).astype(np.float32)
    expected = nn.predict(model.params, X, "leaky_relu")
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-5, atol=1e-7)


def test_the_estimators_predict_proba_runs_every_batch():
    pytest.importorskip("sklearn", reason="the estimator needs scikit-learn (the sklearn extra)")
    from mnist_xp import MLPClassifier

    X = samples(60, 5)
    y = (X[:, 0] > 0.5).astype(int)
    classifier = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two epochs do not converge, and need not
        classifier.fit(X, y)
    many = samples(ROWS, 5, seed=2)
    params = list(zip(classifier.coefs_, classifier.intercepts_))
    expected = nn.predict(params, many, classifier.config_.activation)
    np.testing.assert_allclose(classifier.predict_proba(many), expected, rtol=1e-12)
