"""Report formats: each turns a `Diagnosis` or `CompareReport` into a string.

Formats return strings and never print (pip-audit style): the CLI decides where the
string goes. Every format lives in its own module exposing the same small interface,
`render_explain(diagnosis, names)`, `render_compare(report)` and `render_model(report)` (a
`convcheck model` walk); the table format also takes `color` and `width`. Modules are imported only when their format is asked for, so
choosing `--format json` never imports rich, and importing this package imports nothing.
"""

from __future__ import annotations

import enum
import importlib
from typing import Any, Optional


class Format(str, enum.Enum):
    """The values of `--format`. The string value is what users type."""

    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"
    JUNIT = "junit"
    GITHUB = "github"

    def __str__(self) -> str:
        return self.value


FORMATS = tuple(f.value for f in Format)

# Format -> module under convcheck.formats. `json` shadows nothing: modules here use
# absolute imports, so `import json` inside formats/json.py is the standard library.
_MODULES = {
    Format.TABLE: "table",
    Format.JSON: "json",
    Format.MARKDOWN: "markdown",
    Format.JUNIT: "junit",
    Format.GITHUB: "github",
}


def formatter(fmt: "Format | str") -> Any:
    """The module implementing `fmt` (imported on first use).

    Raises `ValueError` for an unknown format name.
    """
    fmt = Format(fmt)
    return importlib.import_module(f"{__name__}.{_MODULES[fmt]}")


def render_explain(diagnosis, fmt: "Format | str", *, names: dict, color: bool = False,
                   width: Optional[int] = None) -> str:
    """One `explain` diagnosis as text in format `fmt`.

    `names` maps 'image', 'kernel', 'output' to what to call them (file paths); `color`
    and `width` only matter to the table format (ANSI styles, line width).
    """
    fmt = Format(fmt)
    module = formatter(fmt)
    if fmt is Format.TABLE:
        return module.render_explain(diagnosis, names, color=color, width=width)
    return module.render_explain(diagnosis, names)


def render_compare(report, fmt: "Format | str", *, color: bool = False, width: Optional[int] = None) -> str:
    """One `compare` report as text in format `fmt` (`color`/`width`: table only)."""
    fmt = Format(fmt)
    module = formatter(fmt)
    if fmt is Format.TABLE:
        return module.render_compare(report, color=color, width=width)
    return module.render_compare(report)


def render_model(report, fmt: "Format | str", *, color: bool = False, width: Optional[int] = None) -> str:
    """One `convcheck model` walk (a `convcheck.models.report.ModelReport`) as text in format `fmt`
    (`color`/`width`: table only)."""
    fmt = Format(fmt)
    module = formatter(fmt)
    if fmt is Format.TABLE:
        return module.render_model(report, color=color, width=width)
    return module.render_model(report)


__all__ = ["FORMATS", "Format", "formatter", "render_compare", "render_explain", "render_model"]
