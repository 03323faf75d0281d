"""Judge one matched pair of conv layers with the engine (CONTRACT sections 2a and 6).

The question for a pair is: does the PORT layer compute, from what it was given, what the
ORIGINAL layer declares? So the engine gets the port layer's own captured input (whatever
happened upstream), the original layer's kernel, the port layer's output, and the original
layer's declared computation as the expected one: its padding amounts, stride, dilation,
groups, boundary and border value, its bias, what it applies right after the conv (a
BatchNorm as per-channel scale and bias, a ReLU/ReLU6) and the dtype it ran in. A layer
is then `equal` exactly when the port computes what the original computes.

Besides, the port's kernel is related to the original's directly (`relate_weights`): a
layout mix-up is named from the weights alone; a factor per output channel that is the
BatchNorm one model has and the other folded into its weights is no defect.

Only the engine's public names are used (`convcheck.engine.__all__`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..errors import InputError
from ..geometry import padding_amounts
from ..vocabulary import Cause
from .layers import ConvLayer

ACTIVATIONS = ("linear", "relu", "relu6")   # what the engine's `activation` field can declare
# How many roundings of the original's precision a runtime's own BatchNorm factors may be away
# from the exact ones: see `batchnorm_uncertainty`.
BATCHNORM_ROUNDINGS = 8
_UNIT_ROUNDOFF = {"float64": 2.0 ** -53, "float32": 2.0 ** -24, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}


@dataclass(frozen=True)
class Judgement:
    """The engine's verdict on one layer: `verdict` 'equal', 'explained', 'unexplained', or
    'not_judged' (`reason` says why: something the engine cannot declare, or an input it
    refused); `diagnosis` the engine's `Diagnosis` (None when not judged)."""

    verdict: str
    diagnosis: Any = None
    reason: str = ""


@dataclass(frozen=True)
class WeightsJudgement:
    """The port's kernel against the original's (`convcheck.engine.relate_weights`).

    `verdict` is the relation's ('equal', 'explained', 'unexplained') or 'not_judged';
    `causes` its causes; `defects` those that are a porting mistake (every cause except a
    factor per output channel that is the BatchNorm one side folded: `folded_batchnorm`);
    `reason` why nothing relates them (or why they were not compared). An unexplained
    relation is a defect unless the weights cannot decide (`undecided`)."""

    verdict: str
    causes: tuple[Cause, ...] = ()
    defects: tuple[Cause, ...] = ()
    folded_batchnorm: bool = False
    reason: str = ""
    mapping: dict = field(default_factory=dict, hash=False)
    undecided: bool = False

    @property
    def unrelated(self) -> bool:
        """True when no mapping relates the kernels and the weights could decide that."""
        return self.verdict == "unexplained" and not self.undecided

    def to_dict(self) -> dict[str, Any]:
        """The `weights` object of a layer in CONTRACT section 6's JSON (plus added fields)."""
        return {"verdict": self.verdict, "causes": [c.to_dict() for c in self.causes],
                "defect": bool(self.defects) or self.unrelated, "folded_batchnorm": self.folded_batchnorm,
                "reason": self.reason or None}


def unit_roundoff(dtype: str) -> float:
    """The unit roundoff of a float dtype name (float32 for names it does not know)."""
    return _UNIT_ROUNDOFF.get(dtype, _UNIT_ROUNDOFF["float32"])


# ----------------------------------------------------------------------------- the declared computation


def padding_argument(layer: ConvLayer, height: int, width: int):
    """The layer's padding for `explain`: 'valid' or 'same' when the layer declares that rule
    (Keras, TFLite, ONNX auto_pad, PyTorch padding='same') and its amounts are the rule's at
    this input size (CONTRACT section 1), else the explicit amounts ((top, bottom), (left,
    right)).

    A rule and its amounts are the same windows at the declared stride and dilation, but not
    at another: a candidate that changes the stride re-reads 'same' at the new stride (other
    amounts), while PyTorch's padding=1 stays 1. Naming explicit amounts after the rule they
    happen to match made a port that changed only the stride (its pads kept) 'stride 2 +
    offset [-1, -1]', and one that changed the dilation and the pads with it 'dilation' alone."""
    (top, bottom), (left, right) = layer.pads
    amounts = (int(top), int(bottom), int(left), int(right))
    kh, kw = layer.kernel.shape[:2]
    if layer.padding in ("valid", "same") and padding_amounts(
            layer.padding, height, width, kh, kw, tuple(layer.stride), tuple(layer.dilation)) == amounts:
        return layer.padding
    return ((amounts[0], amounts[1]), (amounts[2], amounts[3]))


