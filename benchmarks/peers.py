"""The network in other frameworks: twins in Keras 3 (TensorFlow) and PyTorch, and the tutorial's Keras model.

    python -m benchmarks.peers keras      # the tutorial's Keras model trained by Keras: test accuracy and time

``keras_model`` and ``torch_model`` are twins of our 784-128-10 network that start from the same
weights, for the benchmarks and ``test_twins.py``. ``run_keras`` trains the tutorial's own Keras
model, Flatten -> Dense(128, relu) -> Dense(10, softmax) with Adam and categorical cross-entropy,
batch 32, 10 epochs, on the images that ``mnist_xp.load_mnist`` loads (so both engines see the
very same pixels), for the README's Results. Keras needs TensorFlow: ``pip install '.[keras]'``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from mnist_xp import data
from mnist_xp.cli.common import positive_int, run_reporting_errors
from mnist_xp.errors import MnistXpError

from .workload import LAYERS

KERAS_INSTALL_HINT = "install it with: pip install 'mnist-xp[keras]'"


def import_keras():
    """Keras on its TensorFlow backend, with TensorFlow's log kept to errors; None if TensorFlow is missing."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow  # noqa: F401
    except ImportError:
        return None
    return keras


def keras_model(host_params, dtype: str, optimizer):
    """A compiled Keras Sequential twin of the network (ReLU hidden layers, softmax cross-entropy on logits)."""
    import pytest

    keras = import_keras()
    if keras is None:
        pytest.skip(f"Keras is not installed: {KERAS_INSTALL_HINT}")
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
    import pytest

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


def run_keras(
    epochs: int = 10, batch_size: int = 32, seed: int = 0, limit: int | None = None, verbose: int = 0
) -> dict:
    """Train and test the tutorial's Keras model; return its test accuracy and loss, and its timings."""
    started = time.perf_counter()
    keras = import_keras()
    if keras is None:
        raise MnistXpError(f"the keras peer needs TensorFlow, which is not installed; {KERAS_INSTALL_HINT}")
    dataset = data.load_mnist("cpu", "float32", limit=limit)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=data.IMAGE_SHAPE),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(data.NUM_CLASSES, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    fit_started = time.perf_counter()
    images = dataset.X_train.reshape(-1, *data.IMAGE_SHAPE)
    model.fit(images, dataset.Y_train, batch_size=batch_size, epochs=epochs, verbose=verbose)
    train_seconds = time.perf_counter() - fit_started
    test_loss, test_accuracy = model.evaluate(
        dataset.X_test.reshape(-1, *data.IMAGE_SHAPE), dataset.Y_test, batch_size=1000, verbose=0
    )
    return {
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "train_seconds": train_seconds,
        "wall_seconds": time.perf_counter() - started,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers",
        description="Train a reference model in another framework on the bundled MNIST and report its test accuracy "
        "and time.",
    )
    parser.add_argument("peer", choices=["keras"], help="keras: the tutorial's Keras model (needs TensorFlow)")
    parser.add_argument("--epochs", type=positive_int, default=10, help="passes over the training set (default 10)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="samples per update (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="Keras's random seed (default 0)")
    parser.add_argument("--limit", type=positive_int, default=None, help="train on the first N training images only")
    parser.add_argument("--verbose", action="store_true", help="show Keras's own progress output")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def report() -> None:
        result = run_keras(args.epochs, args.batch_size, args.seed, args.limit, verbose=2 if args.verbose else 0)
        print(
            f"keras: test accuracy {100 * result['test_accuracy']:.2f} %  (training time "
            f"{result['train_seconds']:.1f} s, wall time {result['wall_seconds']:.1f} s, {args.epochs} epochs, "
            f"batch {args.batch_size})"
        )

    return run_reporting_errors(report, parser)


if __name__ == "__main__":
    sys.exit(main())
