"""Declared computations (CONTRACT section 2a): a value for any field, normalised once.

Every field of the vocabulary can be declared, and a declared value is the expected one:
matching it is no difference. The dedicated options (`padding`, `stride`, `dilation`,
`groups`, `precision`, `output_precision`, `algorithm`, `kernel_layout`) are declarations
too; `expected={...}` (the API), `--expect FIELD=VALUE` (the CLI) and a check suite's
`expect` table declare the rest. This module turns what users write into the values the
engine keeps, and refuses what no field takes (`InputError`, exit 2) before any array is
read. Whether a declared value can apply to the arrays (a bias list of the right length, a
stride the image allows) is checked once the inputs are known (`check_applies`).
"""

from __future__ import annotations

import math
import re
from typing import Any, Optional

from .choices import (ACTIVATIONS, ALGORITHMS, BOUNDARIES, CHANNEL_ORDERS, FIELDS, KERNEL_LAYOUT_VALUES,
                      KERNEL_TRANSFORMS, OUTPUT_LAYOUTS, OUTPUT_PRECISIONS, PADDINGS, PRECISIONS)
from .errors import InputError

# Fields with an option of their own in explain()/diagnose(): a value declared both ways
# must agree.
OPTION_FIELDS = ("padding", "stride", "dilation", "groups", "precision", "output_precision", "algorithm",
                 "kernel_layout")
_CHOICES = {"kernel_transform": KERNEL_TRANSFORMS, "channel_order": CHANNEL_ORDERS, "activation": ACTIVATIONS,
            "algorithm": ALGORITHMS, "output_layout": OUTPUT_LAYOUTS, "output_transform": ("identity", "transpose"),
            "kernel_axis": ("rows", "columns"), "precision": PRECISIONS, "output_precision": OUTPUT_PRECISIONS,
            "kernel_layout": KERNEL_LAYOUT_VALUES}


def normalize_expected(expected: Optional[dict], label: str = "expected") -> dict:
    """`expected` ({field: value}) with every value in the form the engine keeps: names
    checked against the field's values, pairs as (int, int) tuples, padding as a name or
    ((top, bottom), (left, right)), bias and scale as a float or a tuple per output channel.
    Unknown fields and values are an `InputError` naming `label` and the field."""
    if expected is None:
        return {}
    if not isinstance(expected, dict):
        raise InputError(f"{label} must be a dict of contract fields to values, e.g. "
                         "{'activation': 'relu', 'bias': 0.5}; got " + type(expected).__name__)
    declared = {}
    for field, value in expected.items():
        if field not in FIELDS:
            raise InputError(f"{label}: {field!r} is not a field of the vocabulary; the fields are "
                             + ", ".join(FIELDS))
        declared[field] = normalize_value(field, value, f"{label}[{field!r}]")
    return declared


def normalize_value(field: str, value: Any, label: str) -> Any:
    """One declared value in the engine's form (see `normalize_expected`)."""
    from .geometry import geometry_pair, normalize_padding
    if field in _CHOICES:
        if not isinstance(value, str) or value.lower() not in _CHOICES[field]:
            raise InputError(f"{label} must be one of {', '.join(_CHOICES[field])}; got {value!r}")
        return value.lower()
    if field == "padding":
        return normalize_padding(value, label)
    if field in ("stride", "dilation"):
        return geometry_pair(value, label)
    if field == "offset":
        return _offset(value, label)
    if field == "groups":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{label} must be a positive integer; got {value!r}")
        return int(value)
    if field == "boundary":
        return _boundary(value, label)
    if field == "cval":
        return _number(value, label)
    return _numbers(value, label)   # bias, scale


def padding_from_text(text: str, label: str):
    """A padding as written on a command line or in a rule: a convention's name (any case:
    TensorFlow's 'SAME'), or amounts 'P', 'PH,PW', 'TOP,BOTTOM,LEFT,RIGHT' or '[[top, bottom],
    [left, right]]' (brackets and spaces are ignored, so the JSON spelling reads the same as the
    four numbers). Returns the name, or ((top, bottom), (left, right)) as `normalize_padding`
    gives them; anything else is an `InputError` starting with `label` (e.g. "--padding '1,2,3'").
    Pure Python: the CLI reads options with it before numpy is imported."""
    word = str(text).strip()
    if word.lower() in PADDINGS:
        return word.lower()
    parts = re.sub(r"[\s\[\]()]", "", word).split(",")
    if len(parts) in (1, 2, 4) and all(re.fullmatch(r"[0-9]+", part) for part in parts):
        amounts = [int(part) for part in parts]
        if len(amounts) == 1:
            return ((amounts[0],) * 2,) * 2
        if len(amounts) == 2:
            return ((amounts[0],) * 2, (amounts[1],) * 2)
        return ((amounts[0], amounts[1]), (amounts[2], amounts[3]))
    raise InputError(f"{label}: is not same, valid or full, nor padding amounts P, PH,PW or TOP,BOTTOM,LEFT,RIGHT "
                     "(non-negative integers: PyTorch padding=1 is 1, ONNX pads [t, l, b, r] are t,b,l,r); write "
                     "e.g. same or 1 or 0,1,0,1")


