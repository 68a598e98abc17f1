"""Every training setting, said once: ``TrainConfig``, its checks, and the named recipes.

Each field carries its default, its check and its help text. The command line's options,
the recipes, the settings a checkpoint keeps and the rule of which of them a resumed run may
change are all derived from these fields, so a setting is added or changed in one place.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

from . import nn, schedules
from .backend import DTYPES
from .errors import MnistXpError, SettingError, UsageError
from .npzio import write_atomically
from .values import is_real_number, is_whole_number, plain_number

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
ADAMW_WEIGHT_DECAY = 0.004
"""Keras's default decay for AdamW, used when ``weight_decay`` is None."""
MAX_SHIFT = 4
"""MNIST's digits sit in a 20 x 20 box in the middle of the 28 x 28 frame: 4 pixels of margin."""
MAX_ELASTIC = 100
MAX_SIGMA = 28
"""An elastic field smoothed wider than the frame is all but a uniform shift."""
MAX_ROTATE = 180
MAX_ZOOM = 0.5
MAX_SHEAR = 60
MAX_LAYER_SIZE = 1_000_000
MAX_SEED = 2**32 - 1


# Each check takes a value of the right type and returns what is wrong with it, or None.
def _positive(value) -> str | None:
    return None if value > 0 else "must be positive"


def _positive_finite(value) -> str | None:
    return None if 0 < value < float("inf") else "must be a positive finite number"


def _non_negative(value) -> str | None:
    return None if 0 <= value < float("inf") else "must be a finite number >= 0"


def _fraction(value) -> str | None:
    """A number in [0, 1), such as a dropout rate or a momentum coefficient."""
    return _non_negative(value) or (None if value < 1 else "must be at least 0 and below 1")


def _within(low: int, high: int) -> Callable:
    return lambda value: None if low <= value <= high else f"is outside {low}..{high}"


def _layer_size(value) -> str | None:
    return _positive(value) or (None if value <= MAX_LAYER_SIZE else f"is more than a layer may have ({MAX_LAYER_SIZE} units)")


@dataclass(frozen=True)
class Kind:
    """What values a setting takes: ``int``, ``float`` or ``str`` (with ``choices``), a tuple of ints
    (``items``), and also None (``optional``) or one word such as ``"full"`` (``text_choice``).

    ``check`` returns what is wrong with a value of the right type, or None.
    """

    type: type
    check: Callable | None = None
    choices: tuple | None = None
    optional: bool = False
    text_choice: str | None = None
    items: bool = False


