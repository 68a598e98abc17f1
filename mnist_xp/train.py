"""Command line: train a network on MNIST (or any IDX data set) and report its test accuracy.

    python -m mnist_xp.train --device cpu
    python -m mnist_xp.train --recipe seed
    python -m mnist_xp.train --recipe fast --report report.json
    python -m mnist_xp.train --checkpoint run.npz        # then, after a crash or Ctrl-C:
    python -m mnist_xp.train --resume run.npz

Exit codes: 0 done, 1 a file or device problem, 2 a bad option, 3 training diverged,
130 / 143 interrupted by SIGINT / SIGTERM (after saving a checkpoint when --checkpoint is given).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from tqdm import tqdm

from . import backend, checkpoint, curves, data, guard, metrics, modelfile, nn, plots, resume, schedules
from .cli import add_data_dir_option, run_reporting_errors
from .errors import DivergenceError, UsageError
from .recipes import OPTIMIZERS, RECIPES, make_optimizer, make_schedule
from .training import TrainState, batch_slices, fit
from .validation import EarlyStopping, carve

INPUT_SIZE = 28 * 28


def _number(text: str, convert, noun: str):
    """``text`` converted by ``convert`` (int or float), or an argparse error calling it not ``noun``."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None


def positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive finite number")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1), such as a dropout rate or a momentum coefficient."""
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 0 and below 1")
    return value


MAX_SHIFT = 4
"""MNIST's digits sit in a 20 x 20 box in the middle of the 28 x 28 frame: 4 pixels of margin."""


def shift_pixels(text: str) -> int:
    value = _number(text, int, "a whole number")
    if not 0 <= value <= MAX_SHIFT:
        raise argparse.ArgumentTypeError(f"{text!r} is outside 0..{MAX_SHIFT}")
    return value


def hidden_sizes(text: str) -> list[int]:
    """'128' or '256,128' to [128] or [256, 128]; an empty string means no hidden layer."""
    if text.strip() == "":
        return []
    sizes = [positive_int(part.strip()) for part in text.split(",")]
    if max(sizes) > modelfile.MAX_LAYER_SIZE:
        raise argparse.ArgumentTypeError(f"{text!r}: a layer may have at most {modelfile.MAX_LAYER_SIZE} units")
    return sizes


def seed_value(text: str) -> int:
    value = _number(text, int, "a whole number")
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text!r} is outside 0..{2**32 - 1}")
    return value


def output_path(text: str) -> Path:
    """A file this run may write: not a folder, and in a folder that exists (or can be made) and is writable."""
    path = Path(text)
    if text == "" or path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file name")
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r} cannot be written: {folder} is not a writable folder")
    return path


def batch_size(text: str) -> int | str:
    return "full" if text == "full" else positive_int(text)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends an option's default only where it has one; options a recipe sets name theirs in their help."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    default = RECIPES["default"]
    parser = argparse.ArgumentParser(
        prog="python -m mnist_xp.train",
        description="Train a from-scratch multilayer perceptron on MNIST and report its test accuracy.",
        epilog="exit codes: 0 done, 1 a file or device problem, 2 a bad option, 3 training diverged, "
        "130 / 143 interrupted by SIGINT / SIGTERM",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--device", choices=backend.DEVICES, default="cpu", help="cpu runs on NumPy, gpu on CuPy")
    parser.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default="default",
        help="named settings; options given explicitly override the recipe's ('seed' is the original tutorial)",
    )
    parser.add_argument("--epochs", type=positive_int, help=f"passes over the training set (default {default['epochs']})")
    parser.add_argument("--lr", type=positive_float, help=f"learning rate (default {default['lr']})")
    parser.add_argument(
        "--batch-size",
        type=batch_size,
        help=f"samples per update, or 'full' for batch gradient descent (default {default['batch_size']})",
    )
    parser.add_argument(
        "--hidden", type=hidden_sizes, help="hidden layer sizes, comma-separated, e.g. 256,128 (default 128)"
    )
    parser.add_argument("--activation", choices=sorted(nn.ACTIVATIONS), help="hidden-layer activation (default relu)")
    parser.add_argument(
        "--init", choices=sorted(nn.INITIALIZERS), help="weight initialisation: he, or small = randn * 0.01 (default he)"
    )
    parser.add_argument("--dtype", choices=backend.DTYPES, help="floating-point type (default float32)")
    parser.add_argument("--seed", type=seed_value, help="seed for the initial weights and the batch order (default 0)")
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
        "--checkpoint-every",
        type=positive_int,
        default=None,
        metavar="N",
        help="write the checkpoint every N epochs (default 1)",
    )
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="PATH",
        help="continue the run saved in this checkpoint, with its settings; only --epochs (to train longer) and --lr "
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
    add_optimization_options(parser)
    return parser


