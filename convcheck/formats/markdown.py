"""`--format markdown`: a GitHub-flavoured report to paste into a pull-request comment.

The same content as the table format (`convcheck.formats._text`), laid out as a GFM
table plus bullet lists.
"""

from __future__ import annotations

import html
import re

from ..vocabulary import Verdict
from . import _text


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]~|#])")


def cell(text: str) -> str:
    """`text` made safe as plain text in GFM (a table cell or a line): newlines flattened, HTML
    escaped (`<b>` shows as typed, never as markup) and emphasis, links, code and pipes escaped."""
    flat = " ".join(str(text).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


def code(text: str) -> str:
    """`text` as an inline code span that survives any backticks or pipes in it (GFM table safe)."""
    flat = " ".join(str(text).split()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall("`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _bullets(title: str, items: list[str], escaped: bool = False) -> list[str]:
    if not items:
        return []
    return ["", f"**{title}**", ""] + [f"- {item if escaped else cell(item)}" for item in items]


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
                value = code(cells[column])
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
             f"**{_text.verdict_label(verdict)}**: {cell(_text.explain_headline(diagnosis, names))}"]
    if diagnosis.causes:
        lines += ["", "| cause | what happened | fix |", "|---|---|---|"]
        for cause in diagnosis.causes:
            lines.append(f"| {code(cause.field)} | {cell(cause.summary)} | {cell(cause.fix)} |")
    alternatives = _text.alternatives_text(diagnosis)
    if alternatives:
        lines += ["", cell(alternatives[0].upper() + alternatives[1:] + ".")]
    if verdict is Verdict.UNEXPLAINED:
        unexplained = []
        for line in _text.explain_unexplained(diagnosis):
            unexplained.append(f"**{cell(line)}**" if line.startswith("closest candidate") else cell(line))
        lines += _bullets("Mismatch", unexplained, escaped=True)
    lines += ["", "| statistic | value |", "|---|---|"]
    for label, value in _text.explain_stats(diagnosis, names):
        lines.append(f"| {cell(label)} | {cell(value)} |")
    lines += _bullets("Why", _text.why_sentences([diagnosis]))
    lines += _bullets("Notes", _text.diagnosis_notes(diagnosis))
    return "\n".join(lines) + "\n"


def render_model(report) -> str:
    """`convcheck model` as GFM, fit for a pull request or a GitHub step summary: the title, one
    table row per matched layer (the first divergence marked ▶ and its row in bold), then the
    first divergence, the unmatched layers, what fails, the notes and the summary line. The
    same content as the table format (`convcheck.formats.model_text`)."""
    from . import model_text

    dropped = {"port", "in drift", "out drift"} if report.single else set()
    columns = [c for c in model_text.MODEL_COLUMNS if c not in dropped]
    lines = ["### convcheck model", "", cell(model_text.model_title(report)), ""]
    lines.append("| " + " | ".join(cell(c) for c in columns) + " |")
    lines.append("|" + "|".join("---:" if c in model_text.NUMERIC_COLUMNS or c == "#" else "---"
                                for c in columns) + "|")
    first = report.first_divergence()
    for layer in report.layers:
        cells = model_text.layer_cells(layer, first)
        row = []
        for column in columns:
            value = code(cells[column]) if column in ("original", "port") and cells[column] != _text.NONE \
                else cell(cells[column])
            if column == "verdict" or (layer is first and column == "#"):
                value = f"**{value}**"
            row.append(value)
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"**First divergence:** {cell(model_text.divergence_line(report))}"]
    lines += _bullets("Unmatched", model_text.unmatched_lines(report))
    lines += _bullets("Fails", model_text.failure_lines(report))
    lines += _bullets("Notes", model_text.layer_notes(report))
    lines += ["", f"**Summary:** {cell(model_text.summary_line(report))}"]
    return "\n".join(lines) + "\n"
