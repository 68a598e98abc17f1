"""Update rules: each optimizer is an ``init`` that makes its state and an ``update`` step.

``update(params, grads, state, learning_rate)`` returns the new parameters and state; the
learning rate is passed every step so that schedules stay outside the rule. States are
nested lists and tuples of arrays and numbers, so they can be saved like the parameters.

Each rule may be given a ``kernel`` (``backend.fused_kernels``): a function that does one
array's update in a single pass and returns exactly what the rule's own lines return, or None
for arrays it does not take. The lines here are the reference; the kernels must match them bit for bit.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from .nn import namespace_of


class Optimizer(NamedTuple):
    init: Callable
    update: Callable


def _zeros_like(params):
    xp = namespace_of(params[0][0])
    return [(xp.zeros_like(W), xp.zeros_like(b)) for W, b in params]


def sgd() -> Optimizer:
    """Plain gradient descent: p <- p - lr * g."""

    def init(params):
        return []

    def update(params, grads, state, learning_rate):
        new_params = [(W - learning_rate * dW, b - learning_rate * db) for (W, b), (dW, db) in zip(params, grads)]
        return new_params, state

    return Optimizer(init, update)


def momentum(beta: float = 0.9, nesterov: bool = False, kernel=None) -> Optimizer:
    """Gradient descent with a velocity: v <- beta v - lr g; p <- p + v (Nesterov: p <- p + beta v - lr g)."""

    def init(params):
        return _zeros_like(params)

    def update(params, grads, velocities, learning_rate):
        new_params, new_velocities = [], []
        for pair, grad_pair, velocity_pair in zip(params, grads, velocities):
            updated, velocity = [], []
            for p, g, v in zip(pair, grad_pair, velocity_pair):
                fused = None if kernel is None else kernel(p, g, v, learning_rate, beta, nesterov)
                if fused is not None:
                    updated.append(fused[0])
                    velocity.append(fused[1])
                    continue
                # Each new array is written in place: three full-size arrays a step instead of seven.
                step = g * learning_rate
                v_new = v * beta
                v_new -= step
                if nesterov:
                    p_new = v_new * beta
                    p_new += p
                    p_new -= step
                else:
                    p_new = p + v_new
                updated.append(p_new)
                velocity.append(v_new)
            new_params.append(tuple(updated))
            new_velocities.append(tuple(velocity))
        return new_params, new_velocities

    return Optimizer(init, update)


def adam(
    beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-7, weight_decay: float = 0.0, kernel=None
) -> Optimizer:
    """Adam with Keras's defaults; ``weight_decay > 0`` adds AdamW's decoupled decay p <- p - lr wd p.

    The step is p <- p - lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon), as Keras computes it.
    """

    def init(params):
        return [0, _zeros_like(params), _zeros_like(params)]

    def reference(p, g, m, v, learning_rate, step):
        xp = namespace_of(p)
        # m + (1 - beta1)(g - m) is beta1 m + (1 - beta1) g; each new array is written in place.
        m_new = g - m
        m_new *= 1 - beta1
        m_new += m
        v_new = g * g
        v_new -= v
        v_new *= 1 - beta2
        v_new += v
        if weight_decay:
            p = p - learning_rate * weight_decay * p
        delta = xp.sqrt(v_new)
        delta += epsilon
        delta = m_new / delta
        delta *= step
        return p - delta, m_new, v_new

    def update(params, grads, state, learning_rate):
        t, first, second = state
        t += 1
        step = learning_rate * (1 - beta2**t) ** 0.5 / (1 - beta1**t)
        constants = (1 - beta1, 1 - beta2, epsilon, step, learning_rate * weight_decay, weight_decay)
        new_params, new_first, new_second = [], [], []
        for pair, grad_pair, m_pair, v_pair in zip(params, grads, first, second):
            arrays = []
            for p, g, m, v in zip(pair, grad_pair, m_pair, v_pair):
                fused = None if kernel is None else kernel(p, g, m, v, *constants)
                arrays.append(reference(p, g, m, v, learning_rate, step) if fused is None else fused)
            updated, ms, vs = zip(*arrays)
            new_params.append(updated)
            new_first.append(ms)
            new_second.append(vs)
        return new_params, [t, new_first, new_second]

    return Optimizer(init, update)
