"""What the commands share: options derived from ``TrainConfig``, file options, and errors as one line.

Every training option is made from its ``TrainConfig`` field: its flag from the name, its type,
choices, help and "(default ...)" from the field, so the command line cannot drift from the library.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..config import FIELDS, Kind, SettingError, TrainConfig, judge
from ..config import option as flag
from ..errors import MnistXpError


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


def text_parser(kind: Kind) -> Callable[[str], object]:
    """An argparse ``type`` that reads a setting of ``kind`` from text and checks it as ``TrainConfig`` does."""

    def one(text: str):
        convert = int if kind.type is int else float
        try:
            value = convert(text)
        except ValueError:
            noun = "a whole number" if kind.type is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        complaint = judge(replace(kind, items=False), value)
        if complaint is not None:
            raise argparse.ArgumentTypeError(f"{text!r} {complaint}")
        return value

    def parse(text: str):
        if kind.word is not None and text == kind.word:
            return text
        if kind.items:
            return () if text.strip() == "" else tuple(one(part.strip()) for part in text.split(","))
        return one(text)

    return parse


def positive_int(text: str) -> int:
    """An argparse type for counts that are not training settings (--limit, --log-every, ...)."""
    return text_parser(FIELDS["epochs"].metadata["kind"])(text)


def add_config_options(parser: argparse.ArgumentParser, names, group=None) -> None:
    """Add the options of the ``TrainConfig`` fields ``names``; each defaults to None (not given)."""
    target = group or parser
    for name in names:
        field = FIELDS[name]
        meta = field.metadata
        kind = meta["kind"]
        shown = meta["default_text"] or field.default
        options = {"help": f"{meta['help']} (default {shown})", "default": None, "metavar": meta["metavar"]}
        if kind.type is str:
            options["choices"] = kind.choices
        else:
            options["type"] = text_parser(kind)
        target.add_argument(flag(name), **options)


def given_settings(args: argparse.Namespace) -> dict:
    """The training settings given on the command line (the options left at None were not given)."""
    return {name: getattr(args, name) for name in FIELDS if getattr(args, name, None) is not None}


def config_from(base: TrainConfig, given: dict, parser: argparse.ArgumentParser) -> TrainConfig:
    """``base`` with the given settings laid over it; a refused combination is a usage error (exit 2)."""
    try:
        return replace(base, **given)
    except SettingError as exc:
        parser.error(f"argument {flag(exc.name)}: {exc.complaint}")


def output_path(text: str) -> Path:
    """A file this run may write: not a folder, and in a folder that exists (or can be made) and is writable."""
    path = Path(text)
    if text == "" or path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file name")
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r} cannot be written: {folder} is not a writable folder")
    return path


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """The positional ``model``: a file that ``train --save`` wrote."""
    parser.add_argument("model", type=Path, help="a model saved by: python -m mnist_xp.train --save PATH")


def add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    """``--data-dir DIR``: another IDX data set in place of the bundled MNIST."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with IDX files named like MNIST's (gzipped or not); default: the bundled MNIST",
    )


