"""The vocabulary of explanations (CONTRACT section 2) and the sentences that go with it.

Each field is a `Field` row of `FIELD_TABLE`, in contract order: its values and default,
how the engine arrives at its candidates, how an `allow=` rule writes a value, the
sentence saying *why* such a difference happens, a small function giving a changed
value's (summary, fix) and one giving its plain label. The rows live in one module per
table of CONTRACT section 2 (`geometry_fields`, `layout_fields`, `value_fields`; the row
type in `row`); `cause_for`, `plain_label` and the `allow=` rules (`convcheck.check.allow`)
read them. A new field is a row there and an attribute of `Explanation` here.

Pure Python: importing this package must not import numpy, so the CLI's option
choices can be built from it without paying for the numeric stack.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any, Optional


class Verdict(str, enum.Enum):
    """CONTRACT section 3. The string value is what JSON and tests see."""

    EQUAL = "equal"
    EXPLAINED = "explained"
    UNEXPLAINED = "unexplained"

    def __str__(self) -> str:  # so f"{verdict}" prints "equal", not "Verdict.EQUAL"
        return self.value


from ..choices import (ACTIVATIONS, ALGORITHMS, BOUNDARIES, DTYPES, FIELDS, INTEGER_OUTPUTS,  # noqa: F401
                      KERNEL_LAYOUTS, KERNEL_TRANSFORMS, LAYOUTS, OUTPUT_PRECISIONS, PADDINGS, PRECISIONS)
from ..choices import CHANNEL_ORDERS, KERNEL_LAYOUT_VALUES  # noqa: F401
from .geometry_fields import GEOMETRY_FIELDS
from .layout_fields import LAYOUT_FIELDS
from .row import Field, number_text, pads_text, per_channel, plain_default
from .value_fields import VALUE_FIELDS


@dataclass(frozen=True)
class Explanation:
    """One combination of the contract's fields: the computation that reproduces an output.

    The attributes are the fields of CONTRACT section 2, in its order (`FIELDS`).
    `precision` has no universal default: the baseline is the inputs' own precision,
    which the engine decides from the data (see `convcheck.engine.native_precision`).
    `bias` and `scale` are one number, or a tuple with one number per output channel when
    the channels differ.
    """

    kernel_transform: str = "identity"
    padding: Any = "same"   # a convention's name, or explicit ((top, bottom), (left, right))
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    boundary: str = "zero"
    cval: float = 0.0
    offset: tuple[int, int] = (0, 0)
    groups: int = 1
    kernel_axis: Optional[str] = None
    output_layout: str = "hwc"
    output_transform: str = "identity"
    kernel_layout: str = "hwio"
    channel_order: str = "as_given"
    precision: str = "float64"
    output_precision: Optional[str] = None   # None: the same as `precision` (float32 for tfloat32)
    bias: Any = 0.0       # float, or tuple[float, ...] per output channel
    scale: Any = 1.0
    activation: str = "linear"
    algorithm: str = "direct"

    def to_dict(self) -> dict[str, Any]:
        """The CONTRACT section 5 `explanation` object: every section 2 field, in contract order."""
        d = {name: getattr(self, name) for name in FIELDS}   # every value is immutable: no asdict copy
        for name in ("offset", "stride", "dilation"):
            d[name] = [int(v) for v in getattr(self, name)]
        if not isinstance(self.padding, str):
            d["padding"] = [[int(v) for v in pair] for pair in self.padding]   # [[top, bottom], [left, right]]
        if not isinstance(self.boundary, str):
            d["boundary"] = list(self.boundary)   # [rows, columns] when the two axes differ
        d["bias"] = _number_or_list(self.bias)
        d["scale"] = _number_or_list(self.scale)
        d["cval"] = float(self.cval)
        d["groups"] = int(self.groups)
        if self.output_precision is None:
            d["output_precision"] = "float32" if self.precision == "tfloat32" else self.precision
        return {name: d[name] for name in FIELDS}

    def changed_fields(self, baseline: "Explanation") -> tuple[str, ...]:
        """The fields whose value differs from `baseline`, in contract order."""
        return tuple(name for name in FIELDS if getattr(self, name) != getattr(baseline, name))

    def with_(self, **changes: Any) -> "Explanation":
        """A copy with some fields replaced."""
        return replace(self, **changes)


def _number_or_list(value: Any) -> Any:
    return [float(v) for v in value] if per_channel(value) else float(value)


@dataclass(frozen=True)
class Cause:
    """One changed field of an explanation, said in plain words with its fix."""

    field: str
    value: Any
    summary: str
    fix: str
    why: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The CONTRACT section 5 `causes` entry (plus `why`, the sentence behind the cause)."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"field": self.field, "value": value, "summary": self.summary, "fix": self.fix, "why": self.why}


# Every field, in contract order (`FIELDS`).
FIELD_TABLE: tuple[Field, ...] = GEOMETRY_FIELDS + LAYOUT_FIELDS + VALUE_FIELDS
FIELD_ROWS: dict[str, Field] = {row.name: row for row in FIELD_TABLE}


# ----------------------------------------------------------------------------- what reports read


def cause_for(field_name: str, value: Any, baseline: Explanation,
              explanation: Optional[Explanation] = None, *, kernel_size: Optional[tuple[int, int]] = None) -> Cause:
    """The plain-words `Cause` for one changed field of an explanation (the whole
    `explanation`, when given, lets a cause say how it combines with the others; the kernel's
    `kernel_size` (kh, kw), when given, lets a cause that depends on it say the reason that
    fits: an offset of an even kernel's centring is not one of a stride's padding)."""
    row = FIELD_ROWS.get(field_name)
    if row is None:
        raise ValueError(f"unknown explanation field {field_name!r}")
    summary, fix = row.cause_text(value, baseline, explanation, kernel_size)
    return Cause(field=field_name, value=value, summary=summary, fix=fix,
                 why=row.why_for(value, explanation, kernel_size))


def causes_for(explanation: Explanation, baseline: Explanation, *,
               kernel_size: Optional[tuple[int, int]] = None) -> tuple[Cause, ...]:
    """Every changed field of `explanation` against `baseline`, as causes in contract order
    (`kernel_size`: the kernel's (kh, kw), when known; see `cause_for`)."""
    return tuple(cause_for(name, getattr(explanation, name), baseline, explanation, kernel_size=kernel_size)
                 for name in explanation.changed_fields(baseline))


def describe(explanation: Explanation, baseline: Explanation) -> str:
    """A short plain-words phrase for table cells, e.g. 'kernel rot180 + offset [-1, -1]'."""
    parts = []
    for name in explanation.changed_fields(baseline):
        value = getattr(explanation, name)
        if name == "kernel_transform":
            parts.append(f"kernel {value}")
        elif name in ("offset", "stride", "dilation"):
            parts.append(f"{name} [{value[0]}, {value[1]}]")
        elif name == "padding" and not isinstance(value, str):
            parts.append(f"padding {pads_text(value)}")
        elif name in ("bias", "scale"):
            parts.append(f"{name} {'per channel ' if per_channel(value) else ''}{number_text(value)}")
        else:
            parts.append(f"{name} {value}")
    return " + ".join(parts) if parts else "matches the reference"


def plain_label(field_name: str, value: Any) -> str:
    """A cause in plain words: 'kernel flipped 180° (true convolution)', 'output shifted by [-1, -1]'.

    Any field or value without a label of its own reads '<field> <value>'.
    """
    row = FIELD_ROWS.get(field_name)
    return row.label(value) if row is not None else plain_default(field_name, value)


def describe_plain(explanation: Explanation, baseline: Explanation) -> str:
    """`describe` in plain words, for the most visible lines: 'kernel flipped 180° (true convolution)
    + float32 rounding'."""
    parts = [plain_label(name, getattr(explanation, name)) for name in explanation.changed_fields(baseline)]
    return " + ".join(parts) if parts else "matches the reference"
