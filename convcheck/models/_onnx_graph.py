"""Reading an ONNX graph: which nodes make up each 2-D convolution layer (CONTRACT section 6).

Graph logic: no model runs here (only, where an exporter computed pad amounts with shape
arithmetic, that small subgraph). `plan_layers` walks the nodes in order (ONNX requires
them topologically sorted, so this is an execution order) and returns one `LayerPlan` per
convolution: the tensors the run must expose, the constants the record needs, and what was
absorbed (a Pad before, a BatchNormalization and a Relu/Clip after). The operators are the
standard `Conv` and the two ONNX Runtime writes into its optimised graphs: `com.microsoft`
`FusedConv` and `com.microsoft.nchwc` `Conv` (channel-blocked tensors and weights).

onnx is imported inside functions only: importing this module costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .layers import BatchNorm

NCHWC = "com.microsoft.nchwc"
CONV_OPS = {("", "Conv"): "Conv", ("ai.onnx", "Conv"): "Conv",
            ("com.microsoft", "FusedConv"): "FusedConv", (NCHWC, "Conv"): "NchwcConv"}
_FLOAT_MAX = float(np.finfo(np.float32).max)
# ONNX Runtime's FusedConv / NCHWc activations other than Relu and Clip(0, 6), and the
# names of their `activation_params`.
_FUSED_ACTIVATIONS = {"LeakyRelu": ("leaky_relu", ("alpha",)), "Clip": ("clip", ("min", "max")),
                      "HardSigmoid": ("hard_sigmoid", ("alpha", "beta")), "Sigmoid": ("sigmoid", ()),
                      "Tanh": ("tanh", ())}
_PAD_BOUNDARIES = {"reflect": "reflect", "edge": "edge", "wrap": "wrap"}
# The shape arithmetic exporters write to compute pad amounts (PyTorch's TorchScript exporter
# builds a reflect pad's amounts from ConstantOfShape, Concat, Reshape, Slice, Transpose and
# Cast): small subgraphs of these, fed by constants and the input's shape, are evaluated.
_FOLDABLE = {"Constant", "ConstantOfShape", "Shape", "Size", "Gather", "Concat", "Reshape", "Slice",
             "Transpose", "Cast", "CastLike", "Identity", "Unsqueeze", "Squeeze", "Flatten", "Expand",
             "Tile", "Range", "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Max", "Min", "Floor", "Ceil",
             "Equal", "Where", "ReduceProd", "ReduceSum"}
_FOLD_LIMIT = 64


@dataclass
class PadPlan:
    """An absorbed Pad node: its spatial amounts ((top, bottom), (left, right)) and border."""

    name: str
    amounts: tuple[tuple[int, int], tuple[int, int]]
    boundary: str
    cval: float


@dataclass
class LayerPlan:
    """One convolution layer as the graph declares it, before the run.

    Tensor layouts: 'nchw', 'nhwc' (an NCHWc reorder with channels_last) or 'nchwc'
    (ONNX Runtime's blocked (N, C/B, H, W, B) storage, shaped (N, C padded to B, H, W)).
    `kernel` / `bias` hold the constants, or are None when the run must expose
    `kernel_name` / `bias_name`. `kernel_layout` is 'OIHW' or an NCHWc filter order.
    """

    name: str
    node_name: str
    op: str
    conv_output: str
    input_name: str
    input_layout: str
    output_name: str
    output_layout: str
    kernel_name: str
    kernel: Optional[np.ndarray]
    kernel_layout: str
    bias_name: str
    bias: Optional[np.ndarray]
    addend_name: str
    stride: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    auto_pad: str
    conv_pads: tuple[tuple[int, int], tuple[int, int]]
    pad: Optional[PadPlan] = None
    batchnorm: Optional[BatchNorm] = None
    activation: str = "linear"
    absorbed: tuple[str, ...] = ()
    followed_by: str = ""
    channels_out: Optional[int] = None

    def fetches(self) -> list[str]:
        """The tensors the run must return for this layer (graph inputs included)."""
        names = [self.input_name, self.output_name, self.addend_name]
        names += [self.kernel_name if self.kernel is None else "", self.bias_name if self.bias is None else ""]
        return [name for name in names if name]


class GraphIndex:
    """Producers, consumers and constant values of one graph's tensors."""

    def __init__(self, graph, feeds: Optional[dict] = None, opsets=()):
        self.graph = graph
        self.feeds = feeds or {}
        self.opsets = list(opsets)
        self.producer = {}
        self.consumers: dict[str, list] = {}
        for node in graph.node:
            for name in node.output:
                if name:
                    self.producer[name] = node
            for name in set(node.input) | _subgraph_names(node):
                if name:
                    self.consumers.setdefault(name, []).append(node)
        self.outputs = {value.name for value in graph.output}
        self.inputs = {value.name for value in graph.input}
        self.initializers = {tensor.name: tensor for tensor in graph.initializer}

    def constant(self, name: str) -> Optional[np.ndarray]:
        """The value of an initializer or a Constant node's output, else None."""
        from onnx import helper, numpy_helper
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is None or node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
            return None
        for attribute in node.attribute:
            value = helper.get_attribute_value(attribute)
            if attribute.name == "value":
                return numpy_helper.to_array(value)
            if attribute.name in ("value_float", "value_floats", "value_int", "value_ints"):
                return np.asarray(value)
        return None

    def folded(self, name: str) -> Optional[np.ndarray]:
        """`constant(name)`, else the value of a small subgraph of shape arithmetic computing
        it from constants and the fed input's shape (evaluated by onnx's reference
        evaluator), else None."""
        value = self.constant(name)
        if value is not None or not self.opsets:
            return value
        nodes = self._fold_nodes(name)
        if nodes is None:
            return None
        from onnx import helper
        from onnx.reference import ReferenceEvaluator
        feeds = {key: array for key, array in self.feeds.items()
                 if any(key in node.input for node in nodes)}
        graph = helper.make_graph(
            nodes, "fold", [helper.make_empty_tensor_value_info(key) for key in feeds],
            [helper.make_empty_tensor_value_info(name)],
            [self.initializers[key] for key in dict.fromkeys(i for n in nodes for i in n.input)
             if key in self.initializers])
        try:
            evaluator = ReferenceEvaluator(helper.make_model(graph, opset_imports=self.opsets))
            return np.asarray(evaluator.run(None, feeds)[0])
        except Exception:   # anything the reference evaluator cannot do leaves the value unknown
            return None

    def _fold_nodes(self, name: str) -> Optional[list]:
        """The nodes computing `name` in graph order when all are shape arithmetic reading
        constants (or only the shape of a fed input), at most `_FOLD_LIMIT` of them; else None."""
        needed, stack = {}, [name]
        while stack:
            tensor = stack.pop()
            if not tensor or tensor in self.initializers:
                continue
            node = self.producer.get(tensor)
            if node is None:
                return None
            if id(node) in needed:
                continue
            if node.op_type not in _FOLDABLE or node.domain not in ("", "ai.onnx") or len(needed) >= _FOLD_LIMIT:
                return None
            needed[id(node)] = node
            for source in node.input:
                if source in self.feeds and node.op_type in ("Shape", "Size"):
                    continue
                stack.append(source)
        return [node for node in self.graph.node if id(node) in needed]

    def sole_consumer(self, name: str):
        """The one node reading `name`, or None when it is a graph output or read by several or none."""
        readers = self.consumers.get(name, [])
        if name in self.outputs or len(readers) != 1:
            return None
        return readers[0]


def _subgraph_names(node) -> set[str]:
    """Tensor names read inside a node's subgraphs (If/Loop bodies read outer tensors)."""
    names: set[str] = set()
    for attribute in node.attribute:
        graphs = list(attribute.graphs) + ([attribute.g] if attribute.HasField("g") else [])
        for graph in graphs:
            for inner in graph.node:
                names.update(inner.input)
                names |= _subgraph_names(inner)
    return names


def attributes(node) -> dict:
    """A node's attributes as Python values (strings decoded)."""
    from onnx import helper
    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        values[attribute.name] = value.decode() if isinstance(value, bytes) else value
    return values


def unique_names(names: list[str], fallbacks: list[str]) -> list[str]:
    """Names made unique in order: a repeat takes its fallback (the node's output tensor name,
    unique in a valid graph), then a '#k' suffix."""
    used: set[str] = set()
    unique = []
    for name, fallback in zip(names, fallbacks):
        candidate = name if name not in used else fallback
        k = 2
        while candidate in used:
            candidate, k = f"{fallback}#{k}", k + 1
        used.add(candidate)
        unique.append(candidate)
    return unique


def plan_layers(model, feeds: Optional[dict] = None, block_size: int = 0) -> tuple[list[LayerPlan], list[str]]:
    """Every 2-D convolution of `model`'s graph in node order, as `LayerPlan`s, and notes on
    what was left out (other convolution operators, pads that could not be absorbed).

    `feeds` (input name -> array) lets pad amounts computed from the input's shape be
    evaluated; `block_size` is ONNX Runtime's NCHWc block (needed for `com.microsoft.nchwc` nodes).
    """
    graph = model.graph
    index = GraphIndex(graph, feeds, model.opset_import)
    plans, notes, skipped = [], [], {}
    for node in graph.node:
        op = CONV_OPS.get((node.domain, node.op_type))
        if op is None:
            if "conv" in node.op_type.lower():
                label = f"{node.domain}:{node.op_type}" if node.domain else node.op_type
                skipped[label] = skipped.get(label, 0) + 1
            continue
        plan = _plan_conv(index, node, op, block_size, notes)
        if plan is None:
            skipped[f"{op} (not 2-D)"] = skipped.get(f"{op} (not 2-D)", 0) + 1
        else:
            plans.append(plan)
    for label, count in skipped.items():
        notes.append(f"{count} {label} node{'s' if count > 1 else ''} not captured: "
                     "convcheck model walks 2-D Conv operators only")
    names = unique_names([plan.name for plan in plans], [plan.conv_output for plan in plans])
    for plan, name in zip(plans, names):
        plan.name = name
    return plans, notes


def _plan_conv(index: GraphIndex, node, op: str, block_size: int, notes: list[str]) -> Optional[LayerPlan]:
    """The plan of one convolution node, or None when it is not a 2-D convolution."""
    attrs = attributes(node)
    kernel = index.constant(node.input[1])
    spatial = kernel.ndim - 2 if kernel is not None else len(attrs.get("kernel_shape", (0, 0)))
    lengths = {"kernel_shape": 2, "strides": 2, "dilations": 2, "pads": 4}
    if spatial != 2 or any(key in attrs and len(attrs[key]) != size for key, size in lengths.items()):
        return None
    groups = int(attrs.get("group", 1))
    kernel_layout, input_layout = "OIHW", "nchw"
    if op == "NchwcConv":
        kernel_layout, input_layout = _nchwc_layouts(kernel, groups, block_size)
    x_name = node.input[0]
    reader = node
    source = index.producer.get(x_name)
    if input_layout == "nchwc" and _is_nchwc(source, "ReorderInput"):
        # The reorder's input holds the same values, unblocked: read that instead (a Pad
        # before it belongs to this layer only when the reorder feeds this conv alone).
        reader = source if index.sole_consumer(x_name) is node else None
        x_name = source.input[0]
        input_layout = "nhwc" if attributes(source).get("channels_last", 0) else "nchw"
    pads = attrs.get("pads", [0, 0, 0, 0])
    plan = LayerPlan(
        name=node.name or node.output[0], node_name=node.name or node.output[0], op=op,
        conv_output=node.output[0], input_name=x_name, input_layout=input_layout,
        output_name=node.output[0], output_layout="nchwc" if op == "NchwcConv" else "nchw",
        kernel_name=node.input[1], kernel=kernel, kernel_layout=kernel_layout,
        bias_name=_optional_input(node, 2), bias=None, addend_name=_optional_input(node, 3),
        stride=_pair(attrs.get("strides")), dilation=_pair(attrs.get("dilations")), groups=groups,
        auto_pad=attrs.get("auto_pad", "NOTSET") or "NOTSET",
        conv_pads=((int(pads[0]), int(pads[2])), (int(pads[1]), int(pads[3]))))
    if plan.bias_name:
        plan.bias = index.constant(plan.bias_name)
    if input_layout == "nchw":
        _absorb_pad(index, plan, reader, notes)
    _absorb_tail(index, plan, node, attrs)
    return plan


def _nchwc_layouts(kernel: Optional[np.ndarray], groups: int, block_size: int) -> tuple[str, str]:
    """The filter order and input layout ONNX Runtime's NCHWc transformer chose for a conv
    (its rules: depthwise and fewer input channels than a block use OIHWBo, the latter
    reading plain NCHW input; the rest OIHWBiBo on blocked input)."""
    if kernel is None or block_size <= 1:
        raise ValueError("an NCHWc convolution without constant weights or block size")
    channels_in = kernel.shape[1]
    if groups > 1 and channels_in == 1:
        return "OIHWBo", "nchwc"
    if groups == 1 and channels_in < block_size:
        return "OIHWBo", "nchw"
    return "OIHWBiBo", "nchwc"


def _is_nchwc(node, op_type: str) -> bool:
    return node is not None and node.domain == NCHWC and node.op_type == op_type


def _optional_input(node, position: int) -> str:
    return node.input[position] if len(node.input) > position else ""


def _pair(values) -> tuple[int, int]:
    return (int(values[0]), int(values[1])) if values else (1, 1)


def _absorb_pad(index: GraphIndex, plan: LayerPlan, reader, notes: list[str]) -> None:
    """Take a Pad that feeds only this conv into the layer: its input becomes the layer's."""
    pad_node = index.producer.get(plan.input_name)
    if pad_node is None or pad_node.op_type != "Pad" or pad_node.domain not in ("", "ai.onnx"):
        return
    if reader is None or index.sole_consumer(plan.input_name) is not reader:
        return
    pad = _pad_plan(index, pad_node)
    if pad is None:
        return
    conv_pads_zero = plan.auto_pad == "VALID" or (plan.auto_pad == "NOTSET" and not any(sum(plan.conv_pads, ())))
    if pad.boundary != "zero" and not conv_pads_zero:
        notes.append(f"Pad '{pad.name}' before '{plan.name}' not absorbed: its {pad.boundary} border and "
                     "the conv's own zero padding cannot be one boundary")
        return
    plan.pad, plan.input_name = pad, pad_node.input[0]
    plan.absorbed += (pad.name,)


def _pad_plan(index: GraphIndex, node) -> Optional[PadPlan]:
    """A Pad's spatial amounts and border, or None unless it pads H and W only, by constant
    non-negative amounts, in a mode the layer record can name."""
    attrs = attributes(node)
    mode = attrs.get("mode", "constant")
    if len(node.input) > 1 and node.input[1]:   # opset >= 11: amounts and value are inputs
        amounts = index.folded(node.input[1])
        value = index.folded(node.input[2]) if _optional_input(node, 2) else np.zeros(1)
        axes = index.folded(node.input[3]) if _optional_input(node, 3) else np.arange(4)
        if amounts is None or value is None or axes is None:
            return None
    else:
        amounts, value, axes = np.asarray(attrs.get("pads", [])), np.asarray(attrs.get("value", 0.0)), np.arange(4)
    amounts, axes = amounts.reshape(-1).astype(np.int64), axes.reshape(-1).astype(np.int64) % 4
    if len(amounts) != 2 * len(axes) or len(set(axes.tolist())) != len(axes):
        return None
    begin, end = np.zeros(4, np.int64), np.zeros(4, np.int64)
    begin[axes], end[axes] = amounts[:len(axes)], amounts[len(axes):]
    if begin[:2].any() or end[:2].any() or (amounts < 0).any():
        return None
    cval = float(value.reshape(-1)[0]) if value.size else 0.0
    if mode == "constant":
        boundary = "zero" if cval == 0.0 else "constant"
    elif mode in _PAD_BOUNDARIES:
        boundary = _PAD_BOUNDARIES[mode]
    else:
        return None
    return PadPlan(node.name or node.output[0], ((int(begin[2]), int(end[2])), (int(begin[3]), int(end[3]))),
                   boundary, cval if boundary == "constant" else 0.0)


def _absorb_tail(index: GraphIndex, plan: LayerPlan, node, attrs: dict) -> None:
    """Follow the conv's output: an NCHWc reorder, a BatchNormalization, then a Relu or
    Clip(0, 6), each only when it is the one reader; name what follows the last."""
    if plan.op == "NchwcConv":
        reorder = index.sole_consumer(plan.output_name)
        if _is_nchwc(reorder, "ReorderOutput"):
            reorder_attrs = attributes(reorder)
            plan.channels_out = int(reorder_attrs["channels"]) if "channels" in reorder_attrs else None
            plan.output_name = reorder.output[0]
            plan.output_layout = "nhwc" if reorder_attrs.get("channels_last", 0) else "nchw"
    if "activation" in attrs:   # fused by ONNX Runtime: nothing after it belongs to the layer
        plan.activation = fused_activation(attrs["activation"], attrs.get("activation_params", []))
    elif plan.output_layout == "nchw":
        following = _past_no_ops(index, plan)
        if _is_standard(following, "BatchNormalization"):
            batchnorm = _batchnorm(index, following)
            if batchnorm is not None:
                plan.batchnorm, plan.output_name = batchnorm, following.output[0]
                plan.absorbed += (following.name or following.output[0],)
                following = _past_no_ops(index, plan)
        activation = _activation(index, following)
        if activation is not None:
            plan.activation, plan.output_name = activation, following.output[0]
            plan.absorbed += (following.name or following.output[0],)
            _past_no_ops(index, plan)
    plan.followed_by = _followed_by(index, plan.output_name)


def _past_no_ops(index: GraphIndex, plan: LayerPlan):
    """The one reader of the layer's output after the no-op nodes that read it alone (Identity,
    an inference Dropout: the same values), which are taken into the layer (its output moves
    past them); None when there is no single reader. Without this, an Identity between a conv
    and its ReLU hid the ReLU, and between a conv without bias and the next conv it made the
    conv's missing bias look as if it could come later (a hunt for false causes)."""
    following = index.sole_consumer(plan.output_name)
    while following is not None and _is_no_op(index, following):
        plan.output_name = following.output[0]
        plan.absorbed += (following.name or following.output[0],)
        following = index.sole_consumer(plan.output_name)
    return following


def _is_no_op(index: GraphIndex, node) -> bool:
    """An Identity, or a Dropout that cannot be in training mode and whose mask nobody reads."""
    if _is_standard(node, "Identity"):
        return True
    if not _is_standard(node, "Dropout"):
        return False
    mask = node.output[1] if len(node.output) > 1 else ""
    if mask and (mask in index.consumers or mask in index.outputs):
        return False
    attrs = attributes(node)
    if "is_test" in attrs:   # opsets 1-6: training unless is_test says otherwise
        return int(attrs["is_test"]) == 1
    training = _optional_input(node, 2)
    if training:
        value = index.folded(training)
        return value is not None and value.size == 1 and not bool(value.reshape(-1)[0])
    return True


def _is_standard(node, op_type: str) -> bool:
    return node is not None and node.op_type == op_type and node.domain in ("", "ai.onnx")


def _batchnorm(index: GraphIndex, node) -> Optional[BatchNorm]:
    """An inference-form BatchNormalization's constants, or None (training form, spatial=0,
    statistics read by others, or parameters that are not constant per-channel vectors)."""
    attrs = attributes(node)
    if attrs.get("training_mode", 0) or attrs.get("spatial", 1) == 0:
        return None
    if any(name and (name in index.outputs or name in index.consumers) for name in node.output[1:]):
        return None
    params = [index.folded(name) for name in node.input[1:5]]
    if len(params) != 4 or any(p is None or p.ndim != 1 or p.shape != params[0].shape for p in params):
        return None
    weight, bias, mean, var = params
    return BatchNorm(mean=mean, var=var, weight=weight, bias=bias, eps=float(attrs.get("epsilon", 1e-5)))


def _activation(index: GraphIndex, node) -> Optional[str]:
    """'relu' for a Relu, a LeakyRelu with alpha 0 (ReLU itself: a second hunt for false causes
    found it named 'activation=linear') or a Clip(0, +inf), 'relu6' for a Clip(0, 6); None for
    anything else."""
    if _is_standard(node, "Relu"):
        return "relu"
    if _is_standard(node, "LeakyRelu"):
        return "relu" if float(attributes(node).get("alpha", 0.01)) == 0.0 else None
    if not _is_standard(node, "Clip"):
        return None
    if len(node.input) > 1:   # opset >= 11: bounds are optional inputs
        bounds = []
        for name in (_optional_input(node, 1), _optional_input(node, 2)):
            value = index.folded(name) if name else None
            if name and (value is None or value.size != 1):
                return None
            bounds.append(None if value is None else float(value.reshape(-1)[0]))
        low, high = bounds
    else:
        attrs = attributes(node)
        low, high = attrs.get("min"), attrs.get("max")
    if low != 0.0:
        return None
    if high == 6.0:
        return "relu6"
    return "relu" if high is None or high >= _FLOAT_MAX else None


def fused_activation(kind: str, params) -> str:
    """The record's name for an activation ONNX Runtime fused into a conv ('relu', 'relu6',
    or e.g. 'leaky_relu(alpha=0.1)' for one the output cannot be taken before)."""
    params = [float(np.float32(p)) for p in params]
    if kind == "Relu" or (kind == "Clip" and params[:1] == [0.0] and (len(params) < 2 or params[1] >= _FLOAT_MAX)) \
            or (kind == "LeakyRelu" and params == [0.0]):
        return "relu"
    if kind == "Clip" and params == [0.0, 6.0]:
        return "relu6"
    name, keys = _FUSED_ACTIVATIONS.get(kind, (kind.lower(), ()))
    keys = keys if len(keys) == len(params) else tuple(f"p{i}" for i in range(len(params)))
    shown = ", ".join(f"{key}={np.format_float_positional(np.float32(value), trim='-')}"
                      for key, value in zip(keys, params))
    return f"{name}({shown})" if shown else name


def _followed_by(index: GraphIndex, name: str) -> str:
    """The op applied right after a layer's output: its one reader's op type, 'SiLU' /
    'HardSwish' for x * Sigmoid(x) / x * HardSigmoid(x); '' when none or several."""
    readers = index.consumers.get(name, [])
    if name in index.outputs:
        return ""
    if len(readers) == 1:
        return readers[0].op_type
    if len(readers) == 2:
        gate = next((n for n in readers if n.op_type in ("Sigmoid", "HardSigmoid")), None)
        product = next((n for n in readers if n.op_type == "Mul"), None)
        if gate is not None and product is not None and set(product.input) == {name, gate.output[0]}:
            return "SiLU" if gate.op_type == "Sigmoid" else "HardSwish"
    return ""


def chain_from(index: GraphIndex, tensor: str, limit: int = 8) -> list[tuple[str, list[str]]]:
    """The tensors reached from `tensor` through nodes that are each its only reader, with the
    names of the nodes passed to reach each one (how a fusion's output maps back to the graph)."""
    reached, names = [(tensor, [])], []
    for _ in range(limit):
        node = index.sole_consumer(tensor)
        if node is None or (node.domain, node.op_type) in CONV_OPS or not node.output:
            break
        names = names + [node.name or node.output[0]]
        tensor = node.output[0]
        reached.append((tensor, names))
    return reached
