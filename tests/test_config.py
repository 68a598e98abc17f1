"""TrainConfig: one place for every setting's default, check and help, and what is derived from it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from helpers import BAD_COMBINATIONS, BAD_SETTINGS

from mnist_xp import DEFAULT, RECIPES, TrainConfig, checkpoint, resume, train
from mnist_xp.cli import train as train_command
from mnist_xp.cli.common import flag
from mnist_xp.config import FIELDS, RESUMABLE, SettingError, read_recipe, write_recipe
from mnist_xp.errors import CheckpointError, MnistXpError
from mnist_xp.loop import EpochResult, TrainState


def stored_run(settings: dict, epochs_done: int = 2) -> checkpoint.Checkpoint:
    """A checkpoint of a 784-8-10 run (zero weights: only its settings matter) after ``epochs_done`` epochs."""
    params = [(np.zeros((784, 8), np.float32), np.zeros(8, np.float32)),
              (np.zeros((8, 10), np.float32), np.zeros(10, np.float32))]  # fmt: skip
    history = [EpochResult(epoch, 1.0, 0.1, 0.5) for epoch in range(1, epochs_done + 1)]
    state = TrainState(params, [], epochs_done, epochs_done, history)
    return checkpoint.snapshot(state, settings | {"data": {"folder": None, "limit": 100, "sha256": "0" * 64}})


@pytest.mark.parametrize("name, value, complaint", BAD_SETTINGS, ids=[f"{n}={v!r}" for n, v, _ in BAD_SETTINGS])
def test_a_bad_value_is_a_value_error_naming_the_field(name, value, complaint):
    with pytest.raises(ValueError) as raised:
        TrainConfig(**{name: value})
    assert isinstance(raised.value, SettingError) and raised.value.name == name
    assert str(raised.value) == f"{name}: {value!r} {complaint}"


def test_settings_that_only_make_sense_together_are_checked_together():
    for settings, name, complaint in BAD_COMBINATIONS:
        with pytest.raises(SettingError) as raised:
            TrainConfig(**settings)
        assert raised.value.name == name and str(raised.value) == f"{name}: {complaint}"
    assert TrainConfig(optimizer="adamw", weight_decay=0.1).weight_decay == 0.1
    assert TrainConfig(val=100, patience=3).patience == 3


def test_train_refuses_what_used_to_divide_by_zero(tmp_path):
    """Inverted dropout scales what it keeps by 1 / (1 - rate): a run resumed from a checkpoint that says rate 1
    is refused before its first epoch."""
    stored = dataclasses.replace(DEFAULT, hidden=(8,), epochs=2).to_dict()
    path = tmp_path / "run.npz"
    checkpoint.save(path, stored_run(stored | {"dropout": 1.0}, epochs_done=1))
    epochs = []
    with pytest.raises(CheckpointError, match=f"^{path}: setting dropout has an invalid value 1.0$"):
        train(resume_from=path, on_epoch=lambda state, result: epochs.append(result.epoch))
    assert epochs == []


def test_every_recipe_is_a_valid_config_and_lists_become_tuples():
    for config in RECIPES.values():
        assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig(hidden=[256, 128]).hidden == (256, 128)
    assert RECIPES["default"] is DEFAULT and DEFAULT == TrainConfig()


def test_stored_settings_round_trip_and_unknown_ones_are_refused():
    settings = json.loads(json.dumps(RECIPES["best"].to_dict()))
    assert TrainConfig.from_dict(settings) == RECIPES["best"]
    settings.pop("shift")  # written before the setting existed: it takes its default
    assert TrainConfig.from_dict(settings).shift == DEFAULT.shift
    with pytest.raises(SettingError, match="colour: is not a training setting"):
        TrainConfig.from_dict({"colour": "blue"})


def test_recipe_files_round_trip_and_bad_ones_are_one_line_errors(tmp_path):
    path = tmp_path / "fast.json"
    write_recipe(path, RECIPES["fast"])
    assert read_recipe(path) == RECIPES["fast"]
    for text, message in [("{", "not valid JSON"), ("[1]", "JSON object"), ('{"lr": -1}', "lr: -1 must be")]:
        path.write_text(text)
        with pytest.raises(MnistXpError, match=message):
            read_recipe(path)
    with pytest.raises(MnistXpError, match="cannot read"):
        read_recipe(tmp_path / "absent.json")


def test_the_command_line_is_made_from_the_fields():
    parser = train_command.build_parser()
    options = {action.dest: action for action in parser._actions}
    text = parser.format_help()
    for name, field in FIELDS.items():
        assert options[name].option_strings == [flag(name)]
        assert options[name].default is None  # so that a recipe's value shows through unless given
        shown = field.metadata["default_text"] or field.default
        assert f"(default {shown})" in " ".join(options[name].help.split())
    assert "(default 15)" in " ".join(text.split())


def test_resume_may_change_only_the_resumable_settings():
    stored = dataclasses.replace(DEFAULT, hidden=(8,), epochs=3)
    saved = stored_run(stored.to_dict())
    assert resume.resumed_config(saved) == stored
    assert resume.stored_data(saved) == (None, 100, "0" * 64)
    # as checkpoints kept their data before it had a fingerprint
    older = checkpoint.snapshot(TrainState([], []), stored.to_dict() | {"limit": 100, "data_dir": "/data"})
    assert resume.stored_data(older) == ("/data", 100, None) and resume.stored_config(older) == stored
    assert set(RESUMABLE) == {"epochs", "lr"}
    longer = dataclasses.replace(stored, epochs=9, lr=0.05)
    assert resume.resumed_config(saved, longer) == longer
    for name, value in [("hidden", (16,)), ("seed", 1), ("batch_size", "full"), ("dropout", 0.1)]:
        with pytest.raises(SettingError, match=f"^{name}: cannot be changed when resuming"):
            resume.resumed_config(saved, dataclasses.replace(stored, **{name: value}))
    with pytest.raises(SettingError, match="epochs: the checkpoint has done 2 epochs already"):
        resume.resumed_config(saved, dataclasses.replace(stored, epochs=1))
