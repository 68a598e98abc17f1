"""Command line: describe a saved model, measure it on the test set, and draw its pictures.

    python -m mnist_xp.show model.npz
    python -m mnist_xp.show model.npz --plots pictures/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import backend, curves, data, plots
from .cli import add_data_dir_option, run_reporting_errors
from .predict import load_classifier
from .training import evaluate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_xp.show",
        description="Describe a saved model and report its test accuracy; with --plots, draw the training digits, "
        "the training curves (when the model file holds its training history), the confusion matrix, "
        "the surest mistakes and the first layer's weights.",
    )
    parser.add_argument("model", type=Path, help="a model saved by: python -m mnist_xp.train --save PATH")
    parser.add_argument("--plots", type=Path, default=None, metavar="DIR", help="write the pictures (PNG) into DIR")
    add_data_dir_option(parser)
    return parser


def run(args: argparse.Namespace) -> None:
    if args.plots is not None:
        plots.require()
    params, meta = load_classifier(args.model)
    activation = meta["activation"]
    history = curves.checked_history(args.model, meta.get("extra", {}).get("history"))
    sizes = "-".join(map(str, meta["layer_sizes"]))
    trained = f", trained {len(history)} epochs" if history else ""
    print(f"{args.model}: {sizes} {activation}, {meta['dtype']}{trained}")
    xp = backend.namespace("cpu")
    dataset = data.load(xp, meta["dtype"], args.data_dir)
    _, accuracy = evaluate(params, dataset.X_test, dataset.y_test, activation)
    print(f"test accuracy {100 * accuracy:.2f} % on {len(dataset.y_test):,} test images")
    if args.plots is not None:
        written = plots.write_pictures(
            args.plots,
            params,
            activation,
            np.reshape(dataset.X_train, (-1, 28, 28)),
            dataset.y_train,
            np.reshape(dataset.X_test, (-1, 28, 28)),
            dataset.y_test,
            history,
        )
        print(f"pictures written to {args.plots}: {', '.join(path.name for path in written)}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_reporting_errors(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
