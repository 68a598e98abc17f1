"""The Optuna tuner end to end: worker processes on SQLite and PostgreSQL, killed workers, recipes, bad input."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
sqlalchemy = pytest.importorskip("sqlalchemy")

from mnist_xp import tuning
from mnist_xp.cli import tune
from mnist_xp.data import DataSource

DATA = ["--limit", "2000", "--val", "500"]
QUICK_SPACE = {"hidden": [32], "epochs": {"low": 1, "high": 2}, "lr": {"low": 0.05, "high": 0.5, "log": True}}
# Trials of a second or two, so that a worker can be killed in the middle of one.
SLOW_SPACE = {
    "hidden": [512],
    "batch_size": 16,
    "epochs": {"low": 2, "high": 3},
    "lr": {"low": 0.01, "high": 0.1, "log": True},
}
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
ASKS = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
"""For tests that take trials with ``Study.ask``, as a worker does before its heartbeat starts."""


def space_file(folder: Path, space: dict) -> str:
    path = folder / "space.json"
    path.write_text(json.dumps(space))
    return str(path)


def tune_command(folder: Path, url: str, study: str, trials: int, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mnist_xp.tune",
        "--study",
        study,
        "--trials",
        str(trials),
        "--storage",
        url,
        "--heartbeat",
        "1",
        *DATA,
        *args,
    ]


def run_tune(folder: Path, url: str, study: str, trials: int, *args: str) -> subprocess.CompletedProcess:
    command = tune_command(folder, url, study, trials, *args)
    try:
        result = subprocess.run(command, check=False, cwd=folder, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as late:
        pytest.fail(f"the tuner ran for over {late.timeout} s:\n{output_of(late)}")
    assert result.returncode == 0, output_of(result)
    return result


def output_of(run) -> str:
    """A finished or timed-out run's output, for an assertion's message."""
    out, err = (text.decode() if isinstance(text, bytes) else text or "" for text in (run.stdout, run.stderr))
    return f"--- stdout ---\n{out[-3000:]}\n--- stderr ---\n{err[-3000:]}"


def trials_of(url: str, study: str, storage=None) -> list:
    storage = storage if storage is not None else tuning.open_storage(url)
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


def repeats(trial) -> list[int]:
    """The trials that ``trial`` runs again: the failed one first, then each retry of it that failed in turn."""
    return trial.system_attrs.get("retry_history", [])


def assert_consistent(trials: list, expected: int) -> None:
    """The study holds exactly ``expected`` finished trials, none still running, every failed one retried or surplus."""
    table = table_of(trials)
    numbers = [trial.number for trial in trials]
    assert len(set(numbers)) == len(numbers), table
    assert sum(trial.state in FINISHED for trial in trials) == expected, table
    unfinished = [(trial.number, trial.state.name, trial.params) for trial in trials if not trial.state.is_finished()]
    assert not unfinished, table
    retried = {trial.system_attrs.get("failed_trial") for trial in trials if trial.state in FINISHED}
    for trial in trials:
        if trial.state == optuna.trial.TrialState.FAIL and not trial.user_attrs.get("surplus"):
            assert trial.system_attrs.get("failed_trial", trial.number) in retried, table


def study_survives_killed_workers(folder: Path, url: str, more: int = 4, plots: bool = False) -> None:
    """Two workers start a study and are killed with SIGKILL mid-trial; a second run takes it ``more`` trials further,
    with no trial lost or doubled.

    The first run asks for far more trials than it can finish before the kill, so that however
    slowly its second worker starts, the study is still under way when both are. Its processes
    are paused for each look at the study, so that the kill finds them as the last look saw them.
    With ``plots`` the second run also draws the study, and a third run finds it finished and adds nothing.
    """
    space = space_file(folder, SLOW_SPACE)
    command = tune_command(folder, url, "killed", 100, "--space", space, "--jobs", "2")
    log = folder / "killed-run.log"
    storage, paused_look = tuning.open_storage(url), looking_storage(url)
    with open(log, "w") as output:
        run = subprocess.Popen(command, cwd=folder, stdout=output, stderr=output, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while (killed := look_while_paused(run.pid, url, paused_look)) is None:
            under_way = run.poll() is None and time.monotonic() < deadline
            assert under_way, "the two workers did not get under way:\n" + log.read_text()[-3000:]
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):  # already gone if it failed on its own
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    stale = [trial.number for trial in killed if trial.state.name == "RUNNING"]
    assert stale, table_of(killed) + log.read_text()[-3000:]
    assert trials_of(url, "killed", storage) == killed  # as the look saw it, paused
    trials = sum(trial.state in FINISHED for trial in killed) + more

    drawn = ["--plots", str(folder / "plots")] if plots else []
    result = run_tune(folder, url, "killed", trials, "--space", space, "--jobs", "2", *drawn)
    done = trials_of(url, "killed", storage)
    assert_consistent(done, trials)
    for number in stale:
        assert done[number].state.name == "FAIL"
        # Run again exactly once: by its retry, or if that failed too (a late heartbeat), by a retry of the retry.
        reruns = [trial for trial in done if trial.state in FINISHED and number in repeats(trial)]
        assert len(reruns) == 1, (number, [(trial.number, trial.state.name, repeats(trial)) for trial in done])
        if done[number].params:  # a trial killed before it drew its settings has none to repeat
            assert reruns[0].params == done[number].params
    assert any(done[number].params for number in stale), table_of(killed)  # the ones the kill waited for, mid-epoch
    assert f"study 'killed': {trials} trials finished" in result.stdout, output_of(result)
    if plots:
        assert sorted(path.name for path in (folder / "plots").iterdir()) == [
            "history.png",
            "importances.png",
            "slice.png",
        ]
        again = run_tune(folder, url, "killed", trials, "--space", space)
        assert f"{trials} of {trials} trials finished" in again.stdout, output_of(again)
        assert len(trials_of(url, "killed", storage)) == len(done)


def both_workers_under_way(trials: list) -> bool:
    """Both workers are in the middle of a trial, each past its first epoch (killed, they leave stale trials that
    have beaten their heartbeats), and neither is between two trials."""
    running = [trial for trial in trials if trial.state.name == "RUNNING"]
    workers = {trial.user_attrs.get("worker") for trial in running} - {None}
    return len(workers) >= 2 and all(
        0 < len(trial.intermediate_values) < trial.params.get("epochs", 0) for trial in running
    )  # each with an epoch still to go


def look_while_paused(group: int, url: str, storage) -> list | None:
    """Pause the tuner's processes (process group ``group``) and look at the study: its trials if both workers are
    under way, the processes left paused, to be killed as they are; else None, and they go on."""
    os.killpg(group, signal.SIGSTOP)
    # Wait a second at most for all to pause: a process starting a child waits, unstoppable, until the child runs its
    # program, and a child paused before that keeps it waiting; then they go on, to be looked at later.
    trials = []
    for _ in range(1000):
        if group_paused(group):
            try:
                trials = _trials_if_any(url, storage)
            except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.OperationalError):
                pass  # a paused worker holds the SQLite file's lock: look again later
            break
        time.sleep(0.001)
    if both_workers_under_way(trials):
        return trials
    os.killpg(group, signal.SIGCONT)
    return None


def group_paused(group: int) -> bool:
    """Whether every process of process group ``group`` is stopped (or gone), as /proc tells."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(pgrp) == group and state not in "TtZX":
                return False
    return True


