"""One training run from a ``TrainConfig``: data, initial weights, optimizer, schedule, loop, test report.

``train`` is the whole assembly that the command line, the tests, the benchmarks and the
scikit-learn estimator share: it starts from fresh weights (or a checkpoint), keeps the run
recoverable (checkpoints, a stop on divergence, the last good state saved on Ctrl-C) and
returns the trained ``Model`` with its history and its report on the test set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from array_api_compat import array_namespace

from . import checkpoint as checkpoints
from . import guard, nn, resume, schedules
from .backend import device_name, fused_kernels, host_rng, namespace, standard_normal
from .config import ADAMW_WEIGHT_DECAY, DEFAULT, TrainConfig, recipe
from .data import Dataset, load
from .errors import UsageError
from .metrics import epoch_metrics, evaluate_report
from .model import Model
from .optim import Optimizer, adam, momentum, sgd
from .training import EpochResult, TrainState, batch_slices, fit, history_records
from .validation import EarlyStopping, carve
from .values import dtype_name


def make_optimizer(config: TrainConfig, xp=None) -> Optimizer:
    """The update rule that ``config`` names, with its momentum and weight decay.

    Given the namespace ``xp`` of the arrays it will update, momentum and Adam use the backend's
    single-pass kernel for them where there is one (``backend.fused_kernels``); same results.
    """
    name = config.optimizer
    if name == "sgd":
        return sgd()
    kernels = None if xp is None else fused_kernels(xp)
    if name in ("momentum", "nesterov"):
        return momentum(config.momentum, nesterov=name == "nesterov", kernel=kernels and kernels.momentum)
    decay = ADAMW_WEIGHT_DECAY if config.weight_decay is None else config.weight_decay
    return adam(weight_decay=decay if name == "adamw" else 0.0, kernel=kernels and kernels.adam)


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> schedules.Schedule:
    """The learning-rate schedule of ``config``; its warm-up and step intervals are given in epochs."""
    every = config.step_every
    return schedules.make(
        config.schedule,
        config.lr,
        total_steps=config.epochs * steps_per_epoch,
        warmup_steps=round(config.warmup * steps_per_epoch),
        step_every=None if every is None else every * steps_per_epoch,
        step_factor=config.step_factor,
    )


def initial_state(config: TrainConfig, layer_sizes: list[int], xp, optimizer: Optimizer) -> TrainState:
    """Fresh weights for ``layer_sizes`` drawn on the host from the config's seed, and the optimizer's zero state."""
    normal = standard_normal(host_rng(config.seed), xp, config.dtype)
    params = nn.init_params(layer_sizes, normal, config.init)
    return TrainState(params, optimizer.init(params))


def fit_config(
    config: TrainConfig, state: TrainState, X, Y, *, optimizer: Optimizer, epochs: int | None = None, on_epoch=None
) -> TrainState:
    """``training.fit`` from ``state`` with every setting of ``config``, until ``epochs`` (default ``config.epochs``)."""
    batch = None if config.full_batch else config.batch_size
    return fit(
        state,
        X,
        Y,
        optimizer=optimizer,
        learning_rate=make_schedule(config, len(batch_slices(X.shape[0], batch))),
        epochs=config.epochs if epochs is None else epochs,
        batch_size=batch,
        activation=config.activation,
        seed=config.seed,
        on_epoch=on_epoch,
        dropout=config.dropout,
        input_dropout=config.input_dropout,
        l2=config.l2,
        label_smoothing=config.label_smoothing,
        shift=config.shift,
    )


@dataclass
class TrainResult:
    """What a run gives back: the ``model``, its ``config``, per-epoch ``history``, the ``test`` report
    (``metrics.summarize``; None without a test set), the training time, and the epoch early stopping kept."""

    model: Model
    config: TrainConfig
    history: list[EpochResult]
    test: dict | None
    train_seconds: float
    best_epoch: int | None
    state: TrainState

    @property
    def test_accuracy(self) -> float | None:
        return None if self.test is None else self.test["accuracy"]

    @property
    def losses(self) -> list[float]:
        return [result.loss for result in self.history]


def train(
    config: TrainConfig | str | None = None,
    *,
    data: Dataset | None = None,
    device: str = "cpu",
    data_dir: Path | str | None = None,
    limit: int | None = None,
    on_epoch: Callable[[TrainState, EpochResult], bool | None] | None = None,
    measure_test: bool = False,
    checkpoint: Path | str | None = None,
    checkpoint_every: int = 1,
    resume_from: checkpoints.Checkpoint | Path | str | None = None,
) -> TrainResult:
    """Train a network as ``config`` (or the recipe of that name; by default ``DEFAULT``) says, and test it.

    ``data`` is a ``Dataset`` (``load_mnist``'s); without it MNIST (or ``data_dir``, first ``limit``
    images) is loaded onto ``device``. The network's input and output widths come from the data.
    ``on_epoch(state, result)`` is called after every epoch (add to ``result.metrics``; return True
    to stop). With ``config.val`` each epoch's metrics hold ``val_loss`` and ``val_accuracy``;
    ``measure_test`` adds ``test_accuracy``, ``test_loss`` and ``train_accuracy`` (on the first
    10,000 training images), for curves. ``train_seconds`` counts the epochs' own time, not these
    measurements or the callbacks. ``checkpoint`` keeps
    the run's state in that file every ``checkpoint_every`` epochs (and on an interrupt), and
    ``resume_from`` continues a checkpointed run: then only ``epochs`` and ``lr`` may differ from it.
    """
    config = recipe(config) if isinstance(config, str) else config
    saved = checkpoints.load(resume_from) if isinstance(resume_from, (str, Path)) else resume_from
    if saved is not None:
        config = resume.resumed_config(saved, config)
        data_dir, limit = resume.stored_data(saved) if data is None else (data_dir, limit)
    elif config is None:
        config = DEFAULT
    if data is None:
        data = load(namespace(device), config.dtype, data_dir, limit)
    xp = array_namespace(data.X_train)
    if dtype_name(data.X_train) != config.dtype:
        raise UsageError(f"the data is {data.X_train.dtype}, but the config asks for {config.dtype}")
    validation = None
    if config.val is not None:
        data, validation = carve(data, config.val, config.seed)
    n_train = data.X_train.shape[0]
    layer_sizes = [data.X_train.shape[1], *config.hidden, data.Y_train.shape[1]]
    batch = None if config.full_batch else config.batch_size
    optimizer = make_optimizer(config, xp)
    if saved is None:
        state = initial_state(config, layer_sizes, xp, optimizer)
    else:
        resume.check_steps(saved, n_train, batch)
        state = checkpoints.restore(saved, xp, optimizer, layer_sizes, config.dtype)
    stopper = None if validation is None else EarlyStopping(validation, config.activation, config.patience)
    settings = config.to_dict() | {"limit": data.limit, "data_dir": data.data_dir}
    kept = checkpoint if checkpoint is not None or saved is None else saved.source
    keeper = guard.Keeper(state, settings, None if kept is None else Path(kept), checkpoint_every)

    def each_epoch(state, result):
        stop = stopper is not None and stopper(state, result)
        if measure_test:
            result.metrics.update(epoch_metrics(state.params, data, config.activation))
        stop = bool(on_epoch is not None and on_epoch(state, result)) or stop
        keeper.on_epoch(state, result)  # last: it checks for divergence and checkpoints the finished epoch
        return stop

    try:
        with guard.float_warnings_off():
            state = fit_config(config, state, data.X_train, data.Y_train, optimizer=optimizer, on_epoch=each_epoch)
        keeper.save()
    except (guard.Interrupted, KeyboardInterrupt) as stop:
        stop.saved = keeper.save()  # the last finished epoch, for the caller to report
        stop.path = keeper.path
        raise
    train_seconds = sum(result.seconds for result in state.history[0 if saved is None else saved.epoch :])
    params = state.params
    best_epoch = None if stopper is None else stopper.best_epoch
    if stopper is not None and config.patience is not None and stopper.best_params is not None:
        params = stopper.best_params
    test = None
    if data.X_test is not None and data.X_test.shape[0]:
        test = evaluate_report(params, data.X_test, data.Y_test, data.y_test, config.activation)
    extra = {"history": history_records(state.history)}
    if test is not None:
        extra["test_accuracy"] = test["accuracy"]
    model = Model(params, config.activation, extra=extra, device=device_name(xp))
    return TrainResult(model, config, list(state.history), test, train_seconds, best_epoch, state)
