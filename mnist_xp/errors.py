"""The project's error types: one line each, typed, and naming library parameters, never command-line flags.

An error about one parameter's value carries that parameter's name (``SettingError.name``,
``BackendError.device``, ``DivergenceError.lower_lr``), so that a command can say the same
thing in terms of its own options.
"""

from __future__ import annotations

PLOT_INSTALL_HINT = "install it with: pip install 'mnist-xp[plot]'"
GPU_INSTALL_HINT = "install it with: pip install 'mnist-xp[gpu]'"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none), for one-line reports."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class MnistXpError(Exception):
    """A problem with the user's input, files or machine, explained in one line."""


class DataError(MnistXpError):
    """A data file is missing, truncated, corrupted or not what its name says."""


class ModelFileError(MnistXpError):
    """A model file cannot be read or does not describe a valid network."""


class BackendError(MnistXpError):
    """The requested ``device`` cannot be used on this machine; ``problem`` says why."""

    def __init__(self, device: str, problem: str):
        super().__init__(f"device {device!r} {problem}")
        self.device = device
        self.problem = problem


class ImageError(MnistXpError):
    """An image file cannot be read, or holds no digit to recognize."""


class PlotError(MnistXpError):
    """Pictures cannot be made: matplotlib is missing, or the folder cannot be written."""


class CheckpointError(MnistXpError):
    """A checkpoint file cannot be read, or does not fit the run it is asked to continue."""


class UsageError(MnistXpError):
    """An argument that has the right type but does not fit what it meets (the data, a checkpoint, another argument)."""


class SettingError(UsageError, ValueError):
    """The value of the parameter or ``TrainConfig`` field ``name`` is refused; ``complaint`` says what is wrong.

    ``mentions`` names the other parameters the complaint asks for (``patience`` needs ``val``).
    """

    def __init__(self, name: str, complaint: str, mentions: tuple[str, ...] = ()):
        super().__init__(f"{name}: {complaint}")
        self.name = name
        self.complaint = complaint
        self.mentions = tuple(mentions)


class LimitError(DataError, UsageError):
    """``limit`` asks for more training images than the data set holds."""


class DivergenceError(MnistXpError):
    """Training produced NaN or infinite values (most often the learning rate is too high).

    ``problem`` says what went wrong; ``lower_lr`` is a learning rate to try instead, and
    ``checkpoint`` the file that holds the last good state (after epoch ``saved_epoch``), when known.
    """

    def __init__(self, problem: str, lower_lr: float | None = None, checkpoint=None, saved_epoch: int | None = None):
        message = problem
        if lower_lr is not None:
            message += f"; try a lower learning rate, e.g. lr={lower_lr:g}"
        if checkpoint is not None:
            message += f"; the last good state (epoch {saved_epoch}) is in {checkpoint}"
        super().__init__(message)
        self.problem = problem
        self.lower_lr = lower_lr
        self.checkpoint = checkpoint
        self.saved_epoch = saved_epoch
