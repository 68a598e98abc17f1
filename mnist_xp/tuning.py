"""Hyper-parameter search over ``TrainConfig`` with Optuna: search spaces, the objective, studies and workers.

A study samples some ``TrainConfig`` fields with TPE and maximises the final validation accuracy
on a split carved from the training set (the test set is never looked at), optionally within a
budget of training seconds per trial. Every trial trains with the study's seed, so it re-runs
exactly from the settings it stores. Its trials live in an Optuna storage (an SQLite file or a
PostgreSQL database), which is also where workers meet: any number of them, on one machine or
many, take trials from it until the study holds the number of finished trials asked for.

A search space is a JSON (or TOML) object from setting names to one of::

    {"low": 0.01, "high": 1.0, "log": true}   a range (whole numbers for whole-number settings; or "step")
    {"choices": ["sgd", "nesterov"]}           a list of choices
    {"value": [128]}, or just [128]            a fixed setting

Optuna is imported on first use, so that the rest of the package works without it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import multiprocessing
import os
import signal
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from .callbacks import Callback
from .config import FIELDS, TrainConfig, complaint_about
from .data import Dataset, DataSource
from .errors import DivergenceError, MnistXpError, SettingError, UsageError, first_line
from .holdout import split_indices
from .pipeline import train
from .values import dtype_name

TUNE_INSTALL_HINT = "install it with: pip install 'mnist-xp[tune]'"

SPACES = {
    # The fast recipe's network, 784-128-10, trained for a few epochs.
    "small": {
        "hidden": {"value": [128]},
        "optimizer": {"choices": ["sgd", "nesterov", "adam"]},
        "lr": {"low": 0.001, "high": 1.0, "log": True},
        "momentum": {"low": 0.8, "high": 0.99},
        "epochs": {"low": 1, "high": 6},
        "batch_size": {"choices": [64, 128, 256, 512]},
        "schedule": {"choices": ["constant", "cosine"]},
        "warmup": {"low": 0.0, "high": 1.0},
        "label_smoothing": {"low": 0.0, "high": 0.2},
    },
    # A wide network, 784-1024-1024-10, with the regularisation a long run wants.
    "wide": {
        "hidden": {"value": [1024, 1024]},
        "optimizer": {"choices": ["nesterov", "adam"]},
        "lr": {"low": 0.001, "high": 0.5, "log": True},
        "momentum": {"low": 0.8, "high": 0.99},
        "epochs": {"low": 5, "high": 30},
        "batch_size": {"choices": [64, 128, 256]},
        "schedule": {"value": "cosine"},
        "warmup": {"low": 0.0, "high": 2.0},
        "dropout": {"low": 0.0, "high": 0.6},
        "label_smoothing": {"low": 0.0, "high": 0.2},
        "shift": {"choices": [0, 1, 2]},
    },
}

STUDY_SETTINGS = ("val", "seed")
"""Settings a study fixes for all its trials (``StudySpec``'s own), so that trials compare on one split."""

ONLY_WHEN = {
    "momentum": ("optimizer", ("momentum", "nesterov")),
    "weight_decay": ("optimizer", ("adamw",)),
    "step_every": ("schedule", ("step",)),
    "step_factor": ("schedule", ("step",)),
}
"""Settings that mean something only for some values of another: sampled only then, so they do not blur the search."""

STATES_HOLDING_A_PLACE = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")
MAX_RETRIES = 3
"""How often a trial whose worker died is run again before it is given up."""
GRACE_BEATS = 3
"""A running trial silent for this many heartbeats is taken for dead."""
WORKER = "worker"
"""The user attribute in which a worker signs a trial as it begins it (its host and process)."""
POLL_SECONDS = 1.0
SCHEMA_ATTEMPTS = 5


class SpaceError(SettingError):
    """The search space (the parameter ``space``) is not readable, names an unknown setting, or holds a range or
    choice that ``TrainConfig`` refuses."""

    def __init__(self, complaint: str, mentions: tuple[str, ...] = ()):
        super().__init__("space", complaint, mentions)


def require_optuna():
    """The optuna module, or a one-line error naming the extra that installs it."""
    try:
        import optuna
    except ImportError:
        raise MnistXpError(f"tuning needs optuna, which is not installed; {TUNE_INSTALL_HINT}") from None
    return optuna


# ---------------------------------------------------------------- search spaces


@dataclass(frozen=True)
class Dimension:
    """One searched (or fixed) setting: a range ``low``..``high``, a tuple of ``choices``, or a fixed ``value``."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None
    value: object = None

    @property
    def fixed(self) -> bool:
        return self.low is None and self.choices is None

    def values(self) -> tuple:
        """The values this dimension can take, where they are few (for the checks of ``ONLY_WHEN``)."""
        return (self.value,) if self.fixed else self.choices or ()

    def suggest(self, trial):
        """This setting's value for ``trial``: Optuna samples it unless it is fixed."""
        if self.fixed:
            return self.value
        if self.choices is not None:
            labels = [_label(choice) for choice in self.choices]
            return self.choices[labels.index(trial.suggest_categorical(self.name, labels))]
        if FIELDS[self.name].metadata["kind"].type is int:
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)

    def to_json(self):
        """The dimension as a space file writes it."""
        if self.fixed:
            return {"value": _plain(self.value)}
        if self.choices is not None:
            return {"choices": [_plain(choice) for choice in self.choices]}
        return (
            {"low": self.low, "high": self.high}
            | ({"log": True} if self.log else {})
            | ({} if self.step is None else {"step": self.step})
        )


