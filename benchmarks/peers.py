"""The same 784-128-10 network in Keras 3 (TensorFlow) and PyTorch, starting from the same weights."""

from __future__ import annotations

import os

import numpy as np
import pytest

from .workload import LAYERS


def keras_model(host_params, dtype: str, optimizer):
    """A compiled Keras Sequential twin of the network (ReLU hidden layers, softmax cross-entropy on logits)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keras = pytest.importorskip("keras", reason="Keras is not installed: pip install 'mnist-xp[keras]'")
    layers = [keras.Input((LAYERS[0],), dtype=dtype)]
    layers += [keras.layers.Dense(width, activation="relu", dtype=dtype) for width in LAYERS[1:-1]]
    layers += [keras.layers.Dense(LAYERS[-1], dtype=dtype)]
    model = keras.Sequential(layers)
    for layer, (W, b) in zip(model.layers, host_params):
        layer.set_weights([np.asarray(W), np.asarray(b)])
    model.compile(optimizer=optimizer(keras), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    return model


def torch_model(host_params, dtype: str, device: str = "cpu"):
    """A PyTorch Sequential twin of the network on ``device`` ('gpu' is CUDA): the model, the torch module and its device."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'mnist-xp[bench]'")
    if device == "gpu" and not torch.cuda.is_available():
        pytest.skip("this PyTorch sees no CUDA GPU")
    target = torch.device("cuda" if device == "gpu" else "cpu")
    modules = []
    for W, b in host_params:
        linear = torch.nn.Linear(*np.asarray(W).shape, dtype=getattr(torch, dtype))
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.asarray(W).T.copy()))
            linear.bias.copy_(torch.from_numpy(np.asarray(b)))
        modules += [linear, torch.nn.ReLU()]
    return torch.nn.Sequential(*modules[:-1]).to(target), torch, target


def torch_synchronized(torch, fn):
    """``fn`` followed by a wait for the GPU's queued work, if CUDA is in use (for honest timings)."""

    def run():
        result = fn()
        if torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return result

    return run
