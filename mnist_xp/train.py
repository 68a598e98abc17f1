"""Command line: train a network on MNIST (or any IDX data set) and report its test accuracy.

    python -m mnist_xp.train --device cpu
    python -m mnist_xp.train --recipe seed
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from . import backend, curves, data, modelfile, nn, plots
from .errors import MnistXpError
from .optim import sgd
from .recipes import RECIPES
from .training import TrainState, evaluate, fit

INPUT_SIZE = 28 * 28


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive finite number")
    return value


def hidden_sizes(text: str) -> list[int]:
    """'128' or '256,128' to [128] or [256, 128]; an empty string means no hidden layer."""
    if text.strip() == "":
        return []
    return [positive_int(part.strip()) for part in text.split(",")]


def batch_size(text: str) -> int | str:
    return "full" if text == "full" else positive_int(text)


def build_parser() -> argparse.ArgumentParser:
    default = RECIPES["default"]
    parser = argparse.ArgumentParser(
        prog="python -m mnist_xp.train",
        description="Train a from-scratch multilayer perceptron on MNIST and report its test accuracy.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
    parser.add_argument("--seed", type=int, help="seed for the initial weights and the batch order (default 0)")
    parser.add_argument("--limit", type=positive_int, default=None, help="train on the first N training images only")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with IDX files named like MNIST's (gzipped or not); default: the bundled MNIST",
    )
    parser.add_argument("--save", type=Path, default=None, metavar="PATH", help="write the trained model (.npz) here")
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
    return parser


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
    settings = resolve_settings(args)
    if args.plots is not None:
        plots.require()
    xp = backend.namespace(args.device)
    dataset = data.load(xp, settings["dtype"], args.data_dir, args.limit)
    n_train = dataset.X_train.shape[0]
    layer_sizes = [INPUT_SIZE, *settings["hidden"], data.NUM_CLASSES]
    normal = backend.standard_normal(backend.host_rng(settings["seed"]), xp, settings["dtype"])
    params = nn.init_params(layer_sizes, normal, settings["init"])
    batch = None if settings["batch_size"] == "full" else settings["batch_size"]
    epochs = settings["epochs"]
    log_every = args.log_every or max(1, epochs // 10)

    print(
        f"mnist-xp: {'-'.join(map(str, layer_sizes))} {settings['activation']}, {n_train} training images, "
        f"{epochs} epochs, batch {settings['batch_size']}, lr {settings['lr']}, {settings['dtype']} on {args.device}"
    )
    progress = tqdm(total=epochs, unit="epoch", disable=None, leave=False, dynamic_ncols=True)

    def on_epoch(state, result):
        if args.plots is not None:
            result.metrics.update(curves.epoch_metrics(state.params, dataset, settings["activation"]))
        progress.update(1)
        progress.set_postfix(loss=f"{result.loss:.4f}")
        if result.epoch % log_every == 0 or result.epoch in (1, epochs):
            progress.write(f"epoch {result.epoch:>{len(str(epochs))}}/{epochs}  loss {result.loss:.4f}")

    started = time.perf_counter()
    try:
        optimizer = sgd()
        state = fit(
            TrainState(params, optimizer.init(params)),
            dataset.X_train,
            dataset.Y_train,
            optimizer=optimizer,
            learning_rate=settings["lr"],
            epochs=epochs,
            batch_size=batch,
            activation=settings["activation"],
            seed=settings["seed"],
            on_epoch=on_epoch,
        )
    finally:
        progress.close()
    train_seconds = time.perf_counter() - started
    params = state.params
    _, test_accuracy = evaluate(params, dataset.X_test, dataset.y_test, settings["activation"])
    print(f"test accuracy {100 * test_accuracy:.2f} %  (training time {train_seconds:.1f} s)")
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
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except MnistXpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
