"""Declared values (CONTRACT section 2a) as users write them: `--expect FIELD=VALUE`, `--bias` and
`--scale`, and a check case's `expect` table.

One reading for all three: a value written as text is read as `allow` rules read theirs (the
field table's readers, `convcheck.check.allow`), plus what only a declaration needs: padding
amounts, a boundary pair, and a bias or scale given per channel as numbers or as a file (a
`.npy`, or `FILE.npz:KEY`, read once the arrays are known: `ChannelFile`). Every value is then
normalised by `convcheck.declared.normalize_value`, the API's own. A field declared twice
(`--padding 1 --expect padding=same`) is an `InputError`: `Declarations` keeps where each value
came from to say so. Pure Python: no numpy, no array is read here.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any, Optional

from ..declared import OPTION_FIELDS, normalize_value, padding_from_text
from ..errors import InputError
from .allow import field_row, read_rule_value



@dataclass(frozen=True)
class ChannelFile:
    """A bias or scale declared as a file of one value per output channel: `path` (a `.npy`, or
    `FILE.npz:KEY`) as resolved, `label` how messages name it ("bias file 'b.npy'"), `text` the
    path as written (for reports)."""

    path: str
    label: str
    text: str = ""


def parse_expect_entry(entry: Any, say: str = "--expect") -> tuple[str, Any]:
    """One `FIELD=VALUE` declaration ('offset=-1,-1', 'activation=relu', 'padding=1,1,0,2',
    'bias=b.npy') as (field, value); `say` starts every message. A bias or scale that is not
    numbers is a `ChannelFile` (relative to the working directory)."""
    if not isinstance(entry, str) or "=" not in entry:
        raise InputError(f"{say} {entry!r}: is not FIELD=VALUE; write e.g. {say} activation=relu or "
                         f"{say} offset=-1,-1")
    text = entry.strip()
    name, _, raw = text.partition("=")
    where = f"{say} {text!r}"
    row = field_row(name.strip(), where)
    if not raw.strip():
        raise InputError(f"{where}: gives no value after '='; write e.g. {say} {row.name}=VALUE")
    return row.name, value_from_text(row.name, raw.strip(), where)


def expect_value(name: Any, raw: Any, say: str, base: Optional[str] = None) -> tuple[str, Any]:
    """One entry of a check case's `expect` table as (field, value): a string as `--expect` reads
    its value ("relu", "-1,-1", "bias.npy"), anything else (numbers, lists) as the API takes it;
    a bias or scale file relative to `base`."""
    field = field_row(str(name), f"{say}: {name!r}").name
    if isinstance(raw, str):
        if not raw.strip():
            raise InputError(f"{say}: is empty; give a value, e.g. {field} = ...")
        return field, value_from_text(field, raw.strip(), say, base)
    if isinstance(raw, bool) or isinstance(raw, dict):
        raise InputError(f"{say}: {raw!r} is not a value of {field}; write it as --expect would, e.g. "
                         "activation = \"relu\" or offset = [-1, -1]")
    if field in ("bias", "scale"):
        return field, channel_value(raw, field, say, base)
    return field, normalize_value(field, raw, f"{say}: {field}")


def value_from_text(field: str, raw: str, say: str, base: Optional[str] = None) -> Any:
    """A declared value of `field` written as text, normalised; `base` is the folder a bias or
    scale file is relative to (None: the working directory)."""
    if field == "padding":
        return padding_from_text(raw, say)
    if field == "boundary" and "," in raw:
        names = [part.strip() for part in re.sub(r"[\[\]()]", "", raw).split(",")]
        return normalize_value(field, names, f"{say}: {field}")
    if field in ("bias", "scale"):
        return channel_value(raw, field, say, base)
    if field == "cval":
        return normalize_value(field, raw, f"{say}: {field}")
    value = read_rule_value(field_row(field, say), raw, say).value
    return normalize_value(field, value, f"{say}: {field}")


def channel_value(raw: Any, field: str, say: str, base: Optional[str] = None):
    """A bias or scale: a number, numbers per output channel ('0.1,0.2' or a list), or a file
    (`ChannelFile`, its path resolved against `base`)."""
    if isinstance(raw, str):
        numbers = _numbers(raw)
        if numbers is not None:
            if not all(math.isfinite(number) for number in numbers):
                raise InputError(f"{say}: {raw!r} holds a value that is not finite; give finite numbers")
            return normalize_value(field, numbers if len(numbers) > 1 else numbers[0], f"{say}: {field}")
        path = raw if base is None or os.path.isabs(raw) else os.path.join(base, raw)
        return ChannelFile(path, f"{field} file '{raw}'", raw)
    return normalize_value(field, raw, f"{say}: {field}")


def _numbers(text: str) -> Optional[list[float]]:
    """The numbers of '0.5', '0.1,0.2' or '[0.1, 0.2]'; None when any part is not a number (a file name)."""
    try:
        return [float(part) for part in re.sub(r"[\s\[\]()]", "", text).split(",")]
    except ValueError:
        return None


class Declarations:
    """Declared values gathered from several places, each field at most once.

    `add(field, value, source)` refuses a field already declared, naming both sources
    ("padding is declared twice (--padding 1 and --expect padding=same); declare it once").
    `options()` are the values of the fields with a dedicated option of their own (padding,
    stride, ...: what `diagnose` takes as arguments); `expected()` the rest (its `expected=`).
    """

    def __init__(self) -> None:
        self._values: dict[str, tuple[Any, str]] = {}

    def add(self, field: str, value: Any, source: str) -> None:
        """Declare `field` as `value` (`source` says where, for messages)."""
        if field in self._values:
            raise InputError(f"{field} is declared twice ({self._values[field][1]} and {source}); declare it once")
        self._values[field] = (value, source)

    def __contains__(self, field: str) -> bool:
        return field in self._values

    def options(self) -> dict:
        """{field: value} of the fields `diagnose` takes as options (padding, stride, ...)."""
        return {field: value for field, (value, _) in self._values.items() if field in OPTION_FIELDS}

    def expected(self) -> dict:
        """{field: value} of the other fields (`diagnose`'s `expected=`); a bias or scale may be a `ChannelFile`."""
        return {field: value for field, (value, _) in self._values.items() if field not in OPTION_FIELDS}

    def files(self) -> dict:
        """{field: ChannelFile} of a bias or scale declared as a file."""
        return {field: value for field, (value, _) in self._values.items() if isinstance(value, ChannelFile)}


__all__ = ["ChannelFile", "Declarations", "channel_value", "expect_value", "parse_expect_entry", "value_from_text"]
