"""How well a network does: predictions, accuracy and loss in batches, per-class report, confusion matrix.

Every run of a trained network over many samples goes through ``logits_in_batches``: the
probabilities that ``Model`` and ``MLPClassifier`` give, and (through ``predictions_and_loss``)
the test report after training, the validation split's numbers every epoch and the curves'
per-epoch accuracies.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import nn
from .backend import to_device, to_host
from .errors import MnistXpError
from .npzio import write_atomically
from .values import dtype_name

EVAL_BATCH = 10_000
"""Evaluation runs the network on this many samples at a time, to bound its memory."""
TRAIN_SAMPLE = 10_000
"""Training accuracy for curves is measured on the first this-many training images: enough for a curve, and cheap."""


def logits_in_batches(params, X, activation: str = "relu", batch_size: int = EVAL_BATCH):
    """The network's output logits on ``X``, ``batch_size`` rows at a time: yields ``(rows, logits)``.

    ``rows`` is the slice of ``X`` that ``logits`` belong to. Each slice is moved to the
    parameters' namespace and float type first, so ``X`` may be a host array or already on the
    device. No dropout, no penalty.
    """
    W = params[0][0]
    xp, dtype = nn.namespace_of(W), dtype_name(W)
    n = X.shape[0]
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        yield rows, nn.forward(params, to_device(X[rows, ...], xp, dtype), activation)[-1]


def class_probabilities(params, X, activation: str = "relu", batch_size: int = EVAL_BATCH) -> np.ndarray:
    """The class probabilities (n, classes) of the samples ``X``, as a host array (see ``logits_in_batches``)."""
    batches = logits_in_batches(params, X, activation, batch_size)
    return np.concatenate([to_host(nn.output_probabilities(logits)) for _, logits in batches])


def predictions_and_loss(params, X, Y=None, activation: str = "relu", batch_size: int = EVAL_BATCH):
    """Predicted classes of ``X`` (a host array) and, with targets ``Y``, the mean loss (else None)."""
    predicted, total = [], 0.0
    for rows, logits in logits_in_batches(params, X, activation, batch_size):
        predicted.append(to_host(nn.predicted_class(nn.output_probabilities(logits))))
        if Y is not None:
            total += float(nn.output_loss(logits, Y[rows, ...])) * (rows.stop - rows.start)
    return np.concatenate(predicted), (total / X.shape[0] if Y is not None else None)


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(labels)))


def accuracy_and_loss(params, X, Y, labels: np.ndarray, activation: str = "relu") -> tuple[float, float]:
    """Accuracy against host ``labels`` and mean loss of the network on (X, Y)."""
    predicted, loss = predictions_and_loss(params, X, Y, activation)
    return accuracy(predicted, labels), loss


def epoch_metrics(params, dataset, activation: str) -> dict:
    """``train_accuracy``, ``test_accuracy`` and ``test_loss`` of the network now, for training curves."""
    n = min(TRAIN_SAMPLE, dataset.X_train.shape[0])
    train_accuracy, _ = accuracy_and_loss(
        params, dataset.X_train[:n, :], dataset.Y_train[:n, :], dataset.y_train[:n], activation
    )
    test_accuracy, test_loss = accuracy_and_loss(params, dataset.X_test, dataset.Y_test, dataset.y_test, activation)
    return {"train_accuracy": train_accuracy, "test_accuracy": test_accuracy, "test_loss": test_loss}


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``C[true, predicted]``: row i holds where the samples of class i went."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def summarize(labels: np.ndarray, predicted: np.ndarray, loss: float, num_classes: int) -> dict:
    """The report of one evaluation: accuracy, loss, per-class accuracy (recall) and the confusion matrix.

    A class with no samples has per-class accuracy None.
    """
    matrix = confusion_matrix(labels, predicted, num_classes)
    totals = matrix.sum(axis=1)
    return {
        "samples": int(totals.sum()),
        "accuracy": float(np.trace(matrix) / totals.sum()),
        "loss": float(loss),
        "per_class_accuracy": [float(matrix[i, i] / totals[i]) if totals[i] else None for i in range(num_classes)],
        "class_samples": totals.tolist(),
        "confusion_matrix": matrix.tolist(),
    }


def evaluate_report(params, X, Y, labels: np.ndarray, activation: str = "relu") -> dict:
    """Run the network on (X, Y) and summarize how it did."""
    predicted, loss = predictions_and_loss(params, X, Y, activation)
    return summarize(labels, predicted, loss, Y.shape[1])


def format_table(report: dict) -> str:
    """The report as text: one line per class with its accuracy and its row of the confusion matrix."""
    matrix = report["confusion_matrix"]
    width = max(5, len(str(max(max(row) for row in matrix))) + 1)
    header = "class  accuracy   n    |" + "".join(f"{j:>{width}}" for j in range(len(matrix))) + "   <- predicted"
    lines = [header, "-" * len(header)]
    for i, row in enumerate(matrix):
        per_class = report["per_class_accuracy"][i]
        shown = "     -" if per_class is None else f"{100 * per_class:6.2f}"
        lines.append(f"{i:>5}  {shown} %  {report['class_samples'][i]:>5} |" + "".join(f"{v:>{width}}" for v in row))
    lines.append(f"overall accuracy {100 * report['accuracy']:.2f} %, loss {report['loss']:.4f}, {report['samples']} images")
    return "\n".join(lines)


def write_json(path: Path | str, report: dict) -> None:
    """Write ``report`` as JSON to ``path`` atomically (a crash leaves the old file or the new one, whole)."""
    text = (json.dumps(report, indent=2) + "\n").encode()
    write_atomically(path, lambda stream: stream.write(text), MnistXpError)