def add_optimization_options(parser: argparse.ArgumentParser) -> None:
    """Optimizer, schedule, regularisation, validation and report options (defaults come from the recipe)."""
    group = parser.add_argument_group("optimization, regularisation and evaluation")
    group.add_argument("--optimizer", choices=OPTIMIZERS, help="update rule (default sgd)")
    group.add_argument("--momentum", type=fraction, help="momentum coefficient for momentum and nesterov (default 0.9)")
    group.add_argument(
        "--weight-decay", type=non_negative_float, help="AdamW's decoupled weight decay (adamw only; default 0.004)"
    )
    group.add_argument("--schedule", choices=schedules.SCHEDULES, help="learning-rate schedule (default constant)")
    group.add_argument(
        "--warmup", type=non_negative_float, metavar="EPOCHS", help="linear warm-up of the learning rate (default 0)"
    )
    group.add_argument(
        "--step-every", type=positive_int, metavar="EPOCHS", help="step schedule: decay every N epochs (default: a third of the run)"
    )
    group.add_argument("--step-factor", type=positive_float, help="step schedule: multiply the rate by this (default 0.1)")
    group.add_argument("--l2", type=non_negative_float, help="L2 penalty (l2/2) * sum(W^2) on the weights (default 0)")
    group.add_argument("--dropout", type=fraction, metavar="RATE", help="inverted-dropout rate on the hidden layers (default 0)")
    group.add_argument(
        "--input-dropout", type=fraction, metavar="RATE", help="inverted-dropout rate on the input pixels (default 0)"
    )
    group.add_argument(
        "--shift",
        type=shift_pixels,
        metavar="PIXELS",
        help="augmentation: move each training batch by a random offset of up to PIXELS pixels each way (default 0)",
    )
    group.add_argument(
        "--label-smoothing",
        type=fraction,
        metavar="AMOUNT",
        help="train on targets of 1 - AMOUNT + AMOUNT/10 for the true class and AMOUNT/10 for the others (default 0)",
    )
    group.add_argument(
        "--val",
        type=positive_int,
        metavar="N",
        help="hold out N training images (chosen by the seed) as a validation set, reported every epoch",
    )
    group.add_argument(
        "--patience",
        type=positive_int,
        metavar="EPOCHS",
        help="with --val: stop after this many epochs without a lower validation loss and keep the best epoch's weights",
    )
    group.add_argument(
        "--report", type=output_path, default=None, metavar="PATH", help="write the test evaluation and run history as JSON here"
    )


def resolve_settings(args: argparse.Namespace) -> dict:
    """The recipe's settings with every explicitly given option laid over them."""
    settings = dict(RECIPES["default"]) | dict(RECIPES[args.recipe])
    for key in RECIPES["default"]:
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    return settings


