"""Continuing a run from a checkpoint: its settings come from the file, and only a few may change.

A resumed run is the same run: the architecture, the data, the batch order and the optimizer
must stay as they were. The settings that may change are ``config.RESUMABLE``: more epochs to
train longer, a lower learning rate to recover from divergence.
"""

from __future__ import annotations

from .checkpoint import Checkpoint
from .config import FIELDS, RESUMABLE, SettingError, TrainConfig, value_text
from .errors import CheckpointError
from .training import batch_slices
from .values import is_whole_number

DATA_SETTINGS = ("limit", "data_dir")
"""Stored beside the config's settings: which data the run trained on."""


def stored_config(saved: Checkpoint) -> TrainConfig:
    """The run's ``TrainConfig`` from a checkpoint's settings, each checked as ``TrainConfig`` checks it.

    A setting the checkpoint lacks (one added after it was written) takes its default.
    """
    settings = {key: value for key, value in saved.settings.items() if key not in DATA_SETTINGS}
    for key in settings:
        if key not in FIELDS:
            raise CheckpointError(f"{saved.source}: unknown setting {key!r}")
    try:
        return TrainConfig.from_dict(settings)
    except SettingError as exc:
        value = settings.get(exc.name)
        raise CheckpointError(f"{saved.source}: setting {exc.name} has an invalid value {value!r}") from None


def stored_data(saved: Checkpoint) -> tuple[str | None, int | None]:
    """The checkpointed run's data folder (None: the bundled MNIST) and training-image limit."""
    data_dir, limit = saved.settings.get("data_dir"), saved.settings.get("limit")
    if data_dir is not None and not isinstance(data_dir, str):
        raise CheckpointError(f"{saved.source}: setting data_dir has an invalid value {data_dir!r}")
    if limit is not None and (not is_whole_number(limit) or limit < 1):
        raise CheckpointError(f"{saved.source}: setting limit has an invalid value {limit!r}")
    return data_dir, limit


def resumed_config(saved: Checkpoint, config: TrainConfig | None = None) -> TrainConfig:
    """The config to resume ``saved`` with: ``config`` if it differs from the stored one only where it may.

    Without ``config`` the stored one is used as it is.
    """
    stored = stored_config(saved)
    config = stored if config is None else config
    allowed = " and ".join(RESUMABLE)
    for name in FIELDS:
        if name not in RESUMABLE and getattr(config, name) != getattr(stored, name):
            raise SettingError(
                name,
                f"cannot be changed when resuming (the checkpoint has {value_text(getattr(stored, name))}); "
                f"only {allowed} can",
            )
    if config.epochs < saved.epoch:
        raise SettingError("epochs", f"the checkpoint has done {saved.epoch} epochs already")
    return config


def check_steps(saved: Checkpoint, n_train: int, batch_size: int | None) -> None:
    """The steps done must be whole epochs over this training set: otherwise the data is not the checkpoint's."""
    per_epoch = len(batch_slices(n_train, batch_size)) if batch_size is not None and batch_size < n_train else 1
    if saved.step != saved.epoch * per_epoch:
        raise CheckpointError(
            f"{saved.source}: {saved.step} steps in {saved.epoch} epochs do not fit {n_train} training images "
            f"in batches of {batch_size or 'all'}: the checkpoint was made on other data"
        )
