"""Signals and floating-point warnings during training.

SIGINT and SIGTERM become an ``Interrupted`` exception during training, so that ``train`` can
write the last finished epoch before leaving; NumPy's overflow warnings are silenced, since a
divergence is reported in one line (``callbacks.DivergenceGuard``).
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
