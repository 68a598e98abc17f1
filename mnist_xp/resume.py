"""Continuing a run from a checkpoint: its settings come from the file, and only a few options may change them.

A resumed run is the same run: the architecture, the data, the batch order and the optimizer
must stay as they were, so an option that would change them is refused. ``--epochs`` (to
train longer) and ``--lr`` (to recover from divergence) may change; so may the options that
do not touch the run itself (device, data folder, output files, logging).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .checkpoint import Checkpoint
from .errors import CheckpointError, UsageError
from .recipes import RECIPES
from .training import batch_slices

CHANGEABLE = {"epochs", "lr", "data_dir"}
MAY_BE_NONE = {"limit", "data_dir"} | {key for key, value in RECIPES["default"].items() if value is None}


def merge(parser: argparse.ArgumentParser, args: argparse.Namespace, saved: Checkpoint) -> argparse.Namespace:
    """``args`` with every setting the checkpoint holds filled in, after checking each with the option's own parser."""
    actions = {action.dest: action for action in parser._actions}
    if args.recipe != parser.get_default("recipe"):
        raise UsageError("argument --recipe: not allowed with --resume (the checkpoint holds the run's settings)")
    merged = argparse.Namespace(**vars(args))
    for key, value in saved.settings.items():
        action = actions.get(key)
        if action is None or not action.option_strings:
            raise CheckpointError(f"{saved.source}: unknown setting {key!r}")
        _check_setting(saved.source, action, value)
        if key == "data_dir" and value is not None:
            value = Path(value)
        given = getattr(args, key)
        if given is None or given == parser.get_default(key):  # not given (flags default to False, not None)
            setattr(merged, key, value)
        elif given != value and key not in CHANGEABLE:
            raise UsageError(
                f"argument {action.option_strings[0]}: cannot be changed when resuming "
                f"(the checkpoint has {_show(value)}); only --epochs and --lr can"
            )
    if merged.epochs is not None and merged.epochs < saved.epoch:
        raise UsageError(f"argument --epochs: the checkpoint has done {saved.epoch} epochs already")
    return merged


def _check_setting(source: str, action: argparse.Action, value) -> None:
    """A saved setting must be what the option's parser would make of its own text."""
    name = action.option_strings[0]
    if value is None:
        if action.dest not in MAY_BE_NONE:
            raise CheckpointError(f"{source}: setting {name} is missing a value")
        return
    if action.choices is not None:
        valid = isinstance(value, str) and value in action.choices
    elif action.dest == "data_dir":
        valid = isinstance(value, str)
    elif action.type is not None and not isinstance(value, bool):
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        try:
            parsed = action.type(text)
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            parsed = None
        valid = parsed == value and (type(parsed) is type(value) or isinstance(parsed, float) and type(value) is int)
    else:
        valid = type(value) is type(action.default)
    if not valid:
        raise CheckpointError(f"{source}: setting {name} has an invalid value {value!r}")


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def check_steps(saved: Checkpoint, n_train: int, batch_size: int | None) -> None:
    """The steps done must be whole epochs over this training set: otherwise the data is not the checkpoint's."""
    per_epoch = len(batch_slices(n_train, batch_size)) if batch_size is not None and batch_size < n_train else 1
    if saved.step != saved.epoch * per_epoch:
        raise CheckpointError(
            f"{saved.source}: {saved.step} steps in {saved.epoch} epochs do not fit {n_train} training images "
            f"in batches of {batch_size or 'all'}: the checkpoint was made on other data"
        )
