"""Update rules: each optimizer is an ``init`` that makes its state and an ``update`` step.

``update(params, grads, state, learning_rate)`` returns the new parameters and state; the
learning rate is passed every step so that schedules stay outside the rule.
"""

from __future__ import annotations

from typing import Callable, NamedTuple


class Optimizer(NamedTuple):
    init: Callable
    update: Callable


def sgd() -> Optimizer:
    """Plain gradient descent: W <- W - lr * dW, b <- b - lr * db."""

    def init(params):
        return []

    def update(params, grads, state, learning_rate):
        new_params = [(W - learning_rate * dW, b - learning_rate * db) for (W, b), (dW, db) in zip(params, grads)]
        return new_params, state

    return Optimizer(init, update)


OPTIMIZERS = {"sgd": sgd}