def batchnorm_uncertainty(layer: ConvLayer) -> dict[str, Any]:
    """How far a runtime's own scale and bias of the layer's BatchNorm may be from the exact ones
    (`declared_uncertainty` of `explain`): {'scale': relative, 'bias': absolute per channel}.

    A runtime (or a converter folding the BatchNorm into the conv) computes, in the original's
    precision with unit roundoff u, s = weight / sqrt(var + eps) and t = bias - mean * s:
    - s: the addition var + eps, the square root (half its argument's relative error plus its
      own rounding) and the division: |s_run - s| <= 2.5 u |s|; a reciprocal square root that
      is not correctly rounded (1-2 ulps, as fast rsqrt paths give) then a product: <= 3.5 u |s|;
      folded into the weights, the product w * s_run is rounded once more: 4.5 u |s|.
    - t: |m| |s_run - s| + one rounding of m * s_run and one of the subtraction:
      |t_run - t| <= u |bias| + 5.5 u |mean * s|; with the conv's own bias b folded in too,
      (s_run * b rounded, then added): <= 2 u |bias| + 6.5 u |mean * s| + 5.5 u |s * b|.
    k = BATCHNORM_ROUNDINGS = 8 bounds every coefficient above, for any of these orders, with
    room for a converter that computes in a wider type and rounds once (far inside):
    |s_run - s| <= k u |s| and |t_run - t| <= k u (|bias| + |mean * s| + |s * b|), first order
    in u (the second-order terms are below 2^-20 of these at float16 and narrower)."""
    batchnorm = layer.batchnorm
    u = unit_roundoff(layer.dtype)
    scale = batchnorm.scale()
    conv_bias = np.zeros_like(scale) if layer.bias is None else np.asarray(layer.bias, np.float64)
    magnitude = (np.abs(np.asarray(batchnorm.bias, np.float64)) + np.abs(np.asarray(batchnorm.mean, np.float64) * scale)
                 + np.abs(scale * conv_bias))
    return {"scale": BATCHNORM_ROUNDINGS * u, "bias": per_channel(BATCHNORM_ROUNDINGS * u * magnitude)}


def per_channel(values) -> Any:
    """Per-channel values as the vocabulary holds them (CONTRACT section 2: `bias`, `scale`): one
    float when every channel's is the same, else a tuple of floats, one per output channel."""
    values = np.asarray(values, np.float64).reshape(-1)
    if values.size and np.all(values == values[0]):
        return float(values[0])
    return tuple(float(v) for v in values)


def declared_computation(layer: ConvLayer) -> tuple[dict[str, Any], dict[str, Any]]:
    """(expected, declared_uncertainty) for `explain`: the fields of the layer's declared
    computation that are not the contract's defaults (CONTRACT section 2a), and how far a
    runtime's own BatchNorm factors may be from them (empty without a BatchNorm).

    bias = the conv's own bias, combined with a BatchNorm: scale s = bn.scale() and
    bias = s * conv_bias + bn.shift(), computed in float64, given as the vocabulary holds them
    (`per_channel`: one float, or a tuple of floats per output channel)."""
    expected: dict[str, Any] = {}
    if layer.boundary != "zero":
        expected["boundary"] = layer.boundary
        if layer.boundary == "constant":
            expected["cval"] = float(layer.cval)
    bias = None if layer.bias is None else np.asarray(layer.bias, np.float64)
    uncertainty: dict[str, Any] = {}
    if layer.batchnorm is not None:
        scale = layer.batchnorm.scale()
        expected["scale"] = per_channel(scale)
        bias = layer.batchnorm.shift() + (0.0 if bias is None else scale * bias)
        uncertainty = batchnorm_uncertainty(layer)
    if bias is not None and np.any(bias != 0):
        expected["bias"] = per_channel(bias)
    if layer.activation != "linear":
        expected["activation"] = layer.activation
    return expected, uncertainty


