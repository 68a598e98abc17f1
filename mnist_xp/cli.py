"""What every command shares: the project's errors and Ctrl-C become one line and an exit code."""

from __future__ import annotations

import sys
from typing import Callable

from .errors import MnistXpError


def run_reporting_errors(action: Callable[[], int | None]) -> int:
    """Run ``action``; a project error prints ``error: ...`` and gives 1, Ctrl-C gives 130."""
    try:
        return action() or 0
    except MnistXpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
