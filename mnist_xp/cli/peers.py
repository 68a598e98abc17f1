"""Reference runs in other frameworks, on the same bundled data, for side-by-side comparison.

    python -m mnist_xp.peers keras            # the tutorial's Keras model: test accuracy and wall time

``keras`` trains Flatten -> Dense(128, relu) -> Dense(10, softmax) with Adam and categorical
cross-entropy, batch 32, 10 epochs, exactly as the tutorial's Keras version does, on the images
that ``mnist_xp.data`` loads (so both engines see the very same pixels). It needs TensorFlow:
``pip install 'mnist-xp[keras]'``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .. import data
from ..errors import MnistXpError
from .common import positive_int, run_reporting_errors

KERAS_INSTALL_HINT = "install it with: pip install 'mnist-xp[keras]'"


def import_keras():
    """Import Keras on its TensorFlow backend, quietly; a one-line error if TensorFlow is missing."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import keras
        import tensorflow  # noqa: F401
    except ImportError:
        raise MnistXpError(f"the keras peer needs TensorFlow, which is not installed; {KERAS_INSTALL_HINT}") from None
    return keras


def run_keras(epochs: int = 10, batch_size: int = 32, seed: int = 0, limit: int | None = None, verbose: int = 0) -> dict:
    """Train and test the tutorial's Keras model; return its test accuracy and timings."""
    started = time.perf_counter()
    keras = import_keras()
    dataset = data.load_mnist("cpu", "float32", limit=limit)
    images = dataset.X_train.reshape(-1, *data.IMAGE_SHAPE)
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
        prog="python -m mnist_xp.peers",
        description="Train a reference model in another framework on the bundled MNIST and report its test accuracy and time.",
    )
    parser.add_argument("peer", choices=["keras"], help="keras: the tutorial's Keras model (needs TensorFlow)")
    parser.add_argument("--epochs", type=positive_int, default=10, help="passes over the training set (default 10)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="samples per update (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="Keras's random seed (default 0)")
    parser.add_argument("--limit", type=positive_int, default=None, help="train on the first N training images only")
    parser.add_argument("--verbose", action="store_true", help="show Keras's own progress output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_reporting_errors(lambda: report_keras(args))


def report_keras(args: argparse.Namespace) -> None:
    result = run_keras(args.epochs, args.batch_size, args.seed, args.limit, verbose=2 if args.verbose else 0)
    print(
        f"keras: test accuracy {100 * result['test_accuracy']:.2f} %  (training time {result['train_seconds']:.1f} s, "
        f"wall time {result['wall_seconds']:.1f} s, {args.epochs} epochs, batch {args.batch_size})"
    )


if __name__ == "__main__":
    sys.exit(main())
