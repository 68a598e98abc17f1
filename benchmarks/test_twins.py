"""The benchmarks' PyTorch and Keras twins compute our loss and gradients from the same weights.

Otherwise the benchmark would time different work: a twin with a transposed weight, a missing
ReLU or a summed instead of averaged loss would still run, just on another problem. Each twin
gets ``host_params`` and a batch of real MNIST images; its loss and its gradients after one
backward pass must match ``nn.loss_and_grads`` to rounding. Skipped where the library is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

from mnist_xp import nn

from .peers import keras_model, torch_model
from .workload import host_params, mnist

BATCH = 256
TOLERANCE = {"float32": {"rtol": 1e-4, "atol": 1e-5}, "float64": {"rtol": 1e-10, "atol": 1e-13}}
"""Gradient entries near zero are compared with ``atol`` (times the largest entry of their array)."""


def ours(dtype: str):
    """Our batch, parameters, loss and gradients (host NumPy arrays)."""
    X, Y, labels = mnist("cpu", dtype, BATCH)
    params = host_params(dtype)
    loss, grads = nn.loss_and_grads(params, X, Y)
    return X, Y, labels, params, float(loss), grads


def assert_same_gradients(theirs, grads, dtype: str):
    """``theirs``: one (dW, db) pair per layer, as host arrays in our layout (W of shape (inputs, outputs))."""
    tolerance = TOLERANCE[dtype]
    assert len(theirs) == len(grads)
    for (dW_theirs, db_theirs), (dW, db) in zip(theirs, grads):
        for got, expected in ((dW_theirs, dW), (db_theirs, db)):
            assert got.shape == expected.shape and got.dtype == expected.dtype
            scale = float(np.max(np.abs(expected)))
            assert scale > 0
            np.testing.assert_allclose(got, expected, rtol=tolerance["rtol"], atol=tolerance["atol"] * scale)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_twin_has_our_loss_and_gradients(dtype):
    X, _, labels, params, loss, grads = ours(dtype)
    model, torch, _ = torch_model(params, dtype, "cpu")
    their_loss = torch.nn.CrossEntropyLoss()(model(torch.from_numpy(X)), torch.from_numpy(labels).long())
    their_loss.backward()
    assert their_loss.item() == pytest.approx(loss, rel=TOLERANCE[dtype]["rtol"])
    linears = [module for module in model if isinstance(module, torch.nn.Linear)]
    theirs = [(layer.weight.grad.numpy().T, layer.bias.grad.numpy()) for layer in linears]
    assert_same_gradients(theirs, grads, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keras_twin_has_our_loss_and_gradients(dtype):
    X, Y, _, params, loss, grads = ours(dtype)
    model = keras_model(params, dtype, lambda keras: keras.optimizers.SGD(0.1))
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip(f"Keras runs on {keras.backend.backend()}, not TensorFlow")
    tf = pytest.importorskip("tensorflow")
    with tf.GradientTape() as tape:
        # The loss the twin was compiled with, as ``train_on_batch`` computes it.
        their_loss = model.compute_loss(x=X, y=Y, y_pred=model(X, training=True))
    gradients = tape.gradient(their_loss, model.trainable_variables)
    loss_dtype = getattr(their_loss.dtype, "name", str(their_loss.dtype))
    if loss_dtype != dtype:
        pytest.skip(f"Keras {keras.__version__} takes a {dtype} model's compiled loss in {loss_dtype}")
    assert float(keras.ops.convert_to_numpy(their_loss)) == pytest.approx(loss, rel=TOLERANCE[dtype]["rtol"])
    host = [keras.ops.convert_to_numpy(g) for g in gradients]
    assert_same_gradients(list(zip(host[0::2], host[1::2])), grads, dtype)
