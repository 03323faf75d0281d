"""`--format table` (the default): a rich table for people at a terminal.

Rendered into a string with `rich.console.Console(file=StringIO())`: `color=False` gives
plain text with no ANSI escapes at all (NO_COLOR, pipes, files), `color=True` styles the
verdicts green / yellow / red. What is said comes from `convcheck.formats._text`.
"""

from __future__ import annotations

import io
from typing import Optional

from ..vocabulary import Verdict
from . import _text

DEFAULT_WIDTH = 160       # files and pipes: wide enough for every column
WIDE_WIDTH = 150          # explanation and fix each get a column
NARROW_WIDTH = 125        # below this the explanations go under the table
VERY_NARROW_WIDTH = 96    # below this the table keeps only what decides the verdict
_HEADERS = {"compute dtype": "compute\ndtype", "mismatched / total": "mismatched\n/ total",
            "worst index": "worst\nindex"}


def _console(color: bool, width: Optional[int]):
    from rich.console import Console

    return Console(file=io.StringIO(), force_terminal=color, no_color=not color,
                   color_system="standard" if color else None, width=width or DEFAULT_WIDTH,
                   highlight=False, emoji=False, markup=False, soft_wrap=False)


def _finish(console) -> str:
    # rich pads table lines to the console width: drop that padding, keep the line breaks.
    lines = [line.rstrip() for line in console.file.getvalue().rstrip("\n").split("\n")]
    return "\n".join(lines) + "\n"


def _line(console, *parts: tuple[str, str]) -> None:
    """Print one paragraph made of (text, style) parts, wrapped to the console width."""
    from rich.text import Text

    text = Text()
    for content, style in parts:
        text.append(content, style=style or None)
    console.print(text)