def setting(default, kind: Kind, help: str, metavar: str | None = None, resumable: bool = False, default_text=None):
    """A ``TrainConfig`` field: its default, its kind, its help text and whether a resumed run may change it."""
    meta = {"kind": kind, "help": help, "metavar": metavar, "resumable": resumable, "default_text": default_text}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run; an invalid value raises ``SettingError`` (a ValueError) naming the field.

    ``TrainConfig()`` is the default run; ``RECIPES`` holds named variations of it, and
    ``dataclasses.replace(config, lr=0.1)`` makes another.
    """

    hidden: tuple = setting(
        (128,), Kind(int, _layer_size, items=True), "hidden layer sizes, comma-separated, e.g. 256,128", default_text="128"
    )
    activation: str = setting("relu", Kind(str, choices=tuple(sorted(nn.ACTIVATIONS))), "hidden-layer activation")
    init: str = setting(
        "he", Kind(str, choices=tuple(sorted(nn.INITIALIZERS))), "weight initialisation: he, or small = randn * 0.01"
    )
    lr: float = setting(0.5, Kind(float, _positive_finite), "learning rate", resumable=True)
    epochs: int = setting(15, Kind(int, _positive), "passes over the training set", resumable=True)
    batch_size: int | str = setting(
        128, Kind(int, _positive, text_choice="full"), "samples per update, or 'full' for batch gradient descent"
    )
    dtype: str = setting("float32", Kind(str, choices=DTYPES), "floating-point type")
    seed: int = setting(0, Kind(int, _within(0, MAX_SEED)), "seed for the initial weights and every random draw of the run")
    optimizer: str = setting("sgd", Kind(str, choices=OPTIMIZERS), "update rule")
    momentum: float = setting(0.9, Kind(float, _fraction), "momentum coefficient for momentum and nesterov")
    weight_decay: float | None = setting(
        None, Kind(float, _non_negative, optional=True), "AdamW's decoupled weight decay (adamw only)",
        default_text=f"{ADAMW_WEIGHT_DECAY} for adamw",
    )
    schedule: str = setting("constant", Kind(str, choices=schedules.SCHEDULES), "learning-rate schedule")
    warmup: float = setting(0.0, Kind(float, _non_negative), "linear warm-up of the learning rate", metavar="EPOCHS")
    step_every: int | None = setting(
        None, Kind(int, _positive, optional=True), "step schedule: decay every N epochs", metavar="EPOCHS",
        default_text="a third of the run",
    )
    step_factor: float = setting(0.1, Kind(float, _positive_finite), "step schedule: multiply the rate by this")
    l2: float = setting(0.0, Kind(float, _non_negative), "L2 penalty (l2/2) * sum(W^2) on the weights")
    dropout: float = setting(0.0, Kind(float, _fraction), "inverted-dropout rate on the hidden layers", metavar="RATE")
    input_dropout: float = setting(
        0.0, Kind(float, _fraction), "inverted-dropout rate on the input pixels", metavar="RATE"
    )
    label_smoothing: float = setting(
        0.0, Kind(float, _fraction), "train on targets of 1 - AMOUNT + AMOUNT/K for the true class and AMOUNT/K for "
        "the other K - 1 classes", metavar="AMOUNT",
    )
    shift: int = setting(
        0, Kind(int, _within(0, MAX_SHIFT)),
        "augmentation: move each training batch by a random offset of up to PIXELS pixels each way", metavar="PIXELS",
    )
    elastic: float = setting(
        0.0, Kind(float, _within(0, MAX_ELASTIC)),
        "augmentation: elastic distortion, moving each training image's pixels by a random displacement field "
        "smoothed by a Gaussian and scaled to ALPHA pixels", metavar="ALPHA",
    )
    elastic_sigma: float = setting(
        4.0, Kind(float, _within(1, MAX_SIGMA)), "elastic distortion: width of the Gaussian that smooths the displacement field", metavar="PIXELS"
    )
    rotate: float = setting(
        0.0, Kind(float, _within(0, MAX_ROTATE)),
        "augmentation: rotate each training image by a random angle of up to DEGREES either way", metavar="DEGREES",
    )
    zoom: float = setting(
        0.0, Kind(float, _within(0, MAX_ZOOM)),
        "augmentation: scale each training image's height and width by random factors within 1 +- FRACTION",
        metavar="FRACTION",
    )
    shear: float = setting(
        0.0, Kind(float, _within(0, MAX_SHEAR)),
        "augmentation: shear each training image sideways by a random angle of up to DEGREES either way",
        metavar="DEGREES",
    )
    val: int | None = setting(
        None, Kind(int, _positive, optional=True),
        "hold out N training images (chosen by the seed) as a validation set, reported every epoch", metavar="N",
        default_text="none",
    )
    patience: int | None = setting(
        None, Kind(int, _positive, optional=True),
        "with a validation set: stop after this many epochs without a lower validation loss and keep the best "
        "epoch's weights", metavar="EPOCHS", default_text="none",
    )

    def __post_init__(self):
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, list):  # JSON and users give lists; a frozen config keeps tuples
                object.__setattr__(self, item.name, value := tuple(value))
            if isinstance(value, tuple):
                object.__setattr__(self, item.name, value := tuple(map(plain_number, value)))
            else:
                object.__setattr__(self, item.name, value := plain_number(value))
            complaint = complaint_about(item.metadata["kind"], value)
            if complaint is not None:
                raise SettingError(item.name, f"{value!r} {complaint}")
        if self.weight_decay is not None and self.optimizer != "adamw":
            raise SettingError(
                "weight_decay", f"applies to adamw only (for {self.optimizer}, penalise the weights with l2)"
            )
        if self.patience is not None and self.val is None:
            raise SettingError("patience", "needs a validation split: set val", mentions=("val",))

    @property
    def full_batch(self) -> bool:
        return self.batch_size == "full"

    def to_dict(self) -> dict:
        """The settings as JSON-ready values (lists for tuples), as checkpoints and reports keep them."""
        return {name: list(value) if isinstance(value, tuple) else value for name, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, settings: dict) -> TrainConfig:
        """A config from stored settings; missing ones take their defaults, unknown ones are refused."""
        unknown = sorted(set(settings) - set(FIELDS))
        if unknown:
            raise SettingError(unknown[0], "is not a training setting")
        return cls(**settings)


def value_text(value) -> str:
    """A setting's value as text: hidden sizes comma-separated (``256,128``), others as ``str`` writes them."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def complaint_about(kind: Kind, value) -> str | None:
    """What is wrong with ``value`` as a setting of ``kind``, or None when it is fine."""
    if value is None and kind.optional or kind.text_choice is not None and value == kind.text_choice:
        return None
    if kind.items:
        if not isinstance(value, tuple):
            return "is not a list of whole numbers"
        one = replace(kind, items=False)
        return next(
            (f"holds {item!r}, which {problem}" for item in value if (problem := complaint_about(one, item))), None
        )
    if kind.type is str:
        if not isinstance(value, str) or value not in kind.choices:
            return f"is not one of {', '.join(kind.choices)}"
        return None
    if not (is_real_number(value) if kind.type is float else is_whole_number(value)):
        return "is not a whole number" if kind.type is int else "is not a number"
    return None if kind.check is None else kind.check(value)