def looking_storage(url: str):
    """A storage to look at the study with while its workers are paused: on SQLite it gives up within a second on a lock
    that a paused worker holds, instead of waiting for it."""
    if not url.startswith("sqlite"):
        return tuning.open_storage(url)
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 0.5}})


def table_of(trials: list) -> str:
    """The trials one a line, for an assertion's message."""
    return "".join(
        f"{trial.number:>3} {trial.state.name:<8} {trial.params} {trial.intermediate_values} {trial.system_attrs} "
        f"{trial.user_attrs}\n"
        for trial in trials
    )


def _trials_if_any(url: str, storage) -> list:
    try:
        return trials_of(url, "killed", storage)
    except KeyError:  # the study is not created yet
        return []


def test_two_workers_on_sqlite_finish_the_study_and_survive_sigkill(tmp_path):
    study_survives_killed_workers(tmp_path, f"sqlite:///{tmp_path / 'tune.db'}", plots=True)


def test_workers_share_a_postgresql_study(tmp_path):
    with postgresql_server(tmp_path) as url:
        study_survives_killed_workers(tmp_path, url)


class postgresql_server:
    """A PostgreSQL server for one test: initdb into a temporary folder, listening on 127.0.0.1 only, then stopped."""

    def __init__(self, tmp_path: Path):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
        if found[-1] is None:
            pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
        self.bin = Path(found[-1]).parent
        self.as_root = os.geteuid() == 0  # the server refuses to run as root: run it as the postgres user
        if self.as_root:
            self.folder = Path(tempfile.mkdtemp(prefix="mnist-xp-pg-"))
            shutil.chown(self.folder, "postgres", "postgres")
        else:
            self.folder = tmp_path / "pg"
            self.folder.mkdir()
        self.log = self.folder / "log"

    def server_log(self) -> str:
        return self.log.read_text()[-2000:] if self.log.exists() else ""

    def command(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        done = subprocess.run(
            [*prefix, str(self.bin / program), *args], check=False, capture_output=True, text=True, timeout=180
        )
        if check and done.returncode:
            pytest.fail(f"{program} failed, exit code {done.returncode}:\n{output_of(done)}\n{self.server_log()}")
        return done

    def __enter__(self) -> str:
        data = str(self.folder / "data")
        self.command("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
        for _ in range(3):  # the free port found may be taken before the server binds it: then try another
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            options = f"-h 127.0.0.1 -p {port} -k {self.folder} -c fsync=off"
            started = self.command("pg_ctl", "start", "-D", data, "-w", "-t", "150", "-o", options, "-l", str(self.log),
                                   check=False)  # fmt: skip
            if started.returncode == 0:
                return f"postgresql://postgres@127.0.0.1:{port}/postgres"
            if "could not bind" not in self.server_log():
                break
        pytest.fail(f"the PostgreSQL server did not start:\n{output_of(started)}\n{self.server_log()}")

    def __exit__(self, *exc) -> None:
        try:
            self.command("pg_ctl", "stop", "-D", str(self.folder / "data"), "-m", "immediate", "-w")
        finally:
            if self.as_root:
                shutil.rmtree(self.folder, ignore_errors=True)


def test_recipe_file_reproduces_the_best_trial_exactly(tmp_path):
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    recipe = tmp_path / "best.json"
    result = run_tune(
        tmp_path, url, "recipe", 3, "--space", space_file(tmp_path, QUICK_SPACE), "--recipe-file", str(recipe)
    )
    best = optuna.load_study(study_name="recipe", storage=url).best_trial
    spelled_out = result.stdout.splitlines()[-1].split()[3:]  # "  python -m mnist_xp.train ..."
    for options in (["--recipe-file", str(recipe), "--limit", "2000"], spelled_out):
        report = tmp_path / "report.json"
        train = subprocess.run(
            [sys.executable, "-m", "mnist_xp.train", *options, "--report", str(report)],
            check=False,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert train.returncode == 0, train.stderr
        history = json.loads(report.read_text())["history"]
        assert history[-1]["metrics"]["val_accuracy"] == best.value
        assert len(history) == best.user_attrs["config"]["epochs"]


def run_main(capsys, *args: str) -> tuple[int, str]:
    code = tune.main(list(args))
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "space, complaint",
    [
        ({"learning_rate": {"low": 0.1, "high": 1}}, "'learning_rate' is not a training setting"),
        ({"dropout": {"low": 0.0, "high": 1.0}}, "dropout: high end 1.0 must be at least 0 and below 1"),
        ({"lr": {"low": 0.0, "high": 1.0}}, "lr: low end 0.0 must be a positive finite number"),
        ({"epochs": {"low": 1.5, "high": 3}}, "epochs: low end 1.5 is not a whole number"),
        ({"optimizer": {"choices": ["sgd", "rmsprop"]}}, "optimizer: choice 'rmsprop' is not one of"),
        ({"hidden": {"low": 16, "high": 64}}, "hidden takes choices, not a range"),
        ({"lr": {"low": 0.1, "high": 1, "scale": "log"}}, "lr: expected"),
        ({"val": {"low": 100, "high": 500}}, (
            "val is the same for every trial of a study: set it as the study's val (--val N)"
        )),
        ({"weight_decay": {"low": 0.0, "high": 0.01}}, "weight_decay applies only when optimizer is adamw"),
        ({"hidden": [64]}, "nothing to search"),
    ],
)
def test_a_bad_space_is_one_error_line_and_nothing_is_written(tmp_path, capsys, space, complaint):
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    code, err = run_main(
        capsys, "--study", "s", "--trials", "2", "--storage", url, "--space", space_file(tmp_path, space)
    )
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: argument --space: ") and complaint in err, err
    assert not (tmp_path / "tune.db").exists()


def test_an_unreachable_storage_is_one_error_line(tmp_path, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe is closed
    url = f"postgresql://tuner:secret@127.0.0.1:{port}/optuna"
    code, err = run_main(capsys, "--study", "s", "--trials", "2", "--storage", url, *DATA)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith(
        f"error: cannot open the storage postgresql://tuner:***@127.0.0.1:{port}/optuna"
    )
    assert "secret" not in err

    code, err = run_main(
        capsys, "--study", "s", "--trials", "2", "--storage", f"sqlite:///{tmp_path}/no/such/dir/t.db", *DATA
    )
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: cannot open the storage sqlite:///")


def test_a_study_refuses_other_options_than_it_was_started_with(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the recipe file goes
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    space = space_file(tmp_path, QUICK_SPACE)
    assert tune.main(["--study", "s", "--trials", "1", "--storage", url, "--space", space, *DATA]) == 0
    code, err = run_main(
        capsys, "--study", "s", "--trials", "2", "--storage", url, "--space", space, "--limit", "3000", "--val", "500"
    )
    assert code == 2 and err.count("\n") == 1
    assert err == "error: study 's' was started with --limit 2000: give the same --limit to continue it, or a new --study name\n"
    code, err = run_main(
        capsys, "--study", "s", "--trials", "2", "--storage", url, "--space", space, "--limit", "2000", "--val", "2000"
    )
    assert code == 2 and err.count("\n") == 1 and "--val" in err and "2000 must leave some training images" in err
    assert len(trials_of(url, "s")) == 1


def test_builtin_spaces_are_valid_and_sample_valid_configs():
    for spec in tuning.SPACES.values():
        space = tuning.parse_space(spec)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(20):
            trial = study.ask()
            config = space.sample(trial, tuning.base_config(5000, 0))
            assert config.val == 5000 and config.seed == 0 and list(config.hidden) == spec["hidden"]["value"]
            assert ("momentum" in trial.params) == (config.optimizer in ("momentum", "nesterov"))
            study.tell(trial, 0.5)


def test_train_arguments_spell_out_every_changed_setting():
    from mnist_xp.config import RECIPES

    arguments = tune.train_arguments(RECIPES["fast"])
    assert arguments == [
        "--lr",
        "0.3",
        "--epochs",
        "4",
        "--optimizer",
        "nesterov",
        "--schedule",
        "cosine",
        "--warmup",
        "0.5",
        "--label-smoothing",
        "0.1",
    ]


PLOTS_IN_A_FRESH_PROCESS = """
import json, sys
from pathlib import Path
import matplotlib
matplotlib.use("svg")  # the user's own choice, which drawing the study must keep
import optuna
from mnist_xp import studyplots

optuna.logging.set_verbosity(optuna.logging.ERROR)
before = {name: repr(value) for name, value in matplotlib.rcParams.items()}
study = optuna.create_study(direction="maximize")
lr = optuna.distributions.FloatDistribution(0.001, 1.0, log=True)
optimizer = optuna.distributions.CategoricalDistribution(["sgd", "adam"])
for number in range(12):
    study.add_trial(optuna.trial.create_trial(
        params={"lr": 0.01 * (number + 1), "optimizer": ["sgd", "adam"][number % 2]},
        distributions={"lr": lr, "optimizer": optimizer},
        value=0.4 if number == 0 else 0.9 + 0.005 * number,
    ))
written = studyplots.write_plots(study, Path(sys.argv[1]))
after = {name: repr(value) for name, value in matplotlib.rcParams.items()}
print(json.dumps({
    "written": [path.name for path in written],
    "backend": matplotlib.get_backend(),
    "pyplot": "matplotlib.pyplot" in sys.modules,
    "changed": sorted(name for name in before if before[name] != after.get(name)),
}))
"""


def test_drawing_a_study_changes_no_backend_style_or_rcparams(tmp_path):
    pytest.importorskip("matplotlib")
    result = subprocess.run(
        [sys.executable, "-c", PLOTS_IN_A_FRESH_PROCESS, str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["written"] == ["history.png", "importances.png", "slice.png"]
    assert report["backend"] == "svg" and not report["pyplot"] and report["changed"] == []
    for name in report["written"]:
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def test_processes_meeting_a_new_database_at_once_all_open_it(tmp_path):
    """Workers started together on a fresh SQLite file race to create its tables; none of them fails."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = (
        "import sys; from mnist_xp import tuning; tuning.open_storage(sys.argv[1]); print('opened')"
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outcomes = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0, 0], [err for _, err in outcomes]
    assert all(out.strip() == "opened" for out, _ in outcomes)


@ASKS
def test_a_trial_taken_but_never_begun_is_failed_and_queued_again(tmp_path):
    """A worker killed between taking a trial and its first heartbeat leaves the trial running: Optuna never fails a
    trial that has not beaten, so it would hold its place for ever. Past its grace it is failed and queued again; a
    trial that its worker signed is left to its heartbeat, and a retry does not carry the signature of the trial it
    repeats."""
    storage = tuning.open_storage(f"sqlite:///{tmp_path / 'tune.db'}", heartbeat=1)
    study = optuna.create_study(storage=storage, study_name="s")
    begun, abandoned = study.ask(), study.ask()
    begun.set_user_attr(tuning.WORKER, "host:1")
    tuning.fail_unbegun_trials(study, grace=60)
    assert [trial.state.name for trial in study.get_trials()] == ["RUNNING", "RUNNING"]

    tuning.fail_unbegun_trials(study, grace=0)
    trials = study.get_trials()
    assert [trial.state.name for trial in trials] == ["RUNNING", "FAIL", "WAITING"]
    assert repeats(trials[2]) == [abandoned.number]

    study.tell(begun, state=optuna.trial.TrialState.FAIL)  # as its heartbeat went stale
    tuning.queue_again(study, study.get_trials()[begun.number])
    again = study.get_trials()[3]
    assert repeats(again) == [begun.number] and tuning.WORKER not in again.user_attrs
    taken = [study.ask(), study.ask()]  # both retries, by workers that die at once
    assert sorted(trial.number for trial in taken) == [2, 3]
    tuning.fail_unbegun_trials(study, grace=0)
    trials = study.get_trials()
    assert [trial.state.name for trial in trials] == ["FAIL", "FAIL", "FAIL", "FAIL", "WAITING", "WAITING"]
    assert sorted(repeats(trial) for trial in trials[4:]) == [[0, 3], [1, 2]]


@ASKS
def test_a_study_does_not_wait_for_ever_for_a_trial_never_begun(tmp_path, monkeypatch):
    """The last place of a study is held by a trial that a dead worker took and never began: the next worker fails it
    once its grace has passed, runs its retry, and ends."""
    url, space = f"sqlite:///{tmp_path / 'tune.db'}", tuning.parse_space(QUICK_SPACE).to_json()
    spec = tuning.StudySpec("s", url, space, trials=1, val=500, data=DataSource(limit=2000))
    study = tuning.open_study(spec)
    abandoned = study.ask()
    monkeypatch.setattr(tuning, "GRACE_BEATS", 0)  # no need to wait for its grace here
    monkeypatch.setattr(tuning, "POLL_SECONDS", 0.01)
    worker = threading.Thread(target=tuning.work, args=(spec,), kwargs={"study": study}, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the study still waits for the trial nobody began"
    trials = study.get_trials()
    assert [trial.state.name for trial in trials] == ["FAIL", "COMPLETE"]
    assert repeats(trials[1]) == [abandoned.number]


@ASKS
def test_a_second_retry_of_one_failed_trial_is_surplus(tmp_path):
    """Two workers that find a stale trial at once on SQLite may both fail it and queue it (the check and the change of
    state are not one transaction): only the first retry takes the place, the other one is dropped as surplus."""
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    space = tuning.parse_space(QUICK_SPACE).to_json()
    spec = tuning.StudySpec("s", url, space, trials=2, val=500, data=DataSource(limit=2000))
    study = tuning.open_study(spec)
    stale = study.ask()
    study.tell(stale, state=optuna.trial.TrialState.FAIL)
    for _ in range(2):
        tuning.queue_again(study, study.get_trials()[stale.number])
    tuning.work(spec, study=study)
    trials = study.get_trials()
    assert_consistent(trials, 2)
    assert [(trial.state.name, repeats(trial), trial.user_attrs.get("surplus")) for trial in trials[:3]] == [
        ("FAIL", [], None),
        ("COMPLETE", [0], None),
        ("FAIL", [0], True),
    ]
    assert trials[3].state.name == "COMPLETE" and not repeats(trials[3])
