"""Which TFLite ops make up each conv layer, planned from the graph before it runs
(CONTRACT section 6, "What a layer is").

A layer is a CONV_2D or DEPTHWISE_CONV_2D op, plus:
- a PAD / PADV2 / MIRROR_PAD op that feeds only it;
- a dilated conv the converter split into SPACE_TO_BATCH_ND -> conv -> BATCH_TO_SPACE_ND
  (it does so when the batch dimension is open), with the ADD of the per-channel bias it
  then moves after BATCH_TO_SPACE_ND: one dilated conv, as the model's author wrote it;
- a separate RELU / RELU6 op that alone reads its output (the conv's own fused
  activation is part of the op).
TFLite has no BatchNorm op: converters fold it into the conv's weights and bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import InputError
from ._tflite_graph import Graph, Op, label

CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")
# Convolutions that are not 2-D convolution layers in convcheck's sense: named in the notes.
_OTHER_CONVS = ("TRANSPOSE_CONV", "CONV_3D", "CONV_3D_TRANSPOSE")
SEPARATE_ACTIVATIONS = {"RELU": "relu", "RELU6": "relu6"}
_FLOATS = ("float32", "float16", "float64")
_MIRROR_MODES = {0: "reflect", 1: "symmetric"}  # schema.fbs `enum MirrorPadMode`
_NONE, _RELU, _RELU6 = 0, 1, 3  # schema.fbs `enum ActivationFunctionType`
_SAME = 0  # schema.fbs `enum Padding { SAME, VALID }`


@dataclass(frozen=True)
class PadOp:
    """A pad op right before a layer, with its constant amounts ((top, bottom), (left, right))."""

    op: Op
    amounts: tuple[tuple[int, int], tuple[int, int]]
    boundary: str
    cval: float


@dataclass(frozen=True)
class SpaceToBatch:
    """A dilated conv split by the converter: SPACE_TO_BATCH_ND (`before`: zero padding, then
    `block` phases moved into the batch), the conv with dilation 1, and BATCH_TO_SPACE_ND
    (`after`: phases moved back, then crops cut off). `pads` is the zero padding
    ((top, bottom), (left, right)) of the one dilated conv they compute together."""

    before: Op
    after: Op
    block: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class Plan:
    """One conv layer as the graph lays it out: the conv op, its unique name, what it absorbs
    (pad op, split dilation, bias ADD, separate activation op), its output tensor and what follows."""

    op: Op
    name: str
    pad: Optional[PadOp]
    space: Optional[SpaceToBatch]
    bias_op: Optional[Op]
    activation_op: Optional[Op]
    output: int
    followed_by: str

    def tensors(self, graph: Graph) -> set[int]:
        """The tensors a run must keep for this layer (weights computed at run time included)."""
        head = self.space.before if self.space is not None else self.op
        needed = {head.inputs[0], self.op.inputs[0], self.output}
        if self.pad is not None:
            needed.add(self.pad.op.inputs[0])
        needed.update(t for t in self.op.inputs[1:3] if t >= 0 and stored(graph, t) is None)
        return needed


def stored(graph: Graph, index: int) -> Optional[int]:
    """Where the file stores the values of weight tensor `index`: the constant tensor itself,
    the float16 constant a DEQUANTIZE op widens into it, or None (computed at run time)."""
    if graph.is_constant(index):
        return index
    op = graph.producer(index)
    if op is not None and op.name == "DEQUANTIZE" and op.inputs and op.inputs[0] >= 0:
        source = op.inputs[0]
        if graph.is_constant(source) and graph.tensors[source].dtype == "float16":
            return source
    return None


def plan_layers(graph: Graph) -> tuple[list[Plan], list[str]]:
    """Plan every float 2-D conv layer of the main subgraph in execution order; notes on the
    convs that are not captured (quantized, transposed, in other subgraphs).

    Raises `InputError` when there is no conv layer to capture at all.
    """
    plans: list[Plan] = []
    notes: list[str] = []
    names: set[str] = set()
    for op in graph.ops:
        if op.name in _OTHER_CONVS:
            notes.append(f"{op_name(graph, op)}: {op.name} not captured (not a 2-D convolution layer)")
        if op.name not in CONVS:
            continue
        name = _unique(op_name(graph, op), names)
        reason = _unsupported(graph, op)
        if reason:
            notes.append(f"{name}: {op.name} skipped: {reason}")
            continue
        plans.append(_plan(graph, op, name))
    hidden = sum(name in CONVS for name in graph.other_subgraph_ops)
    if hidden:
        notes.append(f"{hidden} conv op(s) inside other subgraphs (control flow) not captured: only the "
                     "main subgraph is walked")
    if not plans:
        if notes:
            raise InputError(f"{label(graph.path)}: has no 2-D convolution layer convcheck can capture "
                             f"({'; '.join(notes)[:300]}): nothing to walk")
        raise InputError(f"{label(graph.path)}: has no 2-D convolution layer: nothing to walk")
    return plans, notes


def _plan(graph: Graph, op: Op, name: str) -> Plan:
    space = _split_dilation(graph, op)
    pad = _pad_before(graph, space.before if space is not None else op)
    output = space.after.outputs[0] if space is not None else op.outputs[0]
    bias_op = _bias_after(graph, op, output) if space is not None else None
    activation = op.options["activation"]
    if bias_op is not None:
        output, activation = bias_op.outputs[0], bias_op.options["activation"]
    activation_op = _activation_after(graph, output) if activation == _NONE else None
    if activation_op is not None:
        output = activation_op.outputs[0]
    return Plan(op, name, pad, space, bias_op, activation_op, output, _followed_by(graph, output))


def op_name(graph: Graph, op: Op) -> str:
    """An op's name: TFLite ops have none, so its output tensor's (it carries the source layer's path)."""
    name = graph.tensors[op.outputs[0]].name if op.outputs else ""
    return name or f"{op.name}:{op.index}"


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}#{number}", number + 1
    taken.add(candidate)
    return candidate


