"""Which ops of a PyTorch graph make up each 2-D convolution layer (CONTRACT section 6),
whichever way convcheck runs the model: an exported FX graph, a frozen TorchScript graph,
or forward hooks on modules.

A runner describes its graph as `Op`s in execution order; `plan_layers` decides, from the
graph alone, which pad op, BatchNorm and ReLU/ReLU6 belong to each conv and which values
the runner must capture (`Read`s); `build_layer` turns a plan and the arrays captured for
it into a `ConvLayer`. Nothing here imports torch: ops are named as ATen names them
('conv2d', 'relu_', ...), captured arrays are numpy, weights OIHW as PyTorch holds them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Optional

import numpy as np

from .layers import BatchNorm, ConvLayer

CONV_KINDS = frozenset({"conv2d", "convolution", "_convolution", "_convolution_mode"})
# Convolutions that are not 2-D convolution layers: left out, and the notes say so.
SKIPPED_KINDS = {"conv1d": "1-D convolution", "conv3d": "3-D convolution", "conv_tbc": "1-D convolution",
                 "conv_transpose1d": "transposed convolution", "conv_transpose2d": "transposed convolution",
                 "conv_transpose3d": "transposed convolution"}
PAD_KINDS = frozenset({"pad", "constant_pad_nd", "reflection_pad2d", "replication_pad2d", "_pad_circular"})
# The BatchNorm ops of inference graphs; the native ones return (output, mean, invstd) and
# are read through getitem 0 (FX) or their first output (TorchScript).
BN_KINDS = frozenset({"batch_norm", "_native_batch_norm_legit_no_training", "native_batch_norm",
                      "_native_batch_norm_legit"})
_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}

# followed_by names: the ONNX-style names the other loaders use where one exists, so the
# walk can compare what follows a layer across formats; any other op keeps its ATen name.
_FOLLOWED_BY = {"leaky_relu": "LeakyRelu", "sigmoid": "Sigmoid", "silu": "SiLU", "tanh": "Tanh",
                "gelu": "Gelu", "elu": "Elu", "selu": "Selu", "hardswish": "HardSwish",
                "hardsigmoid": "HardSigmoid", "mish": "Mish", "prelu": "PRelu", "softplus": "Softplus",
                "add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "cat": "Concat",
                "max_pool2d": "MaxPool", "avg_pool2d": "AveragePool", "relu": "Relu", "hardtanh": "HardTanh",
                "clamp": "Clip", "batch_norm": "BatchNormalization"}

Pads = tuple[tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class Ref:
    """A tensor the graph computes at run time (`key` names the value in the runner's graph)."""

    key: Hashable


GRAPH_OUTPUT = "<graph output>"   # stands for the graph's return among a value's consumers


@dataclass(eq=False)
class Op:
    """One op of the graph as the planner sees it.

    `kind` is the ATen name without namespace or overload ('conv2d', 'relu_'; a non-ATen op
    keeps its own name). `args` maps the op's schema argument names, in schema order, to a
    `Ref` for a computed tensor or the constant itself (ints, lists, strings, tensors the
    graph holds as constants). `out` is the key of the value it produces. `module` is the
    innermost module path the op ran in ('' at the root or when unknown); `name` the
    runtime's own name for the op; `handle` whatever the runner needs to find it again.
    """

    kind: str
    args: dict
    out: Hashable
    name: str = ""
    module: str = ""
    handle: Any = None


@dataclass(frozen=True)
class Read:
    """A value a runner must capture as `op` reads it (before `op` runs): `role` is
    'input', 'weight', 'bias', 'bn_mean', 'bn_var', 'bn_weight' or 'bn_bias'; `value` a
    `Ref` or a constant; `activation` says it is an NCHW activation to turn into NHWC."""

    role: str
    op: Op
    value: Any
    activation: bool = False


@dataclass(eq=False)
class LayerPlan:
    """The ops one conv layer is made of, and what to capture for it.

    The layer's output is the value `last` produces (the conv, or its absorbed BatchNorm or
    activation), captured right after `last` runs, before any later in-place op.
    """

    name: str
    conv: Op
    stride: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    padding: str                       # 'same', 'valid' or 'explicit', as the conv declares it
    conv_pads: Optional[Pads]          # None for 'same' (resolved from the kernel in build_layer)
    last: Op
    reads: list[Read] = field(default_factory=list)
    pad_op: Optional[Op] = None
    pad_amounts: Pads = ((0, 0), (0, 0))
    boundary: str = "zero"
    cval: float = 0.0
    batchnorm: Optional[Op] = None
    eps: float = 0.0
    activation: str = "linear"
    activation_op: Optional[Op] = None
    followed_by: str = ""

    def absorbed(self) -> tuple[str, ...]:
        """The names of the absorbed ops: their module path, or 'aten.<op>' for an op that
        ran in the conv's own module or outside any."""
        named = []
        for op in (self.pad_op, self.batchnorm, self.activation_op):
            if op is not None:
                named.append(op.module if op.module and op.module != self.conv.module else f"aten.{op.kind}")
        return tuple(named)


def refs_in(value) -> list[Ref]:
    """Every `Ref` in an argument (lists and tuples searched, as `cat` takes a list)."""
    if isinstance(value, Ref):
        return [value]
    if isinstance(value, (list, tuple)):
        return [ref for item in value for ref in refs_in(item)]
    return []


def _pair(value, what: str) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return int(value[0]), int(value[0])
        if len(value) == 2:
            return int(value[0]), int(value[1])
        raise ValueError(f"{what} {list(value)} has {len(value)} entries; a 2-D convolution takes 1 or 2")
    return int(value), int(value)


def first_arg(op: Op):
    """The op's first argument (its main input for conv, pad, BatchNorm and activations)."""
    return next(iter(op.args.values()), None)


def conv_geometry(op: Op):
    """(stride, dilation, groups, declared padding, pads or None for 'same') of a conv op."""
    args = op.args
    stride = _pair(args.get("stride", 1), "stride")
    dilation = _pair(args.get("dilation", 1), "dilation")
    groups = int(args.get("groups", 1))
    padding = args.get("padding", 0)
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"padding {padding!r} is neither 'same' nor 'valid'")
        return stride, dilation, groups, padding, (None if padding == "same" else ((0, 0), (0, 0)))
    rows, cols = _pair(padding, "padding")
    return stride, dilation, groups, "explicit", ((rows, rows), (cols, cols))


