"""Continuing a run from a checkpoint: its settings come from the file, and only a few may change.

A resumed run is the same run: the architecture, the data, the batch order and the optimizer
must stay as they were. The settings that may change are ``config.RESUMABLE``: more epochs to
train longer, a lower learning rate to recover from divergence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .checkpoint import Checkpoint, load
from .config import FIELDS, RESUMABLE, SettingError, TrainConfig, value_text
from .data import Dataset, DataSource
from .errors import CheckpointError
from .loop import batch_slices
from .values import is_whole_number

DATA_KEY = "data"
"""Stored beside the config's settings: the data the run trained on (``DataSource.record``)."""
OLD_DATA_SETTINGS = ("limit", "data_dir")
"""Where checkpoints written before ``DATA_KEY`` kept the data's folder and limit (with no fingerprint)."""


@dataclass(frozen=True)
class Resumed:
    """A checkpoint to continue, with the run's stored config and the data it was made on."""

    checkpoint: Checkpoint
    config: TrainConfig
    source: DataSource
    fingerprint: str | None


def resolve(saved: Checkpoint | Path | str, device: str = "cpu", backend: str | None = None) -> Resumed:
    """What continuing ``saved`` (a checkpoint or its file) needs: its config and its data on ``backend`` and ``device``."""
    saved = load(saved) if isinstance(saved, (str, Path)) else saved
    folder, limit, fingerprint = stored_data(saved)
    return Resumed(saved, stored_config(saved), DataSource(folder, limit, device, backend), fingerprint)


def stored_config(saved: Checkpoint) -> TrainConfig:
    """The run's ``TrainConfig`` from a checkpoint's settings, each checked as ``TrainConfig`` checks it.

    A setting the checkpoint lacks (one added after it was written) takes its default.
    """
    settings = {key: value for key, value in saved.settings.items() if key not in (DATA_KEY, *OLD_DATA_SETTINGS)}
    for key in settings:
        if key not in FIELDS:
            raise CheckpointError(f"{saved.source}: unknown setting {key!r}")
    try:
        return TrainConfig.from_dict(settings)
    except SettingError as exc:
        value = settings.get(exc.name)
        raise CheckpointError(f"{saved.source}: setting {exc.name} has an invalid value {value!r}") from None


def stored_data(saved: Checkpoint) -> tuple[str | None, int | None, str | None]:
    """The checkpointed run's data folder (None: the bundled MNIST), training-image limit and fingerprint."""
    record = saved.settings.get(DATA_KEY)
    if record is None:
        record = {"folder": saved.settings.get("data_dir"), "limit": saved.settings.get("limit"), "sha256": None}
    if not isinstance(record, dict):
        raise CheckpointError(f"{saved.source}: the data record is not a JSON object")
    folder, limit, fingerprint = record.get("folder"), record.get("limit"), record.get("sha256")
    if folder is not None and not isinstance(folder, str):
        raise CheckpointError(f"{saved.source}: the data folder has an invalid value {folder!r}")
    if limit is not None and (not is_whole_number(limit) or limit < 1):
        raise CheckpointError(f"{saved.source}: the data limit has an invalid value {limit!r}")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise CheckpointError(f"{saved.source}: the data fingerprint has an invalid value {fingerprint!r}")
    return folder, limit, fingerprint


def check_data(saved: Checkpoint, data: Dataset) -> None:
    """Refuse to continue ``saved`` on data other than its own (another limit, other images or labels)."""
    _, limit, fingerprint = stored_data(saved)
    if data.source is not None and data.source.limit != limit:
        raise SettingError("limit", f"cannot be changed when resuming (the checkpoint has {limit})")
    if fingerprint is not None and data.fingerprint is not None and data.fingerprint != fingerprint:
        raise CheckpointError(
            f"{saved.source}: the checkpoint was made on other data (SHA-256 {fingerprint[:12]}..., "
            f"this data {data.fingerprint[:12]}...)"
        )


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
