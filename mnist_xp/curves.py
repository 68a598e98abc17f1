"""Per-epoch accuracy and loss for training curves, and the history as JSON-ready records."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from . import nn
from .backend import to_host

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
