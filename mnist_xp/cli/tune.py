"""Command line: search training settings with Optuna on a validation split, and write the best as a recipe.

    python -m mnist_xp.tune --study fast --trials 60 --budget 2
    python -m mnist_xp.tune --study fast --trials 100 --jobs 2            # continues the study to 100 trials
    python -m mnist_xp.tune --study wide --trials 200 --space wide \\
        --storage postgresql://tuner@db.example/optuna                     # the same command on every machine

Exit codes: 0 done, 1 a file, storage or worker problem, 2 a bad option or search space, 130 interrupted.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

from .. import backend, studyplots, tuning
from ..config import DEFAULT, FIELDS, TrainConfig, value_text, write_recipe
from ..data import DataSource
from ..errors import MnistXpError
from .common import add_data_dir_option, flag, output_path, positive_int, run_reporting_errors, text_parser

DEFAULT_STORAGE = "sqlite:///tune.db"
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def study_name(text: str) -> str:
    if not STUDY_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: use letters, digits, '.', '_' and '-'")
    return text


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_xp.tune",
        description="Search training settings with Optuna (TPE, with pruning) for the best validation accuracy, "
        "on a split carved from the training set; print the best trial as a train command and write it as a recipe.",
        epilog="exit codes: 0 done, 1 a file, storage or worker problem, 2 a bad option or search space, 130 interrupted",
    )
    parser.add_argument("--study", type=study_name, required=True, help="the study's name in the storage")
    parser.add_argument(
        "--trials",
        type=positive_int,
        required=True,
        metavar="N",
        help="run until the study holds N finished (completed or pruned) trials, counting earlier runs'",
    )
    parser.add_argument(
        "--space",
        default="small",
        metavar="NAME|PATH",
        help=f"the search space: a built-in one ({', '.join(f'{name}: {describe_builtin(name)}' for name in tuning.SPACES)}) "
        "or a JSON or TOML file (default small)",
    )
    parser.add_argument(
        "--budget",
        type=seconds,
        default=None,
        metavar="SECONDS",
        help="prune a trial as soon as its training time is foreseen to pass SECONDS (default: no budget)",
    )
    parser.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help=f"where the study lives: sqlite:///FILE, or postgresql://USER@HOST/DB for workers on many machines "
        f"(default {DEFAULT_STORAGE})",
    )
    parser.add_argument(
        "--jobs", type=positive_int, default=1, metavar="N", help="worker processes on this machine (default 1)"
    )
    parser.add_argument(
        "--val",
        type=text_parser(FIELDS["val"].metadata["kind"]),
        default=5000,
        metavar="N",
        help="training images held out for validation, the same for every trial (default 5000)",
    )
    parser.add_argument(
        "--seed",
        type=text_parser(FIELDS["seed"].metadata["kind"]),
        default=0,
        help="every trial's seed: its validation split, initial weights and batches (default 0)",
    )
    parser.add_argument("--limit", type=positive_int, default=None, help="use the first N training images only")
    add_data_dir_option(parser)
    parser.add_argument("--device", choices=backend.DEVICES, default="cpu", help="cpu or gpu (default cpu)")
    parser.add_argument(
        "--recipe-file",
        type=output_path,
        default=None,
        metavar="PATH",
        help="write the best trial's settings here, for train --recipe-file (default tune-STUDY.json)",
    )
    parser.add_argument(
        "--plots",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the optimization history, parameter importances and slice plot (PNG) into DIR",
    )
    parser.add_argument("--no-pruning", action="store_true", help="run every trial to its last epoch")
    parser.add_argument(
        "--heartbeat",
        type=positive_int,
        default=10,
        metavar="SECONDS",
        help="running trials beat this often; one silent for three beats is failed and run again (default 10)",
    )
    return parser


def quiet_optuna() -> None:
    """Keep Optuna's log to errors, in this process and in every worker: the command prints its own line per trial."""
    optuna = tuning.require_optuna()
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def describe_builtin(name: str) -> str:
    hidden = tuning.SPACES[name]["hidden"]["value"]
    return "784-" + "-".join(map(str, hidden)) + "-10"


def print_trial(trial) -> None:
    """One line per finished trial; surplus ones (dropped when two workers asked at once) are not shown."""
    if trial.user_attrs.get("surplus"):
        return
    settings = describe_params(trial.params)
    if trial.state.name == "COMPLETE":
        outcome = f"val {trial.value:.4f} in {trial.user_attrs.get('train_seconds', 0):.1f} s"
    elif trial.state.name == "PRUNED":
        outcome = trial.user_attrs.get("stopped", "pruned")
    else:
        outcome = trial.state.name.lower()
    print(f"trial {trial.number:>3}  {outcome:<34}  {settings}", flush=True)


