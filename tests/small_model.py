"""A small network trained on real MNIST once per test session, shared by the picture and recognition tests."""

from __future__ import annotations

import functools
from dataclasses import replace

from mnist_xp import DEFAULT, backend, load_mnist, train
from mnist_xp.loop import TrainState, fit
from mnist_xp.optim import sgd

ACTIVATION = "relu"
CONFIG = replace(DEFAULT, hidden=(64,), lr=0.3, epochs=5, batch_size=250, activation=ACTIVATION)


@functools.lru_cache(maxsize=None)
def small_run():
    """``(result, dataset)``: 784-64-10 after 5 epochs on 4,000 images (about 90 % right), with test accuracy per epoch."""
    dataset = load_mnist(limit=4000)
    return train(CONFIG, data=dataset, measure_test=True), dataset


def small_model():
    """``(host_params, history_records, dataset)`` of ``small_run``."""
    result, dataset = small_run()
    return result.model.params, result.model.history, dataset


def first_weights_after_fit(X, Y, hidden: int, batch_size, epochs: int = 2, **options):
    """W1 after ``fit`` (SGD, lr 0.1, seed-1 weights) of a one-hidden-layer network on NumPy arrays ``X``, ``Y``."""
    from mnist_xp import nn

    xp = backend.namespace("cpu")
    sizes = [X.shape[1], hidden, Y.shape[1]]
    params = nn.init_params(sizes, backend.standard_normal(backend.host_rng(1), xp, "float64"))
    state = TrainState(params, sgd().init(params))
    fit(state, X, Y, optimizer=sgd(), learning_rate=0.1, epochs=epochs, batch_size=batch_size, **options)
    return state.params[0][0]