def same_pads(kernel_hw: tuple[int, int], dilation: tuple[int, int]) -> Pads:
    """PyTorch's padding='same' as amounts: total = dilation * (k - 1), of which total // 2
    before and the rest after (ATen `_convolution_mode`; stride 1 only, as PyTorch requires)."""
    pads = []
    for k, d in zip(kernel_hw, dilation):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return pads[0], pads[1]


def pad_spec(op: Op):
    """((top, bottom), (left, right)), boundary, cval of a pad op, or None when it cannot be
    part of a conv layer (it crops, pads the batch or channel axis, or its amounts or value
    are computed at run time)."""
    args = op.args
    amounts = args.get("pad", args.get("padding"))
    mode = {"pad": args.get("mode", "constant"), "constant_pad_nd": "constant", "reflection_pad2d": "reflect",
            "replication_pad2d": "replicate", "_pad_circular": "circular"}[op.kind]
    value = args.get("value")
    if not isinstance(amounts, (list, tuple)) or refs_in(amounts) or isinstance(value, Ref) or not amounts:
        return None
    amounts = [int(a) for a in amounts]
    if len(amounts) % 2 or any(a < 0 for a in amounts) or any(amounts[4:]):
        return None
    left, right = amounts[0], amounts[1]
    top, bottom = (amounts[2], amounts[3]) if len(amounts) >= 4 else (0, 0)
    if mode == "constant":
        cval = 0.0 if value is None else float(value)
        boundary = "zero" if cval == 0.0 else "constant"
    elif mode in _PAD_MODES:
        boundary, cval = _PAD_MODES[mode], 0.0
    else:
        return None
    return ((top, bottom), (left, right)), boundary, cval