# ----------------------------------------------------------------------------- judging


def cannot_judge(original: ConvLayer, port: ConvLayer) -> str:
    """Why the engine cannot judge this pair ('' when it can): an activation the original
    fused inseparably that the vocabulary has no value for, a tensor a runtime added into
    the conv's sum (an `addend`), which a convolution's declared computation cannot hold, or
    such an activation fused into the port's conv (its output is taken after it, and no
    explanation of the conv can hold it: a LeakyReLU fused where the original has a ReLU was
    reported as 'activation=linear')."""
    if original.activation not in ACTIVATIONS:
        return (f"the original applies {original.activation} fused into the conv ({original.op}), so its output "
                "cannot be taken before it, and convcheck's vocabulary declares only linear, relu and relu6")
    for side, layer in (("original", original), ("port", port)):
        if layer.addend is not None:
            whose = "the runtime" if original is port else f"the {side}'s runtime"
            return (f"{whose} added another tensor into this conv's sum ({layer.op} with a fused "
                    "residual input), which a convolution's declared computation cannot hold; run without "
                    "--as-run to judge the graph as written")
    if port.activation not in ACTIVATIONS:
        return (f"the port's runtime fused {port.activation} into this conv ({port.op}), where the original declares "
                f"{original.activation}: its output cannot be taken before it, and convcheck's vocabulary declares "
                "only linear, relu and relu6")
    return ""


def judge_layer(original: ConvLayer, port: ConvLayer) -> Judgement:
    """Judge the PORT layer's output against the ORIGINAL layer's declared computation, on the
    port layer's own input (module docstring). The same layer on both sides judges a runtime
    against its own graph. A layer the engine refuses (`InputError`) is 'not_judged' with the
    engine's reason, never a crash."""
    reason = cannot_judge(original, port)
    if reason:
        return Judgement("not_judged", reason=reason)
    from ..engine import explain
    expected, uncertainty = declared_computation(original)
    height, width = port.input.shape[1:3]
    same_size = tuple(original.input.shape[1:3]) == (height, width)
    padding = padding_argument(original, height, width) if same_size else original.pads
    options: dict[str, Any] = dict(padding=padding, precision=original.dtype, stride=tuple(original.stride),
                                   dilation=tuple(original.dilation), groups=int(original.groups),
                                   layout="nhwc", kernel_layout="hwio")
    if expected:
        options["expected"] = expected
    if uncertainty:
        options["declared_uncertainty"] = uncertainty
    try:
        diagnosis = explain(port.input, original.kernel, port.output, **options)
    except InputError as exc:
        return Judgement("not_judged", reason=f"the engine refused this layer: {' '.join(str(exc).split())}")
    return Judgement(diagnosis.verdict.value, diagnosis)


# Activations a port may apply after a conv where the original applies another (each framework
# spells them its own way: 'LeakyRelu', 'LeakyReLU(negative_slope=0.1)', 'leaky_relu').
_ACTIVATION_WORDS = ("relu", "sigmoid", "silu", "swish", "tanh", "gelu", "elu", "softplus", "hardswish",
                     "hardsigmoid", "mish", "softsign", "clip", "clamp")


def activation_name(op: str) -> str:
    """An op that follows a layer, as a comparable activation name ('leakyrelu'), '' for anything else."""
    word = "".join(ch for ch in op.split("(")[0].lower() if ch.isalnum())
    return word if any(name in word for name in _ACTIVATION_WORDS) else ""


def _lacks(layer: ConvLayer) -> set[str]:
    """The epilogue fields (CONTRACT section 2: what follows the sums) a layer's own op does
    not compute: 'bias' without a bias or an absorbed BatchNorm, 'scale' without an absorbed
    BatchNorm, 'activation' with none absorbed."""
    lacking = set()
    if layer.bias is None and layer.batchnorm is None:
        lacking.add("bias")
    if layer.batchnorm is None:
        lacking.add("scale")
    if layer.activation == "linear":
        lacking.add("activation")
    return lacking


_EPILOGUE_WORDS = {"bias": "bias", "scale": "per-channel scale (a BatchNorm)", "activation": "activation"}


