"""The `allow` rules of a check case: which causes (CONTRACT section 2 fields and values) a case may have.

Which fields there are and how each writes its values come from the field table
(`convcheck.vocabulary.FIELD_TABLE`): a new field is allowed as soon as it has its row.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..declared import padding_from_text
from ..errors import InputError
from ..vocabulary import FIELD_ROWS, FIELDS, Cause, Field
from ..vocabulary.row import pads_text


@dataclass(frozen=True)
class AllowRule:
    """One entry of `allow`: a field, and the value it may take (`None`: any value)."""

    field: str
    value: Any = None
    text: str = ""

    def permits(self, cause: Cause) -> bool:
        """True when `cause` changes this rule's field to a value the rule accepts."""
        if cause.field != self.field:
            return False
        if self.value is None:
            return True
        written = FIELD_ROWS[self.field].written
        if written in ("offset", "pair"):
            return tuple(cause.value) == tuple(self.value)
        if written == "number":
            # A per-channel bias or scale is allowed when every channel's value is the rule's.
            values = cause.value if isinstance(cause.value, (tuple, list)) else (cause.value,)
            return all(math.isclose(float(v), float(self.value), rel_tol=1e-6, abs_tol=1e-12) for v in values)
        return cause.value == self.value

    def __str__(self) -> str:
        return self.text or (self.field if self.value is None else f"{self.field}={self.value}")


def one_of(value: Any, choices: tuple[str, ...], say: str) -> str:
    """`value` when it is one of `choices`; else an `InputError` starting with `say` that lists them."""
    if isinstance(value, str) and value in choices:
        return value
    hint = ""
    if isinstance(value, str) and value.lower() in choices:
        hint = f" (write it in lower case: '{value.lower()}')"
    raise InputError(f"{say}: {value!r} is not one of {', '.join(choices)}{hint}; use one of them")


def parse_allow_entry(entry: Any, say: str) -> AllowRule:
    """One `allow` string ('precision=float32', 'boundary', 'offset=[0, -1]', 'stride=2', 'bias=0.5')
    as a rule.

    Raises `InputError` starting with `say` (the file/case/key, or the argument name)
    for an unknown field or a value outside the CONTRACT section 2 vocabulary: the field
    table (`convcheck.vocabulary.FIELD_TABLE`) says which fields there are and how each
    writes its values.
    """
    if not isinstance(entry, str) or not entry.strip():
        raise InputError(f"{say}: {entry!r} is not a string; write entries like \"precision=float32\" "
                         "or a bare field name such as \"boundary\"")
    text = entry.strip()
    name, sep, raw_value = text.partition("=")
    name, raw_value = name.strip(), raw_value.strip()
    row = field_row(name, f"{say}: {text!r}")
    if not sep:
        return AllowRule(name, None, text)
    return read_rule_value(row, raw_value, f"{say}: {text!r}")


def field_row(name: str, say: str) -> Field:
    """The field table's row of the field `name`; an `InputError` starting with `say` (which
    suggests the closest field) when no field has that name."""
    row = FIELD_ROWS.get(name)
    if row is None:
        import difflib   # a typo's suggestion: not imported by every `explain --expect`

        close = difflib.get_close_matches(name, FIELDS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise InputError(f"{say} names no field{hint}; the fields are {', '.join(FIELDS)}")
    return row


def read_rule_value(row: Field, raw_value: str, say: str) -> AllowRule:
    """The rule `field=value` for the text after '=', read as the field's row writes its values
    (`Field.written`); `say` starts a message for a value the field does not take. The same
    readers read declared values (`convcheck.check.expect`)."""
    return _VALUE_READERS[row.written](row, raw_value, say)


def _read_choice(row: Field, raw_value: str, say: str) -> AllowRule:
    if row.name == "padding" and raw_value.lower() not in row.names and re.search(r"[0-9]", raw_value):
        # Explicit amounts ('padding=0,1,0,1' or '[[0, 1], [0, 1]]'): the pads a cause names when
        # no convention gives the output's size (CONTRACT section 2a).
        amounts = padding_from_text(raw_value, f"{say}: padding")
        return AllowRule(row.name, amounts, f"padding={pads_text(amounts)}")
    value = one_of(raw_value, row.names, f"{say}: {row.name}")
    return AllowRule(row.name, value, f"{row.name}={value}")


def _read_name(row: Field, raw_value: str, say: str) -> AllowRule:
    if not raw_value:
        raise InputError(f"{say}: give a value after '=', or write the bare field \"{row.name}\" "
                         "to allow any value")
    return AllowRule(row.name, raw_value, f"{row.name}={raw_value}")


def _read_offset(row: Field, raw_value: str, say: str) -> AllowRule:
    numbers = re.fullmatch(r"\[?\s*(-?\d+)\s*,\s*(-?\d+)\s*\]?", raw_value)
    if not numbers:
        raise InputError(f"{say}: offset must be two integers, e.g. \"offset=[-1, -1]\"")
    offset = (int(numbers.group(1)), int(numbers.group(2)))
    return AllowRule(row.name, offset, f"offset=[{offset[0]}, {offset[1]}]")


def _read_pair(row: Field, raw_value: str, say: str) -> AllowRule:
    # "stride=2", "stride=[2, 1]" or "stride=(2, 1)": an int means both axes.
    name = row.name
    numbers = re.fullmatch(r"[\[(]?\s*(\d+)\s*(?:,\s*(\d+)\s*)?[\])]?", raw_value)
    pair = (int(numbers.group(1)), int(numbers.group(2) or numbers.group(1))) if numbers else (0, 0)
    if min(pair) < 1:
        raise InputError(f"{say}: {name} must be a positive integer or two of them, "
                         f"e.g. \"{name}=2\" or \"{name}=[2, 1]\"")
    return AllowRule(name, pair, f"{name}=[{pair[0]}, {pair[1]}]")


def _read_count(row: Field, raw_value: str, say: str) -> AllowRule:
    if not re.fullmatch(r"\d+", raw_value) or int(raw_value) < 1:
        raise InputError(f"{say}: {row.name} must be a positive integer, e.g. \"{row.name}=3\"")
    return AllowRule(row.name, int(raw_value), f"{row.name}={int(raw_value)}")


def _read_number(row: Field, raw_value: str, say: str) -> AllowRule:
    name = row.name
    try:
        number = float(raw_value)
    except ValueError:
        raise InputError(f"{say}: {name} must be a number, e.g. \"{name}=0.5\", or write the "
                         f"bare field \"{name}\" to allow any value") from None
    if not math.isfinite(number):
        raise InputError(f"{say}: {name} must be a finite number")
    return AllowRule(name, number, f"{name}={raw_value}")


# How an allow value is read, by the field's `written` (convcheck.vocabulary.Field).
_VALUE_READERS = {"choice": _read_choice, "name": _read_name, "offset": _read_offset, "pair": _read_pair,
                  "count": _read_count, "number": _read_number}


def parse_allow(entries: Any, say: str = "allow") -> tuple[AllowRule, ...]:
    """A whole `allow` list (a single string is taken as a list of one) as rules."""
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, (list, tuple)):
        raise InputError(f"{say}: {entries!r} is not a list; write e.g. "
                         "allow = [\"precision=float32\", \"kernel_transform=rot180\"]")
    return tuple(parse_allow_entry(entry, say) for entry in entries)
