"""The `ConvLayer` of a planned TFLite conv layer (`_tflite_plan`), built from a finished run.

Weights come from the file (as stored: float16 in a float16-quantized model), tensors from
the run (as LiteRT computed them), padding resolved to amounts at the run's sizes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import InputError
from .layers import ConvLayer
from ._tflite_graph import Graph, label
from ._tflite_plan import SEPARATE_ACTIVATIONS, Plan, op_name, stored

# schema.fbs `enum ActivationFunctionType`, named as TFLite names them; only RELU and RELU6
# are in convcheck's vocabulary, the others are fused inseparably into the conv.
_FUSED_ACTIVATIONS = {0: "linear", 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh", 5: "sign_bit"}
# Fused activations TFLite's CONV_2D / DEPTHWISE_CONV_2D kernels accept but never apply
# (their float path only clamps to an activation range; checked with LiteRT 2.3).
_NOT_APPLIED = ("tanh", "sign_bit")
_SAME = 0  # schema.fbs `enum Padding { SAME, VALID }`
_NO_PADS = ((0, 0), (0, 0))

Pads = tuple[tuple[int, int], tuple[int, int]]


def same_pads(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
              dilation: tuple[int, int]) -> Pads:
    """TensorFlow 'SAME' padding amounts ((top, bottom), (left, right)) for an input of `size`:
    total = max((ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0), top = total // 2."""
    pads = []
    for n, k, s, d in zip(size, kernel, stride, dilation):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads[0], pads[1]


def build_layer(plan: Plan, graph: Graph, tensor: Callable[[int], np.ndarray],
                shape: Callable[[int], tuple[int, ...]], notes: list[str]) -> tuple[ConvLayer, str]:
    """The `ConvLayer` of `plan` from a run, and where its weights came from when they are not
    a plain constant ('' when they are).

    `tensor(i)` gives tensor i as the runtime computed it, `shape(i)` its run-time shape.
    Appends to `notes` what a reader should know about this layer.
    """
    op, options = plan.op, plan.op.options
    stride, dilation = tuple(options["stride"]), tuple(options["dilation"])
    if min(stride + dilation) < 1:
        raise InputError(f"{label(graph.path)}: conv '{plan.name}' declares stride {stride} and dilation "
                         f"{dilation}; both must be at least 1: convert the model again")
    kernel, source = _weights(graph, op.inputs[1], tensor)
    if op.name == "CONV_2D":
        kernel = np.ascontiguousarray(kernel.transpose(1, 2, 3, 0))  # OHWI -> HWIO
    else:
        kernel = np.ascontiguousarray(kernel[0][:, :, None, :])  # (1, kh, kw, C*m) -> (kh, kw, 1, C*m)
    bias = _bias(plan, graph, tensor)
    conv_shape = shape(op.inputs[0])
    channels = conv_shape[3]
    # TFLite infers the groups of a CONV_2D from the input's channels over the weights' own.
    groups = channels // kernel.shape[2] if op.name == "CONV_2D" else channels
    own = _NO_PADS
    if options["padding"] == _SAME:
        own = same_pads(conv_shape[1:3], kernel.shape[:2], stride, dilation)
    padding = "same" if options["padding"] == _SAME else "valid"
    absorbed = []
    if plan.space is not None:
        own, dilation, padding = plan.space.pads, plan.space.block, "explicit"
        absorbed += [op_name(graph, plan.space.before), op_name(graph, plan.space.after)]
        notes.append(f"{plan.name}: a dilated conv the converter split into SPACE_TO_BATCH_ND, {op.name} and "
                     f"BATCH_TO_SPACE_ND, captured as one conv with dilation {dilation}")
    pad = plan.pad
    if pad is not None and pad.boundary != "zero" and own != _NO_PADS:
        notes.append(f"{plan.name}: the {pad.op.name} before it is not absorbed: the conv pads its input "
                     "again with zeros, so the layer's input is the padded tensor")
        pad = None
    if pad is not None:
        image = tensor(pad.op.inputs[0])
        pads = tuple((a + b, c + d) for (a, c), (b, d) in zip(own, pad.amounts))
        absorbed.insert(0, op_name(graph, pad.op))
        padding, boundary, cval = "explicit", pad.boundary, pad.cval
    else:
        head = plan.space.before if plan.space is not None else op
        image, pads, boundary, cval = tensor(head.inputs[0]), own, "zero", 0.0
    activation = _FUSED_ACTIVATIONS.get(options["activation"], f"activation {options['activation']}")
    if activation in _NOT_APPLIED:
        notes.append(f"{plan.name}: declares a fused {activation.upper()}, which TFLite's conv kernels do not "
                     "apply (they only clamp, for RELU, RELU_N1_TO_1 and RELU6): the captured output lacks it")
    if plan.bias_op is not None:
        activation = _FUSED_ACTIVATIONS[plan.bias_op.options["activation"]]
        absorbed.append(op_name(graph, plan.bias_op))
    if plan.activation_op is not None:
        activation = SEPARATE_ACTIVATIONS[plan.activation_op.name]
        absorbed.append(op_name(graph, plan.activation_op))
    return ConvLayer(name=plan.name, op=op.name, kernel=kernel, bias=bias, stride=stride, dilation=dilation,
                     groups=groups, pads=pads, padding=padding, input=image, output=tensor(plan.output),
                     boundary=boundary, cval=cval, activation=activation, absorbed=tuple(absorbed),
                     followed_by=plan.followed_by, dtype=graph.tensors[op.inputs[0]].dtype), source


def _bias(plan: Plan, graph: Graph, tensor: Callable[[int], np.ndarray]):
    if plan.bias_op is not None:  # the converter's bias of a split dilated conv: the ADD's constant
        inputs, added = plan.bias_op.inputs, plan.space.after.outputs[0]
        return _weights(graph, inputs[1] if inputs[0] == added else inputs[0], tensor)[0].reshape(-1)
    if len(plan.op.inputs) > 2 and plan.op.inputs[2] >= 0:
        return _weights(graph, plan.op.inputs[2], tensor)[0].reshape(-1)
    return None


def _weights(graph: Graph, index: int, tensor: Callable[[int], np.ndarray]) -> tuple[np.ndarray, str]:
    """The values of weight tensor `index` and, when they are not a plain constant, where they came from."""
    source = stored(graph, index)
    if source == index:
        return graph.constant(index), ""
    if source is not None:
        # A float16-quantized model: float16 constants widened to float32 at run time
        # (exactly), so the stored float16 values are the weights the conv used.
        return graph.constant(source), "float16 weights (a float16-quantized model) recorded as stored"
    op = graph.producer(index)
    how = f"by {op.name}" if op is not None else "as a model input"
    return tensor(index), f"weights computed at run time ({how}), recorded as the run produced them"
