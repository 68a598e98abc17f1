"""What the commands share: the data-folder option, and errors and Ctrl-C as one line and an exit code."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from .errors import MnistXpError


def run_reporting_errors(action: Callable[[], int | None]) -> int:
    """Run ``action``; a project error prints ``error: ...`` and gives 1, Ctrl-C gives 130, a closed stdout 1."""
    try:
        code = action() or 0
        sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
        return code
    except MnistXpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _stdout_closed()


def _stdout_closed() -> int:
    """The reader of our output went away (``... | head``): stop quietly, with exit status 1.

    Later writes, including the interpreter's final flush, go to the null device instead of
    raising again.
    """
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1


def add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    """``--data-dir DIR``: another IDX data set in place of the bundled MNIST."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with IDX files named like MNIST's (gzipped or not); default: the bundled MNIST",
    )
