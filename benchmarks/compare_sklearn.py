"""Our ``MLPClassifier`` against scikit-learn's own on all of MNIST: test accuracy and fit time.

    python -m benchmarks.compare_sklearn

Both fit 784-128-10 with ReLU, Adam at lr 1e-3, batches of 32, 10 epochs (no early stop),
alpha 1e-4 and random_state 0 on the 60,000 training images as float32, and are scored on the
10,000 test images. Ours runs first, then scikit-learn's, then ours again, once each, so a
change in the machine's load during the sitting shows. Last, scikit-learn's runs once more with
its BLAS held to one thread, as our engine holds it for training
(``backend.serial_blas``): on busy shared cores, handing products of 32 rows between threads
costs more than it saves. The load averages are printed with the CPU and the BLAS, since the
figures mean little without them on shared cores.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as ScikitLearnMLP
from threadpoolctl import threadpool_limits

import mnist_xp

from . import machine

SETTINGS = {
    "hidden_layer_sizes": (128,),
    "activation": "relu",
    "solver": "adam",
    "alpha": 1e-4,
    "batch_size": 32,
    "learning_rate_init": 1e-3,
    "max_iter": 10,
    "n_iter_no_change": 1000,
    "random_state": 0,
}
"""The same parameters, meaning the same, for both estimators."""


def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it (the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"


def measure(estimator, data) -> tuple[float, float]:
    """Fit ``estimator`` on the training set; its test accuracy and the fit's wall time in seconds."""
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # ten epochs, by design
        estimator.fit(data.X_train, data.y_train)
    seconds = time.perf_counter() - started
    return estimator.score(data.X_test, data.y_test), seconds


def main() -> None:
    data = mnist_xp.load_mnist()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; load average before: {load()}")
    one_thread = lambda: threadpool_limits(limits=1, user_api="blas")
    runs = [
        ("mnist-xp", mnist_xp.MLPClassifier, contextlib.nullcontext),
        ("scikit-learn", ScikitLearnMLP, contextlib.nullcontext),
        ("mnist-xp", mnist_xp.MLPClassifier, contextlib.nullcontext),
        ("scikit-learn, BLAS on 1 thread", ScikitLearnMLP, one_thread),
    ]
    for name, estimator_type, blas in runs:
        estimator = estimator_type(**SETTINGS)
        with blas():
            accuracy, seconds = measure(estimator, data)
        print(
            f"{name:<30}  test accuracy {accuracy:.4f}  fit {seconds:6.1f} s  "
            f"({estimator.n_iter_} epochs, {estimator.coefs_[0].dtype})  load average after: {load()}"
        )
    print(f"BLAS: {machine.describe(machine.blas_libraries())}")


if __name__ == "__main__":
    main()
