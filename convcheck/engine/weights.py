"""How a port's convolution weights were made from the original's: `relate(original, port)`.

Porting a model copies each conv's weights from one framework's layout to another's, and the
classic mistakes keep a plausible shape: a reshape instead of a transpose, the input and
output channel axes swapped, the kernel flipped, a depthwise kernel reshaped, a BatchNorm
folded into the weights, the weights stored in a narrower float. `relate` names the change,
fewest changed fields first, and claims a relation only when every weight satisfies it
exactly, or within the one rounding it names (never a guessed tolerance).

numpy only: no framework, no click. The vocabulary is the contract's (section 2):
`kernel_layout`, `kernel_transform`, `precision`, `scale`; three reshape mistakes are named
`oihw-reshaped` (the contract's), `hwio-reshaped` and `depthwise-reshaped` (added here).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import numpy as np

from .weight_factors import factor_relation, round_port_values
from ..choices import KERNEL_AXIS_ORDERS
from ..errors import InputError
from ..inputs.arrays import check_dtype, check_finite, check_kernel_layout, is_bfloat16, option_text, read_kernel_as
from ..inputs.readings import alternative_layouts, axis_names
from .precision import SIGNIFICAND_BITS, dtype_precision, native_precision, representable
from ..geometry import transform_kernel
from ..vocabulary import KERNEL_TRANSFORMS, PRECISIONS, Cause, Explanation, Verdict, cause_for

SCHEMA = "convcheck/weights/1"
# The reshape mistake each declared layout is open to: the port's shape is the declared one but
# its values are in another layout's memory order. declared -> (kernel_layout name, that layout).
_RESHAPES = {"hwio": ("oihw-reshaped", "oihw"), "oihw": ("hwio-reshaped", "hwio"),
             "depthwise": ("depthwise-reshaped", "oihw")}
_MAX_ALTERNATIVES = 16
# The quick check looks at this many input and output channels (every tap) before the whole kernel.
_SAMPLE_IN, _SAMPLE_OUT = 2, 16


@dataclass(frozen=True)
class WeightsRelation:
    """How `port` was made from `original` (see `relate`).

    `verdict`: EQUAL (the same values in the same layout), EXPLAINED (`mapping` names the
    changed fields that map the original to the port), UNEXPLAINED (nothing does; `reason`
    says why, and starts 'cannot decide' when the values are too few or too uniform to tell).
    `mapping` holds only the changed fields (contract values; `scale` one number or a list
    per output channel); `causes` says each in words; `alternatives` are other mappings with
    as many changed fields that hold too. `max_abs_diff` compares the port read in its
    declared layout with the original (None when their shapes differ).
    """

    verdict: Verdict
    causes: tuple[Cause, ...] = ()
    mapping: dict = field(default_factory=dict, hash=False)
    alternatives: tuple = field(default=(), hash=False)
    reason: str = ""
    max_abs_diff: Optional[float] = None
    original_shape: tuple[int, ...] = ()
    port_shape: tuple[int, ...] = ()
    original_dtype: str = ""
    port_dtype: str = ""
    original_layout: str = "hwio"
    port_layout: str = "hwio"

    def to_json_dict(self, names: Optional[tuple[str, str]] = None) -> dict[str, Any]:
        """The `convcheck weights --format json` document; `names` adds the files' paths."""
        sides = {}
        for side, shape, dtype, layout, index in (
                ("original", self.original_shape, self.original_dtype, self.original_layout, 0),
                ("port", self.port_shape, self.port_dtype, self.port_layout, 1)):
            sides[side] = ({"path": names[index]} if names else {}) | {
                "shape": [int(n) for n in shape], "dtype": dtype, "layout": layout}
        return {"schema": SCHEMA, "verdict": self.verdict.value, **sides,
                "mapping": dict(self.mapping), "causes": [cause.to_dict() for cause in self.causes],
                "alternatives": [dict(a) for a in self.alternatives], "reason": self.reason,
                "max_abs_diff": self.max_abs_diff}


