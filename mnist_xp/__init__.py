"""mnist-xp: a handwritten-digit recognizer trained from scratch, written once against an array namespace.

    >>> import mnist_xp
    >>> data = mnist_xp.load_mnist(limit=10_000)
    >>> result = mnist_xp.train("fast", data=data)
    >>> result.test_accuracy, result.model.predict(data.X_test[:5])

``TrainConfig`` holds every training setting (``RECIPES`` names a few); ``train`` runs one and
returns a ``TrainResult`` with the trained ``Model``, which saves itself and exports itself as a
web page or an ONNX graph; ``load_digit`` prepares an image file of a digit for it (it needs the
``plot`` extra); ``MLPClassifier`` is the same engine as a scikit-learn estimator (it needs the
``sklearn`` extra).
"""

from .config import DEFAULT, RECIPES, TrainConfig
from .data import Dataset, load_mnist
from .errors import MnistXpError
from .images import load_digit
from .model import Model
from .pipeline import TrainResult, train

__version__ = "0.2.0"

__all__ = [
    "DEFAULT",
    "RECIPES",
    "Dataset",
    "MLPClassifier",
    "MnistXpError",
    "Model",
    "TrainConfig",
    "TrainResult",
    "load_digit",
    "load_mnist",
    "train",
]


def __getattr__(name: str):
    """``MLPClassifier`` is imported on first use, so that scikit-learn is needed only by those who use it."""
    if name == "MLPClassifier":
        from .estimator import MLPClassifier

        return MLPClassifier
    raise AttributeError(f"module 'mnist_xp' has no attribute {name!r}")
