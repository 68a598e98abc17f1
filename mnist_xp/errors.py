"""The project's error types: one line each, typed, and naming library parameters, never command-line flags.

An error about one parameter's value carries that parameter's name (``SettingError.name``,
``BackendError.device``, ``DivergenceError.lower``), so that a command can say the same
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


class LimitError(DataError, SettingError):
    """``limit`` asks for more training images than the data set holds."""


class DivergenceError(MnistXpError):
    """Training produced NaN or infinite values (most often the learning rate is too high).

    ``epoch`` is the epoch it happened in, ``problem`` what went non-finite, ``learning_rate`` the rate
    then and ``lower`` a rate to try instead (a tenth of the run's base rate, named ``rate_name``);
    ``saved`` is the checkpoint of the last good epoch (kept in ``path``), or None when none was kept.
    """

    def __init__(self, epoch: int, problem: str, learning_rate: float, base_rate: float, rate_name="learning rate"):
        super().__init__(epoch, problem, learning_rate, base_rate)
        self.epoch, self.problem, self.learning_rate = epoch, problem, learning_rate
        self.lower = float(f"{base_rate / 10:g}")
        self.rate_name = rate_name
        self.saved, self.path = None, None

    def __str__(self) -> str:
        message = (
            f"training diverged in epoch {self.epoch}: {self.problem} (learning rate {self.learning_rate:g}); "
            f"try a lower {self.rate_name}, e.g. {self.lower:g}"
        )
        if self.saved is not None:
            message += f"; the last good state (epoch {self.saved.epoch}) is in {self.path}"
        return message