@dataclass(frozen=True)
class _Values:
    """What happened to the numbers: nothing, a rounding to `precision`, or a factor
    (rounded to `precision` too when it is set)."""

    scaled: bool
    precision: Optional[str]   # a precision named as changed, or None
    precision_rank: int        # 0 for None, then the order `_value_changes` tries them in


# ----------------------------------------------------------------------------- reading


def _prepare(array, label: str, layout: str, option: str) -> tuple[np.ndarray, str, str, str]:
    """(the array, in a dtype numpy computes with (bfloat16 as float32, integers as float64: both
    exact), the precision its values carry, its dtype's name, the checked layout)."""
    layout = check_kernel_layout(layout, option)
    try:
        array = np.asarray(array)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"{label}: cannot be turned into a numeric array "
                         f"({' '.join(str(exc).split())[:200]}); pass a numpy array") from None
    check_dtype(array.dtype, label, from_file=False)
    if array.ndim != 4:
        raise InputError(f"{label}: is {array.ndim}-D (shape {array.shape}); give a conv layer's 4-D weights "
                         f"in its layout ({option_text(option, layout)} reads them as "
                         f"({'kh, kw, C, multiplier' if layout == 'depthwise' else axis_names(layout)}))")
    if array.size == 0:
        raise InputError(f"{label}: has no elements (shape {array.shape}); give a non-empty kernel")
    check_finite(array, label)
    name = array.dtype.name
    if is_bfloat16(array.dtype):
        return np.ascontiguousarray(array.astype(np.float32)), "bfloat16", name, layout
    if array.dtype.kind in "iu":
        return np.ascontiguousarray(array, dtype=np.float64), native_precision(array), name, layout
    return np.ascontiguousarray(array), dtype_precision(array.dtype), name, layout


def _as_hwio(array: np.ndarray, layout: str) -> np.ndarray:
    """A 4-D kernel in `layout` as grouped HWIO (a view): a depthwise (kh, kw, C, M) kernel is
    (kh, kw, 1, C * M), output channel c * M + m, as tf.nn.depthwise_conv2d numbers them."""
    if layout == "depthwise":
        kh, kw, channels, multiplier = array.shape
        return array.reshape(kh, kw, 1, channels * multiplier)
    return read_kernel_as(array, layout)


def _view_key(view: np.ndarray) -> tuple:
    """Two views of one buffer with equal keys hold the same elements in the same places:
    readings that differ only in where they put a length-1 axis are one reading."""
    strides = tuple(s if n > 1 else 0 for s, n in zip(view.strides, view.shape))
    return view.__array_interface__["data"][0], view.shape, strides


def _readings(port: np.ndarray, declared: str, shape: tuple[int, ...], constant: bool) -> list[tuple[str, Any]]:
    """(kernel_layout value, the port read so as grouped HWIO) for every reading whose shape is
    the original's, the declared one first, then `inputs.readings.alternative_layouts`' order. For a
    square kernel that leaves out the orders with kh and kw the other way round (they are
    kernel_transform 'transpose' on another reading); a kernel with kh != kw has no such
    transform, so they come last. A constant original cannot tell readings apart: only the
    declared one is offered."""
    if declared == "depthwise":
        names = ["hwio"] + [n for n in alternative_layouts("hwio") if n != "oihw-reshaped"]
    else:
        names = [n for n in alternative_layouts(declared) if not n.endswith("-reshaped")]
    if shape[0] != shape[1]:
        names += [n for n in KERNEL_AXIS_ORDERS if n not in names and n != declared]
    reshape = _RESHAPES.get(declared)
    if reshape is not None:
        names.insert(min(2, len(names)), reshape[0])
    readings, seen = [], set()
    declared_view = _as_hwio(port, declared)
    for name in [declared] + ([] if constant else names):
        if name.endswith("-reshaped"):
            if declared_view.shape != shape:
                continue  # the mistake keeps the declared shape: that is why it goes unnoticed
            source = reshape[1]
            view = read_kernel_as(port.reshape([shape["hwio".index(axis)] for axis in source]), source)
        else:
            view = declared_view if name == declared else read_kernel_as(port, name)
        key = _view_key(view)
        if view.shape == shape and key not in seen:
            seen.add(key)
            readings.append((name, view))
    return readings


