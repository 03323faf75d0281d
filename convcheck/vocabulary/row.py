"""The row type of the field table (`Field`) and the small helpers its rows share.

Pure Python, like the whole vocabulary: no numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

if TYPE_CHECKING:
    from . import Explanation

# (value, the baseline it differs from, the whole explanation when known) -> (summary, fix); a
# `kernel_aware` row's also takes the keyword kernel_size: the kernel's (kh, kw) when known.
CauseText = Callable[[Any, "Explanation", Optional["Explanation"]], "tuple[str, str]"]
# (value, the whole explanation when known, the kernel's (kh, kw) when known) -> the why sentence
WhyText = Callable[[Any, Optional["Explanation"], Optional["tuple[int, int]"]], str]


@dataclass(frozen=True)
class Field:
    """One field of CONTRACT section 2: everything convcheck says or reads about it.

    `values` are its values, default first (None for numbers and pairs); `enumerated`
    says in plain words how the engine arrives at its candidates; `written` how an
    `allow=` rule writes a value: 'choice' (one of the names in `values`), 'name' (any
    name: allow= has never checked output_transform's and algorithm's against their
    values), 'offset' (two integers), 'pair' (one or two positive integers), 'count' (a
    positive integer) or 'number' (a finite number). `why` is the sentence printed once
    below a table (`why_by_value` where one value has its own), `cause` gives a changed
    value's (summary, fix), `label` its plain words for the most visible lines. `why_of`, when
    set, gives the why sentence from the case itself (the value, the whole explanation, the
    kernel's size): a field whose reason depends on the case (an offset at a stride, or of an
    even kernel) says the one that fits. `kernel_aware` rows' `cause` takes the keyword
    `kernel_size` too.
    """

    name: str
    group: str            # 'geometry', 'layout' or 'values': CONTRACT section 2's three tables
    values: Optional[tuple]
    default: Any
    enumerated: str
    written: str
    why: str
    cause: CauseText
    label: Callable[[Any], str]
    why_by_value: Mapping[str, str] = field(default_factory=dict)
    why_of: Optional[WhyText] = None
    kernel_aware: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        """The values written as names (kernel_axis's and output_precision's default, None, has none)."""
        return tuple(v for v in self.values or () if isinstance(v, str))

    def why_for(self, value: Any, explanation: Optional["Explanation"] = None,
                kernel_size: Optional[tuple[int, int]] = None) -> str:
        """The why sentence of a cause with this value (in this explanation, with a kernel of
        this (kh, kw), when known: see `why_of`)."""
        if self.why_of is not None:
            return self.why_of(value, explanation, kernel_size)
        return self.why_by_value.get(value, self.why) if isinstance(value, str) else self.why

    def cause_text(self, value: Any, baseline: "Explanation", explanation: Optional["Explanation"] = None,
                   kernel_size: Optional[tuple[int, int]] = None) -> tuple[str, str]:
        """(summary, fix) of a cause with this value (the kernel's size reaches `kernel_aware` rows only)."""
        if self.kernel_aware:
            return self.cause(value, baseline, explanation, kernel_size=kernel_size)
        return self.cause(value, baseline, explanation)


def per_channel(value: Any) -> bool:
    """True for a bias or scale given per output channel (a tuple), False for one number."""
    return isinstance(value, (tuple, list))


def pads_text(value) -> str:
    """Explicit pads ((top, bottom), (left, right)) as JSON writes them: '[[1, 1], [0, 2]]'."""
    (top, bottom), (left, right) = value
    return f"[[{top}, {bottom}], [{left}, {right}]]"


def number_text(x: Any) -> str:
    """A number, or one per channel, as causes and labels print it (6 significant digits)."""
    if per_channel(x):
        return "[" + ", ".join(f"{float(v):.6g}" for v in x) + "]"
    return f"{x:.6g}"


# A row's `label` is for the most visible lines (table rows, check headlines, GitHub titles),
# where a reader should not need the field names; JSON and detail lines keep those.
def label_of(name: str, labels: Mapping[str, str] = {}) -> Callable[[Any], str]:  # noqa: B006 - never mutated
    """A field's label: its own words for a named value, else '<field> <value>'."""
    def label(value: Any) -> str:
        if isinstance(value, str) and value in labels:
            return labels[value]
        return plain_default(name, value)
    return label


def plain_default(name: str, value: Any) -> str:
    """The label of a field or value without words of its own: '<field> <value>'."""
    return f"{name.replace('_', ' ')} {value}"
