"""The one training pipeline: ``train`` turns a ``TrainConfig`` and data into a tested ``Model``.

The commands, the tests, the benchmarks, the scikit-learn estimator and the tuner all make
their runs here: data, initial weights (or a checkpoint), optimizer, schedule, the loop of
``loop.fit``, and the test report. What differs between them comes in as callbacks
(``callbacks``): validation and early stopping, the checkpoint keeper, the divergence guard,
progress and pruning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from array_api_compat import array_namespace, is_numpy_namespace

from . import augment, compiled, guard, nn, resume, schedules
from . import checkpoint as checkpoints
from .backend import fused_kernels, host_rng, place_of, standard_normal
from .callbacks import (
    Callback,
    CheckpointKeeper,
    DivergenceGuard,
    EarlyStopping,
    EpochFunction,
    TestCurves,
    ValidationMetrics,
)
from .config import ADAMW_WEIGHT_DECAY, DEFAULT, SettingError, TrainConfig, recipe
from .data import Dataset, DataSource
from .errors import DivergenceError
from .holdout import carve
from .loop import EpochResult, TrainState, batch_slices, fit, history_records
from .metrics import evaluate_report
from .model import Model
from .optim import Optimizer, adam, momentum, sgd
from .values import dtype_name, is_whole_number


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


def initial_state(config: TrainConfig, layer_sizes: list[int], where, optimizer: Optimizer) -> TrainState:
    """Fresh weights for ``layer_sizes`` drawn on the host from the config's seed, and the optimizer's zero state.

    ``where`` is a namespace, or an array whose namespace and device the weights go to (``backend.to_device``).
    """
    normal = standard_normal(host_rng(config.seed), where, config.dtype)
    params = nn.init_params(layer_sizes, normal, config.init)
    return TrainState(params, optimizer.init(params))


def fit_config(
    config: TrainConfig,
    state: TrainState,
    X,
    Y,
    *,
    optimizer: Optimizer,
    epochs: int | None = None,
    on_epoch=None,
    compile: bool = False,
    threads: int = 1,
) -> TrainState:
    """``loop.fit`` from ``state`` with every setting of ``config``, until ``epochs`` (default ``config.epochs``)."""
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
        distortion=augment.from_config(config),
        compile=compile,
        threads=threads,
    )


@dataclass
class Run:
    """A run in progress, as callbacks see it: its settings, data and state.

    ``data`` is the training data (less the validation split), ``validation`` that split (None
    without one), ``resumed`` the checkpoint the run continues (None for a fresh run) and
    ``params`` the weights the trained model takes: the last epoch's unless a callback (early
    stopping) puts others there in ``on_train_end``.
    """

    config: TrainConfig
    data: Dataset
    validation: Dataset | None
    state: TrainState
    layer_sizes: list[int]
    resumed: checkpoints.Checkpoint | None = None
    params: list | None = None
    stopping: bool = False


@dataclass
class TrainResult:
    """What a run gives back: the ``model``, its ``config``, per-epoch ``history``, the ``test`` report
    (``metrics.summarize``; None without a test set), the training time, the epoch early stopping kept,
    the final ``state`` and the ``data`` it trained and was tested on (the validation split included)."""

    model: Model
    config: TrainConfig
    history: list[EpochResult]
    test: dict | None
    train_seconds: float
    best_epoch: int | None
    state: TrainState
    data: Dataset

    @property
    def test_accuracy(self) -> float | None:
        return None if self.test is None else self.test["accuracy"]

    @property
    def losses(self) -> list[float]:
        return [result.loss for result in self.history]


MAX_THREADS = 256
"""The most BLAS threads ``train`` takes for a batch's products."""


def check_threads(threads, xp) -> None:
    """Raise ``SettingError`` unless ``threads`` is a whole number from 1 to ``MAX_THREADS``, and 1 off NumPy."""
    if not is_whole_number(threads) or not 1 <= threads <= MAX_THREADS:
        raise SettingError("threads", f"must be a whole number from 1 to {MAX_THREADS}, not {threads!r}")
    if threads != 1 and not is_numpy_namespace(xp):
        raise SettingError("threads", "sets NumPy's BLAS threads; other backends use their own thread pools")