def _transforms(original: np.ndarray, constant: bool) -> list[tuple[str, np.ndarray]]:
    """(kernel_transform, T(original)) for every transform that keeps the shape and moves some tap."""
    found, seen = [], set()
    for name in KERNEL_TRANSFORMS[:1] if constant else KERNEL_TRANSFORMS:
        view = transform_kernel(original, name)
        key = _view_key(view)
        if view.shape == original.shape and key not in seen:
            seen.add(key)
            found.append((name, view))
    return found


def _value_changes(original_precision: str, port_precision: str) -> list[_Values]:
    """What may have happened to the numbers, simplest first: the port's own precision first
    among the narrower ones (its dtype is evidence), then the contract's order."""
    bits = SIGNIFICAND_BITS[original_precision]
    ordered = [port_precision] + [p for p in PRECISIONS if p != port_precision]
    narrower = [p for p in ordered if p != "tfloat32" and SIGNIFICAND_BITS[p] < bits]
    changes = [_Values(False, None, 0)] + [_Values(False, p, 1 + i) for i, p in enumerate(narrower)]
    if SIGNIFICAND_BITS[port_precision] >= bits:
        changes.append(_Values(True, None, 0))   # the product rounded to the port's own precision
    changes += [_Values(True, p, 1 + i) for i, p in enumerate(narrower)]
    return changes


# ----------------------------------------------------------------------------- checking


class _Search:
    """The candidates' checks, each run first on a few channels (cheap: most candidates fail
    there), then on the whole kernel. A narrower precision is tried only when every port value
    is representable in it (evidence computed once, when first needed)."""

    def __init__(self, port, original_precision, port_precision, readings, transforms):
        self.port = port
        self.representable: dict[str, bool] = {}
        self.original_precision = original_precision
        self.port_precision = port_precision
        self.readings = dict(readings)
        self.transforms = dict(transforms)
        sample = (slice(None), slice(None), slice(0, _SAMPLE_IN), slice(0, _SAMPLE_OUT))
        self.port_samples = {n: np.asarray(v[sample], np.float64) for n, v in readings}
        self.original_samples = {n: np.asarray(v[sample], np.float64) for n, v in transforms}
        self.notes: list[str] = []

    def check(self, reading: str, transform: str, values: _Values):
        """(True, factor or None) when the candidate maps the original to the port, else (False, None)."""
        if values.precision is not None:
            if values.precision not in self.representable:   # a few channels first: most ports fail there
                self.representable[values.precision] = values.precision == self.port_precision or (
                    representable(self.port_samples[reading], values.precision)
                    and representable(self.port, values.precision))
            if not self.representable[values.precision]:
                return False, None
        ok, _, _ = self._check(self.port_samples[reading], self.original_samples[transform], values,
                               sample=True)
        if not ok:
            return False, None
        ok, factor, note = self._check(self.readings[reading], self.transforms[transform], values, sample=False)
        if note:
            read = f"read as {reading}" + (f" with kernel_transform {transform}" if transform != "identity" else "")
            self.notes.append(f"{note} ({read}{', rounded to ' + values.precision if values.precision else ''})")
        return ok, factor

    def _check(self, port, mapped, values: _Values, sample: bool):
        if not values.scaled:
            if values.precision is None:
                return np.array_equal(port, mapped), None, ""
            return any(np.array_equal(port, rounded) for rounded in
                       round_port_values(mapped, values.precision, self.original_precision)), None, ""
        relation = factor_relation(port, mapped, precision=values.precision or self.port_precision,
                                   original_precision=self.original_precision, sample=sample)
        return relation.factor is not None, relation.factor, relation.note