def _label(choice):
    """A choice as Optuna can store it: a list of layer sizes becomes the text ``256,128``."""
    return ",".join(map(str, choice)) if isinstance(choice, tuple) else choice


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


class Space:
    """A parsed, checked search space: ``dimensions`` by setting name, in ``TrainConfig``'s field order."""

    def __init__(self, dimensions: dict[str, Dimension]):
        self.dimensions = {name: dimensions[name] for name in FIELDS if name in dimensions}

    @property
    def searched(self) -> list[str]:
        return [name for name, dimension in self.dimensions.items() if not dimension.fixed]

    def applies(self, name: str, settings: dict) -> bool:
        """Whether setting ``name`` means something given the other ``settings`` chosen so far."""
        if name not in ONLY_WHEN:
            return True
        other, wanted = ONLY_WHEN[name]
        return settings[other] in wanted

    def sample(self, trial, base: TrainConfig) -> TrainConfig:
        """``base`` with this space's settings chosen for ``trial`` (each only where it applies)."""
        settings = {name: getattr(base, name) for name in FIELDS}
        for name, dimension in self.dimensions.items():
            if self.applies(name, settings):
                settings[name] = dimension.suggest(trial)
        return TrainConfig(**settings)

    def to_json(self) -> dict:
        return {name: dimension.to_json() for name, dimension in self.dimensions.items()}


def parse_space(spec) -> Space:
    """Check a search space (as ``load_space`` reads it) against ``TrainConfig``'s fields and checks."""
    if not isinstance(spec, dict):
        raise SpaceError("a search space is an object from setting names to ranges, choices or values")
    dimensions = {}
    for name, entry in spec.items():
        if name not in FIELDS:
            raise SpaceError(f"{name!r} is not a training setting (they are: {', '.join(FIELDS)})")
        if name in STUDY_SETTINGS:
            raise SpaceError(
                f"{name} is the same for every trial of a study: set it as the study's {name}", mentions=(name,)
            )
        dimensions[name] = _dimension(name, entry)
    space = Space(dimensions)
    for name in space.dimensions:
        if name in ONLY_WHEN:
            other, wanted = ONLY_WHEN[name]
            possible = space.dimensions[other].values() if other in space.dimensions else (FIELDS[other].default,)
            if not set(possible) & set(wanted):
                raise SpaceError(
                    f"{name} applies only when {other} is {' or '.join(wanted)}, which the space never picks"
                )
    if not space.searched:
        raise SpaceError("nothing to search: give at least one setting a range or choices")
    return space


