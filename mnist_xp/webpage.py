"""A trained model as one self-contained web page: draw a digit and watch the network read it.

The page holds the weights (base64, little-endian, in the model's own float type) and a small
hand-written JavaScript forward pass, so it opens from disk in any current browser, offline.
Its script prepares a drawing exactly as ``images.to_mnist`` prepares an image file. The HTML,
JavaScript and CSS live in ``mnist_xp/web/`` and are put together here.
"""

from __future__ import annotations

import base64
import html
import json
import re
from importlib import resources

import numpy as np

from .data import INPUT_SIZE, NUM_CLASSES
from .errors import ModelFileError
from .nn import ACTIVATIONS, LEAKY_RELU_SLOPE
from .values import is_real_number


def _asset(name: str) -> str:
    return (resources.files(__package__) / "web" / name).read_text(encoding="utf-8")


def _base64(array: np.ndarray) -> str:
    little_endian = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return base64.b64encode(little_endian.tobytes()).decode("ascii")


def summary_line(model, name: str | None = None) -> str:
    """One line naming a ``Model``: its layers, activation, float type, test accuracy and file ``name``."""
    sizes = "-".join(map(str, model.layer_sizes))
    parts = [f"Network {sizes}, {ACTIVATIONS[model.activation].title}, {model.dtype}"]
    accuracy = model.extra.get("test_accuracy")
    if is_real_number(accuracy):
        parts.append(f"test accuracy {100 * accuracy:.2f} %")
    else:
        parts.append("test accuracy not recorded")
    if name:
        parts.append(f"from {name}")
    return " · ".join(parts)


def network_json(model) -> str:
    """A ``Model`` as the page's script reads it, safe to place inside a ``<script>`` element.

    The activation goes by its ``js_name``, the key of the script's forward pass for it.
    """
    spec = {
        "layerSizes": model.layer_sizes,
        "activation": ACTIVATIONS[model.activation].js_name,
        "leakyReluSlope": LEAKY_RELU_SLOPE,
        "dtype": model.dtype,
        "layers": [
            {"inputs": int(W.shape[0]), "outputs": int(W.shape[1]), "W": _base64(W), "b": _base64(b)}
            for W, b in model.params
        ],
    }
    return json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")


def build_page(model, name: str | None = None) -> str:
    """The page's HTML text for a ``Model`` that reads 28x28 images and tells 10 digits apart.

    ``name`` (the model file's, say) is shown on the page.
    """
    sizes = model.layer_sizes
    if sizes[0] != INPUT_SIZE or sizes[-1] != NUM_CLASSES:
        raise ModelFileError(
            f"{name or 'the model'}: maps {sizes[0]} inputs to {sizes[-1]} outputs; the drawing page needs "
            f"{INPUT_SIZE} inputs (28x28 images) and {NUM_CLASSES} outputs"
        )
    parts = {
        "/*@@CSS@@*/": _asset("digit.css"),
        "/*@@SCRIPT@@*/": _asset("digit.js"),
        "@@MODEL_TEXT@@": html.escape(summary_line(model, name)),
        "@@NETWORK@@": network_json(model),
    }
    pattern = "|".join(map(re.escape, parts))
    return re.sub(pattern, lambda match: parts[match.group()].strip(), _asset("digit.html"))
