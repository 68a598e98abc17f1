"""Command line: train a network on MNIST (or any IDX data set) and report its test accuracy.

    python -m mnist_xp.train --device cpu
    python -m mnist_xp.train --backend torch --recipe fast
    python -m mnist_xp.train --recipe seed
    python -m mnist_xp.train --recipe fast --report report.json
    python -m mnist_xp.train --checkpoint run.npz        # then, after a crash or Ctrl-C:
    python -m mnist_xp.train --resume run.npz

Exit codes: 0 done, 1 a file or device problem, 2 a bad option, 3 training diverged,
130 / 143 interrupted by SIGINT / SIGTERM (after saving a checkpoint when --checkpoint is given).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from .. import augment, backend, guard, metrics, plots, resume
from ..callbacks import Callback
from ..config import FIELDS, RECIPES, RESUMABLE, TrainConfig, read_recipe
from ..data import IMAGE_SHAPE, DataSource
from ..loop import history_records
from ..pipeline import TrainResult, train
from .common import (
    add_config_options,
    add_data_dir_option,
    add_place_options,
    config_from,
    flag,
    given_settings,
    output_path,
    positive_int,
    run_reporting_errors,
    settle_place,
)

MODEL_SETTINGS = ("epochs", "lr", "batch_size", "hidden", "activation", "init", "dtype", "seed")
OPTIMIZATION_SETTINGS = tuple(name for name in FIELDS if name not in MODEL_SETTINGS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_xp.train",
        description="Train a from-scratch multilayer perceptron on MNIST and report its test accuracy.",
        epilog="exit codes: 0 done, 1 a file or device problem, 2 a bad option, 3 training diverged, "
        "130 / 143 interrupted by SIGINT / SIGTERM",
    )
    add_place_options(parser)
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the training compiled: on JAX each epoch as one program, on PyTorch each step through "
        "torch.compile (default: on for JAX only)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        metavar="N",
        help="BLAS threads that share each batch's matrix products on NumPy. One (the default) gives the same "
        "weights on any number of cores and yields to other work; more train faster on a quiet machine, with "
        "weights that depend on N",
    )
    parser.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default=None,
        help="named settings; options given explicitly override the recipe's ('seed' is the original tutorial) "
        "(default: default)",
    )
    parser.add_argument(
        "--recipe-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="settings from a JSON recipe file (as python -m mnist_xp.tune writes); options given explicitly override them",
    )
    add_config_options(parser, MODEL_SETTINGS)
    parser.add_argument("--limit", type=positive_int, default=None, help="train on the first N training images only")
    add_data_dir_option(parser)
    parser.add_argument("--save", type=output_path, default=None, metavar="PATH", help="write the trained model (.npz) here")
    parser.add_argument(
        "--checkpoint",
        type=output_path,
        default=None,
        metavar="PATH",
        help="keep the run's state in this file (atomically replaced), to --resume it after a crash or interrupt",
    )
    parser.add_argument(
        "--checkpoint-every", type=positive_int, default=None, metavar="N", help="write the checkpoint every N epochs (default 1)"
    )
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"continue the run saved in this checkpoint, with its settings; only {' and '.join(map(flag, RESUMABLE))} "
        "may change them; checkpoints keep going to PATH unless --checkpoint names another file",
    )
    parser.add_argument(
        "--plots",
        type=Path,
        default=None,
        metavar="DIR",
        help="write pictures (digits, training curves, confusion matrix, mistakes, weights) into DIR; "
        "measures test accuracy every epoch; needs the plot extra",
    )
    parser.add_argument(
        "--log-every", type=positive_int, default=None, metavar="N", help="print a line every N epochs (default: 10 lines a run)"
    )
    group = parser.add_argument_group("optimization, regularisation and evaluation")
    add_config_options(parser, OPTIMIZATION_SETTINGS, group)
    group.add_argument(
        "--report", type=output_path, default=None, metavar="PATH", help="write the test evaluation and run history as JSON here"
    )
    return parser


def resolve(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The run's config, its data and the checkpoint it continues (None for a fresh run), from the options."""
    given = given_settings(args)
    if args.recipe is not None and args.recipe_file is not None:
        parser.error("argument --recipe-file: not allowed with --recipe (choose one)")
    if args.resume is None:
        base = RECIPES[args.recipe or "default"] if args.recipe_file is None else read_recipe(args.recipe_file)
        return config_from(base, given, parser), DataSource(args.data_dir, args.limit, args.device, args.backend), None
    if args.recipe is not None or args.recipe_file is not None:
        option = "--recipe" if args.recipe is not None else "--recipe-file"
        parser.error(f"argument {option}: not allowed with --resume (the checkpoint holds the run's settings)")
    resumed = resume.resolve(args.resume, args.device, args.backend)
    source = resumed.source
    if args.data_dir is not None or args.limit is not None:
        source = replace(source, folder=args.data_dir or source.folder, limit=args.limit or source.limit)
    return config_from(resumed.config, given, parser), source, resumed.checkpoint


