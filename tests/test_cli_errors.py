"""The line between the library and the commands: errors name parameters; the commands say them with their options."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import pytest

from mnist_xp.cli.common import message_for, run_reporting_errors
from mnist_xp.config import SettingError as SettingErrorFromConfig
from mnist_xp.errors import BackendError, DivergenceError, MnistXpError, SettingError, UsageError
from mnist_xp.tuning import StudyMismatch

DIVERGED = "training diverged in epoch 3: the loss is nan (learning rate 0.5)"


def diverged(saved_epoch: int | None = None, path: str | None = None) -> DivergenceError:
    """A divergence in epoch 3 at rate 0.5, its last good state saved after ``saved_epoch`` in ``path`` if given."""
    error = DivergenceError(3, "the loss is nan", 0.5, 0.5)
    if saved_epoch is not None:
        error.saved, error.path = SimpleNamespace(epoch=saved_epoch), Path(path)
    return error


# (the library's error, its message, the line a command prints)
ERRORS = [
    (
        SettingError("limit", "70000 is outside 1..60000 (the training set's size)"),
        "limit: 70000 is outside 1..60000 (the training set's size)",
        "argument --limit: 70000 is outside 1..60000 (the training set's size)",
    ),
    (
        SettingError("label_smoothing", "1.5 must be at least 0 and below 1"),
        "label_smoothing: 1.5 must be at least 0 and below 1",
        "argument --label-smoothing: 1.5 must be at least 0 and below 1",
    ),
    (
        SettingError("patience", "needs a validation split: set val", mentions=("val",)),
        "patience: needs a validation split: set val",
        "argument --patience: needs a validation split: set val (--val N)",
    ),
    (
        SettingError("limit", "study 's' was started with 2000: give the same to continue it", mentions=("study",)),
        "limit: study 's' was started with 2000: give the same to continue it",
        "argument --limit: study 's' was started with 2000: give the same to continue it (--study)",
    ),
    (
        BackendError("gpu", "needs CuPy, which is not installed; install it with: pip install 'mnist-xp[gpu]'"),
        "device 'gpu' needs CuPy, which is not installed; install it with: pip install 'mnist-xp[gpu]'",
        "--device gpu needs CuPy, which is not installed; install it with: pip install 'mnist-xp[gpu]'",
    ),
    (
        diverged(),
        f"{DIVERGED}; try a lower learning rate, e.g. 0.05",
        f"{DIVERGED}; try a lower learning rate, e.g. --lr 0.05",
    ),
    (
        diverged(2, "my runs/run.npz"),
        f"{DIVERGED}; try a lower learning rate, e.g. 0.05; the last good state (epoch 2) is in my runs/run.npz",
        (
            f"{DIVERGED}; try a lower learning rate, e.g. --lr 0.05; "
            "the last good state (epoch 2) is in my runs/run.npz: --resume 'my runs/run.npz' --lr 0.05"
        ),
    ),
    (
        StudyMismatch("s", "limit", 2000),
        "study 's' was started with limit 2000: continue it with the same, or start another study",
        "study 's' was started with --limit 2000: give the same --limit to continue it, or a new --study name",
    ),
    (
        StudyMismatch("s", "space", {"lr": [0.1]}),
        "study 's' was started with another search space: continue it with the same, or start another study",
        "study 's' was started with a different space: give the same --space to continue it, or a new --study name",
    ),
    (MnistXpError("model.npz: not a model file"), "model.npz: not a model file", "model.npz: not a model file"),
]


@pytest.mark.parametrize("error, library, command", ERRORS, ids=lambda value: type(value).__name__)
def test_the_library_names_parameters_and_the_command_its_options(error, library, command):
    assert str(error) == library and "--" not in library
    assert message_for(error) == command


def test_setting_error_is_still_importable_from_config_and_is_a_value_error():
    assert SettingErrorFromConfig is SettingError
    assert issubclass(SettingError, UsageError) and issubclass(SettingError, ValueError)


def reported(capsys, error: Exception, parser=None) -> tuple[int, str]:
    def fail():
        raise error

    try:
        code = run_reporting_errors(fail, parser)
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "error, code, line",
    [
        (SettingError("val", "2000 must leave some training images"), 2,
         "error: argument --val: 2000 must leave some training images"),
        (UsageError("unknown recipe 'quick'"), 2, "error: unknown recipe 'quick'"),
        (BackendError("gpu", "needs a CUDA GPU, and none is visible on this machine"), 1,
         "error: --device gpu needs a CUDA GPU, and none is visible on this machine"),
        (diverged(), 3,
         f"error: {DIVERGED}; try a lower learning rate, e.g. --lr 0.05"),
        (MnistXpError("cannot open the storage"), 1, "error: cannot open the storage"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_each_error_is_one_line_and_its_exit_code(capsys, error, code, line):
    assert reported(capsys, error) == (code, line + "\n")


def test_with_a_parser_a_usage_error_is_reported_as_argparse_reports_a_bad_option(capsys):
    parser = argparse.ArgumentParser(prog="python -m mnist_xp.train")
    code, err = reported(capsys, SettingError("limit", "0 is outside 1..60000"), parser)
    assert code == 2
    assert err.splitlines()[0].startswith("usage: python -m mnist_xp.train")
    assert err.splitlines()[-1] == "python -m mnist_xp.train: error: argument --limit: 0 is outside 1..60000"
    code, err = reported(capsys, BackendError("gpu", "needs CuPy"), parser)  # not a usage error: no usage line
    assert (code, err) == (1, "error: --device gpu needs CuPy\n")