def _fields(declared: str, reading: str, transform: str, values: _Values, factor) -> dict[str, Any]:
    """The changed fields of one candidate, in contract order (CONTRACT section 2)."""
    mapping: dict[str, Any] = {}
    if transform != "identity":
        mapping["kernel_transform"] = transform
    if reading != declared:
        mapping["kernel_layout"] = reading
    if values.precision is not None:
        mapping["precision"] = values.precision
    if values.scaled:
        mapping["scale"] = list(factor) if isinstance(factor, tuple) else factor
    return mapping


def _search(search: _Search, declared: str, readings, transforms, changes) -> list[dict[str, Any]]:
    """Every mapping that holds with the fewest changed fields, the simplest first: ties are
    ordered field by field in the contract's order (kernel_transform, kernel_layout, precision,
    scale), each field's values in the order they are tried (its default first)."""
    candidates = []
    for (r_rank, (reading, _)), (t_rank, (transform, _)), values in itertools.product(
            enumerate(readings), enumerate(transforms), changes):
        count = (reading != declared) + (transform != "identity") + (values.precision is not None) + values.scaled
        key = (count, t_rank, r_rank, values.precision_rank, values.scaled)
        candidates.append((key, reading, transform, values))
    candidates.sort(key=lambda item: item[0])
    found: list[dict[str, Any]] = []
    level = None
    for key, reading, transform, values in candidates:
        if level is not None and key[0] > level:
            break
        ok, factor = search.check(reading, transform, values)
        if ok:
            level = key[0]
            found.append(_fields(declared, reading, transform, values, factor))
            if len(found) > _MAX_ALTERNATIVES:
                break
    return found


# ----------------------------------------------------------------------------- causes

_RESHAPED_TEXT = {
    "hwio-reshaped": ("the weights are TensorFlow/Keras HWIO values turned into PyTorch's OIHW shape with reshape "
                      "instead of transpose: the shape is right, but every value sits at the wrong tap and channel",
                      "convert Keras weights with np.transpose(w, (3, 2, 0, 1)) (tf.transpose(w, [3, 2, 0, 1])), not "
                      "w.reshape(C_out, C_in, kh, kw); this array is undone by "
                      "np.transpose(w.reshape(kh, kw, C_in, C_out), (3, 2, 0, 1))"),
    "depthwise-reshaped": ("the depthwise kernel is PyTorch (C * M, 1, kh, kw) weights turned into Keras "
                           "DepthwiseConv2D's (kh, kw, C, M) with reshape instead of transpose: the shape is right, "
                           "but every value sits at the wrong tap and channel",
                           "convert PyTorch depthwise weights with np.transpose(w.reshape(C, M, kh, kw), (2, 3, 0, 1)) "
                           "(for M = 1: np.transpose(w, (2, 3, 0, 1))), not w.reshape(kh, kw, C, M)"),
}


# The taps' rearrangement a kernel_transform makes, said of weights (the vocabulary speaks of an
# output computed with the kernel).
_TRANSFORM_WORDS = {
    "rot180": "rotated 180 degrees (both axes reversed: a true convolution's kernel used for a "
              "cross-correlation, or the reverse)",
    "flip_ud": "reversed top to bottom (the kh axis)",
    "flip_lr": "reversed left to right (the kw axis)",
    "transpose": "transposed (kh and kw swapped)",
    "anti_transpose": "transposed about the anti-diagonal (kh and kw swapped and both reversed)",
    "rot90": "rotated 90 degrees counter-clockwise",
    "rot270": "rotated 90 degrees clockwise",
}
_UNDO = {"rot180": "w[::-1, ::-1]", "flip_ud": "w[::-1, :]", "flip_lr": "w[:, ::-1]",
         "transpose": "np.swapaxes(w, 0, 1)", "anti_transpose": "np.swapaxes(w, 0, 1)[::-1, ::-1]",
         "rot90": "np.rot90(w, -1, axes=(0, 1))", "rot270": "np.rot90(w, 1, axes=(0, 1))"}