def render_compare(report, *, color: bool = False, width: Optional[int] = None) -> str:
    """The compare table, then one 'why' sentence per distinct cause, then the notes.

    The layout follows the width: every column from WIDE_WIDTH; the fix under the
    explanation in one cell from NARROW_WIDTH; below that, the explanations as lines
    under the table (and under VERY_NARROW_WIDTH without max rel Δ and worst index).
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console = _console(color, width)
    _line(console, ("convcheck compare: ", "bold"), (_text.compare_title(report), ""))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    narrow = console.width < NARROW_WIDTH
    dropped = set()
    if console.width < WIDE_WIDTH:
        dropped.add("fix")
    if narrow:
        dropped.add("explanation")
    if console.width < VERY_NARROW_WIDTH:
        dropped |= {"max rel Δ", "worst index"}
    columns = [c for c in _text.COMPARE_COLUMNS if c not in dropped]
    for column in columns:
        # Only explanation and fix wrap: numbers and names keep their width, headers stack.
        wraps = column in ("explanation", "fix")
        table.add_column(_HEADERS.get(column, column),
                         justify="right" if column in _text.NUMERIC_COLUMNS else "left",
                         no_wrap=not wraps, overflow="fold", min_width=20 if wraps else None)
    for result in report.results:
        cells = _text.compare_cells(result)
        if result.status == "ok" and result.diagnosis is not None:
            style = _text.VERDICT_STYLES[result.diagnosis.verdict]
        else:
            style = _text.STATUS_STYLES.get(result.status, "")
        row = []
        for column in columns:
            if column == "verdict":
                row.append(Text(cells[column], style=style or ""))
            elif column == "explanation":
                explanation = Text(cells[column])
                if "fix" in dropped and cells["fix"] != _text.NONE:
                    explanation.append("\nfix: ", style="bold")
                    explanation.append(cells["fix"])
                row.append(explanation)
            else:
                row.append(cells[column])
        table.add_row(*row)
    console.print(table)
    if narrow:
        for result in report.results:
            cells = _text.compare_cells(result)
            parts = [(f"{result.backend}: ", "bold"), (cells["explanation"], "")]
            if cells["fix"] != _text.NONE:
                parts += [("; fix: ", "bold"), (cells["fix"], "")]
            _line(console, *parts)

    whys, notes = _text.compare_footer(report)
    for sentence in whys:
        _line(console, ("Why: ", "bold"), (sentence, ""))
    for note in notes:
        _line(console, ("Note: ", "bold"), (note, ""))
    return _finish(console)


def render_explain(diagnosis, names: dict | None = None, *, color: bool = False,
                   width: Optional[int] = None) -> str:
    """Verdict line, causes with fixes, the numbers, and for a mismatch where it sits."""
    from rich.table import Table
    from rich.text import Text

    names = names or {}
    console = _console(color, width)
    verdict = Verdict(diagnosis.verdict)
    _line(console, (_text.verdict_label(verdict), f"bold {_text.VERDICT_STYLES[verdict]}"),
          (": " + _text.explain_headline(diagnosis, names), ""))

    items = Table(box=None, show_header=False, pad_edge=False)
    items.add_column("mark", no_wrap=True)
    items.add_column("text", overflow="fold")
    for number, cause in enumerate(diagnosis.causes, 1):
        text = Text(f"{cause.field}: ", style="bold")
        text.append(cause.summary)
        text.append("\nfix: ", style="bold")
        text.append(cause.fix)
        items.add_row(f"  {number}.", text)
    alternatives = _text.alternatives_text(diagnosis)
    if alternatives:
        items.add_row("  =", alternatives)
    if verdict is Verdict.UNEXPLAINED:
        for line in _text.explain_unexplained(diagnosis):
            style = "bold red" if line.startswith("closest candidate") else ""
            items.add_row("  !", Text(line, style=style))
    if items.row_count:
        console.print(items)

    grid = Table(box=None, show_header=False, pad_edge=False)
    grid.add_column("stat", style="bold", no_wrap=True)
    grid.add_column("value", overflow="fold")
    for label, value in _text.explain_stats(diagnosis, names):
        grid.add_row(label, value)
    console.print(grid)

    for sentence in _text.why_sentences([diagnosis]):
        _line(console, ("Why: ", "bold"), (sentence, ""))
    for note in _text.diagnosis_notes(diagnosis):
        _line(console, ("Note: ", "bold"), (note, ""))
    return _finish(console)


def render_backends(rows: list[dict], *, color: bool = False, width: Optional[int] = None) -> str:
    """`convcheck backends`: each backend, whether it can run here, its version, why not."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console = _console(color, width)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("backend", no_wrap=True)
    table.add_column("available", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("why not", overflow="fold")
    for row in rows:
        available = Text("✓ yes", style="green") if row["available"] else Text("✗ no", style="red")
        table.add_row(row["backend"], available, row.get("version") or _text.NONE,
                      row.get("reason") or "")
    console.print(table)
    return _finish(console)


def render_model(report, *, color: bool = False, width: Optional[int] = None) -> str:
    """`convcheck model`: one row per matched layer (both names, kernel, verdict, cause, fix,
    input/output drift), the first divergence marked, the unmatched layers and a summary line.

    Below WIDE_WIDTH the fix goes under the cause in one cell; below NARROW_WIDTH the drift
    columns go too (JSON keeps everything)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from . import model_text

    console = _console(color, width)
    _line(console, ("convcheck model: ", "bold"), (model_text.model_title(report), ""))
    dropped = set()
    if console.width < WIDE_WIDTH:
        dropped.add("fix")
    if console.width < NARROW_WIDTH:
        dropped |= {"in drift", "out drift"}
    if report.single:
        dropped |= {"port", "in drift", "out drift"}
    columns = [c for c in model_text.MODEL_COLUMNS if c not in dropped]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        wraps = column in ("cause", "fix", "original", "port")
        table.add_column(column, justify="right" if column in model_text.NUMERIC_COLUMNS else "left",
                         no_wrap=not wraps, overflow="fold", min_width=16 if column in ("cause", "fix") else None)
    first = report.first_divergence()
    for layer in report.layers:
        cells = model_text.layer_cells(layer, first)
        style = "dim" if layer.verdict == "not_judged" else _text.VERDICT_STYLES[Verdict(layer.verdict)]
        row = []
        for column in columns:
            if column == "verdict":
                row.append(Text(cells[column], style=style))
            elif column == "cause" and "fix" in dropped and cells["fix"] != _text.NONE:
                text = Text(cells["cause"])
                text.append("\nfix: ", style="bold")
                text.append(cells["fix"])
                row.append(text)
            elif column == "#" and layer is first:
                row.append(Text(cells[column], style="bold"))
            else:
                row.append(cells[column])
        table.add_row(*row)
    console.print(table)
    _line(console, ("First divergence: ", "bold"), (model_text.divergence_line(report), ""))
    for line in model_text.unmatched_lines(report):
        _line(console, ("Unmatched: ", "bold"), (line, ""))
    for line in model_text.failure_lines(report):
        _line(console, ("Fails: ", "bold red" if color else "bold"), (line, ""))
    for note in model_text.layer_notes(report):
        _line(console, ("Note: ", "bold"), (note, ""))
    _line(console, ("Summary: ", "bold"), (model_text.summary_line(report), ""))
    return _finish(console)
