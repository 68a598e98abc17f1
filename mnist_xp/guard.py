"""Signals and floating-point warnings during training.

SIGINT and SIGTERM become an ``Interrupted`` exception during training, so that ``train`` can
write the last finished epoch before leaving; code that a stop must not cut in two (a progress
bar's paired lock calls) holds the stop until it is done. NumPy's overflow warnings are
silenced, since a divergence is reported in one line (``callbacks.DivergenceGuard``).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

import numpy as np

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


class Interrupts:
    """The stop signals of an ``interrupts_raise`` block, and the ``held`` parts of it where they wait."""

    def __init__(self):
        self.holding = 0
        self.pending: int | None = None

    def handler(self, signum, frame):
        if self.holding:
            self.pending = self.pending or signum
            return
        raise Interrupted(signum)

    @contextmanager
    def held(self):
        """A block that a stop signal does not cut: one that arrives inside raises ``Interrupted`` as the block ends.

        A signal handler runs between any two bytecodes, so the exception it raises can land
        half-way through taking two locks inside a ``try`` whose ``finally`` releases both: tqdm's
        ``write`` then releases a lock it never took, and a RuntimeError replaces the stop.
        """
        self.holding += 1
        try:
            yield
        finally:
            self.holding -= 1
            if not self.holding and self.pending is not None:
                signum, self.pending = self.pending, None
                raise Interrupted(signum)


@contextmanager
def interrupts_raise(interrupts: Interrupts | None = None):
    """Within the block, SIGINT and SIGTERM raise ``Interrupted``, except in ``interrupts.held()`` blocks, where
    they wait for the block's end; yields ``interrupts`` (a new ``Interrupts`` if none is given).

    Main thread only; elsewhere the signals keep their handlers and ``held`` does nothing.
    """
    interrupts = Interrupts() if interrupts is None else interrupts
    if threading.current_thread() is not threading.main_thread():
        yield interrupts
        return
    previous = {number: signal.signal(number, interrupts.handler) for number in STOP_SIGNALS}
    try:
        yield interrupts
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


def float_warnings_off():
    """Silence NumPy's overflow and invalid-value warnings: ``Keeper`` reports a divergence in one line instead."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")
