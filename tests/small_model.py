"""A small network trained on real MNIST once per test session, shared by the picture and recognition tests."""

from __future__ import annotations

import functools

from mnist_xp import backend, curves, data, nn
from mnist_xp.optim import sgd
from mnist_xp.training import TrainState, fit

ACTIVATION = "relu"


@functools.lru_cache(maxsize=None)
def small_model():
    """``(host_params, history_records, dataset)``: 784-64-10 after 5 epochs on 4,000 images (about 90 % right).

    Every epoch records training and test accuracy, as ``train --plots`` does.
    """
    xp = backend.namespace("cpu")
    dataset = data.load(xp, "float32", limit=4000)
    params = nn.init_params([784, 64, 10], backend.standard_normal(backend.host_rng(0), xp, "float32"), "he")
    optimizer = sgd()

    def measure(state, result):
        result.metrics.update(curves.epoch_metrics(state.params, dataset, ACTIVATION))

    state = fit(
        TrainState(params, optimizer.init(params)),
        dataset.X_train,
        dataset.Y_train,
        optimizer=optimizer,
        learning_rate=0.3,
        epochs=5,
        batch_size=250,
        activation=ACTIVATION,
        on_epoch=measure,
    )
    return state.params, curves.history_records(state.history), dataset


def first_weights_after_fit(X, Y, hidden: int, batch_size, epochs: int = 2, **options):
    """W1 after ``fit`` (SGD, lr 0.1, seed-1 weights) of a one-hidden-layer network on NumPy arrays ``X``, ``Y``."""
    xp = backend.namespace("cpu")
    sizes = [X.shape[1], hidden, Y.shape[1]]
    params = nn.init_params(sizes, backend.standard_normal(backend.host_rng(1), xp, "float64"))
    state = TrainState(params, sgd().init(params))
    fit(state, X, Y, optimizer=sgd(), learning_rate=0.1, epochs=epochs, batch_size=batch_size, **options)
    return state.params[0][0]