def describe_params(params: dict) -> str:
    """A trial's sampled settings in one short line."""
    return " ".join(
        f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}" for name, value in params.items()
    )


def train_arguments(config: TrainConfig) -> list[str]:
    """The ``train`` options that give ``config``: every setting that differs from the default."""
    arguments = []
    for name in FIELDS:
        value = getattr(config, name)
        if value != getattr(DEFAULT, name):
            arguments += [flag(name), value_text(value)]
    return arguments


def run(args: argparse.Namespace) -> int:
    quiet_optuna()
    label, raw = tuning.load_space(args.space)
    space = tuning.parse_space(raw)
    storage_url = args.storage or DEFAULT_STORAGE
    spec = tuning.StudySpec(
        name=args.study,
        storage=storage_url,
        space=space.to_json(),
        trials=args.trials,
        val=args.val,
        seed=args.seed,
        budget=args.budget,
        prune=not args.no_pruning,
        heartbeat=args.heartbeat,
        data=DataSource(args.data_dir, args.limit, args.device),
    )
    data = spec.data.load(spec.base().dtype)
    tuning.check_data(spec, data)
    storage = tuning.open_storage(storage_url, args.heartbeat)
    study = tuning.open_study(spec, storage)
    where = f" ({Path(storage_url[len('sqlite:///') :]).absolute()}, the default)" if args.storage is None else ""
    counts = tuning.tally(study)
    print(
        f"study {args.study!r} in {tuning.shown_url(storage_url)}{where}: {tuning.finished(counts)} of "
        f"{args.trials} trials finished"
    )
    budget = f", training budget {args.budget:g} s a trial" if args.budget else ""
    print(
        f"searching {', '.join(space.searched)} (space {label}) on {args.val} validation images of "
        f"{data.X_train.shape[0]} training images, seed {args.seed}{budget}; {args.jobs} worker(s)",
        flush=True,
    )
    codes = tuning.run_study(spec, args.jobs, data, print_trial, study, setup=quiet_optuna)
    for number, code in enumerate(codes, start=2):
        if code:
            print(f"warning: worker {number} ended with exit code {code}", file=sys.stderr)
    return report(args, spec, study)


def report(args: argparse.Namespace, spec: tuning.StudySpec, study) -> int:
    """Print the study's totals and best trial, and write the recipe file and plots."""
    counts = tuning.tally(study)
    done = tuning.finished(counts)
    extra = "".join(
        f", {counts[state]} {state.lower()}" for state in ("FAIL", "RUNNING", "WAITING") if counts.get(state)
    )
    print(
        f"study {spec.name!r}: {done} trials finished ({counts.get('COMPLETE', 0)} complete, "
        f"{counts.get('PRUNED', 0)} pruned{extra})"
    )
    best, config = tuning.best_config(study)
    seconds = best.user_attrs.get("train_seconds", 0.0)
    print(
        f"best trial {best.number}: validation accuracy {best.value:.4f} ({100 * best.value:.2f} %), "
        f"training {seconds:.1f} s: {describe_params(best.params)}"
    )
    path = args.recipe_file or Path(f"tune-{spec.name}.json")
    write_recipe(path, config)
    data = (
        (["--limit", str(args.limit)] if args.limit else [])
        + (["--data-dir", str(args.data_dir)] if args.data_dir else [])
        + (["--device", args.device] if args.device != "cpu" else [])
    )
    print(f"recipe written to {path}; train it with:")
    print("  " + shlex.join(["python", "-m", "mnist_xp.train", "--recipe-file", str(path), *data]))
    print("or, spelled out:")
    print("  " + shlex.join(["python", "-m", "mnist_xp.train", *train_arguments(config), *data]))
    if args.plots is not None:
        written = studyplots.write_plots(study, args.plots)
        print(f"plots written to {args.plots}: {', '.join(path.name for path in written)}")
    if done < spec.trials:
        raise MnistXpError(
            f"the study has {done} of {spec.trials} trials finished: run the command again to continue it"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command; a bad search space or option combination is one ``error:`` line and exit 2."""
    args = build_parser().parse_args(argv)
    return run_reporting_errors(lambda: run(args))
