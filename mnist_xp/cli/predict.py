"""Command line: recognize the digit in each of your own image files with a saved model.

    python -m mnist_xp.predict model.npz seven.png three.jpg
    python -m mnist_xp.predict model.npz seven.png --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .. import backend
from ..errors import MnistXpError
from ..images import load_digit, require
from ..model import Model
from .common import add_model_argument, run_reporting_errors

TOP = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_xp.predict",
        description="Recognize handwritten digits in image files (PNG, JPEG, ...; one digit per image, any size, "
        "dark on light or light on dark) and print the three likeliest digits with their probabilities. "
        "Each image is prepared as MNIST's were: grayscale, cropped to the digit, scaled to fit 20x20 and "
        "centred by its centre of mass in 28x28.",
    )
    add_model_argument(parser)
    parser.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="image files, one digit each")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of one line per image")
    parser.add_argument("--device", choices=backend.DEVICES, default="cpu", help="cpu runs on NumPy, gpu on CuPy")
    return parser


def top_digits(probabilities: np.ndarray, count: int = TOP) -> list[list[tuple[int, float]]]:
    """For each row of class probabilities, the ``count`` likeliest classes as (digit, probability)."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :count]
    return [[(int(k), float(row[k])) for k in ranks] for row, ranks in zip(probabilities, order)]


def run(args: argparse.Namespace) -> int:
    """Recognize every readable image; report unreadable ones on stderr. Returns the exit status."""
    require()
    backend.namespace(args.device)
    model = Model.load_digit_classifier(args.model, args.device)
    paths, digits, failed = [], [], 0
    for path in args.images:
        try:
            digits.append(load_digit(path))
            paths.append(path)
        except MnistXpError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    results = []
    if digits:
        probabilities = model.predict_proba(np.stack(digits))
        results = list(zip(paths, top_digits(probabilities)))
    if args.json:
        records = [
            {"image": str(path), "top": [{"digit": d, "probability": round(p, 6)} for d, p in top]}
            for path, top in results
        ]
        print(json.dumps(records, indent=2))
    else:
        for path, top in results:
            print(f"{path}: " + "  ".join(f"{d} ({100 * p:.1f} %)" for d, p in top))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_reporting_errors(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
