"""Command line: take a trained model out of mnist-xp, as a web page to draw digits on or as ONNX.

    python -m mnist_xp.export model.npz --html digit.html
    python -m mnist_xp.export model.npz --onnx model.onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import onnxgraph
from ..errors import MnistXpError
from ..model import Model
from .common import add_model_argument, run_reporting_errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_xp.export",
        description="Export a saved model. --html writes one self-contained web page (no server, no network) "
        "where you draw a digit and watch the network read it; --onnx writes the network as a standard "
        "ONNX graph (input 'pixels' [N, 784] float32, output 'probabilities') for any ONNX runtime.",
    )
    add_model_argument(parser)
    parser.add_argument("--html", type=Path, default=None, metavar="PATH", help="write the drawing page here")
    parser.add_argument("--onnx", type=Path, default=None, metavar="PATH", help="write the ONNX graph here")
    parser.add_argument("--force", action="store_true", help="overwrite output files that exist")
    return parser


def check_output(path: Path, force: bool) -> None:
    """Refuse, before anything is written, an output that cannot or should not be written."""
    folder = path.parent
    if path.is_dir():
        raise MnistXpError(f"{path}: is a folder, not a file name")
    if not folder.is_dir():
        raise MnistXpError(f"{path}: the folder {folder} does not exist")
    if path.exists() and not force:
        raise MnistXpError(f"{path}: already exists (add --force to overwrite it)")


def run(args: argparse.Namespace) -> None:
    outputs = [path for path in (args.html, args.onnx) if path is not None]
    if len(outputs) == 2 and args.html.resolve() == args.onnx.resolve():
        raise MnistXpError(f"{args.html}: --html and --onnx name the same file")
    for path in outputs:
        check_output(path, args.force)
    if args.onnx is not None:
        onnxgraph.require()
    model = Model.load(args.model)
    if args.html is not None:  # first, as the page refuses some models that the ONNX graph takes
        model.to_html(args.html, args.model.name)
        print(f"page written to {args.html}: open it in a browser and draw a digit")
    if args.onnx is not None:
        model.to_onnx(args.onnx, args.model.stem)
        print(f"ONNX graph written to {args.onnx}: input 'pixels' [N, 784] float32, output 'probabilities'")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.html is None and args.onnx is None:
        parser.error("give --html PATH, --onnx PATH or both")
    return run_reporting_errors(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
