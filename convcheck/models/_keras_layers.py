"""Which tensors make up each 2-D convolution layer of a flattened Keras graph, and the
`ConvLayer` records built from their captured values (CONTRACT section 6, "What a layer is").

Planning (`plan_layers`) only reads the graph: a `ZeroPadding2D` or `keras.ops.pad` feeding
only the conv is absorbed into its pads and boundary, a `BatchNormalization` on the channel
axis and then a `ReLU` / `Activation` that is plain ReLU or ReLU6 right after a conv without
a fused activation are absorbed, and the next consumer is named in `followed_by`. Building
(`build_layers`) turns captured arrays into records.

`SeparableConv2D` becomes two layers, `<name>/depthwise` and `<name>/pointwise`, as
PyTorch and ONNX ports write it: its depthwise half's output exists only inside
`tf.nn.separable_conv2d`, so it is computed by `keras.ops.depthwise_conv` on the layer's own
captured input with its own depthwise kernel and arguments, the call the layer's
`ops.separable_conv` makes inside (`with_space_to_batch` + `depthwise_conv2d_native`, or for
stride and dilation both > 1 the same decomposition); the pointwise half's output is the
layer's real output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from ..geometry import padding_amounts
from ._keras_graph import Graph, Step
from .layers import BatchNorm, ConvLayer

CAPTURED = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")
NOT_2D = ("Conv1D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
          "DepthwiseConv1D", "SeparableConv1D")
# keras.ops.pad modes as numpy.pad (and CONTRACT `boundary`) name them; Torch's 'circular' is 'wrap'.
PAD_MODES = {"reflect": "reflect", "symmetric": "symmetric", "edge": "edge", "wrap": "wrap",
             "circular": "wrap"}


@dataclass
class Plan:
    """The tensors and absorbed ops of one conv layer, before anything runs."""

    step: Step
    input: Any                    # the layer's input: an absorbed pad's input, else the conv's
    output: Any                   # after the absorbed BatchNorm and activation
    nchw: bool
    pads: tuple = ((0, 0), (0, 0))
    boundary: str = "zero"
    cval: float = 0.0
    batchnorm: Any = None         # the absorbed BatchNormalization layer
    activation: str = "linear"
    absorbed: tuple = ()
    followed_by: str = ""
    padder: str = ""              # the absorbed pad op's name

    @property
    def conv_input(self):
        """The tensor the conv op itself read (an absorbed pad's output)."""
        return self.step.inputs[0]


def classes(keras, names) -> tuple:
    """The keras.layers classes of these names that this Keras has."""
    return tuple(getattr(keras.layers, name) for name in names if hasattr(keras.layers, name))


def plan_layers(keras, graph: Graph) -> list[Plan]:
    """One `Plan` per call of a Conv2D / DepthwiseConv2D / SeparableConv2D, in execution order."""
    captured = classes(keras, CAPTURED)
    return [_plan(keras, graph, step) for step in graph.steps if isinstance(step.op, captured)]


def _plan(keras, graph: Graph, step: Step) -> Plan:
    """Absorb the pad before the conv and the BatchNorm / ReLU after it, where they are its own."""
    layer = step.op
    plan = Plan(step=step, input=step.inputs[0], output=step.outputs[0],
                nchw=layer.data_format == "channels_first")
    absorbed = []
    pad_step = graph.producer(plan.input)
    if pad_step is not None and graph.sole_consumer(plan.input) is step:
        border = pad_of(keras, pad_step, plan.nchw)
        # A reflect/constant border then the conv's own zero 'same' padding is two boundaries,
        # which one layer cannot declare: such a pad stays a separate op.
        if border is not None and (border[1] == "zero" or layer.padding == "valid"):
            plan.pads, plan.boundary, plan.cval = border
            plan.input, plan.padder = pad_step.inputs[0], pad_step.name
            absorbed.append(pad_step.name)
    plan.activation = fused_activation(layer)
    if plan.activation == "linear":
        after = graph.sole_consumer(plan.output)
        if after is not None and _is_channel_batchnorm(keras, after.op, plan.nchw):
            plan.batchnorm, plan.output = after.op, after.outputs[0]
            absorbed.append(after.name)
        after = graph.sole_consumer(plan.output)
        relu = absorbable_activation(keras, after.op) if after is not None else None
        if relu is not None:
            plan.activation, plan.output = relu, after.outputs[0]
            absorbed.append(after.name)
    plan.absorbed = tuple(absorbed)
    after = graph.sole_consumer(plan.output)
    plan.followed_by = describe(keras, after.op) if after is not None else ""
    return plan


def pad_of(keras, step: Step, nchw: bool) -> Optional[tuple]:
    """(((top, bottom), (left, right)), boundary, cval) of a pad op that pads only the
    spatial axes of a tensor in the conv's layout, or None for anything else."""
    op = step.op
    if isinstance(op, keras.layers.ZeroPadding2D):
        if (op.data_format == "channels_first") != nchw:
            return None
        (top, bottom), (left, right) = op.padding
        return ((int(top), int(bottom)), (int(left), int(right))), "zero", 0.0
    if type(op).__name__ != "Pad" or not hasattr(op, "pad_width"):
        return None
    widths = [tuple(int(v) for v in pair) for pair in op.pad_width]
    if len(widths) != 4:  # one pair pads every axis alike, batch and channels included
        return None
    rows, columns = (2, 3) if nchw else (1, 2)
    others = [widths[axis] for axis in range(4) if axis not in (rows, columns)]
    if any(pair != (0, 0) for pair in others):
        return None
    pads = (widths[rows], widths[columns])
    if op.mode == "constant":
        args, kwargs = step.arguments
        cval = kwargs.get("constant_values", args[1] if len(args) > 1 else None)
        cval = 0.0 if cval is None else float(cval)
        return pads, ("zero" if cval == 0.0 else "constant"), cval
    if op.mode in PAD_MODES:
        return pads, PAD_MODES[op.mode], 0.0
    return None


def _is_channel_batchnorm(keras, op, nchw: bool) -> bool:
    """A BatchNormalization normalising the channel axis of a 4-D tensor."""
    if not isinstance(op, keras.layers.BatchNormalization):
        return False
    axis = op.axis if isinstance(op.axis, int) else (op.axis[0] if len(op.axis) == 1 else None)
    return axis in ((1, -3) if nchw else (3, -1))


def fused_activation(layer) -> str:
    """The conv layer's own `activation`, as Keras names the function ('linear', 'relu', ...)."""
    function = getattr(layer, "activation", None)
    if function is None:
        return "linear"
    return getattr(function, "__name__", None) or type(function).__name__


def absorbable_activation(keras, op) -> Optional[str]:
    """'relu' or 'relu6' for a ReLU / Activation layer computing exactly that (a LeakyReLU with
    slope 0 included), else None."""
    if isinstance(op, keras.layers.LeakyReLU):
        return "relu" if float(op.negative_slope) == 0.0 else None
    if isinstance(op, keras.layers.ReLU):
        if float(op.negative_slope) != 0.0 or float(op.threshold) != 0.0:
            return None
        if op.max_value is None:
            return "relu"
        return "relu6" if float(op.max_value) == 6.0 else None
    if isinstance(op, keras.layers.Activation):
        if op.activation is keras.activations.relu:
            return "relu"
        if op.activation is getattr(keras.activations, "relu6", None):
            return "relu6"
    return None


def describe(keras, op) -> str:
    """An op as `followed_by` names it: its class, with what tells an activation apart."""
    if isinstance(op, keras.layers.Activation):
        return f"Activation({fused_activation(op)})"
    if isinstance(op, keras.layers.LeakyReLU):
        return f"LeakyReLU(negative_slope={float(op.negative_slope):g})"
    if isinstance(op, keras.layers.ReLU):
        settings = [f"{name}={float(getattr(op, name)):g}" for name in ("max_value", "negative_slope", "threshold")
                    if getattr(op, name) not in (None, 0, 0.0)]
        return f"ReLU({', '.join(settings)})"
    return type(op).__name__


def build_layers(keras, plans: list[Plan], value: Callable, nhwc: Callable) -> list[ConvLayer]:
    """The `ConvLayer`s of the plans, from captured values.

    `value(tensor)` gives a tensor's captured array in the runtime's own layout;
    `nhwc(tensor, nchw)` the same array channels-last (one array per tensor, shared by the
    layers that read it).
    """
    records = []
    for plan in plans:
        if isinstance(plan.step.op, keras.layers.SeparableConv2D):
            records += _separable(keras, plan, value, nhwc)
        else:
            records.append(_conv(keras, plan, nhwc))
    return records


def numpy_of(keras, value) -> np.ndarray:
    """A variable's or a tensor's values as a numpy array, in its own dtype.

    `.numpy()` first: keras.ops.convert_to_numpy calls np.array on a Keras Variable, which
    numpy 2 warns about (its __array__ takes no `copy`).
    """
    return np.asarray(value.numpy() if hasattr(value, "numpy") else keras.ops.convert_to_numpy(value))


def _batchnorm(keras, layer) -> Optional[BatchNorm]:
    """An absorbed BatchNormalization's inference parameters (gamma 1 / beta 0 when off)."""
    if layer is None:
        return None
    mean = numpy_of(keras, layer.moving_mean)
    weight = numpy_of(keras, layer.gamma) if getattr(layer, "gamma", None) is not None else np.ones_like(mean)
    bias = numpy_of(keras, layer.beta) if getattr(layer, "beta", None) is not None else np.zeros_like(mean)
    return BatchNorm(mean=mean, var=numpy_of(keras, layer.moving_variance), weight=weight, bias=bias,
                     eps=float(layer.epsilon))


def _resolved_pads(layer, plan: Plan, layer_input: np.ndarray, kh: int, kw: int) -> tuple:
    """The pads the layer applies at the captured size: an absorbed pad's plus 'same''s
    (resolved for the size the conv itself sees, after the absorbed pad)."""
    (top, bottom), (left, right) = plan.pads
    if layer.padding == "same":
        height, width = layer_input.shape[1] + top + bottom, layer_input.shape[2] + left + right
        extra = padding_amounts("same", height, width, kh, kw, tuple(layer.strides), tuple(layer.dilation_rate))
        top, bottom, left, right = top + extra[0], bottom + extra[1], left + extra[2], right + extra[3]
    return (top, bottom), (left, right)


def _conv(keras, plan: Plan, nhwc: Callable) -> ConvLayer:
    """A Conv2D or DepthwiseConv2D layer's record."""
    layer = plan.step.op
    kernel = numpy_of(keras, layer.kernel)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        # (kh, kw, C, m) -> (kh, kw, 1, C * m): TF's depthwise output channel c * m + j.
        kh, kw, channels, multiplier = kernel.shape
        kernel, groups = kernel.reshape(kh, kw, 1, channels * multiplier), channels
    else:
        groups = int(getattr(layer, "groups", 1))
    layer_input = nhwc(plan.input, plan.nchw)
    return ConvLayer(
        name=plan.step.name, op=type(layer).__name__, kernel=kernel,
        bias=numpy_of(keras, layer.bias) if layer.use_bias else None,
        stride=tuple(int(s) for s in layer.strides), dilation=tuple(int(d) for d in layer.dilation_rate),
        groups=groups,
        pads=_resolved_pads(layer, plan, layer_input, kernel.shape[0], kernel.shape[1]),
        padding="explicit" if plan.padder else layer.padding,
        input=layer_input, output=nhwc(plan.output, plan.nchw),
        boundary=plan.boundary, cval=plan.cval, batchnorm=_batchnorm(keras, plan.batchnorm),
        activation=plan.activation, absorbed=plan.absorbed, followed_by=plan.followed_by,
        dtype=str(layer.compute_dtype))


def _separable(keras, plan: Plan, value: Callable, nhwc: Callable) -> list[ConvLayer]:
    """A SeparableConv2D's two halves (see the module docstring)."""
    layer = plan.step.op
    depthwise = numpy_of(keras, layer.depthwise_kernel)
    pointwise = numpy_of(keras, layer.pointwise_kernel)
    kh, kw, channels, multiplier = depthwise.shape
    dtype = layer.compute_dtype
    # The layer casts its input and (autocast) its kernels to its compute dtype.
    middle = keras.ops.depthwise_conv(
        keras.ops.cast(value(plan.conv_input), dtype), keras.ops.cast(layer.depthwise_kernel, dtype),
        strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate,
        data_format=layer.data_format)
    middle = numpy_of(keras, middle)
    if plan.nchw:
        middle = np.ascontiguousarray(middle.transpose(0, 2, 3, 1))
    layer_input = nhwc(plan.input, plan.nchw)
    pad_absorbed = (plan.padder,) if plan.padder else ()
    first = ConvLayer(
        name=f"{plan.step.name}/depthwise", op="SeparableConv2D/depthwise",
        kernel=depthwise.reshape(kh, kw, 1, channels * multiplier), bias=None,
        stride=tuple(int(s) for s in layer.strides), dilation=tuple(int(d) for d in layer.dilation_rate),
        groups=int(channels), pads=_resolved_pads(layer, plan, layer_input, kh, kw),
        padding="explicit" if pad_absorbed else layer.padding,
        input=layer_input, output=middle, boundary=plan.boundary, cval=plan.cval,
        absorbed=pad_absorbed, followed_by="SeparableConv2D/pointwise", dtype=str(dtype))
    second = ConvLayer(
        name=f"{plan.step.name}/pointwise", op="SeparableConv2D/pointwise", kernel=pointwise,
        bias=numpy_of(keras, layer.bias) if layer.use_bias else None, stride=(1, 1), dilation=(1, 1), groups=1,
        pads=((0, 0), (0, 0)), padding="valid", input=middle, output=nhwc(plan.output, plan.nchw),
        batchnorm=_batchnorm(keras, plan.batchnorm), activation=plan.activation,
        absorbed=plan.absorbed[len(pad_absorbed):], followed_by=plan.followed_by, dtype=str(dtype))
    return [first, second]