def epilogue_elsewhere(original: ConvLayer, port: ConvLayer, judgement: Judgement,
                       feeds_a_conv: tuple[bool, bool] = (False, False)) -> str:
    """Why an `explained` pair cannot be taken as a defect ('' when it can): its causes include an
    epilogue field (bias, scale, activation) that one side's layer does not compute at all while
    the other's does, and the side without it applies another op right after its output (not
    taken into the layer), which may compute exactly that: a bias added by a separate `Add`, a
    BatchNorm written out as `Mul` and `Add`, a ReLU after an op in between, a LeakyReLU as
    its own op. The conv alone then differs from the other side's layer in those fields
    whether the model is right or wrong (a port adding the original's bias in a separate op and
    one adding 1.5 times it were reported alike: 'bias left out'), so the cause would be a guess.
    A side whose output a conv of its model reads as it is (`feeds_a_conv`: (original, port);
    through a pad absorbed into that conv, say) leaves nothing to supply them, nor does a
    follower that is itself a conv."""
    if judgement.verdict != "explained" or judgement.diagnosis is None:
        return ""
    fields = {cause.field for cause in judgement.diagnosis.causes} & set(_EPILOGUE_WORDS)
    for side, layer, other, direct in (("port", port, original, feeds_a_conv[1]),
                                       ("original", original, port, feeds_a_conv[0])):
        follower = layer.followed_by
        missing = fields & _lacks(layer) - _lacks(other)
        if activation_name(follower):
            # An activation op of its own, not the other side's (else it would have been taken
            # into the layer): the missing activation is a real difference (a LeakyReLU where
            # the original has a ReLU), and nothing besides it can follow the conv here.
            missing = set()
        if not missing or not follower or direct or "conv" in follower.lower():
            continue
        named = " and ".join(_EPILOGUE_WORDS[field] for field in sorted(missing))
        others = sorted({cause.field for cause in judgement.diagnosis.causes} - set(_EPILOGUE_WORDS))
        besides = f"; it differs in {', '.join(others)} as well" if others else ""
        return (f"the {side}'s conv op computes no {named}, which the {'original' if side == 'port' else 'port'}'s "
                f"layer does, and the {side} applies {follower} right after it, outside the layer: that op may "
                f"compute exactly the {named}, so the difference is not taken as a defect (compare the two models "
                f"after that op, the next layer's input drift){besides}")
    return ""


_BORDER_FIELDS = ("padding", "offset", "boundary", "cval")


def border_elsewhere(original: ConvLayer, port: ConvLayer, judgement: Judgement) -> str:
    """Why an `explained` pair's padding-like causes cannot be taken as a defect ('' when they can):
    the two layers read inputs of different sizes, so what lies around the port's image was made
    before its conv (a pad op the layer could not take in: its output read elsewhere too) or
    upstream, and the conv's own padding says nothing of it. A port padding with zeros in such
    a pad op and one padding by reflection were both 'padding=valid' (a hunt for false causes)."""
    if judgement.verdict != "explained" or judgement.diagnosis is None:
        return ""
    fields = sorted({cause.field for cause in judgement.diagnosis.causes} & set(_BORDER_FIELDS))
    have, want = tuple(port.input.shape[1:3]), tuple(original.input.shape[1:3])
    if not fields or have == want:
        return ""
    return (f"the port's layer reads a {have[0]}x{have[1]} input where the original's reads {want[0]}x{want[1]}: "
            f"its border was made before the conv (a pad op not taken into the layer, or a layer upstream), so the "
            f"difference in {', '.join(fields)} is not taken as a defect; compare the two models before this layer")


# ----------------------------------------------------------------------------- weights