def train(
    config: TrainConfig | str | None = None,
    *,
    data: Dataset | DataSource | None = None,
    device: str = "cpu",
    backend: str | None = None,
    data_dir: Path | str | None = None,
    limit: int | None = None,
    callbacks: Sequence[Callback] = (),
    on_epoch: Callable[[TrainState, EpochResult], bool | None] | None = None,
    measure_test: bool = False,
    checkpoint: Path | str | None = None,
    checkpoint_every: int = 1,
    resume_from: checkpoints.Checkpoint | Path | str | None = None,
    validation: Dataset | None = None,
    state: TrainState | None = None,
    compile: bool | None = None,
    threads: int = 1,
) -> TrainResult:
    """Train a network as ``config`` (or the recipe of that name; by default ``DEFAULT``) says, and test it.

    This is the one way a run is made: the commands, ``MLPClassifier`` and the tuner all come here.
    ``data`` is a ``Dataset`` (``load_mnist``'s) or a ``DataSource`` to load; without it MNIST (or the
    IDX files in ``data_dir``, first ``limit`` training images; with ``resume_from``, the checkpoint's
    data) is loaded onto ``device`` of ``backend`` (numpy, cupy, torch or jax; None: CuPy for 'gpu',
    NumPy otherwise). The run goes on where its data is; the network's input and output widths come
    from the data.

    What varies between runs comes as ``callbacks`` (``callbacks.Callback``), called in order after
    the run's own: the validation metrics (with ``config.val``, or a given ``validation`` set), early
    stopping (with ``config.patience``), then the given ones, then the divergence guard and the
    checkpoint keeper. ``on_epoch(state, result)`` is a plain function called as a callback (add to
    ``result.metrics``; return True to stop). ``measure_test`` adds ``test_accuracy``, ``test_loss``
    and ``train_accuracy`` (on the first 10,000 training images) to every epoch, for curves.
    ``train_seconds`` counts the epochs' own time, not these measurements or the callbacks.

    ``checkpoint`` keeps the run's state in that file every ``checkpoint_every`` epochs (and on an
    interrupt or divergence), and ``resume_from`` continues a checkpointed run on the data it was made
    on: then only ``epochs`` and ``lr`` may differ from it. ``state`` starts from given weights and
    optimizer state instead of fresh ones (a warm start).

    ``compile`` runs the training compiled (``loop.fit``); None compiles where it pays
    (``compiled.wanted``: on JAX). ``threads`` BLAS threads share each NumPy batch's products (up to
    512 rows; larger batches run in blocks side by side): one, the default, gives the same weights
    on any number of cores and yields to a busy machine; more train faster on a quiet one, with
    weights that depend on the count.
    """
    config = recipe(config) if isinstance(config, str) else config
    resumed = None
    if resume_from is not None:
        resumed = resume.resolve(resume_from, device, backend)
        config = resume.resumed_config(resumed.checkpoint, config)
    config = DEFAULT if config is None else config
    if data is None and resumed is not None:
        data = resumed.source
    elif data is None:
        data = DataSource(None if data_dir is None else str(data_dir), limit, device, backend)
    if isinstance(data, DataSource):
        data = data.load(config.dtype)
    if dtype_name(data.X_train) != config.dtype:
        raise SettingError("dtype", f"the data is {dtype_name(data.X_train)}, but the config asks for {config.dtype}")
    if resumed is not None:
        resume.check_data(resumed.checkpoint, data)
    whole = data
    if config.val is not None:
        data, validation = carve(data, config.val, config.seed)
    xp = array_namespace(data.X_train)
    layer_sizes = [data.X_train.shape[1], *config.hidden, data.Y_train.shape[1]]
    optimizer = make_optimizer(config, xp)
    compile = compiled.wanted(compile, xp)
    check_threads(threads, xp)
    if resumed is not None:
        resume.check_steps(resumed.checkpoint, data.X_train.shape[0], None if config.full_batch else config.batch_size)
        state = checkpoints.restore(resumed.checkpoint, data.X_train, optimizer, layer_sizes, config.dtype)
    elif state is None:
        state = initial_state(config, layer_sizes, data.X_train, optimizer)
    run = Run(config, data, validation, state, layer_sizes, None if resumed is None else resumed.checkpoint)

    own: list[Callback] = []
    stopper = None
    if validation is not None:
        own.append(ValidationMetrics())
    if config.val is not None:
        stopper = EarlyStopping("val_loss", patience=config.patience, restore_best_weights=config.patience is not None)
        own.append(stopper)
    if measure_test:
        own.append(TestCurves(data))
    own += list(callbacks)
    if on_epoch is not None:
        own.append(EpochFunction(on_epoch))
    own.append(DivergenceGuard())
    kept = checkpoint if checkpoint is not None or resumed is None else resumed.checkpoint.source
    keeper = None
    if kept is not None:
        settings = config.to_dict() | {resume.DATA_KEY: _data_record(whole)}
        keeper = CheckpointKeeper(kept, settings, checkpoint_every)
        own.append(keeper)  # last: the history it keeps holds every callback's metrics

    def each_epoch(state, result):
        run.stopping = False
        for callback in own:
            run.stopping = bool(callback.on_epoch_end(run, result)) or run.stopping
        return run.stopping

    for callback in own:
        callback.on_train_begin(run)
    try:
        with guard.float_warnings_off():
            fit_config(
                config, state, data.X_train, data.Y_train, optimizer=optimizer, on_epoch=each_epoch, compile=compile,
                threads=threads,
            )  # fmt: skip
    except (guard.Interrupted, KeyboardInterrupt, DivergenceError) as stop:
        stop.saved = None if keeper is None else keeper.save()  # the last finished epoch, for the caller to report
        stop.path = None if keeper is None else keeper.path
        raise
    if keeper is not None:
        keeper.save()
    run.params = state.params
    for callback in own:
        callback.on_train_end(run)
    test = None
    if data.X_test is not None and data.X_test.shape[0]:
        test = evaluate_report(run.params, data.X_test, data.Y_test, data.y_test, config.activation)
    extra = {"history": history_records(state.history)}
    if test is not None:
        extra["test_accuracy"] = test["accuracy"]
    first = 0 if resumed is None else resumed.checkpoint.epoch
    train_seconds = sum(result.seconds for result in state.history[first:])
    backend_name, device_name = place_of(data.X_train)
    model = Model(run.params, config.activation, extra=extra, device=device_name, backend=backend_name)
    best_epoch = None if stopper is None else stopper.best_epoch
    return TrainResult(model, config, list(state.history), test, train_seconds, best_epoch, state, whole)


def _data_record(data: Dataset) -> dict:
    """The data's record for a checkpoint: where it came from and its fingerprint (none for arrays made elsewhere)."""
    return (data.source or DataSource()).record(data.fingerprint)
