"""The settings of a check config table (top level or one case): each key's value validated.

padding (a name or explicit amounts), stride, dilation, groups, layout, dtype, kernel-layout,
backends, library-defaults, strict and allow; a case's settings lie on top of the top level's.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Callable

from ..choices import KERNEL_AXIS_ORDERS, LAYOUTS
from ..declared import padding_from_text
from ..errors import InputError
from ..vocabulary import DTYPES, KERNEL_LAYOUTS, PADDINGS
from .allow import one_of, parse_allow

# What a case has when neither it nor the top level says otherwise.
DEFAULT_SETTINGS = {"padding": "same", "stride": (1, 1), "dilation": (1, 1), "groups": None, "layout": "nhwc",
                    "dtype": None, "kernel_layout": None, "backends": None, "library_defaults": False,
                    "strict": False, "allow": ()}


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _pair(value: Any, say: str, key: str) -> tuple[int, int]:
    """A stride or dilation: a positive integer (both axes) or a list of two."""
    if _positive_int(value):
        return (value, value)
    if isinstance(value, list) and len(value) == 2 and all(_positive_int(v) for v in value):
        return (value[0], value[1])
    raise InputError(f"{say}: {value!r} is not a positive integer or a list of two; write e.g. "
                     f"{key} = 2 or {key} = [2, 1]")


def read_padding(value: Any, say: str):
    """A padding: a convention's name ('same', 'valid', 'full'), or explicit amounts as PyTorch and
    ONNX declare them: an integer P, a list [PH, PW] or [top, bottom, left, right], or
    [[top, bottom], [left, right]] (a string of them, "1,1,0,2", reads as on the command line).
    Returns the name or ((top, bottom), (left, right))."""
    if isinstance(value, str):
        if re.search(r"[0-9]", value):
            return padding_from_text(value, f"{say}: {value!r}")
        return one_of(value, PADDINGS, say)
    if isinstance(value, bool):
        raise InputError(f"{say}: {value!r} is not a padding; write e.g. padding = \"same\", padding = 1 or "
                         "padding = [[0, 1], [0, 1]]")
    from ..geometry import normalize_padding
    return normalize_padding(value, say)


def _groups(value: Any, say: str) -> int:
    if _positive_int(value):
        return value
    raise InputError(f"{say}: {value!r} is not a positive integer; write e.g. groups = 1 (dense) or "
                     "groups = 3 (depthwise on 3 channels)")


def _bool(value: Any, say: str) -> bool:
    if isinstance(value, bool):
        return value
    raise InputError(f"{say}: {value!r} is not a boolean; write true or false (no quotes)")


def _backends(value: Any, say: str) -> tuple[str, ...]:
    from ..backends import ALIASES, BACKENDS, GROUPS, resolve_backends, valid_names  # no framework

    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InputError(f"{say}: {value!r} is not a list of backend names; write e.g. "
                         "backends = [\"scipy.signal.correlate2d\", \"tf.nn.conv2d\"]")
    known = list(BACKENDS) + list(ALIASES) + list(GROUPS)
    for name in value:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise InputError(f"{say}: unknown backend {name!r}{hint}; {valid_names()}")
    duplicates = sorted({name for name in value if value.count(name) > 1})
    if duplicates:
        raise InputError(f"{say}: {', '.join(duplicates)} listed twice; list each backend once")
    # Aliases (torch, tf, ...) and groups (dl, scipy) become public names.
    return tuple(resolve_backends(value))


def read_settings(table: dict, say: Callable[[str], str], defaults: dict) -> dict:
    """The validated settings of one table, on top of `defaults`."""
    settings = dict(defaults)
    if "padding" in table:
        settings["padding"] = read_padding(table["padding"], say("padding"))
    for key in ("stride", "dilation"):
        if key in table:
            settings[key] = _pair(table[key], say(key), key)
    if "groups" in table:
        settings["groups"] = _groups(table["groups"], say("groups"))
    if "layout" in table:
        settings["layout"] = one_of(table["layout"], LAYOUTS, say("layout"))
    if "dtype" in table:
        settings["dtype"] = one_of(table["dtype"], DTYPES, say("dtype"))
    if "kernel-layout" in table:
        settings["kernel_layout"] = one_of(table["kernel-layout"], KERNEL_LAYOUTS + KERNEL_AXIS_ORDERS[2:],
                                            say("kernel-layout"))
    if "backends" in table:
        settings["backends"] = _backends(table["backends"], say("backends"))
    if "library-defaults" in table:
        settings["library_defaults"] = _bool(table["library-defaults"], say("library-defaults"))
    if "strict" in table:
        settings["strict"] = _bool(table["strict"], say("strict"))
    if "allow" in table:
        settings["allow"] = parse_allow(table["allow"], say("allow"))
    return settings