class Progress(Callback):
    """The command's view of a run: the banner, a progress bar, a line every ``log_every`` epochs.

    The bar's own calls run in ``interrupts.held()`` blocks, so that a stop signal cannot cut
    tqdm's lock handling in two; without a bar (output not to a terminal) the lines are plain
    writes, which a stop may end at once, even one blocked on a full pipe.
    """

    def __init__(self, args: argparse.Namespace, interrupts: guard.Interrupts):
        self.args = args
        self.interrupts = interrupts
        self.bar = None

    def on_train_begin(self, run):
        config, epochs = run.config, run.config.epochs
        library, device = backend.place_of(run.data.X_train)
        print(
            f"mnist-xp: {'-'.join(map(str, run.layer_sizes))} {config.activation}, {run.data.X_train.shape[0]} "
            f"training images, {epochs} epochs, batch {config.batch_size}, lr {config.lr}, {config.dtype} "
            f"on {device} ({library})"
        )
        print(describe_optimization(config))
        if run.resumed is not None:
            print(f"resuming {self.args.resume} after epoch {run.resumed.epoch}")
        self.log_every = self.args.log_every or max(1, epochs // 10)
        with self.interrupts.held():
            self.bar = tqdm(
                total=epochs, initial=run.state.epoch, unit="epoch", disable=None, leave=False, dynamic_ncols=True
            )

    def on_epoch_end(self, run, result):
        epochs = run.config.epochs
        last = result.epoch == epochs or run.stopping
        line = None
        if result.epoch % self.log_every == 0 or result.epoch == 1 or last:
            metrics = "".join(f"  {name} {value:.4f}" for name, value in result.metrics.items())
            line = f"epoch {result.epoch:>{len(str(epochs))}}/{epochs}  loss {result.loss:.4f}{metrics}"
        if self.bar.disable:
            if line is not None:
                print(line)
            return
        with self.interrupts.held():
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{result.loss:.4f}")
            if line is not None:
                self.bar.write(line)

    def close(self):
        if self.bar is not None:
            with self.interrupts.held():
                self.bar.close()


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> TrainResult:
    """Train as ``args`` say, printing progress, the test report and what was written."""
    config, source, saved = resolve(parser, args)
    if args.plots is not None:
        plots.require()
    interrupts = guard.Interrupts()
    progress = Progress(args, interrupts)
    try:
        with guard.interrupts_raise(interrupts):
            result = train(
                config,
                data=source,
                callbacks=[progress],
                measure_test=args.plots is not None,
                checkpoint=args.checkpoint,
                checkpoint_every=args.checkpoint_every or 1,
                resume_from=saved,
                compile=args.compile,
                threads=args.threads,
            )
    except guard.Interrupted as stop:
        progress.close()
        report_interrupt(stop)
        raise
    finally:
        progress.close()
    report(args, config, result)
    return result


def report(args: argparse.Namespace, config: TrainConfig, result: TrainResult) -> None:
    """Print the test report and write the files the options ask for."""
    if config.patience is not None and result.best_epoch and result.best_epoch != result.state.epoch:
        best = result.history[result.best_epoch - 1].metrics["val_loss"]
        print(f"early stopping: kept the weights of epoch {result.best_epoch} (validation loss {best:.4f})")
    print(metrics.format_table(result.test))
    print(f"test accuracy {100 * result.test_accuracy:.2f} %  (training time {result.train_seconds:.1f} s)")
    if args.report is not None:
        metrics.write_json(args.report, run_report(args, result))
        print(f"report written to {args.report}")
    if args.save is not None:
        result.model.save(args.save)
        print(f"model saved to {args.save}")
    if args.plots is not None:
        data = result.data
        written = plots.write_pictures(
            args.plots,
            result.model.params,
            config.activation,
            backend.to_host(data.X_train).reshape(-1, *IMAGE_SHAPE),
            data.y_train,
            backend.to_host(data.X_test).reshape(-1, *IMAGE_SHAPE),
            data.y_test,
            history_records(result.history),
            augment.from_config(config),
            config.seed,
        )
        print(f"pictures written to {args.plots}: {', '.join(path.name for path in written)}")


def describe_optimization(config: TrainConfig) -> str:
    """One line naming the optimizer, schedule, regularisation and validation split of a run."""
    parts = [f"optimizer {config.optimizer}"]
    if config.optimizer in ("momentum", "nesterov"):
        parts[0] += f" (momentum {config.momentum})"
    parts.append(f"{config.schedule} schedule" + (f", warm-up {config.warmup} epochs" if config.warmup else ""))
    if config.dropout:
        parts.append(f"dropout {config.dropout}")
    if config.input_dropout:
        parts.append(f"input dropout {config.input_dropout}")
    if config.l2:
        parts.append(f"l2 {config.l2}")
    if config.label_smoothing:
        parts.append(f"label smoothing {config.label_smoothing}")
    if config.shift:
        parts.append(f"shifts of up to {config.shift} px")
    if (distortion := augment.from_config(config)).active:
        parts.append(f"distortions: {distortion.describe()}")
    if config.val is not None:
        parts.append(f"validation {config.val} images" + (f", patience {config.patience}" if config.patience else ""))
    return "           " + ", ".join(parts)


def run_report(args: argparse.Namespace, result: TrainResult) -> dict:
    """What ``--report`` writes: settings, per-epoch history, training time and the test evaluation."""
    return {
        "recipe": args.recipe or ("default" if args.resume is None else None),
        "settings": result.config.to_dict() | {"limit": result.data.source.limit},
        "train_seconds": result.train_seconds,
        "epochs_run": result.state.epoch,
        "best_epoch": result.best_epoch,
        "history": history_records(result.history),
        "test": result.test,
    }


def report_interrupt(stop: guard.Interrupted) -> None:
    """Say where the last finished epoch's state was saved (if checkpointing) and how to resume from it."""
    saved = getattr(stop, "saved", None)
    if saved is None:
        note = "nothing saved (give --checkpoint PATH to make a run resumable)"
    else:
        note = (
            f"the state after epoch {saved.epoch} is saved in {stop.path}; "
            f"continue with: python -m mnist_xp.train --resume {shlex.quote(str(stop.path))}"
        )
    print(f"interrupted by {stop}: {note}", file=sys.stderr)


def _same_file(path: Path, other: Path | None) -> bool:
    return other is not None and path.absolute() == other.absolute()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settle_place(parser, args)
    if args.checkpoint_every is not None and args.checkpoint is None and args.resume is None:
        parser.error("argument --checkpoint-every: needs --checkpoint PATH (or --resume PATH)")
    if args.checkpoint is not None and args.checkpoint.exists() and not _same_file(args.checkpoint, args.resume):
        parser.error(
            f"argument --checkpoint: {args.checkpoint} already exists; continue that run with "
            f"--resume {shlex.quote(str(args.checkpoint))}, or delete the file to start afresh"
        )
    kept = args.checkpoint or args.resume
    if args.save is not None and _same_file(args.save, kept):
        parser.error(f"argument --save: {args.save} is also the checkpoint; give the model another file name")
    return run_reporting_errors(lambda: _train_reporting_its_own_failures(parser, args), parser)


def _train_reporting_its_own_failures(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``run``, with the failures only training has; the library's errors are left to ``run_reporting_errors``
    (a bad combination of options exits 2, divergence 3). SIGINT and SIGTERM exit as those signals do,
    and running out of memory is one line (exit 1).
    """
    try:
        run(parser, args)
    except guard.Interrupted as stop:
        return stop.exit_code
    except MemoryError:
        print("error: not enough memory for this run (try smaller --hidden layers or a --limit)", file=sys.stderr)
        return 1
    return 0
