"""A run's data is named by a fingerprint: checkpoints and studies keep it and refuse to go on with other data."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mnist_xp
from mnist_xp import data, tuning
from mnist_xp.cli import train as train_command
from mnist_xp.cli import tune as tune_command
from mnist_xp.data import DataSource
from mnist_xp.errors import CheckpointError

LIMIT = 300


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def altered(tmp_path_factory):
    """MNIST with the label of training image 0 changed: the same files, but other data."""
    folder = tmp_path_factory.mktemp("altered")
    train, test = data.load_raw()
    labels = train.labels.copy()
    labels[0] = (labels[0] + 1) % 10
    for key, array in {"train_images": train.images, "train_labels": labels, "test_images": test.images,
                       "test_labels": test.labels}.items():
        write_idx(folder / data.FILES[key], array)
    return folder


def test_the_fingerprint_tells_data_apart_and_ignores_where_it_lies(altered, tmp_path):
    bundled = DataSource(limit=LIMIT)
    assert bundled.fingerprint() == bundled.load().fingerprint
    assert DataSource(altered, LIMIT).fingerprint() != bundled.fingerprint()
    assert DataSource(limit=LIMIT + 1).fingerprint() != bundled.fingerprint()
    assert bundled.record(bundled.fingerprint()) == {"folder": None, "limit": LIMIT, "sha256": bundled.fingerprint()}


def test_a_checkpoint_refuses_other_data(altered, tmp_path):
    path = tmp_path / "run.npz"
    mnist_xp.train(mnist_xp.TrainConfig(hidden=(8,), epochs=1), limit=LIMIT, checkpoint=path)
    with pytest.raises(CheckpointError, match="the checkpoint was made on other data"):
        mnist_xp.train(mnist_xp.TrainConfig(hidden=(8,), epochs=2), data=DataSource(altered, LIMIT), resume_from=path)
    resumed = mnist_xp.train(mnist_xp.TrainConfig(hidden=(8,), epochs=2), resume_from=path)
    assert resumed.state.epoch == 2


def test_the_train_command_refuses_to_resume_on_another_data_dir(altered, tmp_path, capsys):
    path = tmp_path / "run.npz"
    assert train_command.main(["--limit", str(LIMIT), "--hidden", "8", "--epochs", "1", "--checkpoint", str(path)]) == 0
    code = train_command.main(["--resume", str(path), "--epochs", "2", "--data-dir", str(altered)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and "the checkpoint was made on other data" in err


def test_a_study_refuses_another_data_dir(altered, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    space = {"lr": {"low": 0.05, "high": 0.5, "log": True}}
    spec = tuning.StudySpec("s", url, tuning.parse_space(space).to_json(), trials=2, val=100, data=DataSource(limit=LIMIT))
    tuning.open_study(spec)
    other = tuning.StudySpec(spec.name, url, spec.space, trials=2, val=100, data=DataSource(altered, LIMIT))
    with pytest.raises(tuning.StudyMismatch, match="was started with other data"):
        tuning.open_study(other)
    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps(space))
    capsys.readouterr()
    code = tune_command.main(
        ["--study", "s", "--trials", "2", "--storage", url, "--space", str(space_file), "--limit", str(LIMIT),
         "--val", "100", "--data-dir", str(altered)]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "give the same --data-dir to continue it" in err
    tuning.open_study(spec)  # the study itself is untouched, and its own data still joins it
