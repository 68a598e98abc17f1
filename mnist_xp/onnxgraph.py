"""A trained model as a standard ONNX graph, to run it in any runtime that reads ONNX.

The graph takes ``pixels``, float32 of shape [N, 784] (any batch size N, values in [0, 1]) and
gives ``probabilities`` [N, classes]: each layer is a MatMul and an Add, the hidden layers end
in the model's activation (the ONNX operator that ``nn.ACTIVATIONS`` names for it), and the
output in Softmax (Sigmoid for a single output unit), as ``nn.predict`` computes. The weights are stored
as float32, so a float64 model is rounded to float32. Needs the ``onnx`` package (the ``onnx`` extra).
"""

from __future__ import annotations

import numpy as np

from .errors import MnistXpError
from .nn import ACTIVATIONS
from .values import is_real_number

OPSET = 17
IR_VERSION = 8
"""Opset 17 with IR version 8 (ONNX 1.12): new enough for every operator used, old enough for most runtimes."""
INPUT, OUTPUT = "pixels", "probabilities"


def require():
    """Return the ``onnx`` module, or fail in one line when it is missing."""
    try:
        import onnx
    except ImportError:
        raise MnistXpError(
            "exporting to ONNX needs the onnx package, which is not installed; "
            "install it with: pip install 'mnist-xp[onnx]'"
        ) from None
    return onnx


def _activation(onnx, name: str, source: str, target: str):
    activation = ACTIVATIONS[name]
    return onnx.helper.make_node(activation.onnx_op, [source], [target], **activation.onnx_attributes)


def build(model, name: str = "mnist-xp"):
    """The ``onnx.ModelProto`` of a ``Model``, checked with ``onnx.checker``."""
    from . import __version__  # here, as the package imports this module before it has a version

    onnx = require()
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    nodes, weights = [], []
    current = INPUT
    last = len(model.params) - 1
    for i, (W, b) in enumerate(model.params):
        weights += [
            numpy_helper.from_array(np.asarray(W, dtype=np.float32), f"W{i}"),
            numpy_helper.from_array(np.asarray(b, dtype=np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("MatMul", [current, f"W{i}"], [f"product{i}"]),
            helper.make_node("Add", [f"product{i}", f"b{i}"], [f"logits{i}"]),
        ]
        if i < last:
            nodes.append(_activation(onnx, model.activation, f"logits{i}", f"hidden{i}"))
            current = f"hidden{i}"
    classes = model.layer_sizes[-1]
    if classes == 1:
        nodes.append(helper.make_node("Sigmoid", [f"logits{last}"], [OUTPUT]))
    else:
        nodes.append(helper.make_node("Softmax", [f"logits{last}"], [OUTPUT], axis=-1))
    sizes = "-".join(map(str, model.layer_sizes))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT, onnx.TensorProto.FLOAT, ["N", model.layer_sizes[0]])],
        [helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, ["N", classes])],
        initializer=weights,
        doc_string=f"multilayer perceptron {sizes}, {model.activation}; input: pixels in [0, 1], row by row",
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="mnist-xp",
        producer_version=__version__,
    )
    metadata = {"layer_sizes": sizes, "activation": model.activation, "trained_dtype": model.dtype}
    accuracy = model.extra.get("test_accuracy")
    if is_real_number(accuracy):
        metadata["test_accuracy"] = f"{accuracy:.4f}"
    helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto, full_check=True)
    return proto
