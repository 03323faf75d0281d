"""Plain-text and markdown renderings of `check` reports, and the diagnosis text they share.

`diagnosis_lines` is the one wording of a diagnosis (verdict, causes with their fixes,
statistics) reused by the JUnit failure bodies, the GitHub annotations, the markdown step
summary and `convcheck.testing`'s assertion messages. Renderers return strings; they
never print or write.
"""

from __future__ import annotations

import html
import re
from typing import Optional

from ..vocabulary import Verdict, describe, describe_plain
from ._text import left_out_text, notes_besides_left_out, num, shape_difference
from .markdown import cell, code

_ICON = {"pass": "✅", "warn": "⚠️", "fail": "❌", "error": "💥"}
_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "error": "magenta"}


def verdict_phrase(diagnosis) -> str:
    """'explained by kernel rot180 + precision float32', 'equal', 'unexplained (closest: ...)'."""
    if diagnosis.verdict is Verdict.EQUAL:
        return "equal"
    if diagnosis.verdict is Verdict.EXPLAINED:
        return f"explained by {describe(diagnosis.explanation, diagnosis.baseline)}"
    if diagnosis.closest is not None:
        if not diagnosis.closest.changed_fields(diagnosis.baseline):
            return "unexplained (the nearest candidate is the expected computation itself)"
        return f"unexplained (closest candidate: {describe(diagnosis.closest, diagnosis.baseline)})"
    return "unexplained"


def plain_phrase(diagnosis) -> str:
    """The verdict in plain words for headlines and titles: 'explained by kernel flipped 180°
    (true convolution)', 'equal', 'unexplained'."""
    if diagnosis.verdict is Verdict.EXPLAINED:
        return f"explained by {describe_plain(diagnosis.explanation, diagnosis.baseline)}"
    return diagnosis.verdict.value


def stats_line(diagnosis, quote_bound: bool = True) -> str:
    """One line of numbers: mismatches, the greatest difference and the residual against the bound.

    With `quote_bound` False the residual is said against its bound without quoting the bound's
    number (for a message that already quotes the bound each element was held to, as
    `convcheck.testing` does: one message, one bound)."""
    s = diagnosis.stats
    parts = []
    shape = shape_difference(diagnosis)
    if shape is not None:
        parts.append(shape)
    if s.mismatched is not None:
        parts.append(f"{s.mismatched} of {s.total} elements beyond the error bound"
                     + (" of a reference of the output's own shape" if shape is not None else ""))
    if s.max_abs_diff is not None:
        where = f" at {list(s.worst_index)}" if s.worst_index is not None else ""
        parts.append(f"greatest |output - reference| {num(s.max_abs_diff)}{where}")
    elif s.max_abs_diff is None and s.mismatched is None:
        parts.append(f"no reference has the output's shape ({s.total} elements)")
    if s.residual_after is not None and diagnosis.verdict is not Verdict.EQUAL:
        what = "the explanation" if diagnosis.verdict is Verdict.EXPLAINED else "the closest candidate"
        if quote_bound:
            parts.append(f"residual after {what} {num(s.residual_after)} (error bound {num(s.error_bound)})")
        elif s.bound_ratio is not None:
            within = ("within its own error bound at every element" if s.bound_ratio <= 1 else
                      f"{num(s.bound_ratio)} times its own error bound at the worst element")
            parts.append(f"residual after {what} {num(s.residual_after)}, {within}")
        else:
            parts.append(f"residual after {what} {num(s.residual_after)}")
    elif s.error_bound is not None and quote_bound:
        parts.append(f"error bound {num(s.error_bound)}")
    left_out = left_out_text(diagnosis)
    if left_out is not None:
        parts.append(left_out)
    return "; ".join(parts)


