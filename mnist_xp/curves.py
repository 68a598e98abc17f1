"""Per-epoch accuracy and loss for training curves, and the history as JSON-ready records."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from . import nn
from .backend import to_host
from .errors import ModelFileError

TRAIN_SAMPLE = 10_000
"""Training accuracy is measured on the first this-many training images: enough for a curve, and cheap."""


def accuracy_and_loss(params, X, Y, labels, activation: str) -> tuple[float, float]:
    """Accuracy against host ``labels`` and mean loss of the network on (X, Y), from one forward pass."""
    logits = nn.forward(params, X, activation)[-1]
    predicted = to_host(nn.predicted_class(nn.output_probabilities(logits)))
    return float(np.mean(predicted == labels)), float(nn.output_loss(logits, Y))


def epoch_metrics(params, dataset, activation: str) -> dict:
    """``train_accuracy``, ``test_accuracy`` and ``test_loss`` of the network now, for ``EpochResult.metrics``."""
    n = min(TRAIN_SAMPLE, dataset.X_train.shape[0])
    train_accuracy, _ = accuracy_and_loss(
        params, dataset.X_train[:n, :], dataset.Y_train[:n, :], dataset.y_train[:n], activation
    )
    test_accuracy, test_loss = accuracy_and_loss(params, dataset.X_test, dataset.Y_test, dataset.y_test, activation)
    return {"train_accuracy": train_accuracy, "test_accuracy": test_accuracy, "test_loss": test_loss}


def history_records(history) -> list[dict]:
    """``TrainState.history`` as plain dicts (epoch, loss, seconds, learning_rate, metrics) for JSON."""
    return [asdict(result) for result in history]


def checked_history(path, records) -> list[dict] | None:
    """A model file's stored history (records as ``history_records`` makes them), checked before it is drawn.

    None when the file holds no history; a ModelFileError when what it holds is not a history.
    """
    if records is None or records == []:
        return None
    if not isinstance(records, list) or not all(_is_record(record) for record in records):
        raise ModelFileError(f"{path}: the stored training history is malformed")
    return records


def _is_record(record) -> bool:
    def number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    return (
        isinstance(record, dict)
        and number(record.get("epoch"))
        and number(record.get("loss"))
        and isinstance(record.get("metrics"), dict)
        and all(isinstance(name, str) and number(value) for name, value in record["metrics"].items())
    )