def _dimension(name: str, entry) -> Dimension:
    """One entry of a space file, checked with ``complaint_about`` as ``TrainConfig`` checks the setting itself."""
    kind = FIELDS[name].metadata["kind"]

    def check(value, what: str):
        value = tuple(value) if kind.items and isinstance(value, list) else value
        complaint = complaint_about(kind, value)
        if complaint is not None:
            raise SpaceError(f"{name}: {what} {value!r} {complaint}")
        return value

    if not isinstance(entry, dict):
        return Dimension(name, value=check(entry, "value"))
    keys = set(entry)
    if keys == {"value"}:
        return Dimension(name, value=check(entry["value"], "value"))
    if keys == {"choices"}:
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{name}: choices must be a non-empty list")
        checked = tuple(check(choice, "choice") for choice in choices)
        if len({_label(choice) for choice in checked}) != len(checked):
            raise SpaceError(f"{name}: a choice is listed twice")
        return Dimension(name, choices=checked)
    if "low" in keys and "high" in keys and keys <= {"low", "high", "log", "step"}:
        return _range(name, entry, kind, check)
    raise SpaceError(
        f'{name}: expected {{"low": ..., "high": ...}} (with "log" or "step"), {{"choices": [...]}} '
        f'or {{"value": ...}}, not keys {", ".join(sorted(keys))}'
    )


def _range(name: str, entry: dict, kind, check) -> Dimension:
    if kind.type is str or kind.items:
        raise SpaceError(f"{name} takes choices, not a range")
    low, high = check(entry["low"], "low end"), check(entry["high"], "high end")
    if low is None or high is None or kind.text_choice is not None and kind.text_choice in (low, high):
        raise SpaceError(f"{name}: a range's ends must be numbers")
    if not low < high:
        raise SpaceError(f'{name}: low {low!r} must be below high {high!r} (for one value, give {{"value": ...}})')
    log, step = entry.get("log", False), entry.get("step")
    if not isinstance(log, bool):
        raise SpaceError(f"{name}: log must be true or false")
    if log and low <= 0:
        raise SpaceError(f"{name}: a log range needs a low end above 0")
    if step is not None:
        whole = kind.type is int
        if isinstance(step, bool) or not isinstance(step, int if whole else (int, float)) or not 0 < step < math.inf:
            raise SpaceError(f"{name}: step must be a positive {'whole number' if whole else 'number'}")
        if log:
            raise SpaceError(f"{name}: a range has log or step, not both")
    return Dimension(name, low=low, high=high, log=log, step=step)


def load_space(source: str) -> tuple[str, dict]:
    """A built-in space by name (``SPACES``), or a JSON (or, with Python 3.11+, TOML) space file; (label, spec)."""
    if source in SPACES:
        return source, SPACES[source]
    path = Path(source)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpaceError(
            f"{source}: not a built-in space ({', '.join(SPACES)}) nor a readable space file ({exc.strerror or exc})"
        ) from None
    if path.suffix == ".toml":
        try:
            import tomllib
        except ImportError:
            raise SpaceError(f"{source}: TOML space files need Python 3.11 or later; write it as JSON") from None
        try:
            return str(path), tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpaceError(f"{source}: not valid TOML ({exc})") from None
    try:
        return str(path), json.loads(text)
    except ValueError as exc:
        raise SpaceError(f"{source}: not valid JSON ({exc})") from None


def base_config(val: int, seed: int) -> TrainConfig:
    """The settings every trial starts from: the defaults, with the study's validation split and seed."""
    return replace(TrainConfig(), val=val, seed=seed)


