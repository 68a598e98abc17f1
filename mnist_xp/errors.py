"""The one error type the project raises for bad input, so callers can report it in one line."""

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
    """The requested device cannot be used on this machine."""


class ImageError(MnistXpError):
    """An image file cannot be read, or holds no digit to recognize."""


class PlotError(MnistXpError):
    """Pictures cannot be made: matplotlib is missing, or the folder cannot be written."""


class CheckpointError(MnistXpError):
    """A checkpoint file cannot be read, or does not fit the run it is asked to continue."""


class UsageError(MnistXpError):
    """An option that parses but does not fit what it meets (the data, a checkpoint); reported like argparse."""


class LimitError(DataError, UsageError):
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
