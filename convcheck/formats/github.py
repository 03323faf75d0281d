"""`--format github`: GitHub Actions workflow commands, shown as annotations on the run and PR.

One line per result (for `convcheck model`, per layer that needs attention: `render_model`):

    ::error title=convcheck%3A <case>/<backend>,file=pyproject.toml,line=12::unexplained: ...%0A...
    ::warning title=...::explained by kernel rot180, but kernel_transform=rot180 is not in allow%0A...
    convcheck check: 3 cases: 2 pass, 1 fail (exit 1)     (a plain log line)

`::error` for an unexplained result (and, for `check`, anything that fails: a disallowed
cause under --strict, a backend that could not run), `::warning` for a difference that
is explained but not allowed. A result that passes gets no annotation: GitHub shows only
10 annotations of each type per step, and they belong to what needs attention. Passes
are counted in a plain closing line and listed in the job summary (the CLI appends the
markdown report to `$GITHUB_STEP_SUMMARY` whenever a github report is made). Messages are escaped
as GitHub documents (`%` -> %25, CR -> %0D, LF -> %0A); property values (title, file)
also escape `:` and `,` as @actions/core does, and the runner turns them back.

`append_step_summary(markdown)` appends a markdown report to the file named by
`$GITHUB_STEP_SUMMARY` (the job's summary page); the CLI calls it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..vocabulary import Verdict
from ._text import NONE
from .check_text import diagnosis_lines, outcome_lines, plain_phrase, summary_sentence, verdict_phrase


def escape_data(text: str) -> str:
    """A workflow command's message, escaped: % CR LF."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (title, file), escaped: % CR LF : ,"""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(level: str, title: str, message: str, *, file: Optional[str] = None,
            line: Optional[int] = None) -> str:
    """One `::level title=...[,file=...,line=...]::message` line."""
    properties = [f"title={escape_property(title)}"]
    if file:
        properties.append(f"file={escape_property(file)}")
        if line is not None:
            properties.append(f"line={int(line)}")
    return f"::{level} {','.join(properties)}::{escape_data(message)}"


def _diagnosis_command(title: str, diagnosis) -> Optional[str]:
    """An annotation for a diagnosis that needs attention; None for an equal one."""
    body = "\n".join(diagnosis_lines(diagnosis))
    if diagnosis.verdict is Verdict.UNEXPLAINED:
        from ..check import unexplained_message
        return command("error", title, unexplained_message(diagnosis) + "\n" + body)
    if diagnosis.verdict is Verdict.EXPLAINED:
        return command("warning", f"{title}: {plain_phrase(diagnosis)}", verdict_phrase(diagnosis) + "\n" + body)
    return None


def render_explain(diagnosis, names: Optional[dict] = None) -> str:
    """One annotation for an `explain` diagnosis that is not equal, titled with the output file."""
    names = names or {}
    output = names.get("output", "output")
    annotation = _diagnosis_command(f"convcheck: {output}", diagnosis)
    return annotation if annotation is not None else f"convcheck explain: {output} is equal to the reference"


def render_compare(report) -> str:
    """One annotation per backend row that needs attention, then a plain line naming the passes."""
    lines, passed = [], []
    for row in report.results:
        title = f"convcheck: {row.backend}"
        if row.status == "skipped":
            lines.append(command("warning", title, f"{row.backend} was skipped: {row.reason}"))
        elif row.status != "ok" or row.diagnosis is None:
            lines.append(command("error", title, f"{row.backend} failed: {row.reason}"))
        else:
            annotation = _diagnosis_command(title, row.diagnosis)
            if annotation is None:
                passed.append(row.backend)
            else:
                lines.append(annotation)
    if passed:
        lines.append(f"convcheck compare: equal to the reference: {', '.join(passed)}")
    return "\n".join(lines)


def _relative(config: str) -> str:
    """The config's path relative to the working directory (the repository root in Actions)."""
    path = Path(config)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return path.as_posix()


_LEVEL = {"fail": "error", "error": "error", "warn": "warning"}