def check_data(spec: StudySpec, data: Dataset) -> None:
    """Refuse ``data`` when the study's validation split cannot be carved from it (a ``SettingError`` on ``val``)."""
    split_indices(spec.seed, data.X_train.shape[0], spec.val)


# ---------------------------------------------------------------- studies


@dataclass(frozen=True)
class StudySpec:
    """Everything a worker needs to join a study, in a form that pickles to another process."""

    name: str
    storage: str
    space: dict
    trials: int
    val: int
    seed: int = 0
    budget: float | None = None
    prune: bool = True
    heartbeat: int = 10
    data: DataSource = DataSource()

    @functools.cached_property
    def fingerprint(self) -> str:
        """The SHA-256 of the study's data (``DataSource.fingerprint``), computed once."""
        return self.data.fingerprint()

    def settings(self) -> dict:
        """What a study must keep from its first run on, so that all its trials compare; stored with it."""
        return {
            "space": self.space, "val": self.val, "seed": self.seed, "budget": self.budget,
            "data": self.data.record(self.fingerprint),
        }

    def base(self) -> TrainConfig:
        return base_config(self.val, self.seed)


def shown_url(url: str) -> str:
    """A storage URL with any password hidden, for messages."""
    try:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        return make_url(url).render_as_string(hide_password=True)
    except (ImportError, ArgumentError, ValueError):  # not a URL SQLAlchemy can parse: it holds no usable password
        return url


def open_storage(url: str, heartbeat: int = 10):
    """An Optuna RDB storage at ``url`` whose running trials beat every ``heartbeat`` seconds.

    A trial whose heartbeat stops for three intervals (its worker died) is failed by the next
    worker that asks for a trial, and queued again with the same settings, up to ``MAX_RETRIES``
    times. A storage that cannot be opened is a one-line ``MnistXpError``.
    """
    optuna = require_optuna()
    import sqlalchemy.exc

    if url.startswith("sqlite"):
        engine = {"connect_args": {"timeout": 60}}  # workers wait their turn to write instead of failing
    elif url.startswith("postgresql"):
        engine = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    else:
        engine = {}
    callback_arg = (
        "heartbeat_stale_trial_callback"
        if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback")
        else "failed_trial_callback"
    )
    try:
        for attempt in range(SCHEMA_ATTEMPTS):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(
                        _with_driver(url),
                        engine_kwargs=engine,
                        heartbeat_interval=heartbeat,
                        grace_period=GRACE_BEATS * heartbeat,
                        **{callback_arg: queue_again},
                    )
            except sqlalchemy.exc.SQLAlchemyError as exc:
                # Two processes met a new database at once and both began to create its tables: the
                # slower one finds them made by the other when it tries again.
                if attempt == SCHEMA_ATTEMPTS - 1 or not _creating_twice(exc):
                    raise
                time.sleep(POLL_SECONDS)
    except sqlalchemy.exc.ArgumentError as exc:
        raise SettingError(
            "storage", f"{shown_url(url)} is not a storage URL Optuna can use ({_first_line(exc)})"
        ) from None
    except ImportError as exc:
        raise MnistXpError(
            f"{shown_url(url)}: the database driver is missing ({_first_line(exc.__cause__ or exc)}); "
            f"{TUNE_INSTALL_HINT}"
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError, OSError) as exc:
        raise MnistXpError(f"cannot open the storage {shown_url(url)}: {_first_line(exc)}") from None


def _creating_twice(exc: Exception) -> bool:
    """Whether ``exc`` says that another process created the same tables or rows first."""
    text = str(exc).lower()
    return any(words in text for words in ("already exists", "unique constraint", "duplicate key"))


def _with_driver(url: str) -> str:
    """``url`` naming psycopg2 when it says plain ``postgresql://``, for which SQLAlchemy 2.1 wants psycopg 3.

    The tune extra installs psycopg2; a URL that names its driver (``postgresql+psycopg://``) is kept.
    """
    import importlib.util

    plain = url.startswith("postgresql://")
    if plain and importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def _first_line(exc: BaseException) -> str:
    """SQLAlchemy wraps the driver's error: its first line says more than the wrapper's."""
    return first_line(getattr(exc, "orig", None) or exc)


