"""`--format json`: the CONTRACT section 5 documents, exactly as `to_json_dict()` gives them.

The output is strict JSON (no NaN or Infinity: the result objects already turn
non-finite numbers into null) so any parser, `jq` included, reads it.
"""

from __future__ import annotations

import json
from typing import Any


def _plain(value: Any) -> Any:
    # numpy scalars and arrays that slipped into a dict (shapes, seconds) become Python values.
    for attribute in ("tolist", "item"):
        convert = getattr(value, attribute, None)
        if callable(convert):
            return convert()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(document: dict) -> str:
    """`document` as indented, strict JSON text (no trailing newline)."""
    return json.dumps(document, indent=2, allow_nan=False, default=_plain, ensure_ascii=False)


def render_explain(diagnosis, names: dict | None = None) -> str:
    """The `convcheck explain --format json` document (`names` is not part of it)."""
    return dumps(diagnosis.to_json_dict())


def render_compare(report) -> str:
    """The `convcheck compare --format json` document."""
    return dumps(report.to_json_dict())


def render_model(report) -> str:
    """The `convcheck model --format json` document (schema convcheck/model/1)."""
    return dumps(report.to_json_dict())
