"""Learning-rate schedules: pure functions from the step number (0, 1, 2, ...) to a rate.

``loop.fit`` asks the schedule for the rate of every step, so a run resumed at step ``s``
continues with exactly the rates it would have had.
"""

from __future__ import annotations

import math
from typing import Callable

Schedule = Callable[[int], float]

SCHEDULES = ("constant", "step", "cosine")

__all__ = ["SCHEDULES", "constant", "step_decay", "cosine", "with_warmup", "make"]


def constant(rate: float) -> Schedule:
    """The same ``rate`` at every step."""
    return lambda step: rate


def step_decay(rate: float, every: int, factor: float) -> Schedule:
    """``rate`` multiplied by ``factor`` after every ``every`` steps."""
    return lambda step: rate * factor ** (step // every)


def cosine(rate: float, total_steps: int, final_rate: float = 0.0) -> Schedule:
    """Half a cosine from ``rate`` at step 0 down to ``final_rate`` at ``total_steps`` (and after)."""

    def schedule(step: int) -> float:
        progress = min(step, total_steps) / total_steps
        return final_rate + 0.5 * (rate - final_rate) * (1.0 + math.cos(math.pi * progress))

    return schedule


def with_warmup(schedule: Schedule, warmup_steps: int) -> Schedule:
    """Ramp linearly up to ``schedule`` over the first ``warmup_steps`` steps, then follow it.

    Step ``s`` of the warm-up gets ``(s + 1) / warmup_steps`` of the rate the schedule gives at
    the end of the warm-up, so the first update is small but not zero.
    """
    if warmup_steps <= 0:
        return schedule

    def warmed(step: int) -> float:
        if step < warmup_steps:
            return schedule(warmup_steps) * (step + 1) / warmup_steps
        return schedule(step)

    return warmed


def make(
    name: str,
    rate: float,
    total_steps: int,
    warmup_steps: int = 0,
    step_every: int | None = None,
    step_factor: float = 0.1,
) -> Schedule:
    """The schedule called ``name`` over ``total_steps`` steps, after ``warmup_steps`` of warm-up.

    ``step`` decays by ``step_factor`` every ``step_every`` steps; ``cosine`` decays to zero at the
    last step, counting from the end of the warm-up.
    """
    if name == "constant":
        schedule = constant(rate)
    elif name == "step":
        schedule = step_decay(rate, step_every or max(1, total_steps // 3), step_factor)
    elif name == "cosine":
        decay = cosine(rate, max(1, total_steps - warmup_steps))
        schedule = lambda step: decay(max(0, step - warmup_steps))  # noqa: E731
    else:
        raise ValueError(f"unknown schedule {name!r}: choose one of {', '.join(SCHEDULES)}")
    return with_warmup(schedule, warmup_steps)