def run(args: argparse.Namespace) -> dict:
    """Train as ``args`` say; return a summary with the test accuracy and the training time."""
    saved = None
    if args.resume is not None:
        saved = checkpoint.load(args.resume)
        args = resume.merge(build_parser(), args, saved)
    settings = resolve_settings(args)
    if args.plots is not None:
        plots.require()
    xp = backend.namespace(args.device)
    dataset = data.load(xp, settings["dtype"], args.data_dir, args.limit)
    if settings["patience"] is not None and settings["val"] is None:
        raise UsageError("--patience needs a validation split: add --val N")
    optimizer = make_optimizer(settings)
    validation = None
    if settings["val"] is not None:
        dataset, validation = carve(dataset, settings["val"], settings["seed"])
    n_train = dataset.X_train.shape[0]
    layer_sizes = [INPUT_SIZE, *settings["hidden"], data.NUM_CLASSES]
    batch = None if settings["batch_size"] == "full" else settings["batch_size"]
    if saved is None:
        normal = backend.standard_normal(backend.host_rng(settings["seed"]), xp, settings["dtype"])
        params = nn.init_params(layer_sizes, normal, settings["init"])
        state = TrainState(params, optimizer.init(params))
    else:
        resume.check_steps(saved, n_train, batch)
        state = checkpoint.restore(saved, xp, optimizer, layer_sizes, settings["dtype"])
    epochs = settings["epochs"]
    log_every = args.log_every or max(1, epochs // 10)
    schedule = make_schedule(settings, len(batch_slices(n_train, batch)))
    stopper = None if validation is None else EarlyStopping(validation, settings["activation"], settings["patience"])

    print(
        f"mnist-xp: {'-'.join(map(str, layer_sizes))} {settings['activation']}, {n_train} training images, "
        f"{epochs} epochs, batch {settings['batch_size']}, lr {settings['lr']}, {settings['dtype']} on {args.device}"
    )
    print(describe_optimization(settings))
    if saved is not None:
        print(f"resuming {args.resume} after epoch {saved.epoch}")
    progress = tqdm(total=epochs, initial=state.epoch, unit="epoch", disable=None, leave=False, dynamic_ncols=True)
    data_dir = None if args.data_dir is None else str(Path(args.data_dir).absolute())
    keeper = guard.Keeper(
        state,
        settings | {"limit": args.limit, "data_dir": data_dir},
        args.checkpoint or args.resume,
        args.checkpoint_every or 1,
    )

    def on_epoch(state, result):
        stop = stopper is not None and stopper(state, result)
        if args.plots is not None:
            result.metrics.update(curves.epoch_metrics(state.params, dataset, settings["activation"]))
        progress.update(1)
        progress.set_postfix(loss=f"{result.loss:.4f}")
        if result.epoch % log_every == 0 or result.epoch in (1, epochs) or stop:
            shown = "".join(f"  {name} {value:.4f}" for name, value in result.metrics.items())
            progress.write(f"epoch {result.epoch:>{len(str(epochs))}}/{epochs}  loss {result.loss:.4f}{shown}")
        keeper.on_epoch(state, result)  # last: it checks for divergence and checkpoints the finished epoch
        return stop

    started = time.perf_counter()
    try:
        with guard.interrupts_raise(), guard.float_warnings_off():
            try:
                state = fit(
                    state,
                    dataset.X_train,
                    dataset.Y_train,
                    optimizer=optimizer,
                    learning_rate=schedule,
                    epochs=epochs,
                    batch_size=batch,
                    activation=settings["activation"],
                    seed=settings["seed"],
                    on_epoch=on_epoch,
                    dropout=settings["dropout"],
                    input_dropout=settings["input_dropout"],
                    l2=settings["l2"],
                    label_smoothing=settings["label_smoothing"],
                    shift=settings["shift"],
                )
                keeper.save()
            except guard.Interrupted as stop:
                progress.close()
                report_interrupt(stop, keeper)
                raise
    finally:
        progress.close()
    train_seconds = time.perf_counter() - started
    params = state.params
    if stopper is not None and settings["patience"] is not None and stopper.best_params is not None:
        params = stopper.best_params
        print(f"early stopping: kept the weights of epoch {stopper.best_epoch} (validation loss {stopper.best_loss:.4f})")
    test = metrics.evaluate_report(params, dataset.X_test, dataset.Y_test, dataset.y_test, settings["activation"])
    test_accuracy = test["accuracy"]
    print(metrics.format_table(test))
    print(f"test accuracy {100 * test_accuracy:.2f} %  (training time {train_seconds:.1f} s)")
    if args.report is not None:
        metrics.write_json(args.report, run_report(args, settings, state, test, train_seconds, stopper))
        print(f"report written to {args.report}")
    host_params = [(backend.to_host(W), backend.to_host(b)) for W, b in params]
    if args.save is not None:
        extra = {"test_accuracy": test_accuracy, "history": curves.history_records(state.history)}
        modelfile.save(args.save, host_params, settings["activation"], extra=extra)
        print(f"model saved to {args.save}")
    if args.plots is not None:
        written = plots.write_pictures(
            args.plots,
            host_params,
            settings["activation"],
            backend.to_host(dataset.X_train).reshape(-1, 28, 28),
            dataset.y_train,
            backend.to_host(dataset.X_test).reshape(-1, 28, 28),
            dataset.y_test,
            curves.history_records(state.history),
        )
        print(f"pictures written to {args.plots}: {', '.join(path.name for path in written)}")
    return {
        "test_accuracy": test_accuracy,
        "train_seconds": train_seconds,
        "final_loss": state.losses[-1],
        "settings": settings,
        "test": test,
    }


def describe_optimization(settings: dict) -> str:
    """One line naming the optimizer, schedule, regularisation and validation split of a run."""
    parts = [f"optimizer {settings['optimizer']}"]
    if settings["optimizer"] in ("momentum", "nesterov"):
        parts[0] += f" (momentum {settings['momentum']})"
    parts.append(f"{settings['schedule']} schedule" + (f", warm-up {settings['warmup']} epochs" if settings["warmup"] else ""))
    if settings["dropout"]:
        parts.append(f"dropout {settings['dropout']}")
    if settings["input_dropout"]:
        parts.append(f"input dropout {settings['input_dropout']}")
    if settings["l2"]:
        parts.append(f"l2 {settings['l2']}")
    if settings["label_smoothing"]:
        parts.append(f"label smoothing {settings['label_smoothing']}")
    if settings["shift"]:
        parts.append(f"shifts of up to {settings['shift']} px")
    if settings["val"] is not None:
        parts.append(f"validation {settings['val']} images" + (f", patience {settings['patience']}" if settings["patience"] else ""))
    return "           " + ", ".join(parts)


def run_report(args, settings: dict, state: TrainState, test: dict, train_seconds: float, stopper) -> dict:
    """What ``--report`` writes: settings, per-epoch history, training time and the test evaluation."""
    return {
        "recipe": args.recipe,
        "settings": settings,
        "train_seconds": train_seconds,
        "epochs_run": state.epoch,
        "best_epoch": None if stopper is None else stopper.best_epoch,
        "history": curves.history_records(state.history),
        "test": test,
    }


def report_interrupt(stop: guard.Interrupted, keeper: guard.Keeper) -> None:
    """Write the last finished epoch's checkpoint (if checkpointing) and say how to resume from it."""
    saved = keeper.save()
    if saved is None:
        note = "nothing saved (give --checkpoint PATH to make a run resumable)"
    else:
        note = (
            f"the state after epoch {saved.epoch} is saved in {keeper.path}; "
            f"continue with: python -m mnist_xp.train --resume {shlex.quote(str(keeper.path))}"
        )
    print(f"interrupted by {stop}: {note}", file=sys.stderr)


def _same_file(path: Path, other: Path | None) -> bool:
    return other is not None and path.absolute() == other.absolute()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
    return run_reporting_errors(lambda: _train_reporting_its_own_failures(parser, args))


def _train_reporting_its_own_failures(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``run``, with the failures only training has; the commands' shared ones are left to ``run_reporting_errors``.

    A bad combination of options is a usage error (exit 2), divergence exits 3, SIGINT and
    SIGTERM exit as those signals do, and running out of memory is one line (exit 1).
    """
    try:
        run(args)
    except UsageError as exc:
        parser.error(str(exc))
    except DivergenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except guard.Interrupted as stop:
        return stop.exit_code
    except MemoryError:
        print("error: not enough memory for this run (try smaller --hidden layers or a --limit)", file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