def activation_of(op: Op) -> Optional[str]:
    """'relu' or 'relu6' when the op is one (relu, relu6, hardtanh(0, 6), clamp(0, 6),
    clamp(min=0), threshold(0, 0), leaky_relu(0), in place or not); None for anything else."""
    kind = op.kind[:-1] if op.kind.endswith("_") else op.kind
    args = op.args

    def number(name, default=None):
        value = args.get(name, default)
        return None if value is None or isinstance(value, Ref) else float(value)

    if kind == "relu":
        return "relu"
    if kind == "relu6":
        return "relu6"
    if kind == "hardtanh" and (number("min_val", -1.0), number("max_val", 1.0)) == (0.0, 6.0):
        return "relu6"
    if kind in ("clamp", "clip") and number("min") == 0.0:
        if "max" in args and args["max"] is None:
            return "relu"
        if number("max") == 6.0:
            return "relu6"
    if kind == "clamp_min" and number("min") == 0.0:
        return "relu"
    if kind == "threshold" and (number("threshold"), number("value")) == (0.0, 0.0):
        return "relu"
    if kind == "leaky_relu" and number("negative_slope", 0.01) == 0.0:
        return "relu"
    return None


class _Graph:
    """Producers and consumers of every value of a list of ops."""

    def __init__(self, ops: list[Op], outputs):
        self.producer = {op.out: op for op in ops}
        self.users: dict = defaultdict(list)
        for op in ops:
            for ref in refs_in(list(op.args.values())):
                if not any(user is op for user in self.users[ref.key]):
                    self.users[ref.key].append(op)
        for key in outputs:
            self.users[key].append(GRAPH_OUTPUT)

    def sole_user(self, key) -> Optional[Op]:
        users = self.users.get(key, [])
        return users[0] if len(users) == 1 and isinstance(users[0], Op) else None

    def result_of(self, op: Op) -> Optional[Op]:
        """The op whose value is `op`'s tensor result: `op` itself, or for an op returning a
        tuple (native BatchNorm in FX) the one getitem 0 that reads it, when the other
        items are unused. None when that cannot be told."""
        if op.kind not in ("_native_batch_norm_legit_no_training", "native_batch_norm",
                           "_native_batch_norm_legit"):
            return op
        users = self.users.get(op.out, [])
        if not users or not all(isinstance(u, Op) and u.kind == "getitem" for u in users):
            return op if all(isinstance(u, Op) and u.kind != "getitem" for u in users) else None
        firsts = [u for u in users if u.args.get("index") == 0]
        if len(firsts) != 1 or any(self.users.get(u.out) for u in users if u is not firsts[0]):
            return None
        return firsts[0]


def _batchnorm_eps(op: Op, conv_out) -> Optional[float]:
    """eps of an inference BatchNorm reading `conv_out`, or None when `op` is not one
    (a training-mode BatchNorm normalises by the batch's own statistics: not absorbed)."""
    args = op.args
    if op.kind not in BN_KINDS or first_arg(op) != Ref(conv_out):
        return None
    if op.kind != "_native_batch_norm_legit_no_training" and args.get("training") is not False:
        return None
    if args.get("running_mean") is None or args.get("running_var") is None or isinstance(args.get("eps"), Ref):
        return None
    return float(args["eps"])


