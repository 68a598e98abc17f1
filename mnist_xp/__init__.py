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

import sys
import types
from typing import TYPE_CHECKING

from .config import DEFAULT, RECIPES, TrainConfig
from .data import Dataset, load_mnist
from .errors import MnistXpError
from .images import load_digit
from .model import Model
from .pipeline import TrainResult, train

if TYPE_CHECKING:
    from .estimator import MLPClassifier as _Estimator

MLPClassifier: "type[_Estimator]"
"""The same engine as a scikit-learn estimator (``mnist_xp.estimator.MLPClassifier``), imported on first use
(``__getattr__``): it needs the ``sklearn`` extra."""

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


class _Package(types.ModuleType):
    """The package's module type: importing a submodule never replaces a function of the same name.

    ``python -m mnist_xp.train`` needs a module ``mnist_xp.train``, and the package also exports the
    function ``train``. Importing a submodule binds it as an attribute of its package, so
    ``import mnist_xp.train`` (as documentation tools and ``pkgutil.walk_packages`` do) would make
    ``mnist_xp.train`` the command's module; here the function stays, and the module is still
    ``sys.modules["mnist_xp.train"]``.
    """

    def __setattr__(self, name: str, value) -> None:
        current = self.__dict__.get(name)
        replacing = current is not None and not isinstance(current, types.ModuleType)
        if replacing and isinstance(value, types.ModuleType) and value.__name__ == f"{self.__name__}.{name}":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    """``MLPClassifier`` is imported on first use, so that scikit-learn is needed only by those who use it."""
    if name == "MLPClassifier":
        from .estimator import MLPClassifier

        return MLPClassifier
    raise AttributeError(f"module 'mnist_xp' has no attribute {name!r}")