def own_layout(layer: ConvLayer, fmt: str) -> tuple[np.ndarray, str]:
    """The layer's kernel in its own framework's layout, and that layout's name, so that
    `relate_weights` names a reshape as the port made it: OIHW for PyTorch and ONNX,
    (kh, kw, C, multiplier) for a Keras depthwise kernel, grouped HWIO otherwise."""
    kernel = layer.kernel
    if fmt in ("pytorch", "onnx"):
        return kernel.transpose(3, 2, 0, 1), "oihw"
    depthwise = layer.op.startswith("Depthwise") or layer.name.endswith("/depthwise")
    if fmt == "keras" and depthwise and kernel.shape[2] == 1 and layer.groups > 1:
        kh, kw, _, c_out = kernel.shape
        return kernel.reshape(kh, kw, layer.groups, c_out // layer.groups), "depthwise"
    return kernel, "hwio"


def _batchnorm_factor(layer: ConvLayer) -> np.ndarray:
    channels = layer.kernel.shape[-1]
    return layer.batchnorm.scale() if layer.batchnorm is not None else np.ones(channels)


def is_folded_batchnorm(factor, original: ConvLayer, port: ConvLayer) -> bool:
    """Whether a per-channel `factor` (port = factor * original, from `relate_weights`) is the
    BatchNorm one side has and the other folded into its weights: s_original / s_port, per
    output channel (1 for a side without BatchNorm), within the relation's own rounding.

    The relation's factor is the midpoint of the interval of factors that hold with one
    rounding of each product in the port's precision: within 2 u_port |s| of the factor the
    port really used; that one is within k u_original |s| of the exact one (k =
    BATCHNORM_ROUNDINGS, see `batchnorm_uncertainty`)."""
    if original.batchnorm is None and port.batchnorm is None:
        return False
    wanted = _batchnorm_factor(original) / _batchnorm_factor(port)
    values = np.broadcast_to(np.asarray(factor, np.float64), wanted.shape)
    tolerance = (2 * unit_roundoff(port.kernel.dtype.name) + BATCHNORM_ROUNDINGS * unit_roundoff(original.dtype)
                 + 2.0 ** -50) * np.abs(wanted)
    return bool(np.all(np.abs(values - wanted) <= tolerance))


def judge_weights(original: ConvLayer, port: ConvLayer, port_format: str) -> WeightsJudgement:
    """Relate the port's kernel (in its framework's layout) to the original's (grouped HWIO)."""
    from ..engine import relate_weights
    kernel, layout = own_layout(port, port_format)
    try:
        relation = relate_weights(original.kernel, kernel, original_layout="hwio", port_layout=layout)
    except InputError as exc:
        return WeightsJudgement("not_judged", reason=" ".join(str(exc).split()))
    verdict = relation.verdict.value
    defects, folded = [], False
    for cause in relation.causes:
        if cause.field == "scale" and is_folded_batchnorm(relation.mapping.get("scale"), original, port):
            folded = True
        else:
            defects.append(cause)
    return WeightsJudgement(verdict, tuple(relation.causes), tuple(defects), folded, relation.reason,
                            dict(relation.mapping), relation.reason.startswith("cannot decide"))


# ----------------------------------------------------------------------------- drift


def drift(port: np.ndarray, original: np.ndarray) -> Optional[dict[str, Optional[float]]]:
    """How far a port's captured tensor is from the original's (both NHWC), as Polygraphy
    reports it: {'max_abs_diff', 'max_rel_diff'}, or None when the shapes differ.

    The relative difference is |port - original| / |original| over the elements where the
    original is not zero (where it is, only the absolute difference counts); a value that is
    not finite (a NaN or inf in either tensor) is reported as None."""
    if tuple(port.shape) != tuple(original.shape):
        return None
    a = np.asarray(port, np.float64)
    b = np.asarray(original, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        difference = np.abs(a - b)
    if difference.size == 0:
        return {"max_abs_diff": 0.0, "max_rel_diff": 0.0}
    magnitude = np.abs(b)
    nonzero = magnitude > 0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        relative = float(np.max(difference[nonzero] / magnitude[nonzero])) if nonzero.any() else 0.0
    largest = float(np.max(difference))
    return {"max_abs_diff": largest if np.isfinite(largest) else None,
            "max_rel_diff": relative if np.isfinite(relative) else None}


__all__ = ["ACTIVATIONS", "BATCHNORM_ROUNDINGS", "Judgement", "WeightsJudgement", "padding_argument", "per_channel",
           "batchnorm_uncertainty", "declared_computation", "cannot_judge", "judge_layer", "own_layout",
           "is_folded_batchnorm", "judge_weights", "drift", "unit_roundoff"]
