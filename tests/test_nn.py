"""The math: derivatives and gradients against finite differences, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import EPS, check_gradients, device_params, numeric_gradient, tiny_problem

from mnist_xp import nn

ACTIVATION_NAMES = sorted(nn.ACTIVATIONS)


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_derivative_matches_finite_differences(backend, name):
    activation = nn.ACTIVATIONS[name]
    # Stay clear of 0, where ReLU's kink makes the finite difference meaningless.
    z = np.array([-3.0, -1.2, -0.4, 0.3, 0.9, 2.5])
    numeric = np.array(
        [
            (
                backend.to_numpy(activation.forward(backend.asarray([v + EPS])))[0]
                - backend.to_numpy(activation.forward(backend.asarray([v - EPS])))[0]
            )
            / (2 * EPS)
            for v in z
        ]
    )
    analytic = backend.to_numpy(activation.derivative(activation.forward(backend.asarray(z))))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_activations_take_expected_values(backend):
    z = backend.asarray([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(backend.to_numpy(nn.relu(z)), [0.0, 0.0, 3.0])
    np.testing.assert_allclose(backend.to_numpy(nn.leaky_relu(z)), [-0.02, 0.0, 3.0])
    np.testing.assert_allclose(backend.to_numpy(nn.sigmoid(z)), 1 / (1 + np.exp([2.0, 0.0, -3.0])))
    np.testing.assert_allclose(backend.to_numpy(nn.tanh(z)), np.tanh([-2.0, 0.0, 3.0]))


def test_sigmoid_is_finite_for_huge_inputs(backend):
    values = backend.to_numpy(nn.sigmoid(backend.asarray([-1e4, -800.0, 800.0, 1e4])))
    np.testing.assert_array_equal(values, [0.0, 0.0, 1.0, 1.0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_is_finite_and_sums_to_one_for_huge_logits(backend, dtype):
    logits = backend.asarray([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [5.0, 1e4, 1e4]], dtype)
    probabilities = backend.to_numpy(nn.softmax(logits))
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(probabilities[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(probabilities[2], [0.0, 0.5, 0.5])
    loss = float(nn.categorical_cross_entropy(logits, backend.asarray(np.eye(3), dtype)))
    assert np.isfinite(loss)


@pytest.mark.parametrize("classes", [1, 4])
def test_loss_gradient_wrt_logits_is_probabilities_minus_targets(backend, classes):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, classes)) * 3
    if classes == 1:
        targets = rng.integers(0, 2, size=(5, 1)).astype(float)
    else:
        targets = np.eye(classes)[rng.integers(0, classes, size=5)]
    Y = backend.asarray(targets)

    def f(z):
        return float(nn.output_loss(backend.asarray(z), Y))

    analytic = (backend.to_numpy(nn.output_probabilities(backend.asarray(logits))) - targets) / len(targets)
    np.testing.assert_allclose(analytic, numeric_gradient(f, logits), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("classes", [1, 4])
def test_probabilities_and_loss_together_equal_each_alone(backend, classes):
    rng = np.random.default_rng(2)
    logits = backend.asarray(rng.normal(size=(6, classes)) * 30)
    Y = backend.asarray(rng.integers(0, 2, size=(6, 1)) if classes == 1 else np.eye(classes)[rng.integers(0, classes, 6)])
    probabilities, loss = nn.output_probabilities_and_loss(logits, Y)
    np.testing.assert_array_equal(backend.to_numpy(probabilities), backend.to_numpy(nn.output_probabilities(logits)))
    assert float(loss) == float(nn.output_loss(logits, Y))
    assert np.isfinite(float(loss))


@pytest.mark.parametrize("shape", [(1, 3), (7, 1), (300, 10)])
def test_column_sums_are_the_sums_down_each_column(backend, shape):
    host = np.random.default_rng(5).standard_normal(shape)
    sums = nn.column_sums(backend.asarray(host))
    assert sums.shape == (shape[1],)
    np.testing.assert_allclose(backend.to_numpy(sums), host.sum(axis=0), rtol=1e-12, atol=1e-12)


def test_cross_entropy_matches_its_definition(backend):
    logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
    targets = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.sum(targets * np.log(p)) / 2
    assert float(nn.categorical_cross_entropy(backend.asarray(logits), backend.asarray(targets))) == pytest.approx(expected)
    z, y = np.array([[3.0], [-2.0]]), np.array([[1.0], [1.0]])
    s = 1 / (1 + np.exp(-z))
    expected = -np.mean(y * np.log(s) + (1 - y) * np.log(1 - s))
    assert float(nn.binary_cross_entropy(backend.asarray(z), backend.asarray(y))) == pytest.approx(expected)


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
@pytest.mark.parametrize("sizes", [[5, 4, 3], [4, 6, 5, 3], [3, 4, 1]], ids=["one-hidden", "two-hidden", "sigmoid-output"])
def test_backprop_matches_finite_differences(backend, activation, sizes):
    host_params, X_host, Y_host = tiny_problem(sizes)
    X, Y = backend.asarray(X_host), backend.asarray(Y_host)
    params = device_params(backend, host_params)
    loss, _ = nn.loss_and_grads(params, X, Y, activation)
    assert float(loss) == pytest.approx(float(nn.loss(params, X, Y, activation)))
    check_gradients(backend, params, host_params, X, Y, activation)


def test_init_params_shapes_scales_and_draw_order(backend):
    rng = np.random.RandomState(42)

    def normal(shape):
        return backend.asarray(rng.standard_normal(shape))

    params = nn.init_params([784, 128, 10], normal, "small")
    assert [(tuple(W.shape), tuple(b.shape)) for W, b in params] == [((784, 128), (128,)), ((128, 10), (10,))]
    reference = np.random.RandomState(42)
    np.testing.assert_array_equal(backend.to_numpy(params[0][0]), reference.randn(784, 128) * 0.01)
    np.testing.assert_array_equal(backend.to_numpy(params[1][0]), reference.randn(128, 10) * 0.01)
    assert not backend.to_numpy(params[0][1]).any()

    he = nn.init_params([784, 128, 10], normal, "he")
    assert backend.to_numpy(he[0][0]).std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)


def test_forward_keeps_every_layer_and_predict_gives_probabilities(backend):
    host_params, X_host, _ = tiny_problem([5, 4, 6, 3])
    params = [(backend.asarray(W), backend.asarray(b)) for W, b in host_params]
    outputs = nn.forward(params, backend.asarray(X_host), "relu")
    assert [tuple(o.shape) for o in outputs] == [(7, 5), (7, 4), (7, 6), (7, 3)]
    W0, b0 = host_params[0]
    np.testing.assert_allclose(backend.to_numpy(outputs[1]), np.maximum(X_host @ W0 + b0, 0))
    probabilities = backend.to_numpy(nn.predict(params, backend.asarray(X_host)))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    classes = backend.to_numpy(nn.predicted_class(backend.asarray(probabilities)))
    np.testing.assert_array_equal(classes, probabilities.argmax(axis=1))
    binary = backend.to_numpy(nn.predicted_class(backend.asarray([[0.2], [0.7]])))
    np.testing.assert_array_equal(binary, [0, 1])


def test_namespace_of_is_the_arrays_namespace_and_is_remembered_only_for_numpy_and_cupy(backend):
    from array_api_compat import array_namespace

    a = backend.asarray([1.0, 2.0])
    assert nn.namespace_of(a) is array_namespace(a)
    assert nn.namespace_of(a, a) is array_namespace(a, a)
    remembered = type(a) in nn._NAMESPACES
    assert remembered == (backend.name in ("numpy", "cupy"))
