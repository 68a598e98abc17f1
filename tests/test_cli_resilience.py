"""The training command under stress: option validation, resume, divergence, SIGINT/SIGTERM and SIGKILL."""

from __future__ import annotations

import io
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from helpers import BAD_OPTIONS, run_main

from mnist_xp import checkpoint, modelfile, npzio
from mnist_xp.cli import train as train_command
from mnist_xp.config import RECIPES
from mnist_xp.loop import EpochResult, TrainState

PROG = "python -m mnist_xp.train"
NOTHING_SAVED = "nothing saved (give --checkpoint PATH to make a run resumable)"


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    """A checkpoint of a 784-8-10 run after 2 epochs on the first 100 images (random weights: only its settings matter)."""
    rng = np.random.default_rng(0)
    params = [(rng.normal(size=(784, 8)).astype(np.float32), np.zeros(8, np.float32)),
              (rng.normal(size=(8, 10)).astype(np.float32), np.zeros(10, np.float32))]
    history = [EpochResult(epoch, 1.0, 0.1, 0.5) for epoch in (1, 2)]
    settings = RECIPES["default"].to_dict() | {"hidden": [8], "limit": 100, "data_dir": None}
    path = tmp_path_factory.mktemp("resume") / "run.npz"
    checkpoint.save(path, checkpoint.snapshot(TrainState(params, [], 2, 2, history), settings))
    return path


@pytest.fixture(scope="module")
def a_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("file") / "plain.txt"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize("argv, message", BAD_OPTIONS, ids=[" ".join(argv) for argv, _ in BAD_OPTIONS])
def test_bad_options_are_usage_errors(argv, message, capsys, tmp_path, a_file, small_checkpoint):
    places = {"tmp": tmp_path, "file": a_file, "ckpt": small_checkpoint}
    code, out, err = run_main([arg.format(**places) for arg in argv], capsys)
    lines = err.strip().splitlines()
    assert code == 2
    assert lines[0].startswith(f"usage: {PROG}") and "Traceback" not in err
    assert lines[-1].startswith(f"{PROG}: error: ") and message.format(**places) in lines[-1]
    assert not list(tmp_path.iterdir())


def test_unreadable_checkpoints_are_file_errors(capsys, tmp_path, small_checkpoint):
    model = tmp_path / "model.npz"
    modelfile.save(model, [(np.zeros((784, 10), np.float32), np.zeros(10, np.float32))], "relu")
    arrays = npzio.read_npz(small_checkpoint)
    arrays["meta"] = np.array(str(arrays["meta"]).replace('"lr": 0.5', '"lr": -1'))
    edited = tmp_path / "edited.npz"
    np.savez(edited, **arrays)
    for path, message in [
        (tmp_path / "absent.npz", "absent.npz: file not found"),
        (model, "model.npz: not an mnist-xp checkpoint"),
        (edited, "edited.npz: setting lr has an invalid value -1"),
    ]:
        code, _, err = run_main(["--resume", path], capsys)
        assert code == 1 and err.strip() == f"error: {path.parent}/{message}"


def test_resume_gives_the_weights_of_an_uninterrupted_run(capsys, tmp_path):
    common = ["--limit", "600", "--hidden", "32", "--batch-size", "100", "--log-every", "1"]
    straight, half = tmp_path / "straight.npz", tmp_path / "half.npz"
    assert run_main([*common, "--epochs", "4", "--checkpoint", straight, "--checkpoint-every", "3"], capsys)[0] == 0
    assert run_main([*common, "--epochs", "2", "--checkpoint", half], capsys)[0] == 0
    code, out, _ = run_main(["--resume", half, "--epochs", "4", "--save", tmp_path / "model.npz"], capsys)
    assert code == 0
    assert f"resuming {half} after epoch 2" in out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch")] == ["3/4", "4/4"]

    expected, resumed = checkpoint.load(straight), checkpoint.load(half)
    assert resumed.epoch == expected.epoch == 4 and resumed.step == expected.step == 24
    assert [r.loss for r in resumed.history] == [r.loss for r in expected.history]
    assert resumed.settings == expected.settings
    for (W1, b1), (W2, b2) in zip(expected.params, resumed.params):
        np.testing.assert_array_equal(W1, W2)
        np.testing.assert_array_equal(b1, b2)
    model, _ = modelfile.load(tmp_path / "model.npz")
    np.testing.assert_array_equal(model[0][0], expected.params[0][0])


def leaves(tree) -> list:
    """The arrays and numbers of a checkpoint's parameters or optimizer state, in order."""
    if isinstance(tree, (list, tuple)):
        return [leaf for item in tree for leaf in leaves(item)]
    return [tree]


def assert_same_run(expected_path, resumed_path, epochs: int = 4):
    """Two checkpoints hold the same run: history losses, settings, every weight and all the optimizer's state."""
    expected, resumed = checkpoint.load(expected_path), checkpoint.load(resumed_path)
    assert resumed.epoch == expected.epoch == epochs and resumed.step == expected.step
    assert [r.loss for r in resumed.history] == [r.loss for r in expected.history]
    assert resumed.settings == expected.settings
    want, got = leaves([expected.params, expected.opt_state]), leaves([resumed.params, resumed.opt_state])
    assert len(got) == len(want)
    for a, b in zip(want, got):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(b, a)
        else:
            assert b == a  # Adam's step count


