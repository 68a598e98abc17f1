"""Command line: describe a saved model, measure it on the test set, and draw its pictures.

    python -m mnist_xp.show model.npz
    python -m mnist_xp.show model.npz --plots pictures/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import plots
from ..data import IMAGE_SHAPE, load_mnist
from ..model import Model
from .common import add_data_dir_option, add_model_argument, run_reporting_errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_xp.show",
        description="Describe a saved model and report its test accuracy; with --plots, draw the training digits, "
        "the training curves (when the model file holds its training history), the confusion matrix, "
        "the surest mistakes and the first layer's weights.",
    )
    add_model_argument(parser)
    parser.add_argument("--plots", type=Path, default=None, metavar="DIR", help="write the pictures (PNG) into DIR")
    add_data_dir_option(parser)
    return parser


def run(args: argparse.Namespace) -> None:
    if args.plots is not None:
        plots.require()
    model = Model.load_digit_classifier(args.model)
    sizes = "-".join(map(str, model.layer_sizes))
    trained = f", trained {len(model.history)} epochs" if model.history else ""
    print(f"{args.model}: {sizes} {model.activation}, {model.dtype}{trained}")
    dataset = load_mnist("cpu", model.dtype, args.data_dir)
    accuracy = model.evaluate(dataset.X_test, dataset.y_test)["accuracy"]
    print(f"test accuracy {100 * accuracy:.2f} % on {len(dataset.y_test):,} test images")
    if args.plots is not None:
        written = plots.write_pictures(
            args.plots,
            model.params,
            model.activation,
            dataset.X_train.reshape(-1, *IMAGE_SHAPE),
            dataset.y_train,
            dataset.X_test.reshape(-1, *IMAGE_SHAPE),
            dataset.y_test,
            model.history,
        )
        print(f"pictures written to {args.plots}: {', '.join(path.name for path in written)}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_reporting_errors(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
