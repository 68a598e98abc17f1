"""Evaluation after training: accuracy overall and per class, confusion matrix, loss; as a table or JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .errors import MnistXpError
from .training import evaluate, mean_loss


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
    predicted, _ = evaluate(params, X, labels, activation)
    return summarize(labels, predicted, mean_loss(params, X, Y, activation), Y.shape[1])


def format_table(report: dict) -> str:
    """The report as text: one line per class with its accuracy and its row of the confusion matrix."""
    matrix = report["confusion_matrix"]
    width = max(5, len(str(max(max(row) for row in matrix))) + 1)
    header = "class  accuracy   n    |" + "".join(f"{j:>{width}}" for j in range(len(matrix))) + "   <- predicted"
    lines = [header, "-" * len(header)]
    for i, row in enumerate(matrix):
        accuracy = report["per_class_accuracy"][i]
        shown = "     -" if accuracy is None else f"{100 * accuracy:6.2f}"
        lines.append(f"{i:>5}  {shown} %  {report['class_samples'][i]:>5} |" + "".join(f"{v:>{width}}" for v in row))
    lines.append(f"overall accuracy {100 * report['accuracy']:.2f} %, loss {report['loss']:.4f}, {report['samples']} images")
    return "\n".join(lines)


def write_json(path: Path | str, report: dict) -> None:
    """Write ``report`` as JSON to ``path`` via a temporary file and a rename."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(report, indent=2) + "\n")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise MnistXpError(f"{path}: cannot write the report ({exc.strerror or exc})") from None
