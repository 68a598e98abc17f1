"""Keeping a training run recoverable: checkpoints on schedule, a stop on divergence, a save on interrupt.

``Keeper.on_epoch`` goes into ``fit``'s ``on_epoch`` chain (last, so that the history it keeps
holds every callback's metrics). Between two epochs it checks the loss and the parameters,
keeps a host copy of the last good state and writes it every ``every`` epochs. SIGINT and
SIGTERM become an ``Interrupted`` exception during training, so that the caller can write
that last good state before leaving.
"""

from __future__ import annotations

import math
import shlex
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from array_api_compat import array_namespace

from . import checkpoint
from .errors import DivergenceError
from .training import EpochResult, TrainState

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived during training (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for a death by signal: 128 + its number (130, 143)."""
        return 128 + self.signum


@contextmanager
def interrupts_raise():
    """Within the block, SIGINT and SIGTERM raise ``Interrupted`` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    previous = {number: signal.signal(number, handler) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


def float_warnings_off():
    """Silence NumPy's overflow and invalid-value warnings: ``Keeper`` reports a divergence in one line instead."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def divergence(state: TrainState, result: EpochResult) -> str | None:
    """What went non-finite in the epoch just done, or None if the loss and every parameter are finite."""
    if not math.isfinite(result.loss):
        return f"the loss is {result.loss}"
    for i, layer in enumerate(state.params):
        for name, array in zip(("weights", "biases"), layer):
            xp = array_namespace(array)
            if not bool(xp.all(xp.isfinite(array))):
                return f"layer {i}'s {name} hold NaN or infinite values"
    return None


class Keeper:
    """Watches a run between epochs: stops it on divergence and keeps its last good state on disk.

    With ``path`` None nothing is written, but divergence still stops the run. ``settings``
    are saved with every checkpoint (they must be JSON: numbers, text, lists, None).
    """

    def __init__(self, state: TrainState, settings: dict, path: Path | None = None, every: int = 1):
        self.settings = settings
        self.path = path
        self.every = every
        self.latest = checkpoint.snapshot(state, settings) if path is not None else None
        self.saved_epoch: int | None = None

    def on_epoch(self, state: TrainState, result: EpochResult) -> None:
        problem = divergence(state, result)
        if problem is not None:
            saved = self.save()
            raise DivergenceError(self._divergence_message(result, problem, saved))
        if self.path is None:
            return
        self.latest = checkpoint.snapshot(state, self.settings)
        if state.epoch % self.every == 0:
            self.save()

    def save(self) -> checkpoint.Checkpoint | None:
        """Write the last good state unless it is on disk already; return it (None without a path)."""
        if self.latest is None:
            return None
        if self.saved_epoch != self.latest.epoch:
            checkpoint.save(self.path, self.latest)
            self.saved_epoch = self.latest.epoch
        return self.latest

    def _divergence_message(self, result: EpochResult, problem: str, saved) -> str:
        lower = f"{self.settings.get('lr', result.learning_rate) / 10:g}"
        message = (
            f"training diverged in epoch {result.epoch}: {problem} (learning rate {result.learning_rate:g}); "
            f"try a lower learning rate, e.g. --lr {lower}"
        )
        if saved is None:
            return message
        return (
            f"{message}; the last good state (epoch {saved.epoch}) is in {self.path}: "
            f"--resume {shlex.quote(str(self.path))} --lr {lower}"
        )