def queue_again(study, trial) -> None:
    """Queue a failed ``trial`` (a ``FrozenTrial``) to run again with its settings, up to ``MAX_RETRIES`` times.

    The retry carries the trial's attributes but not its worker's signature, which its own worker
    writes when it begins it.
    """
    optuna = require_optuna()
    retry_class = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    retry_class = retry_class or optuna.storages.RetryFailedTrialCallback
    trial = copy.deepcopy(trial)
    trial.user_attrs.pop(WORKER, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry_class(max_retry=MAX_RETRIES)(study, trial)


def fail_unbegun_trials(study, grace: float) -> None:
    """Fail, and queue again, the running trials that no worker began within ``grace`` seconds of taking them.

    Optuna fails a running trial whose heartbeat stops, but never one that has not beaten yet: a
    worker killed after taking a trial and before its first heartbeat would leave the trial
    running for ever, holding a place of the study. A worker signs a trial (``WORKER``) as it
    begins it, after starting its heartbeats. The times compared are the workers' clocks.
    """
    optuna = require_optuna()
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    now = datetime.now()
    for frozen in running:
        if WORKER in frozen.user_attrs or (now - frozen.datetime_start).total_seconds() < grace:
            continue
        try:
            study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # begun, finished or failed meanwhile
        queue_again(study, frozen)


def open_study(spec: StudySpec, storage=None):
    """Create the study or join it, after checking that it was made with the same space and data options.

    Each worker gets its own TPE sampler (multivariate, with a constant liar for the trials others
    are running) and a median pruner; neither is stored, only the trials are.
    """
    optuna = require_optuna()
    storage = storage if storage is not None else open_storage(spec.storage, spec.heartbeat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5) if spec.prune else optuna.pruners.NopPruner()
    study = optuna.create_study(
        storage=storage, study_name=spec.name, direction="maximize", sampler=sampler, pruner=pruner, load_if_exists=True
    )
    kept = study.user_attrs.get("mnist_xp")
    if kept is None:
        study.set_user_attr("mnist_xp", spec.settings())
    else:
        _check_same(spec, kept)
    return study


def _check_same(spec: StudySpec, kept: dict) -> None:
    """A study's trials compare only when they share space, split, seed, budget and data: refuse a different one."""
    settings = spec.settings()
    for key in ("space", "val", "seed", "budget"):
        if kept.get(key) != settings[key]:
            raise StudyMismatch(spec.name, key, kept.get(key))
    data = kept.get("data") or {"limit": kept.get("limit"), "sha256": None}
    if data.get("limit") != spec.data.limit:
        raise StudyMismatch(spec.name, "limit", data.get("limit"))
    if data.get("sha256") not in (None, spec.fingerprint):
        raise StudyMismatch(spec.name, "data_dir", data.get("folder") or "the bundled MNIST")


class StudyMismatch(UsageError):
    """A study is continued with settings or data other than those it was started with.

    ``setting`` names what differs (a ``TrainConfig`` field, ``space``, ``budget``, ``limit`` or
    ``data_dir``) and ``kept`` is the study's own value.
    """

    def __init__(self, study: str, setting: str, kept):
        what = "another search space" if setting == "space" else f"{setting} {kept}"
        if setting == "data_dir":
            what = f"other data ({kept})"
        super().__init__(f"study {study!r} was started with {what}: continue it with the same, or start another study")
        self.study, self.setting, self.kept = study, setting, kept


def tally(study) -> dict[str, int]:
    """How many trials of the study are in each state, by the state's name."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def finished(counts: dict[str, int]) -> int:
    """Trials that count towards a study's total: completed and pruned ones."""
    return counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)


# ---------------------------------------------------------------- the objective and the workers