FIELDS = {item.name: item for item in fields(TrainConfig)}
RESUMABLE = tuple(name for name, item in FIELDS.items() if item.metadata["resumable"])
"""The settings a resumed run may change: more epochs to train longer, a lower rate to recover from divergence."""

DEFAULT = TrainConfig()

RECIPES = {
    "default": DEFAULT,
    # The original tutorial exactly: small random weights, 1000 full-batch epochs at lr 0.01, float64.
    "seed": replace(DEFAULT, init="small", lr=0.01, epochs=1000, batch_size="full", dtype="float64", seed=42),
    # The tutorial's Keras model in this engine: Adam with Keras's defaults, batch 32, 10 epochs.
    "keras": replace(DEFAULT, optimizer="adam", lr=0.001, epochs=10, batch_size=32),
    # 784-128-10 to 98 % in a few epochs: Nesterov momentum, warm-up, cosine decay, label smoothing.
    "fast": replace(
        DEFAULT, optimizer="nesterov", momentum=0.9, lr=0.3, epochs=4, schedule="cosine", warmup=0.5, label_smoothing=0.1
    ),
    # The most accurate: Ciresan et al. (2010)'s smallest network, 784-1000-500-10, on elastic and affine distortions.
    "best": replace(
        DEFAULT, hidden=(1000, 500), optimizer="nesterov", momentum=0.9, lr=0.05, epochs=100, schedule="cosine",
        warmup=1.0, elastic=34.0, elastic_sigma=4.0, rotate=7.5, zoom=0.075, shear=7.5,
    ),
    # 784-128-10 to 98 % in few steps of batches big enough to fill a GPU: Adam, batch 4096, shifts.
    "gpu": replace(
        DEFAULT, optimizer="adam", lr=0.03, epochs=40, batch_size=4096, schedule="cosine", warmup=4.0, shift=1
    ),
    # Simard et al. (2003)'s 784-800-10 with elastic distortions: a new distortion of every image every epoch.
    "elastic": replace(
        DEFAULT, hidden=(800,), optimizer="nesterov", momentum=0.9, lr=0.05, epochs=200, schedule="cosine",
        warmup=1.0, elastic=34.0, elastic_sigma=4.0,
    ),
}
"""Named settings for ``train`` and ``--recipe``; docs/recipes.md tells how each was chosen."""


def read_recipe(path: Path | str) -> TrainConfig:
    """A recipe file: a JSON object of ``TrainConfig`` settings, the others at their defaults.

    ``write_recipe`` writes one; any problem is a one-line ``MnistXpError`` naming the file.
    """
    path = Path(path)
    try:
        settings = json.loads(path.read_text())
    except OSError as exc:
        raise MnistXpError(f"{path}: cannot read the recipe file ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise MnistXpError(f"{path}: the recipe file is not valid JSON ({exc})") from None
    if not isinstance(settings, dict):
        raise MnistXpError(f"{path}: a recipe file holds a JSON object of settings")
    try:
        return TrainConfig.from_dict(settings)
    except SettingError as exc:
        raise MnistXpError(f"{path}: {exc}") from None


def write_recipe(path: Path | str, config: TrainConfig) -> None:
    """Write ``config`` as a recipe file (all its settings), atomically."""
    text = (json.dumps(config.to_dict(), indent=2) + "\n").encode()
    write_atomically(path, lambda stream: stream.write(text))


def recipe(name: str) -> TrainConfig:
    """The recipe called ``name``; a one-line error listing the names otherwise."""
    try:
        return RECIPES[name]
    except KeyError:
        raise UsageError(f"unknown recipe {name!r}: choose one of {', '.join(sorted(RECIPES))}") from None