RESUMED_RUN = ["--limit", "600", "--hidden", "32", "--batch-size", "100"]


@pytest.mark.parametrize(
    "option, setting, value",
    [
        ("--shift", "shift", 2),
        ("--input-dropout", "input_dropout", 0.2),
        ("--label-smoothing", "label_smoothing", 0.1),
        ("--elastic", "elastic", 30.0),
        ("--rotate", "rotate", 15.0),
    ],
    ids=["shift", "input-dropout", "label-smoothing", "elastic", "rotate"],
)
def test_resume_with_shifts_input_dropout_or_smoothing_is_bit_identical(capsys, tmp_path, option, setting, value):
    """Each option draws per (seed, epoch, batch) or changes the targets: a resumed run must do the same as a whole one."""
    common = [*RESUMED_RUN, option, value]
    straight, half = tmp_path / "straight.npz", tmp_path / "half.npz"
    assert run_main([*common, "--epochs", "4", "--checkpoint", straight], capsys)[0] == 0
    assert run_main([*common, "--epochs", "2", "--checkpoint", half], capsys)[0] == 0
    code, out, _ = run_main(["--resume", half, "--epochs", "4"], capsys)
    assert code == 0 and f"resuming {half} after epoch 2" in out
    assert checkpoint.load(half).settings[setting] == value
    assert_same_run(straight, half)


def test_a_run_resumed_in_another_process_is_bit_identical(capsys, tmp_path):
    """The first half and the rest in two ``python -m mnist_xp.train`` processes, against one run in this one.

    Nothing a run draws may depend on the process (hash seeds, a generator's state carried between epochs).
    """
    common = [*RESUMED_RUN, "--optimizer", "adam", "--lr", "0.002", "--dropout", "0.2", "--input-dropout", "0.1",
              "--shift", "1", "--label-smoothing", "0.1"]  # fmt: skip
    straight, half = tmp_path / "straight.npz", tmp_path / "half.npz"
    assert run_main([*common, "--epochs", "4", "--checkpoint", straight], capsys)[0] == 0
    for args in ([*common, "--epochs", "2", "--checkpoint", half], ["--resume", half, "--epochs", "4"]):
        process = python_train(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    assert f"resuming {half} after epoch 2" in out
    assert_same_run(straight, half)


@pytest.mark.parametrize(
    "setting, shown", [("label_smoothing", "label smoothing"), ("input_dropout", "input dropout"), ("shift", "shifts of")]
)
def test_checkpoint_without_a_later_setting_resumes_without_it(capsys, tmp_path, setting, shown):
    common = ["--limit", "300", "--hidden", "16", "--batch-size", "100"]
    with_setting, without = tmp_path / "with.npz", tmp_path / "without.npz"
    assert run_main([*common, "--epochs", "1", "--checkpoint", with_setting], capsys)[0] == 0
    saved = checkpoint.load(with_setting)
    assert saved.settings.pop(setting) == 0.0  # written by a version that did not know the option
    checkpoint.save(without, saved)
    code, out, _ = run_main(["--resume", without, "--epochs", "2"], capsys)
    assert code == 0
    assert shown not in out
    assert checkpoint.load(without).settings[setting] == 0.0


def test_divergence_stops_with_exit_3_and_keeps_the_last_good_checkpoint(capsys, tmp_path):
    ck, model = tmp_path / "run.npz", tmp_path / "model.npz"
    code, out, err = run_main(
        ["--limit", "300", "--epochs", "5", "--lr", "1e10", "--checkpoint", ck, "--save", model], capsys
    )
    assert code == 3
    match = re.fullmatch(
        r"error: training diverged in epoch (\d+): the loss is nan \(learning rate 1e\+10\); "
        r"try a lower learning rate, e.g. --lr 1e\+09; the last good state \(epoch (\d+)\) is in (\S+): "
        r"--resume (\S+) --lr 1e\+09",
        err.strip(),
    )
    assert match, err
    assert int(match[2]) == int(match[1]) - 1 and match[3] == match[4] == str(ck)
    assert checkpoint.load(ck).epoch == int(match[2])
    assert not model.exists() and "test accuracy" not in out


def python_train(*args, **popen):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "mnist_xp.train", *map(str, args)], env=env, text=True, **popen)


def finish(process: subprocess.Popen, signum: int | None = None) -> tuple[str, str]:
    """Send ``signum`` (if given) to a training process and wait for it: its standard error, and its exit code and
    remaining output told for an assertion's message."""
    if signum is not None:
        process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    return err, f"exit code {process.returncode}\n--- stdout ---\n{(out or '')[-3000:]}\n--- stderr ---\n{err[-3000:]}"