def plan_layers(ops: list[Op], outputs, static_shape: Callable[[Any], Optional[tuple]]):
    """Plan every 2-D convolution layer of a graph, in execution order.

    `ops` in execution order; `outputs` the keys of the values the graph returns;
    `static_shape(value)` the shape of a `Ref` or constant when known without running
    (None otherwise). Returns (plans, notes): notes say what was left out and why
    (transposed and non-2-D convolutions, pad ops that could not be absorbed).
    """
    graph = _Graph(ops, outputs)
    plans, notes = [], []
    skipped = Counter()
    for op in ops:
        if op.kind in SKIPPED_KINDS or op.kind.startswith("quantized::conv"):
            skipped[SKIPPED_KINDS.get(op.kind, "quantized convolution")] += 1
            continue
        if op.kind not in CONV_KINDS:
            continue
        weight_shape = static_shape(op.args.get("weight"))
        if op.args.get("transposed") is True:
            skipped["transposed convolution"] += 1
        elif weight_shape is not None and len(weight_shape) != 4:
            skipped[f"{len(weight_shape) - 2}-D convolution"] += 1
        elif refs_in([op.args.get(name) for name in ("stride", "padding", "dilation", "groups")]):
            skipped["convolution whose geometry is computed at run time"] += 1
        else:
            plans.append(_plan_one(op, graph, weight_shape, notes))
    for what, count in sorted(skipped.items()):
        notes.append(f"{count} {what}{'s' if count > 1 else ''} not captured: convcheck judges 2-D "
                     "convolutions with a fixed geometry")
    _name_layers(plans)
    _set_followed_by(plans, graph)
    return plans, notes


def _zero_conv_padding(padding: str, conv_pads, weight_shape, dilation) -> bool:
    """Whether the conv adds no padding of its own (so a non-zero pad before it can join it)."""
    if padding == "same":
        if weight_shape is None:
            return False
        conv_pads = same_pads(tuple(weight_shape[2:]), dilation)
    return not any(conv_pads[0] + conv_pads[1])


def _plan_one(conv: Op, graph: _Graph, weight_shape, notes: list[str]) -> LayerPlan:
    """The plan of one conv: its geometry, the pad before it, the BatchNorm and ReLU/ReLU6 after."""
    stride, dilation, groups, padding, conv_pads = conv_geometry(conv)
    plan = LayerPlan(name="", conv=conv, stride=stride, dilation=dilation, groups=groups, padding=padding,
                     conv_pads=conv_pads, last=conv)
    first = conv
    source = first_arg(conv)
    before = graph.producer.get(source.key) if isinstance(source, Ref) else None
    if before is not None and before.kind in PAD_KINDS and graph.sole_user(source.key) is conv:
        spec = pad_spec(before)
        if spec is not None and (spec[1] == "zero" or _zero_conv_padding(padding, conv_pads, weight_shape, dilation)):
            plan.pad_op, (plan.pad_amounts, plan.boundary, plan.cval) = before, spec
            first = before
        elif spec is not None:
            notes.append(f"the {spec[1]} pad op before the conv in '{conv.module or conv.name}' is not part of its "
                         "layer: the conv adds zero padding of its own, and one layer has one boundary")
    plan.reads.append(Read("input", first, first_arg(first), activation=True))
    plan.reads.append(Read("weight", conv, conv.args.get("weight")))
    if conv.args.get("bias") is not None:
        plan.reads.append(Read("bias", conv, conv.args["bias"]))

    current = conv
    after = graph.sole_user(conv.out)
    eps = _batchnorm_eps(after, conv.out) if after is not None else None
    result = graph.result_of(after) if eps is not None else None
    if result is not None:
        plan.batchnorm, plan.eps, current = after, eps, result
        for role, arg in (("bn_mean", "running_mean"), ("bn_var", "running_var"), ("bn_weight", "weight"),
                          ("bn_bias", "bias")):
            if after.args.get(arg) is not None:
                plan.reads.append(Read(role, after, after.args[arg]))
    after = graph.sole_user(current.out)
    if after is not None and first_arg(after) == Ref(current.out) and activation_of(after):
        plan.activation, plan.activation_op, current = activation_of(after), after, after
    plan.last = current
    return plan