def render_check(report) -> str:
    """One annotation per case and result, pointing at the case's line in the config; then a summary line."""
    config = _relative(report.config)
    lines = []
    for case in report.cases:
        if case.case.kind == "model":
            annotation = _model_command(case, config)
            if annotation is not None:
                lines.append(annotation)
            continue
        for outcome in case.results:
            if outcome.status == "pass":  # no annotation: counted below, listed in the job summary
                continue
            title = f"convcheck: {case.name}/{outcome.name}"
            if outcome.diagnosis is not None and outcome.diagnosis.verdict is Verdict.EXPLAINED:
                title += f": {plain_phrase(outcome.diagnosis)}"
            message = "\n".join(outcome_lines(outcome))
            lines.append(command(_LEVEL[outcome.status], title, message, file=config, line=case.case.line))
    lines.append(f"convcheck check: {summary_sentence(report)}")
    return "\n".join(lines)


def _layer_message(layer, report) -> str:
    """One layer in one line: its verdict in plain words, what fails it, and the fix."""
    from .model_text import cause_text, fix_text

    if layer.verdict == "not_judged":
        text = cause_text(layer)          # 'not judged: <reason>' already
    elif layer.verdict == "equal":
        text = "equal" + (f"; {cause_text(layer)}" if cause_text(layer) != NONE else "")   # its weights
    else:
        text = f"{layer.verdict}: {cause_text(layer)}"
    reasons = layer.failures(report.allow)
    if reasons:
        text += f" (fails: {'; '.join(reasons)})"
    fix = fix_text(layer)
    if fix != NONE:
        text += f"; fix: {fix}"
    return " ".join(text.split())


def render_model(report) -> str:
    """`convcheck model` as annotations, one line each: the first divergence (an error when the
    walk fails it, else a warning), every other layer the walk fails (error), each original layer
    left unmatched that --allow does not accept (error), each layer that could not be judged
    (warning); then a plain summary line. Equal layers get none: they are in the step summary."""
    from .model_text import layer_name, models_name, summary_line

    lines = []
    first = report.first_divergence()
    for layer in report.layers:
        failing = bool(layer.failures(report.allow))
        where = f"convcheck: layer {layer.index} {layer_name(layer)}"
        if layer is first:
            level = "error" if failing else "warning"
            lines.append(command(level, f"{where}: first divergence", _layer_message(layer, report)))
        elif failing:
            lines.append(command("error", where, _layer_message(layer, report)))
        elif layer.verdict == "not_judged":
            lines.append(command("warning", where, _layer_message(layer, report)))
    if report.unmatched_original and not report.allow.unmatched:
        for name in report.unmatched_original:
            lines.append(command("error", f"convcheck: {name} unmatched",
                                 f"original layer {name} has no counterpart in the port (--allow unmatched "
                                 "accepts it)"))
    lines.append(f"convcheck model: {models_name(report)}: {summary_line(report)}")
    return "\n".join(lines)


def _model_command(case, config: str) -> Optional[str]:
    """One annotation for a model case that needs attention (GitHub shows ten of a kind per step: one
    per model, not per layer), titled with where the port first diverges; None when it passes."""
    if case.status == "pass":
        return None
    if case.model is None:   # its format's extra is missing
        return command("error", f"convcheck: {case.name}", case.results[0].message, file=config,
                       line=case.case.line)
    from .model_text import divergence_line, failure_lines, summary_line
    report = case.model
    message = "\n".join([summary_line(report), *failure_lines(report)])
    level = "error" if case.status in ("fail", "error") else "warning"
    return command(level, f"convcheck: {case.name}: first divergence at {divergence_line(report)}", message,
                   file=config, line=case.case.line)


def append_step_summary(markdown: str) -> bool:
    """Append `markdown` to the job summary file named by `$GITHUB_STEP_SUMMARY`, if it is set.

    Returns True when something was written. Outside GitHub Actions (variable unset or
    empty) it does nothing. An unwritable file raises `OSError` for the caller to report.
    """
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as fp:
        fp.write(markdown.rstrip("\n") + "\n\n")
    return True


__all__ = ["append_step_summary", "command", "escape_data", "escape_property", "render_check",
           "render_compare", "render_explain", "render_model"]