def diagnosis_lines(diagnosis, disallowed=(), quote_bound: bool = True) -> list[str]:
    """The diagnosis as plain lines: verdict, each cause with its fix and why, where, stats, notes.

    Causes in `disallowed` are marked 'not allowed'; `quote_bound` as `stats_line`.
    """
    lines = [f"verdict: {verdict_phrase(diagnosis)}"]
    disallowed_fields = {(c.field, str(c.value)) for c in disallowed}
    for cause in diagnosis.causes:
        mark = " [not allowed]" if (cause.field, str(cause.value)) in disallowed_fields else ""
        lines.append(f"- {cause.field}: {cause.summary}{mark}")
        lines.append(f"  fix: {cause.fix}")
        if cause.why:
            lines.append(f"  because: {cause.why}")
    if diagnosis.reason:
        lines.append(f"why: {diagnosis.reason}")
    if diagnosis.where:
        lines.append(f"where: {diagnosis.where}")
    stats = stats_line(diagnosis, quote_bound)
    if stats:
        lines.append(f"stats: {stats}")
    for note in notes_besides_left_out(diagnosis):
        lines.append(f"note: {note}")
    if diagnosis.cannot_decide:
        lines.append("fix: the data cannot decide: test on a larger output, or in a wider precision")
    elif diagnosis.verdict is Verdict.UNEXPLAINED:
        lines.append("fix: no known convention explains this difference; look for a genuine bug "
                     "(wrong weights, a stride or dilation, a cropped or mis-indexed output)")
    return lines


def outcome_lines(outcome) -> list[str]:
    """The lines for one check result: its message, then the diagnosis or the backend's reason."""
    lines = [outcome.message] if outcome.message else []
    if outcome.diagnosis is not None:
        lines.extend(diagnosis_lines(outcome.diagnosis, outcome.disallowed))
    return lines


def outcome_phrase(outcome) -> str:
    """A table cell: the verdict phrase, or why the backend did not run; for a model case's layer,
    its verdict and cause as `convcheck model`'s table says them, and why it fails."""
    if outcome.layer is not None:
        return _layer_phrase(outcome)
    if outcome.diagnosis is None:
        return outcome.message
    phrase = plain_phrase(outcome.diagnosis) if outcome.diagnosis.verdict is Verdict.EXPLAINED \
        else verdict_phrase(outcome.diagnosis)
    if outcome.disallowed:
        phrase += " (not allowed: " + ", ".join(f"{c.field}" for c in outcome.disallowed) + ")"
    return phrase


def _layer_phrase(outcome) -> str:
    from ._text import NONE
    from .model_text import cause_text

    layer = outcome.layer
    cause = cause_text(layer)
    phrase = layer.verdict.replace("_", " ") + ("" if cause == NONE or layer.verdict == "not_judged" else f": {cause}")
    if layer.verdict == "not_judged":
        phrase = cause
    if outcome.status == "fail" and outcome.message:
        phrase += f" ({outcome.message})"
    return phrase


def model_lines(case_result) -> list[str]:
    """What a model case adds below the results: where the port first diverges, the layers left
    unmatched, and the layers' notes (nothing for a case that was skipped)."""
    report = getattr(case_result, "model", None)
    if report is None:
        return []
    from .model_text import divergence_line, layer_notes, unmatched_lines
    return [f"first divergence: {divergence_line(report)}", *unmatched_lines(report),
            *(f"note: {note}" for note in layer_notes(report))]


def summary_sentence(report) -> str:
    """'3 cases: 2 pass, 1 fail (exit 1)'."""
    counts = report.counts()
    parts = [f"{counts[s]} {s}" for s in ("pass", "warn", "fail", "error") if counts[s]]
    total = len(report.cases)
    return (f"{total} case{'s' if total != 1 else ''}{', strict' if report.strict else ''}: "
            f"{', '.join(parts) or 'none'} (exit {report.exit_code()})")