@pytest.mark.parametrize("signum, code, keep", [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)])
def test_interrupt_saves_a_checkpoint_and_says_how_to_resume(capsys, tmp_path, signum, code, keep):
    ck = tmp_path / "run.npz"
    args = ["--limit", "500", "--hidden", "16", "--epochs", "10000", "--log-every", "1"]
    process = python_train(*args, *(["--checkpoint", ck] if keep else []), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = []
    for line in process.stdout:  # wait for the first finished epoch (its line comes before its checkpoint)
        seen.append(line)
        if line.startswith("epoch"):
            break
    else:
        _, story = finish(process)
        pytest.fail("the run ended before its first epoch line:\n" + "".join(seen) + story)
    while keep and not ck.exists():
        if process.poll() is not None:
            pytest.fail("the run ended before its first checkpoint:\n" + finish(process)[1])
        time.sleep(0.01)
    err, story = finish(process, signum)
    assert process.returncode == code, story
    name = signal.Signals(signum).name
    if not keep:
        assert err.strip() == f"interrupted by {name}: {NOTHING_SAVED}", story
        return
    match = re.fullmatch(
        rf"interrupted by {name}: the state after epoch (\d+) is saved in (\S+); "
        rf"continue with: {PROG} --resume (\S+)",
        err.strip(),
    )
    assert match, story
    assert match[2] == match[3] == str(ck)
    saved = checkpoint.load(ck)
    assert saved.epoch == int(match[1]) >= 1
    assert run_main(["--resume", ck, "--epochs", saved.epoch + 1], capsys)[0] == 0
    assert checkpoint.load(ck).epoch == saved.epoch + 1


class LockStoppedHalfWay:
    """A write lock for tqdm (``tqdm.set_lock``) that takes two locks in turn, as tqdm's own takes its process and
    thread locks; the first time ``acquire`` is called, SIGTERM arrives between the two."""

    def __init__(self):
        self.locks = [threading.RLock(), threading.RLock()]
        self.fired = False

    def acquire(self, *args, **kwargs):
        for lock in self.locks:
            lock.acquire()
            if not self.fired:
                self.fired = True
                os.kill(os.getpid(), signal.SIGTERM)

    def release(self):
        for lock in reversed(self.locks):
            lock.release()

    def __enter__(self):  # a ``with`` block never releases what it did not take
        for lock in self.locks:
            lock.acquire()

    def __exit__(self, *exc):
        self.release()


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("terminal", [True, False], ids=["bar", "no-bar"])
def test_a_stop_while_the_progress_bar_takes_its_lock_ends_the_run_as_a_stop(monkeypatch, terminal):
    """A SIGTERM that lands between tqdm's two locks is still a stop (143), not a RuntimeError from tqdm's ``write``.

    With a bar the stop waits until the bar's call is done; without one the epoch lines take no lock.
    """
    tqdm = pytest.importorskip("tqdm").tqdm
    lock = LockStoppedHalfWay()
    out, err = io.StringIO(), Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    begin = train_command.Progress.on_train_begin

    def begin_then_swap_the_lock(progress, run):  # the bar is made: from the first epoch on, writes take this lock
        begin(progress, run)
        monkeypatch.setattr(tqdm, "_lock", lock, raising=False)

    monkeypatch.setattr(train_command.Progress, "on_train_begin", begin_then_swap_the_lock)
    code = train_command.main(["--limit", "100", "--hidden", "8", "--epochs", "3", "--log-every", "1"])
    story = f"exit code {code}\n--- stdout ---\n{out.getvalue()}\n--- stderr ---\n{err.getvalue()}"
    assert lock.fired == terminal, story
    if terminal:
        assert code == 143, story
        assert err.getvalue().endswith(f"interrupted by SIGTERM: {NOTHING_SAVED}\n"), story
        assert "epoch 1/3" in out.getvalue(), story
    else:
        assert code == 0, story
        epochs = [line.split()[1] for line in out.getvalue().splitlines() if line.startswith("epoch")]
        assert epochs == ["1/3", "2/3", "3/3"], story


def test_sigkill_at_any_moment_leaves_a_loadable_checkpoint(tmp_path):
    """Kill a run that checkpoints every epoch at random moments, resume it, kill it again: the file always loads."""
    ck = tmp_path / "run.npz"
    chooser = random.Random(6)
    epochs = []
    for attempt in range(4):
        if ck.exists():
            args = ["--resume", ck]
        else:
            args = ["--limit", "64", "--batch-size", "full", "--hidden", "300", "--epochs", "100000", "--checkpoint", ck]
        started = time.time()
        process = python_train(*args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while not (ck.exists() and ck.stat().st_mtime > started):  # the run is now writing checkpoints
            if process.poll() is not None or time.time() - started > 120:
                pytest.fail("the run wrote no checkpoint:\n" + finish(process, signal.SIGKILL)[1])
            time.sleep(0.01)
        time.sleep(chooser.uniform(0.0, 0.4))
        _, story = finish(process, signal.SIGKILL)
        assert process.returncode == -signal.SIGKILL, story
        saved = checkpoint.load(ck)
        assert saved.epoch >= max(epochs, default=1) and len(saved.history) == saved.epoch
        epochs.append(saved.epoch)
    leftovers = {p.name for p in tmp_path.iterdir()} - {"run.npz"}
    assert all(re.fullmatch(r"\.run\.npz\.\w+\.tmp", name) for name in leftovers)