def _weights_text(name: str, value: Any) -> Optional[tuple[str, str]]:
    """(summary, fix) of a changed field said of weights, where the vocabulary's sentence is
    about an output (a flip, a factor, a rounding); None for the kernel layout's."""
    if name == "kernel_transform" and value in _TRANSFORM_WORDS:
        return (f"the port's kernel is the original's with its taps {_TRANSFORM_WORDS[value]}",
                f"undo it on the port's HWIO array: {_UNDO[value]} (or convert the original's weights again "
                "without the flip)")
    if name == "scale":
        factors = f"{value:g}" if isinstance(value, (int, float)) else "one factor per output channel"
        return (f"the port's weights are the original's times {factors} (a BatchNorm folded into the weights, "
                "or filters normalised)",
                "if a BatchNorm was folded in, check that each factor is that layer's gamma / sqrt(running_var + "
                "eps) with the port's eps; else divide the factors out of the port's weights")
    if name == "precision":
        return (f"the port's weights are the original's rounded to {value}, to nearest (a {value} checkpoint or "
                "a mixed-precision policy that keeps the weights in it)",
                f"keep the port's weights in float32 (load them before casting the model to {value}), or "
                f"expect {value}'s rounding in the port's outputs")
    return None


def _causes(mapping: dict[str, Any], baseline: Explanation) -> tuple[Cause, ...]:
    """Each changed field in words: `cause_for`'s sentences, and this module's for the reshapes
    the vocabulary has no sentence for."""
    values = {name: (tuple(v) if isinstance(v, list) else v) for name, v in mapping.items()}
    explanation = baseline.with_(**values)
    causes = []
    for name, value in values.items():
        if name == "kernel_layout" and value in _RESHAPED_TEXT:
            why = cause_for("kernel_layout", "oihw-reshaped", Explanation()).why
            summary, fix = _RESHAPED_TEXT[value]
            causes.append(Cause(field=name, value=value, summary=summary, fix=fix, why=why))
        elif name == "kernel_layout":
            # The vocabulary's fix names explain's option; here the declared layout is the port's.
            cause = cause_for(name, value, baseline, explanation)
            fix = cause.fix.replace("--kernel-layout", "--port-layout").replace("kernel_layout=", "port_layout=")
            causes.append(replace(cause, fix=fix))
        else:
            cause = cause_for(name, value, baseline, explanation)
            text = _weights_text(name, value)
            causes.append(cause if text is None else replace(cause, summary=text[0], fix=text[1]))
    return tuple(causes)


# ----------------------------------------------------------------------------- the entry point