def _name_layers(plans: list[LayerPlan]) -> None:
    """Name each layer by its conv's module path (its runtime name outside any module), made
    unique with '#2', '#3' for a module that runs several convs or runs several times."""
    seen: Counter = Counter()
    for index, plan in enumerate(plans):
        base = plan.conv.module or plan.conv.name or f"conv{index}"
        seen[base] += 1
        plan.name = base if seen[base] == 1 else f"{base}#{seen[base]}"
    taken = Counter(plan.name for plan in plans)
    for plan in plans:   # a suffixed name may collide with a module really called so
        if taken[plan.name] > 1:
            plan.name = f"{plan.name}@{plan.conv.name}"


def _set_followed_by(plans: list[LayerPlan], graph: _Graph) -> None:
    """followed_by: the one op reading a layer's output, unless it is the next layer itself
    (a conv, or the pad op that layer absorbed): then nothing is applied in between."""
    starts = {id(plan.conv) for plan in plans} | {id(plan.pad_op) for plan in plans if plan.pad_op is not None}
    for plan in plans:
        user = graph.sole_user(plan.last.out)
        if user is None or id(user) in starts or user.kind in CONV_KINDS:
            plan.followed_by = ""
            continue
        kind = user.kind[:-1] if user.kind.endswith("_") and not user.kind.startswith("__") else user.kind
        plan.followed_by = _FOLLOWED_BY.get(kind, kind)


def build_layer(plan: LayerPlan, arrays: dict) -> ConvLayer:
    """The `ConvLayer` of a plan from what the runner captured for it.

    `arrays` maps each `Read` role of the plan and 'output' to numpy arrays: 'input' and
    'output' NHWC, 'weight' OIHW (C_out, C_in / groups, kh, kw) as the conv read it, the
    others as the ops read them. The kernel becomes grouped HWIO with the same values.
    """
    weight = arrays["weight"]
    kernel = np.ascontiguousarray(np.transpose(weight, (2, 3, 1, 0)))
    conv_pads = plan.conv_pads
    if conv_pads is None:
        conv_pads = same_pads(kernel.shape[:2], plan.dilation)
    pads = tuple((a + b, c + d) for (a, c), (b, d) in zip(conv_pads, plan.pad_amounts))
    batchnorm = None
    if plan.batchnorm is not None:
        mean = arrays["bn_mean"]
        weight_bn = arrays.get("bn_weight")
        bias_bn = arrays.get("bn_bias")
        batchnorm = BatchNorm(mean=mean, var=arrays["bn_var"],
                              weight=np.ones_like(mean) if weight_bn is None else weight_bn,
                              bias=np.zeros_like(mean) if bias_bn is None else bias_bn, eps=plan.eps)
    return ConvLayer(
        name=plan.name, op=f"aten.{plan.conv.kind}" + (".padding" if isinstance(plan.conv.args.get("padding"), str)
                                                       and plan.conv.kind == "conv2d" else ""),
        kernel=kernel, bias=arrays.get("bias"), stride=plan.stride, dilation=plan.dilation, groups=plan.groups,
        pads=pads, padding="explicit" if plan.pad_op is not None else plan.padding,
        input=arrays["input"], output=arrays["output"], boundary=plan.boundary, cval=plan.cval,
        batchnorm=batchnorm, activation=plan.activation, absorbed=plan.absorbed(), followed_by=plan.followed_by,
        dtype=_dtype_name(arrays["input"].dtype))


def _dtype_name(dtype) -> str:
    name = getattr(dtype, "name", None)
    return name if isinstance(name, str) else str(dtype)


def check_geometry(plan: LayerPlan, arrays: dict) -> None:
    """Raise ValueError when the captured arrays contradict the plan (a kernel whose input
    channels times groups is not the input's channels): a sign the graph was misread."""
    weight, image = arrays["weight"], arrays["input"]
    if weight.ndim != 4 or image.ndim != 4 or weight.shape[1] * plan.groups != image.shape[3]:
        raise ValueError(f"layer '{plan.name}': weight {tuple(weight.shape)} with groups={plan.groups} "
                         f"does not read an input of shape {tuple(image.shape)} (NHWC)")