class Surplus(Exception):
    """A trial started after the study's last place was taken (two workers asked at once): dropped, not counted."""


class Objective:
    """Train one trial's config on the validation split and return its final validation accuracy.

    Each epoch's accuracy is reported to Optuna, which may prune the trial; with a ``budget`` a
    trial whose training time would pass it is pruned as soon as that is foreseeable. A diverged
    trial is pruned too. The trial's settings, worker and training time are kept as its user attributes.
    """

    def __init__(self, spec: StudySpec, data: Dataset | None = None):
        self.spec = spec
        self.space = parse_space(spec.space)
        self.base = spec.base()
        self.datasets = {} if data is None else {dtype_name(data.X_train): _without_test(data)}
        self.taken_over = False

    def data(self, dtype: str) -> Dataset:
        """The training data in ``dtype``, loaded once per worker, with the test set left out."""
        if dtype not in self.datasets:
            spec = self.spec
            self.datasets[dtype] = _without_test(spec.data.load(dtype))
        return self.datasets[dtype]

    def __call__(self, trial) -> float:
        optuna = require_optuna()
        try:
            return self.run(trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            self.taken_over = True  # another worker took this trial for dead (its heartbeat was late) and retries it
            raise

    def run(self, trial) -> float:
        optuna = require_optuna()
        trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")  # begun: see fail_unbegun_trials
        if not _has_place(trial, self.spec.trials):
            trial.set_user_attr("surplus", True)
            trial.study.stop()
            raise Surplus(f"the study already has {self.spec.trials} trials")
        config = self.space.sample(trial, self.base)
        trial.set_user_attr("config", config.to_dict())
        try:
            result = train(config, data=self.data(config.dtype), callbacks=[PruningReport(trial, self.spec.budget)])
        except DivergenceError:
            trial.set_user_attr("stopped", "diverged")
            raise optuna.TrialPruned() from None
        trial.set_user_attr("train_seconds", result.train_seconds)
        return validation_accuracy(result)


class PruningReport(Callback):
    """Reports each epoch's validation accuracy to the trial, and prunes it when Optuna says so or when
    its training time would pass ``budget`` seconds (as soon as that is foreseeable)."""

    def __init__(self, trial, budget: float | None):
        self.trial = trial
        self.budget = budget

    def on_epoch_end(self, run, result):
        optuna = require_optuna()
        epochs = run.config.epochs
        self.trial.report(result.metrics["val_accuracy"], result.epoch)
        pace = sum(epoch.seconds for epoch in run.state.history) / result.epoch
        if self.budget is not None and pace * epochs > self.budget:
            self.trial.set_user_attr("stopped", f"over the budget: {epochs} epochs of {pace:.2f} s")
            raise optuna.TrialPruned()
        if result.epoch < epochs and self.trial.should_prune():
            self.trial.set_user_attr("stopped", f"pruned after epoch {result.epoch}")
            raise optuna.TrialPruned()


def validation_accuracy(result) -> float:
    """A run's validation accuracy: its last epoch's, or with early stopping that of the epoch it kept."""
    epoch = result.best_epoch if result.config.patience is not None and result.best_epoch else len(result.history)
    return result.history[epoch - 1].metrics["val_accuracy"]


def _without_test(data: Dataset) -> Dataset:
    return replace(data, X_test=None, Y_test=None, y_test=None)


def _has_place(trial, places: int) -> bool:
    """Whether ``trial`` is among the study's first ``places`` trials that are not failed.

    A retried trial stands in the place of the trial it repeats, so that a retry always runs and
    a worker that dies never makes the study run one trial too many. A second retry of the same
    failed trial has none: two workers that fail a stale trial at once on SQLite both queue it.
    """
    every = trial.study.get_trials(deepcopy=False)
    me = next(frozen for frozen in every if frozen.number == trial.number)
    history = me.system_attrs.get("retry_history")
    if history and any(
        other.number < me.number and other.system_attrs.get("retry_history") == history
        and not other.user_attrs.get("surplus")
        for other in every
    ):  # fmt: skip
        return False

    def place(frozen):
        return frozen.system_attrs.get("failed_trial", frozen.number), frozen.number

    holding = [frozen for frozen in every if frozen.state.name in STATES_HOLDING_A_PLACE]
    return sum(place(frozen) < place(me) for frozen in holding) < places


def work(spec: StudySpec, data: Dataset | None = None, on_trial: Callable | None = None, study=None) -> None:
    """Run trials of the study until it holds ``spec.trials`` finished ones, then return.

    While the remaining places are all taken by trials other workers are running, wait: for them
    to finish, or for their heartbeats to go stale (for a trial never begun, its grace to pass),
    and then run their retries.
    """
    optuna = require_optuna()
    study = study if study is not None else open_study(spec)
    objective = Objective(spec, data)
    callbacks = [lambda study, frozen: on_trial(frozen)] if on_trial is not None else []
    while True:
        counts = tally(study)
        if finished(counts) >= spec.trials:
            return
        taken = sum(counts.get(state, 0) for state in STATES_HOLDING_A_PLACE)
        if taken >= spec.trials and not counts.get("WAITING"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            fail_unbegun_trials(study, GRACE_BEATS * spec.heartbeat)
            time.sleep(POLL_SECONDS)
            continue
        try:
            study.optimize(objective, n_trials=1, catch=(Surplus,), callbacks=callbacks)
        except ValueError:
            if not objective.taken_over:
                raise
            objective.taken_over = False


def _worker_process(spec: StudySpec, on_trial: Callable | None, jobs: int, setup: Callable | None) -> None:
    """A worker in a process of its own: ``setup()`` first, then trials; errors as one line, exit 1; Ctrl-C
    quietly, exit 130."""
    import sys

    if setup is not None:
        setup()
    try:
        with blas_share(jobs):
            work(spec, on_trial=on_trial)
    except MnistXpError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def blas_share(jobs: int):
    """With ``jobs`` workers on this machine, each one's matrix products use its share of the cores.

    OpenBLAS threads that outnumber the cores wait for each other in busy loops: two workers of two
    threads each on two cores train many times slower than two of one thread each.
    """
    if jobs == 1:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=max(1, (os.cpu_count() or 1) // jobs), user_api="blas")


def run_study(
    spec: StudySpec,
    jobs: int = 1,
    data: Dataset | None = None,
    on_trial: Callable | None = None,
    study=None,
    setup: Callable | None = None,
) -> list[int]:
    """Work on the study in this process and in ``jobs - 1`` others; the other workers' exit codes.

    The other processes are started fresh (spawned), each with its own storage connection and its
    own copy of the data; each calls ``setup()`` first, if given (a module-level function, as
    ``on_trial`` is, so that it reaches them), to set up what this process set up for itself,
    such as Optuna's log level.
    """
    context = multiprocessing.get_context("spawn")
    others = [
        context.Process(target=_worker_process, args=(spec, on_trial, jobs, setup), daemon=True)
        for _ in range(jobs - 1)
    ]
    for process in others:
        process.start()
    try:
        with blas_share(jobs):
            work(spec, data, on_trial, study)
    except Exception:
        for process in others:  # their trials end as failed, freeing their places
            if process.is_alive():
                os.kill(process.pid, signal.SIGINT)
        raise
    finally:
        for process in others:
            process.join()
    return [process.exitcode for process in others]


# ---------------------------------------------------------------- results


def best_config(study) -> tuple[object, TrainConfig]:
    """The study's best completed trial and its settings as a ``TrainConfig``."""
    completed = [trial for trial in study.get_trials(deepcopy=False) if trial.state.name == "COMPLETE"]
    if not completed:
        raise MnistXpError(f"study {study.study_name!r} has no completed trial yet")
    best = study.best_trial
    return best, TrainConfig.from_dict(best.user_attrs["config"])
