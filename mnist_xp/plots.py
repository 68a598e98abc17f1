"""Pictures of the data, of training and of a trained network, written as PNG files.

matplotlib is imported only when a picture is made (it is in the ``plot`` extra), and drawn
with its Agg canvas, so no display is needed. Every function takes host (NumPy) arrays.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import augment, nn
from .backend import uniform_sampler
from .data import IMAGE_SHAPE, NUM_CLASSES
from .errors import PLOT_INSTALL_HINT, PlotError
from .metrics import confusion_matrix
from .values import is_real_number

DPI = 100
FIGSIZES = {
    "samples": (10.0, 4.6),
    "curves": (11.0, 4.5),
    "confusion": (7.5, 6.5),
    "misclassified": (12.0, 7.2),
    "weights": (9.0, 9.4),
    "distortions": (9.0, 9.6),
}
"""Each picture's size in inches; at ``DPI`` dots per inch a picture is ``100 * size`` pixels."""
MISCLASSIFIED_SHOWN = 32
WEIGHTS_SHOWN = 64
DISTORTED_DIGITS = 8
DISTORTED_COPIES = 6


def require():
    """Return matplotlib's Figure class and Agg canvas, or fail in one line when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError(f"pictures need matplotlib, which is not installed; {PLOT_INSTALL_HINT}") from None
    return Figure, FigureCanvasAgg


def _figure(kind: str):
    Figure, FigureCanvasAgg = require()
    figure = Figure(figsize=FIGSIZES[kind], dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> Path:
    try:
        figure.savefig(path, dpi=DPI, format="png")
    except OSError as exc:
        raise PlotError(f"{path}: cannot write the picture ({exc.strerror or exc})") from None
    return path


def _mosaic(kind: str, tiles, captions: list[str], cols: int, caption_rows: int, fontsize: float, **style):
    """A figure showing 28x28 ``tiles`` as one image, in a grid with a caption above each tile.

    One image with text on it draws many times faster than a grid of separate axes.
    ``caption_rows`` is the room left above each tile, in tile pixels.
    """
    rows = max(1, math.ceil(len(tiles) / cols))
    side = IMAGE_SHAPE[0]
    cell_width, cell_height = side + 4, side + caption_rows
    canvas = np.full((rows * cell_height, cols * cell_width), np.nan)
    figure = _figure(kind)
    axes = figure.subplots()
    for i, (tile, caption) in enumerate(zip(tiles, captions)):
        row, col = divmod(i, cols)
        top, left = row * cell_height + caption_rows, col * cell_width + 2
        canvas[top : top + side, left : left + side] = tile
        axes.text(left + 13.5, top - 1.5, caption, ha="center", va="bottom", fontsize=fontsize)
    axes.imshow(canvas, interpolation="nearest", **style)
    axes.axis("off")
    return figure


def digit_grid(path: Path, images: np.ndarray, labels: np.ndarray, rows: int = 2, cols: int = 5) -> Path:
    """The first ``rows * cols`` digits (28x28, values in [0, 1]) with their labels."""
    count = rows * cols
    captions = [f"Label: {label}" for label in labels[:count]]
    figure = _mosaic("samples", images[:count], captions, cols, 9, 12, cmap="gray", vmin=0.0, vmax=1.0)
    return _save(figure, path)


def training_curves(path: Path, history: list[dict]) -> Path:
    """Loss and accuracy per epoch: the training loss, and every ``*_loss`` and ``*_accuracy`` metric recorded.

    ``history`` holds records as ``training.history_records`` makes them. Without any recorded
    accuracy the figure shows the losses alone.
    """
    from matplotlib.ticker import MaxNLocator

    epochs = [record["epoch"] for record in history]
    losses = {"train": [record["loss"] for record in history]}
    accuracies = {}
    for name in _metric_names(history):
        values = [record["metrics"].get(name, math.nan) for record in history]
        if name.endswith("_loss"):
            losses[name.removesuffix("_loss")] = values
        elif name.endswith("_accuracy"):
            accuracies[name.removesuffix("_accuracy")] = [100 * value for value in values]
    figure = _figure("curves")
    panels = [("loss", losses)] + ([("accuracy (%)", accuracies)] if accuracies else [])
    for axes, (quantity, series) in zip(figure.subplots(1, len(panels), squeeze=False).flat, panels):
        for label, values in series.items():
            axes.plot(epochs, values, marker="o", markersize=3, label="loop" if label == "train" else label)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel(quantity)
        axes.set_title(f"{quantity.split()[0].capitalize()} per epoch")
        axes.grid(alpha=0.3)
        axes.legend()
    return _save(figure, path)


def _metric_names(history: list[dict]) -> list[str]:
    """The names of the numeric metrics recorded in any epoch, in order of first appearance."""
    names = []
    for record in history:
        names += [name for name, value in record["metrics"].items() if name not in names and is_real_number(value)]
    return names


def confusion_heatmap(path: Path, true: np.ndarray, predicted: np.ndarray, num_classes: int = NUM_CLASSES) -> Path:
    """The confusion matrix as a heat map with the count in every cell (square-root colour scale)."""
    from matplotlib.colors import PowerNorm

    counts = confusion_matrix(true, predicted, num_classes)
    figure = _figure("confusion")
    axes = figure.subplots()
    image = axes.imshow(counts, cmap="Blues", norm=PowerNorm(0.5, vmin=0, vmax=max(1, counts.max())))
    figure.colorbar(image, ax=axes, label="digits")
    threshold = 0.35 * counts.max()
    for (t, p), count in np.ndenumerate(counts):
        if count:
            color = "white" if count > threshold else "black"
            axes.text(p, t, str(count), ha="center", va="center", fontsize=8, color=color)
    ticks = range(len(counts))
    axes.set_xticks(ticks)
    axes.set_yticks(ticks)
    axes.set_xlabel("predicted digit")
    axes.set_ylabel("true digit")
    accuracy = np.trace(counts) / max(1, counts.sum())
    axes.set_title(f"Confusion matrix: {100 * accuracy:.2f} % of {counts.sum():,} digits right")
    return _save(figure, path)


def misclassified_grid(
    path: Path, images: np.ndarray, true: np.ndarray, predicted: np.ndarray, confidence: np.ndarray
) -> Path:
    """The misclassified digits the network was surest of, with true and predicted labels and confidence."""
    wrong = np.flatnonzero(true != predicted)
    shown = wrong[np.argsort(-confidence[wrong], kind="stable")][:MISCLASSIFIED_SHOWN]
    captions = [f"true {true[i]}, said {predicted[i]}\n{100 * confidence[i]:.1f} % sure" for i in shown]
    figure = _mosaic("misclassified", images[shown], captions, 8, 16, 9, cmap="gray", vmin=0.0, vmax=1.0)
    if not len(shown):
        figure.text(0.5, 0.5, "No misclassified digits", ha="center", va="center", fontsize=20)
    figure.suptitle(f"{len(wrong):,} of {len(true):,} test digits misclassified; the {len(shown)} surest mistakes")
    return _save(figure, path)


def first_layer_weights(path: Path, W: np.ndarray) -> Path:
    """The incoming weights of the first layer's units (columns of ``W``, 784 each) as 28x28 images.

    Red pixels push a unit up, blue ones down; each image is scaled to its own largest weight.
    """
    count = min(W.shape[1], WEIGHTS_SHOWN)
    tiles = W[:, :count].T.reshape(count, *IMAGE_SHAPE)
    limits = np.abs(tiles).max(axis=(1, 2), keepdims=True)
    tiles = tiles / np.where(limits > 0, limits, 1.0)
    cols = math.ceil(math.sqrt(count))
    figure = _mosaic("weights", tiles, [str(unit) for unit in range(count)], cols, 7, 7, cmap="RdBu_r", vmin=-1, vmax=1)
    figure.suptitle(f"First-layer weights of {count} of {W.shape[1]} units (red positive, blue negative)")
    return _save(figure, path)


def distortion_grid(
    path: Path, images: np.ndarray, labels: np.ndarray, distortion: augment.Distortion, seed: int = 0
) -> Path:
    """The first digits, one to a row, each followed by copies distorted as training distorts images.

    Copy k takes the draws of (seed, epoch k, batch 0): a row shows one digit as the network
    might see it in several epochs.
    """
    count, copies = min(DISTORTED_DIGITS, len(images)), DISTORTED_COPIES
    flat = images[:count].reshape(count, -1)
    tiles = []
    for k in range(1, copies + 1):
        draws = uniform_sampler(np.empty(0), "distort", seed, k, 0)((count, distortion.draws), str(flat.dtype))
        tiles.append(np.asarray(distortion(flat, draws)).reshape(count, *IMAGE_SHAPE))
    grid = np.stack([images[:count], *tiles], axis=1).reshape(-1, *IMAGE_SHAPE)
    captions = [f"label {labels[i]}" if k == 0 else f"copy {k}" for i in range(count) for k in range(copies + 1)]
    figure = _mosaic("distortions", grid, captions, copies + 1, 7, 8, cmap="gray", vmin=0.0, vmax=1.0)
    figure.suptitle(f"Training digits and distorted copies\n{distortion.describe()}", fontsize=11)
    return _save(figure, path)


def write_pictures(
    folder: Path | str,
    host_params,
    activation: str,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    history: list[dict] | None = None,
    distortion: augment.Distortion | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write every picture into ``folder``; images are (n, 28, 28) in [0, 1]. Returns the files written.

    The training curves need a ``history`` with at least one epoch; without one they are left out.
    With a ``distortion`` that is active, the training digits' distorted copies (from ``seed``) too.
    """
    require()
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlotError(f"{folder}: cannot create the pictures' folder ({exc.strerror or exc})") from None
    probabilities = nn.predict(host_params, test_images.reshape(len(test_images), -1), activation)
    predicted = nn.predicted_class(probabilities)
    confidence = probabilities[np.arange(len(predicted)), predicted]
    written = [digit_grid(folder / "samples.png", train_images, train_labels)]
    if distortion is not None and distortion.active:
        written.append(distortion_grid(folder / "distortions.png", train_images, train_labels, distortion, seed))
    if history:
        written.append(training_curves(folder / "curves.png", history))
    written += [
        confusion_heatmap(folder / "confusion.png", test_labels, predicted),
        misclassified_grid(folder / "misclassified.png", test_images, test_labels, predicted, confidence),
        first_layer_weights(folder / "weights.png", host_params[0][0]),
    ]
    return written