def merge(declared: dict, options: dict, defaults: dict) -> tuple[dict, dict]:
    """(options, declared): the dedicated options with the declared values of their fields
    moved in (a value declared both ways must agree: `InputError` otherwise), and what is
    left declared. `defaults` are the options' defaults (a default option takes the declared
    value without conflict)."""
    options, declared = dict(options), dict(declared)
    for field in OPTION_FIELDS:
        if field not in declared:
            continue
        value = declared.pop(field)
        given = options.get(field, defaults.get(field))
        if given != defaults.get(field) and _comparable(field, given) != value:
            raise InputError(f"{field} is declared twice, as {given!r} and as {value!r} in expected; "
                             "declare it once")
        options[field] = value
    return options, declared


def check_applies(declared: dict, *, outs: int, image_hw: tuple[int, int], padding, groups=None,
                  channels: Optional[int] = None) -> None:
    """Refuse declared values that cannot apply to these arrays (CONTRACT section 2a: exit 2):
    a bias or scale list whose length is not the output's channel count, an offset with
    'full' padding, a groups count that does not divide the image's `channels` and the
    output's. (A stride larger than the image is not refused, though CONTRACT section 2a names
    it: with padding it still gives one window, as TensorFlow's SAME at stride 4 on a 3x3 map
    and PyTorch's padding=1 at stride 3 on a 2x2 map do; the output's size says the rest.)"""
    if isinstance(groups, int) and not isinstance(groups, bool) and groups > 0 and channels is not None \
            and (channels % groups or outs % groups):
        raise InputError(f"the declared groups {groups} must divide the image's channels ({channels}) and the "
                         f"output's ({outs}); declare the layer's groups, or check the arrays' layout")
    for field in ("bias", "scale"):
        value = declared.get(field)
        if isinstance(value, tuple) and len(value) not in (1, outs):
            raise InputError(f"the declared {field} has {len(value)} values, but the output has {outs} channels: "
                             f"give one number, or one per output channel")
    offset = declared.get("offset", (0, 0))
    if tuple(offset) != (0, 0) and padding == "full":
        raise InputError("an offset cannot be declared with padding 'full': every window of 'full' is already "
                         "the reference's; declare explicit pads instead")
    if any(abs(v) >= size + 1 for v, size in zip(offset, image_hw)):
        raise InputError(f"the declared offset {list(offset)} moves every window off the {image_hw[0]}x"
                         f"{image_hw[1]} image; declare a smaller one")


def _comparable(field: str, value):
    """An option's value in the form `normalize_value` gives, for comparing."""
    try:
        return normalize_value(field, value, field)
    except InputError:
        return value


def _offset(value, label: str) -> tuple[int, int]:
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in pair):
        raise InputError(f"{label} must be two integers [rows, columns], e.g. (-1, -1); got {value!r}")
    return int(pair[0]), int(pair[1])


def _boundary(value, label: str):
    if isinstance(value, str) and value.lower() in BOUNDARIES + ("constant",):
        return value.lower()
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    if len(pair) == 2 and all(isinstance(v, str) and v.lower() in BOUNDARIES for v in pair):
        return pair[0].lower(), pair[1].lower()
    raise InputError(f"{label} must be one of {', '.join(BOUNDARIES + ('constant',))}, or a pair [rows, columns] "
                     f"of them; got {value!r}")


def _number(value, label: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{label} must be a number; got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{label} must be a finite number; got {value!r}")
    return number


def _numbers(value, label: str):
    """A bias or scale: one finite number, or a tuple of them (one per output channel)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        numbers = tuple(_number(v, label) for v in value)
        if not numbers:
            raise InputError(f"{label} must be a number or one number per output channel; got an empty list")
        return numbers[0] if len(set(numbers)) == 1 and len(numbers) == 1 else numbers
    return _number(value, label)
