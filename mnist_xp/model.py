"""A trained network as an object: predict, evaluate, save, load and export it.

``Model`` holds the parameters on the host (NumPy) and runs them on its device when asked;
the file format is ``modelfile``'s, the exports are ``webpage``'s and ``onnxgraph``'s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import modelfile, nn, onnxgraph, webpage
from .backend import namespace, to_device, to_host
from .data import INPUT_SIZE, NUM_CLASSES, one_hot
from .errors import ModelFileError
from .metrics import class_probabilities, predictions_and_loss, summarize
from .npzio import write_atomically


class Model:
    """A trained multilayer perceptron: ``params`` (host ``(W, b)`` pairs), its hidden ``activation``, and
    ``extra`` (what training recorded: ``test_accuracy``, ``history``). Runs on ``device`` ('cpu' or 'gpu')."""

    def __init__(self, params, activation: str = "relu", *, extra: dict | None = None, device: str = "cpu"):
        if activation not in nn.ACTIVATIONS:
            raise ValueError(f"activation {activation!r} is not one of {', '.join(sorted(nn.ACTIVATIONS))}")
        self.params = [(to_host(W), to_host(b)) for W, b in params]
        self.activation = activation
        self.extra = dict(extra or {})
        self.device = device
        self._on_device = None

    def __repr__(self) -> str:
        return f"Model({'-'.join(map(str, self.layer_sizes))} {self.activation}, {self.dtype}, device={self.device!r})"

    @property
    def layer_sizes(self) -> list[int]:
        return [int(self.params[0][0].shape[0])] + [int(W.shape[1]) for W, _ in self.params]

    @property
    def dtype(self) -> str:
        return str(self.params[0][0].dtype)

    @property
    def history(self) -> list[dict]:
        """The per-epoch records of the run that trained this model (empty if unknown)."""
        return list(self.extra.get("history") or [])

    def _device_params(self):
        if self._on_device is None:
            xp = namespace(self.device)
            self._on_device = xp, [(to_device(W, xp), to_device(b, xp)) for W, b in self.params]
        return self._on_device

    def _inputs(self, X):
        """``X`` as rows of features on the device: (n, 784), (n, 28, 28) or one sample; integer pixels are /255."""
        xp, _ = self._device_params()
        host = to_host(X) if not isinstance(X, (list, tuple)) else np.asarray(X)
        if host.ndim == 1 or host.ndim == 2 and host.size == self.layer_sizes[0] and host.shape[1] != host.size:
            host = host.reshape(1, -1)
        host = host.reshape(len(host), -1)
        if host.shape[1] != self.layer_sizes[0]:
            raise ValueError(f"the model reads {self.layer_sizes[0]} features per sample, X has {host.shape[1]}")
        if host.dtype.kind in "ui":
            host = host / 255.0
        return to_device(host, xp, self.dtype)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n, classes) for the samples ``X``, as a NumPy array."""
        _, params = self._device_params()
        return class_probabilities(params, self._inputs(X), self.activation)

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample of ``X``."""
        return np.asarray(to_host(nn.predicted_class(self.predict_proba(X))))

    def evaluate(self, X, y) -> dict:
        """Accuracy, loss, per-class accuracy and confusion matrix on samples ``X`` with labels ``y``."""
        xp, params = self._device_params()
        labels = np.asarray(to_host(y)).astype(np.int64)
        classes = self.layer_sizes[-1]
        Y = to_device(one_hot(labels, classes), xp, self.dtype)
        predicted, loss = predictions_and_loss(params, self._inputs(X), Y, self.activation)
        return summarize(labels, predicted, loss, classes)

    def save(self, path: Path | str) -> None:
        """Write the model to ``path`` (.npz, atomically); ``Model.load`` and the commands read it."""
        modelfile.save(path, self.params, self.activation, extra=self.extra)

    def to_html(self, path: Path | str, name: str | None = None) -> None:
        """Write the drawing page (see ``webpage``) to ``path``, atomically; ``name`` is shown on the page.

        The model must read 28x28 images and tell 10 digits apart (else a ``ModelFileError``, and nothing is written).
        """
        data = webpage.build_page(self, name).encode("utf-8")
        write_atomically(path, lambda stream: stream.write(data))

    def to_onnx(self, path: Path | str, name: str = "mnist-xp") -> None:
        """Write the network as an ONNX graph named ``name`` (see ``onnxgraph``) to ``path``, atomically.

        Needs the ``onnx`` package (the ``onnx`` extra).
        """
        data = onnxgraph.build(self, name).SerializeToString()
        write_atomically(path, lambda stream: stream.write(data))

    @classmethod
    def load(cls, path: Path | str, device: str = "cpu") -> Model:
        """Read a model file, checking every array; a damaged file is a one-line ``ModelFileError``."""
        params, meta = modelfile.load(path)
        return cls(params, meta["activation"], extra=meta.get("extra") or {}, device=device)

    @classmethod
    def load_digit_classifier(cls, path: Path | str, device: str = "cpu") -> Model:
        """``load``, for a model that reads 28x28 images and tells 10 digits apart (else a ``ModelFileError``)."""
        model = cls.load(path, device)
        sizes = model.layer_sizes
        if sizes[0] != INPUT_SIZE or sizes[-1] != NUM_CLASSES:
            raise ModelFileError(
                f"{path}: the model maps {sizes[0]} inputs to {sizes[-1]} outputs; recognizing digits needs "
                f"{INPUT_SIZE} inputs (28x28 images) and {NUM_CLASSES} outputs"
            )
        return model
