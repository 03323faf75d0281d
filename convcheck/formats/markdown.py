"""`--format markdown`: a GitHub-flavoured report to paste into a pull-request comment.

The same content as the table format (`convcheck.formats._text`), laid out as a GFM
table plus bullet lists.
"""

from __future__ import annotations

from ..vocabulary import Verdict
from . import _text


def cell(text: str) -> str:
    """`text` made safe inside a GFM table cell: pipes escaped, newlines flattened."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _bullets(title: str, items: list[str]) -> list[str]:
    if not items:
        return []
    return ["", f"**{title}**", ""] + [f"- {item}" for item in items]


def render_compare(report) -> str:
    """A heading, one table row per backend, then why sentences and notes."""
    lines = ["### convcheck compare", "", cell(_text.compare_title(report)), ""]
    lines.append("| " + " | ".join(cell(c) for c in _text.COMPARE_COLUMNS) + " |")
    lines.append("|" + "|".join("---:" if c in _text.NUMERIC_COLUMNS else "---"
                                for c in _text.COMPARE_COLUMNS) + "|")
    for result in report.results:
        cells = _text.compare_cells(result)
        row = []
        for column in _text.COMPARE_COLUMNS:
            value = cell(cells[column])
            if column == "backend":
                value = f"`{value}`"
            elif column == "verdict" and result.status == "ok":
                value = f"**{value}**"
            row.append(value)
        lines.append("| " + " | ".join(row) + " |")
    whys, notes = _text.compare_footer(report)
    lines += _bullets("Why", whys)
    lines += _bullets("Notes", notes)
    return "\n".join(lines) + "\n"


def render_explain(diagnosis, names: dict | None = None) -> str:
    """Verdict, causes with fixes, a table of the numbers, and for a mismatch where it sits."""
    names = names or {}
    verdict = Verdict(diagnosis.verdict)
    lines = ["### convcheck explain", "",
             f"**{_text.verdict_label(verdict)}**: {_text.explain_headline(diagnosis, names)}"]
    if diagnosis.causes:
        lines += ["", "| cause | what happened | fix |", "|---|---|---|"]
        for cause in diagnosis.causes:
            lines.append(f"| `{cell(cause.field)}` | {cell(cause.summary)} | {cell(cause.fix)} |")
    alternatives = _text.alternatives_text(diagnosis)
    if alternatives:
        lines += ["", alternatives[0].upper() + alternatives[1:] + "."]
    if verdict is Verdict.UNEXPLAINED:
        unexplained = []
        for line in _text.explain_unexplained(diagnosis):
            unexplained.append(f"**{line}**" if line.startswith("closest candidate") else line)
        lines += _bullets("Mismatch", unexplained)
    lines += ["", "| statistic | value |", "|---|---|"]
    for label, value in _text.explain_stats(diagnosis, names):
        lines.append(f"| {cell(label)} | {cell(value)} |")
    lines += _bullets("Why", _text.why_sentences([diagnosis]))
    lines += _bullets("Notes", _text.diagnosis_notes(diagnosis))
    return "\n".join(lines) + "\n"
