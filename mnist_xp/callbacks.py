"""What varies between runs, handed to ``train`` as callbacks in the Keras style.

``train`` calls each callback's ``on_train_begin(run)`` once the run is set up,
``on_epoch_end(run, result)`` after every epoch (return True to stop after it) and
``on_train_end(run)`` once the epochs are done. ``run`` is the ``pipeline.Run`` in progress:
its ``config``, training ``data``, ``validation`` split, ``state`` and, at the end, the
``params`` the trained model will take. Callbacks run in the order given, so one that asks
for a metric comes after the one that records it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

from array_api_compat import array_namespace

from . import checkpoint
from .errors import DivergenceError
from .loop import EpochResult
from .metrics import accuracy, epoch_metrics, predictions_and_loss


class Callback:
    """A callback that does nothing: subclass it and override what you need."""

    def on_train_begin(self, run) -> None:
        pass

    def on_epoch_end(self, run, result: EpochResult) -> bool | None:
        return None

    def on_train_end(self, run) -> None:
        pass


class EpochFunction(Callback):
    """A plain function ``fn(state, result)`` called after every epoch (True stops the run)."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def on_epoch_end(self, run, result):
        return self.fn(run.state, result)


class ValidationMetrics(Callback):
    """Records ``val_loss`` and ``val_accuracy`` on the run's validation split after every epoch."""

    def on_epoch_end(self, run, result):
        val = run.validation
        predicted, loss = predictions_and_loss(run.state.params, val.X_test, val.Y_test, run.config.activation)
        result.metrics["val_loss"] = loss
        result.metrics["val_accuracy"] = accuracy(predicted, val.y_test)


class TestCurves(Callback):
    """Records ``test_accuracy``, ``test_loss`` and ``train_accuracy`` after every epoch, for learning curves."""

    def __init__(self, data):
        self.data = data

    def on_epoch_end(self, run, result):
        result.metrics.update(epoch_metrics(run.state.params, self.data, run.config.activation))


class EarlyStopping(Callback):
    """Stops once ``monitor`` has not improved on its best by more than ``min_delta`` for ``patience`` epochs.

    ``monitor`` names a metric of the epoch (``val_loss``, ``val_accuracy``, or ``loss`` for the training
    loss); ``mode`` says whether lower ('min') or higher ('max') is better. With ``patience`` None it never
    stops, but still tracks the best epoch. With ``restore_best_weights`` the run ends with the weights of
    the epoch that scored best, as a copy taken then.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        mode: str = "min",
        patience: int | None = None,
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
    ):
        if mode not in ("min", "max"):
            raise ValueError(f"mode {mode!r} is not 'min' or 'max'")
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best_weights = restore_best_weights
        self.best = -math.inf
        self.best_epoch: int | None = None
        self.best_params = None
        self.scores: list[float] = []
        self.waited = 0
        self.stopped = False

    def on_epoch_end(self, run, result):
        value = result.loss if self.monitor == "loss" else result.metrics[self.monitor]
        self.scores.append(value)
        score = self.sign * value
        self.waited = 0 if score > self.best + self.min_delta else self.waited + 1
        if score > self.best:
            self.best, self.best_epoch = score, result.epoch
            if self.restore_best_weights:
                xp = array_namespace(run.state.params[0][0])
                self.best_params = [(xp.asarray(W, copy=True), xp.asarray(b, copy=True)) for W, b in run.state.params]
        self.stopped = self.patience is not None and self.waited >= self.patience
        return self.stopped

    @property
    def best_value(self) -> float:
        """The best value of ``monitor`` seen so far."""
        return self.sign * self.best

    def on_train_end(self, run):
        if self.best_params is not None:
            run.params = self.best_params


class DivergenceGuard(Callback):
    """Stops a run whose loss or parameters went NaN or infinite, with a ``DivergenceError`` saying which."""

    def on_epoch_end(self, run, result):
        problem = divergence(run.state.params, result.loss)
        if problem is not None:
            raise DivergenceError(result.epoch, problem, result.learning_rate, run.config.lr)


def divergence(params, loss: float) -> str | None:
    """What went non-finite in an epoch, or None if the loss and every parameter are finite."""
    if not math.isfinite(loss):
        return f"the loss is {loss}"
    for i, layer in enumerate(params):
        for name, array in zip(("weights", "biases"), layer):
            xp = array_namespace(array)
            if not bool(xp.all(xp.isfinite(array))):
                return f"layer {i}'s {name} hold NaN or infinite values"
    return None


class CheckpointKeeper(Callback):
    """Keeps a host copy of the run's last finished epoch and writes it to ``path`` every ``every`` epochs.

    ``settings`` (JSON: numbers, text, lists, None) are saved with each checkpoint. ``save`` writes the
    last finished epoch unless it is on disk already: ``train`` calls it at the end, on an interrupt and
    on divergence, so that nothing done is lost.
    """

    def __init__(self, path: Path | str, settings: dict, every: int = 1):
        self.path = Path(path)
        self.settings = settings
        self.every = every
        self.latest: checkpoint.Checkpoint | None = None
        self.saved_epoch: int | None = None

    def on_train_begin(self, run):
        self.latest = checkpoint.snapshot(run.state, self.settings)

    def on_epoch_end(self, run, result):
        self.latest = checkpoint.snapshot(run.state, self.settings)
        if run.state.epoch % self.every == 0:
            self.save()

    def save(self) -> checkpoint.Checkpoint | None:
        """Write the last finished epoch unless it is on disk already; return it (None before the run began)."""
        if self.latest is None:
            return None
        if self.saved_epoch != self.latest.epoch:
            checkpoint.save(self.path, self.latest)
            self.saved_epoch = self.latest.epoch
        return self.latest