def relate(original, port, *, original_layout: str = "hwio", port_layout: str = "hwio",
           names: Optional[tuple[str, str]] = None) -> WeightsRelation:
    """How `port` was made from `original`: equal, a named change (layout, reshape, spatial transform,
    per-output-channel factor, rounding to a narrower float), or unrelated.

    Both are a conv layer's 4-D weights in their layouts (the contract's names: 'hwio',
    'oihw', 'depthwise' = (kh, kw, C, multiplier), any order of h w i o); they are compared
    as grouped HWIO, so a depthwise kernel equals its OIHW (C * M, 1, kh, kw) form. The
    simplest mapping wins (fewest changed fields among kernel_layout, kernel_transform,
    precision, scale; ties to the contract's value order) and the others with as many
    fields are `alternatives`. Exact relations are checked with exact equality; a rounding
    to a narrower float is `round(mapped)` in it, to nearest even; a factor is as
    `convcheck._weights_factor.factor_relation` documents (one rounding of each product,
    Higham eq. 2.4, and evidence rules). A constant original names no layout. A reshape is
    named relative to `port_layout` ('oihw-reshaped' for 'hwio', 'hwio-reshaped' for 'oihw',
    'depthwise-reshaped' for 'depthwise'), so give the port in its own framework's layout to
    have Keras -> PyTorch and depthwise reshapes named. `names` (the
    files' paths, from the command line) go into error messages, which then name the command's
    options. Bad arrays and layouts raise `InputError`.
    """
    labels = [f"{side} file '{name}'" for side, name in zip(("original", "port"), names)] if names else \
        ["original", "port"]
    options = ("--original-layout", "--port-layout") if names else ("original_layout=", "port_layout=")
    original, original_precision, original_dtype, original_layout = _prepare(original, labels[0], original_layout,
                                                                             options[0])
    port, port_precision, port_dtype, port_layout = _prepare(port, labels[1], port_layout, options[1])
    original_hwio = np.ascontiguousarray(_as_hwio(original, original_layout))
    declared_view = _as_hwio(port, port_layout)
    base = dict(original_shape=original.shape, port_shape=port.shape, original_layout=original_layout,
                port_layout=port_layout, original_dtype=original_dtype, port_dtype=port_dtype)
    fits = declared_view.shape == original_hwio.shape
    if port.size != original.size:
        return WeightsRelation(Verdict.UNEXPLAINED, max_abs_diff=None, reason=(
            f"the port holds {port.size} weights and the original {original.size}: no layout, reshape, "
            "transform, factor or rounding changes how many there are"), **base)
    constant = bool(original_hwio.min() == original_hwio.max())
    readings = _readings(port, port_layout, original_hwio.shape, constant)
    transforms = _transforms(original_hwio, constant)
    changes = _value_changes(original_precision, port_precision)
    search = _Search(port, original_precision, port_precision, readings, transforms)
    found = _search(search, port_layout, readings, transforms, changes) if readings else []
    if found and not found[0]:
        return WeightsRelation(Verdict.EQUAL, max_abs_diff=0.0, **base)
    difference = np.abs(np.asarray(declared_view, np.float64) - original_hwio) if fits else None
    max_abs_diff = float(difference.max()) if fits else None
    if not found:
        differ = int(np.count_nonzero(difference)) if fits else None
        return WeightsRelation(Verdict.UNEXPLAINED, max_abs_diff=max_abs_diff, reason=_reason(
            search, port, port_layout, original_hwio, constant, max_abs_diff, differ), **base)
    mapping = found[0]
    baseline = Explanation(kernel_layout=port_layout, precision=original_precision)
    return WeightsRelation(Verdict.EXPLAINED, causes=_causes(mapping, baseline), mapping=mapping,
                           alternatives=tuple(found[1:_MAX_ALTERNATIVES + 1]), max_abs_diff=max_abs_diff, **base)


def _reason(search: _Search, port, port_layout: str, original, constant: bool, max_abs_diff,
            differ: Optional[int]) -> str:
    """Why nothing holds, in one sentence: what could not be decided, else how far apart they are."""
    if constant:
        fits = [name for name in dict.fromkeys((port_layout,) + KERNEL_AXIS_ORDERS)
                if _as_hwio(port, name).shape == original.shape]
        if port_layout not in fits:
            return (f"cannot decide: every weight of the original is {float(original.flat[0]):g}, so its values "
                    "cannot tell one layout from another; the port's shape " f"{tuple(port.shape)} "
                    + (f"fits it read as {', '.join(fits)}" if fits else "fits no order of its axes"))
    if search.notes:
        return search.notes[0]
    if max_abs_diff is None:
        return (f"the port's shape {tuple(port.shape)} read as {port_layout.upper()} is not the original's "
                f"{tuple(original.shape)} (HWIO), and no order of its axes whose shape fits maps the original "
                "to it")
    return (f"no layout, reshape, kernel transform, factor or rounding maps the original to the port: read as "
            f"{port_layout.upper()}, {differ} of {original.size} weights differ (max |difference| "
            f"{max_abs_diff:.6g})")


__all__ = ["SCHEMA", "WeightsRelation", "relate"]