def _unsupported(graph: Graph, op: Op) -> str:
    """Why conv `op` cannot be captured ('' when it can)."""
    if len(op.inputs) < 2 or not op.outputs or op.inputs[0] < 0 or op.inputs[1] < 0:
        return "malformed (no input or no weights)"
    if op.options is None:
        return "its options (padding, strides) are missing from the file"
    image, weights = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if image.dtype not in _FLOATS or image.quantized:
        return (f"it is quantized ({image.dtype} input with scale and zero point); convcheck captures "
                "float convolutions only")
    if weights.dtype not in _FLOATS or weights.quantized:
        return (f"its weights are quantized ({weights.dtype}) and LiteRT quantizes the input on the fly "
                "(dynamic-range quantization); convcheck captures float convolutions only")
    if len(image.shape) != 4 or len(weights.shape) != 4:
        return f"input rank {len(image.shape)} and weights rank {len(weights.shape)}, not 4"
    return ""


def _only_reader(graph: Graph, tensor: int) -> Optional[Op]:
    """The one op that reads `tensor`, or None (several readers, none, or a model output)."""
    readers = graph.consumers(tensor)
    if len(readers) != 1 or tensor in graph.outputs:
        return None
    return readers[0]


def _pairs(graph: Graph, index: int, shape: tuple[int, ...]) -> Optional[np.ndarray]:
    value = graph.constant(index) if index >= 0 else None
    if value is None or value.shape != shape or value.dtype.kind not in "iu" or (value < 0).any():
        return None
    return value


def _pad_before(graph: Graph, head: Op) -> Optional[PadOp]:
    """The pad op feeding only `head` (the conv, or its SPACE_TO_BATCH_ND) with constant
    spatial amounts, or None."""
    op = graph.producer(head.inputs[0])
    if op is None or op.name not in ("PAD", "PADV2", "MIRROR_PAD") or len(op.inputs) < 2:
        return None
    if _only_reader(graph, op.outputs[0]) is not head:
        return None
    amounts = _pairs(graph, op.inputs[1], (4, 2))
    if amounts is None or amounts[0].any() or amounts[3].any():
        return None
    cval, boundary = 0.0, "zero"
    if op.name == "MIRROR_PAD":
        if op.options is None or op.options["mode"] not in _MIRROR_MODES:
            return None
        boundary = _MIRROR_MODES[op.options["mode"]]
    elif op.name == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = graph.constant(op.inputs[2])
        if value is None or value.size != 1:
            return None
        cval = float(value.reshape(()))
        boundary = "zero" if cval == 0.0 else "constant"
    return PadOp(op, _two_pairs(amounts[1:3]), boundary, cval)


