"""What the commands share: options derived from ``TrainConfig``, file options, and errors as one line.

Every training option is made from its ``TrainConfig`` field: its flag from the name, its type,
choices, help and "(default ...)" from the field, so the command line cannot drift from the library.
The library's errors name its parameters (``limit``, ``lr``); ``message_for`` says the same in
terms of the options (``--limit``, ``--lr``), and ``run_reporting_errors`` prints it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable, NoReturn

from ..config import FIELDS, Kind, TrainConfig, complaint_about
from ..errors import BackendError, DivergenceError, MnistXpError, SettingError, UsageError
from ..tuning import StudyMismatch

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


def flag(name: str) -> str:
    """The option that gives the parameter or setting ``name``: ``label_smoothing`` is ``--label-smoothing``."""
    return "--" + name.replace("_", "-")


def option_text(name: str) -> str:
    """The option of ``name`` with its placeholder, as a usage line writes it (``--val N``)."""
    metavar = FIELDS[name].metadata["metavar"] if name in FIELDS else None
    return flag(name) if metavar is None else f"{flag(name)} {metavar}"


def message_for(exc: MnistXpError) -> str:
    """The one line a command prints for a library error, naming the command's options where the library
    names its parameters: ``limit: 0 is outside ...`` becomes ``argument --limit: 0 is outside ...``."""
    if isinstance(exc, SettingError):
        named = "".join(f" ({option_text(name)})" for name in exc.mentions)
        return f"argument {flag(exc.name)}: {exc.complaint}{named}"
    if isinstance(exc, BackendError):
        return f"{flag('device')} {exc.device} {exc.problem}"
    if isinstance(exc, DivergenceError):
        lower = f"{flag('lr')} {exc.lower:g}"
        message = (
            f"training diverged in epoch {exc.epoch}: {exc.problem} (learning rate {exc.learning_rate:g}); "
            f"try a lower learning rate, e.g. {lower}"
        )
        if exc.saved is not None:
            resume = f"{flag('resume')} {shlex.quote(str(exc.path))} {lower}"
            message += f"; the last good state (epoch {exc.saved.epoch}) is in {exc.path}: {resume}"
        return message
    if isinstance(exc, StudyMismatch):
        was = {"space": "a different space", "data_dir": f"other data ({exc.kept})"}
        option = flag(exc.setting)
        return (
            f"study {exc.study!r} was started with {was.get(exc.setting, f'{option} {exc.kept}')}: "
            f"give the same {option} to continue it, or a new {flag('study')} name"
        )
    return str(exc)


def exit_code_for(exc: MnistXpError) -> int:
    """2 for a usage error (a bad option, or options that do not fit together or the data), 3 for divergence, else 1."""
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    return EXIT_DIVERGED if isinstance(exc, DivergenceError) else EXIT_ERROR


def usage_error(parser: argparse.ArgumentParser, exc: UsageError) -> NoReturn:
    """Report a usage error as argparse reports a bad option: the usage, then the message; exit 2."""
    parser.error(message_for(exc))


def run_reporting_errors(action: Callable[[], int | None], parser: argparse.ArgumentParser | None = None) -> int:
    """Run ``action``, reporting a project error in one line: ``error: ...`` and its ``exit_code_for``.

    With ``parser``, a usage error goes through ``parser.error`` (the usage, then the message).
    Ctrl-C gives 130, a closed stdout 1.
    """
    try:
        code = action() or 0
        sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
        return code
    except MnistXpError as exc:
        if parser is not None and isinstance(exc, UsageError):
            usage_error(parser, exc)
        print(f"error: {message_for(exc)}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
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
        complaint = complaint_about(replace(kind, items=False), value)
        if complaint is not None:
            raise argparse.ArgumentTypeError(f"{text!r} {complaint}")
        return value

    def parse(text: str):
        if kind.text_choice is not None and text == kind.text_choice:
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
        usage_error(parser, exc)


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