def render_check_table(report, *, color: bool = False, width: Optional[int] = None) -> str:
    """A rich table, one row per case and result, then the details of what did not pass."""
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, color_system="standard" if color else None,
                      width=width or 110, no_color=not color, highlight=False, soft_wrap=False)
    table = Table(title=f"convcheck check: {report.config}", title_justify="left", show_lines=False)
    table.add_column("case")
    table.add_column("result")
    table.add_column("status")
    table.add_column("verdict / reason", overflow="fold")
    for case in report.cases:
        for i, outcome in enumerate(case.results):
            table.add_row(case.name if i == 0 else "", outcome.name,
                          Text(outcome.status, style=_STYLE[outcome.status]), outcome_phrase(outcome))
    console.print(table)
    for case in report.cases:
        lines = model_lines(case)
        if lines:
            console.print(Text(f"{case.name}: " + lines[0], style=_STYLE[case.status]))
            for line in lines[1:]:
                console.print(Text("  " + line))
        for outcome in case.results:
            if outcome.status in ("warn", "fail") and outcome.diagnosis is not None:
                console.print(Text(f"{case.name} / {outcome.name}: {outcome.status}", style=_STYLE[outcome.status]))
                for line in outcome_lines(outcome):
                    console.print(Text("  " + line))
    console.print(Text(summary_sentence(report), style="bold"))
    return buffer.getvalue().rstrip("\n")


def render_check_markdown(report) -> str:
    """A GitHub-flavoured markdown report: a summary line, a table, then details per problem."""
    lines = [f"## convcheck check: {code(report.config)}", "", f"**{summary_sentence(report)}**", "",
             "| case | result | status | verdict / reason |", "|---|---|---|---|"]
    for case in report.cases:
        if case.case.kind == "model":
            lines.append(f"| {cell(case.name)} | {code(_model_result_name(case))} | "
                         f"{_ICON[case.status]} {case.status} | {cell(_model_phrase(case))} |")
            continue
        for outcome in case.results:
            lines.append(f"| {cell(case.name)} | {code(outcome.name)} | "
                         f"{_ICON[outcome.status]} {outcome.status} | {cell(outcome_phrase(outcome))} |")
    for case in report.cases:
        if case.case.kind == "model" and case.model is not None:
            lines += _model_details(case)
    details = [(case, o) for case in report.cases for o in case.results if o.status in ("warn", "fail")
               and case.case.kind != "model"]
    for case, outcome in details:
        body = outcome_lines(outcome)
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", "\n".join(body))), default=0))
        lines += ["", f"<details><summary>{_ICON[outcome.status]} <b>{html.escape(case.name)} / {html.escape(outcome.name)}</b>: "
                      f"{outcome.status}</summary>", "", f"{fence}text", *body, fence, "</details>"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- model cases in markdown
# A model may have dozens of layers: the PR comment's table has one row per model case (where it
# first diverges), and the layer table sits in a collapsed block below.


def _model_result_name(case_result) -> str:
    """'net.pt2 → net.onnx' (the paths as the config writes them)."""
    raw = case_result.case.raw
    return f"{raw.get('original', 'model')}" + (f" → {raw['port']}" if raw.get("port") else "")


def _model_phrase(case_result) -> str:
    """The row's cell: where the port first diverges and why the case fails, or why it was skipped."""
    if case_result.model is None:
        return case_result.results[0].message
    from .model_text import divergence_line, failure_lines
    failures = failure_lines(case_result.model, most=3)
    text = f"first divergence: {divergence_line(case_result.model)}"
    return text + (f" ({'; '.join(failures)})" if failures else "")


def _model_details(case_result) -> list[str]:
    """The model case's layer table (the columns of `convcheck model`'s), collapsed."""
    from .model_text import MODEL_COLUMNS, layer_cells, summary_line
    report = case_result.model
    first = report.first_divergence()
    lines = ["", f"<details><summary>{_ICON[case_result.status]} <b>{html.escape(case_result.name)}</b>: "
                 f"{html.escape(summary_line(report))}</summary>", "",
             "| " + " | ".join(MODEL_COLUMNS) + " |", "|" + "|".join("---" for _ in MODEL_COLUMNS) + "|"]
    for layer in report.layers:
        cells = layer_cells(layer, first)
        lines.append("| " + " | ".join(cell(cells[column]) for column in MODEL_COLUMNS) + " |")
    extra = model_lines(case_result)[1:]
    if extra:
        lines += [""] + [f"- {cell(line)}" for line in extra]
    return lines + ["", "</details>"]