def _two_pairs(values: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    return (int(values[0, 0]), int(values[0, 1])), (int(values[1, 0]), int(values[1, 1]))


def _split_dilation(graph: Graph, conv: Op) -> Optional[SpaceToBatch]:
    """SPACE_TO_BATCH_ND -> `conv` (stride and dilation 1) -> BATCH_TO_SPACE_ND with the same
    constant block, each alone reading the other's output; None when the pattern is not there."""
    if tuple(conv.options["stride"]) != (1, 1) or tuple(conv.options["dilation"]) != (1, 1):
        return None
    before = graph.producer(conv.inputs[0])
    after = _only_reader(graph, conv.outputs[0])
    if (before is None or before.name != "SPACE_TO_BATCH_ND" or after is None
            or after.name != "BATCH_TO_SPACE_ND" or len(before.inputs) < 3 or len(after.inputs) < 3
            or _only_reader(graph, before.outputs[0]) is not conv or after.inputs[0] != conv.outputs[0]):
        return None
    block, other = _pairs(graph, before.inputs[1], (2,)), _pairs(graph, after.inputs[1], (2,))
    paddings, crops = _pairs(graph, before.inputs[2], (2, 2)), _pairs(graph, after.inputs[2], (2, 2))
    if (block is None or other is None or paddings is None or crops is None
            or not np.array_equal(block, other) or (block < 1).any()):
        return None
    # Row r of phase p of the padded input is padded row r * d + p: the inner conv's taps are
    # d rows apart, its own padding of t rows ('same' at stride 1: k - 1 in all, whatever the
    # size) is t * d rows of the full image, and cropping c output rows moves the first
    # window c rows down. So top = pad + t * d - crop, and the same for every side.
    kernel = graph.tensors[conv.inputs[1]].shape[1:3]
    pads = []
    for axis in range(2):
        total = kernel[axis] - 1 if conv.options["padding"] == _SAME else 0
        inner = (total // 2, total - total // 2)
        pads.append(tuple(int(paddings[axis, side] + inner[side] * block[axis] - crops[axis, side])
                          for side in range(2)))
    if min(pads[0] + pads[1]) < 0:  # it crops more than it pads: not padding any more
        return None
    return SpaceToBatch(before, after, (int(block[0]), int(block[1])), (pads[0], pads[1]))


def _bias_after(graph: Graph, conv: Op, output: int) -> Optional[Op]:
    """The ADD of a per-channel constant that alone reads `output` of a split dilated conv:
    the converter's bias, moved after BATCH_TO_SPACE_ND. Only when the conv has no fused
    activation (it would act before the bias) and no bias of its own that is not zero."""
    op = _only_reader(graph, output)
    if (op is None or op.name != "ADD" or op.options is None or len(op.inputs) != 2
            or op.options["activation"] not in (_NONE, _RELU, _RELU6) or conv.options["activation"] != _NONE):
        return None
    other = op.inputs[1] if op.inputs[0] == output else op.inputs[0]
    channels = graph.tensors[conv.outputs[0]].shape[-1]
    if other == output or stored(graph, other) is None or graph.tensors[other].shape not in (
            (channels,), (1, channels), (1, 1, channels), (1, 1, 1, channels)):
        return None
    if len(conv.inputs) > 2 and conv.inputs[2] >= 0:
        source = stored(graph, conv.inputs[2])
        if source is None or graph.constant(source).any():
            return None
    return op


def _activation_after(graph: Graph, output: int) -> Optional[Op]:
    """A separate RELU/RELU6 op that alone reads `output`, or None."""
    op = _only_reader(graph, output)
    if op is not None and op.name in SEPARATE_ACTIVATIONS and op.inputs[:1] == (output,) and len(op.outputs) == 1:
        return op
    return None


def _followed_by(graph: Graph, output: int) -> str:
    op = _only_reader(graph, output)
    return op.name if op is not None else ""
