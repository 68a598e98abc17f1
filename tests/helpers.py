"""What several test modules share: the training command run, the tables of bad settings and options,
weights compared, the gradient check against finite differences, and faults put into files.

Each table is written here once and read by every test of a front that should refuse its rows
(``TrainConfig``, the training command, ``MLPClassifier``), so the fronts cannot drift apart unseen.
"""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from mnist_xp import checkpoint, metrics, modelfile, nn
from mnist_xp.backend import to_host
from mnist_xp.cli import train as train_command
from mnist_xp.loop import TrainState

# The training command.


def run_train(*args, cwd=None) -> subprocess.CompletedProcess:
    """``python -m mnist_xp.train ARGS`` in a new process, its output captured as text."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "mnist_xp.train", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def run_main(argv, capsys) -> tuple[int, str, str]:
    """The training command in this process: (exit code, stdout, stderr)."""
    try:
        code = train_command.main([str(arg) for arg in argv])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# Bad settings and options.

BAD_VALUES = [
    ("epochs", 0, "must be positive"),
    ("epochs", -3, "must be positive"),
    ("epochs", 2.5, "is not a whole number"),
    ("epochs", True, "is not a whole number"),
    ("lr", 0, "must be a positive finite number"),
    ("lr", -0.1, "must be a positive finite number"),
    ("lr", float("nan"), "must be a positive finite number"),
    ("lr", float("inf"), "must be a positive finite number"),
    ("batch_size", 0, "must be positive"),
    ("batch_size", "half", "is not a whole number"),
    ("seed", -1, "is outside 0..4294967295"),
    ("seed", 2**32, "is outside 0..4294967295"),
    ("momentum", 1.0, "must be at least 0 and below 1"),
    ("weight_decay", -0.1, "must be a finite number >= 0"),
    ("l2", -0.1, "must be a finite number >= 0"),
    ("dropout", 1.0, "must be at least 0 and below 1"),
    ("input_dropout", -0.1, "must be a finite number >= 0"),
    ("label_smoothing", -0.1, "must be a finite number >= 0"),
    ("label_smoothing", 1.5, "must be at least 0 and below 1"),
    ("shift", 5, "is outside 0..4"),
    ("shift", 1.5, "is not a whole number"),
    ("elastic", -1.0, "is outside 0..100"),
    ("elastic", float("nan"), "is outside 0..100"),
    ("elastic_sigma", 0.5, "is outside 1..28"),
    ("rotate", 181.0, "is outside 0..180"),
    ("zoom", 0.6, "is outside 0..0.5"),
    ("shear", -5.0, "is outside 0..60"),
    ("val", 0, "must be positive"),
    ("patience", 0, "must be positive"),
]
"""(setting, value, complaint): refused alike by ``TrainConfig`` ("setting: value complaint") and by the
training command's option given the value as text ("argument --setting: 'text' complaint")."""

BAD_LISTS_AND_CHOICES = [
    ("hidden", (128, 0), "holds 0, which must be positive"),
    ("hidden", (2_000_000,), "holds 2000000, which is more than a layer may have (1000000 units)"),
    ("activation", "swish", "is not one of leaky_relu, relu, sigmoid, tanh"),
    ("dtype", "float16", "is not one of float32, float64"),
]
"""Refused by ``TrainConfig`` too, but worded otherwise by the command, whose parser reads lists and choices."""

BAD_SETTINGS = BAD_VALUES + BAD_LISTS_AND_CHOICES
"""Every (setting, value, complaint) that ``TrainConfig`` refuses as "setting: value complaint"."""

BAD_COMBINATIONS = [
    ({"patience": 3}, "patience", "needs a validation split: set val"),
    (
        {"optimizer": "adam", "weight_decay": 0.1},
        "weight_decay",
        "applies to adamw only (for adam, penalise the weights with l2)",
    ),
]
"""(settings, setting, complaint): values each valid alone, refused together, the complaint naming ``setting``."""
MENTIONED_OPTIONS = {"patience": " (--val N)"}
"""What the command adds to a combination's complaint: the option that the library's message names as a setting."""


def option(setting: str) -> str:
    return "--" + setting.replace("_", "-")


def option_text(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _combination_argv(settings: dict) -> list[str]:
    return [word for name, value in settings.items() for word in (option(name), option_text(value))]


BAD_OPTIONS = [
    *(
        ([option(name), option_text(value)], f"argument {option(name)}: '{option_text(value)}' {complaint}")
        for name, value, complaint in BAD_VALUES
    ),
    *((_combination_argv(settings), f"argument {option(name)}: {complaint}{MENTIONED_OPTIONS.get(name, '')}")
      for settings, name, complaint in BAD_COMBINATIONS),
    (["--lr", "fast"], "argument --lr: 'fast' is not a number"),
    (["--hidden", "128,0"], "argument --hidden: '0' must be positive"),
    (["--hidden", "128,x"], "argument --hidden: 'x' is not a whole number"),
    (["--hidden", "128,,64"], "argument --hidden: '' is not a whole number"),
    (["--hidden", "1.5"], "argument --hidden: '1.5' is not a whole number"),
    (["--hidden", "-8"], "argument --hidden: '-8' must be positive"),
    (["--hidden", "2000000"], "argument --hidden: '2000000' is more than a layer may have (1000000 units)"),
    (["--activation", "swish"], "argument --activation: invalid choice: 'swish'"),
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    (["--init", "zeros"], "argument --init: invalid choice: 'zeros'"),
    (["--optimizer", "rmsprop"], "argument --optimizer: invalid choice: 'rmsprop'"),
    (["--schedule", "linear"], "argument --schedule: invalid choice: 'linear'"),
    (["--recipe", "no-such-recipe"], "argument --recipe: invalid choice: 'no-such-recipe'"),
    (["--limit", "0"], "argument --limit: '0' must be positive"),
    (["--limit", "70000"], "argument --limit: 70000 is outside 1..60000 (the training set's size)"),
    (["--val", "60000"], "argument --val: 60000 must leave some training images: choose 1..59999"),
    (["--log-every", "0"], "argument --log-every: '0' must be positive"),
    (["--checkpoint-every", "0", "--checkpoint", "x.npz"], "argument --checkpoint-every: '0' must be positive"),
    (["--checkpoint-every", "2"], "argument --checkpoint-every: needs --checkpoint PATH (or --resume PATH)"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--save", "{tmp}"], "argument --save: '{tmp}' is a folder, not a file name"),
    (["--checkpoint", "{tmp}"], "argument --checkpoint: '{tmp}' is a folder, not a file name"),
    (["--save", "{file}/model.npz"], "argument --save: '{file}/model.npz' cannot be written: {file} is not a writable folder"),
    (["--checkpoint", "{tmp}/run.npz", "--save", "{tmp}/run.npz"],
     "argument --save: {tmp}/run.npz is also the checkpoint; give the model another file name"),
    (["--resume", "{ckpt}", "--save", "{ckpt}"], "argument --save: {ckpt} is also the checkpoint"),
    (["--checkpoint", "{ckpt}"],
     "argument --checkpoint: {ckpt} already exists; continue that run with --resume {ckpt}, or delete the file"),
    (["--resume", "{ckpt}", "--hidden", "64"],
     "argument --hidden: cannot be changed when resuming (the checkpoint has 8); only lr and epochs can"),
    (["--resume", "{ckpt}", "--limit", "200"], "argument --limit: cannot be changed when resuming (the checkpoint has 100)"),
    (["--resume", "{ckpt}", "--seed", "5"], "argument --seed: cannot be changed when resuming (the checkpoint has 0)"),
    (["--resume", "{ckpt}", "--batch-size", "full"], "argument --batch-size: cannot be changed when resuming"),
    (["--resume", "{ckpt}", "--recipe", "seed"], "argument --recipe: not allowed with --resume"),
    (["--resume", "{ckpt}", "--epochs", "1"], "argument --epochs: the checkpoint has done 2 epochs already"),
]  # fmt: skip
"""(argv, message): each a usage error of the training command (exit 2, the message on its last line).

``{tmp}`` stands for an empty folder, ``{file}`` for a plain file and ``{ckpt}`` for a checkpoint of
a 784-8-10 run after 2 of 15 epochs on the first 100 images with seed 0."""

_BAD_OPTION_BY_ARGV = {tuple(argv): (argv, message) for argv, message in BAD_OPTIONS}

BAD_OPTIONS_BY_STAGE = [
    _BAD_OPTION_BY_ARGV[argv]
    for argv in [
        ("--epochs", "0"),
        ("--lr", "-0.1"),
        ("--batch-size", "half"),
        ("--hidden", "128,x"),
        ("--activation", "swish"),
        ("--device", "tpu"),
        ("--bogus",),
        ("--patience", "3"),
        ("--checkpoint-every", "2"),
        ("--limit", "70000"),
    ]
]
"""Rows of ``BAD_OPTIONS`` refused at each stage of the command (an option's own check, a choice, an unknown
option, settings or options refused together, the data's size), for the tests that start a process per row."""


# Weights.


def host_weights(params) -> list[tuple[np.ndarray, np.ndarray]]:
    """A host copy of ``(W, b)`` pairs (on any backend), which later training cannot change."""
    return [(np.array(to_host(W), copy=True), np.array(to_host(b), copy=True)) for W, b in params]


def same_weights(params, other) -> bool:
    """Whether two lists of ``(W, b)`` pairs hold the same shapes, dtypes and values, bit for bit."""
    arrays = [array for pair in params for array in pair]
    others = [array for pair in other for array in pair]
    return len(arrays) == len(others) and all(
        np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(a, b) for a, b in zip(arrays, others)
    )


# Gradients against central differences.

EPS = 1e-6


def numeric_gradient(f, x: np.ndarray) -> np.ndarray:
    """Central differences of the scalar function ``f`` at the host array ``x``."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = EPS
        grad[index] = (f(x + step) - f(x - step)) / (2 * EPS)
    return grad


def tiny_problem(sizes, seed=0, samples=7):
    """(host params, X, Y) of a small random network of layer ``sizes`` and ``samples`` labelled inputs."""
    rng = np.random.default_rng(seed)
    host_params = [(rng.normal(size=(a, b)) * 0.7, rng.normal(size=b) * 0.1) for a, b in itertools.pairwise(sizes)]
    X = rng.normal(size=(samples, sizes[0]))
    if sizes[-1] == 1:
        Y = rng.integers(0, 2, size=(samples, 1)).astype(float)
    else:
        Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], size=samples)]
    return host_params, X, Y


def device_params(backend, host_params):
    return [(backend.asarray(W), backend.asarray(b)) for W, b in host_params]


def check_gradients(backend, params, host_params, X, Y, activation, dropout=None, l2=0.0):
    """Every gradient of ``loss_and_grads`` against central differences of ``loss``."""
    _, grads = nn.loss_and_grads(params, X, Y, activation, dropout, l2)
    for layer, (W_host, b_host) in enumerate(host_params):
        for which, value in ((0, W_host), (1, b_host)):

            def f(perturbed, layer=layer, which=which):
                trial = list(params)
                pair = [trial[layer][0], trial[layer][1]]
                pair[which] = backend.asarray(perturbed)
                trial[layer] = tuple(pair)
                return float(nn.loss(trial, X, Y, activation, dropout, l2))

            np.testing.assert_allclose(
                backend.to_numpy(grads[layer][which]), numeric_gradient(f, value), rtol=1e-5, atol=1e-8
            )


# Files: every kind the project writes, and faults put into them.


def some_params(version: int):
    """A 784-16-10 network's float32 parameters; each ``version`` has other values."""
    rng = np.random.default_rng(version)
    return [(rng.normal(size=(784, 16)).astype(np.float32), np.full(16, version, np.float32)),
            (rng.normal(size=(16, 10)).astype(np.float32), np.full(10, version, np.float32))]  # fmt: skip


SAVERS = {
    "model.npz": lambda path, version: modelfile.save(path, some_params(version), "relu"),
    "run.npz": lambda path, version: checkpoint.save(
        path, checkpoint.snapshot(TrainState(some_params(version), [], version, version), {"seed": version})
    ),
    "report.json": lambda path, version: metrics.write_json(path, {"version": version, "numbers": list(range(2000))}),
}
"""Each file kind the project writes, by file name: ``save(path, version)`` writes that version."""


def savez_writes_half_then_fails(monkeypatch):
    """Make ``np.savez`` write the first half of its real output to its file, then fail as a full disk does."""
    real = np.savez

    def savez(file, *args, **kwargs):
        buffer = io.BytesIO()
        real(buffer, *args, **kwargs)
        half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if hasattr(file, "write"):
            file.write(half)
            file.flush()
        else:  # a path, as a writer that saves straight to its destination passes
            Path(file).write_bytes(half)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", savez)


def damaged(raw: bytes, damage, cut) -> bytes:
    """``raw`` with the byte at each (position, value) of ``damage`` overwritten (positions wrap), cut at ``cut``."""
    changed = bytearray(raw)
    for position, value in damage:
        changed[position % len(changed)] = value
    return bytes(changed[:cut])
