"""`--format github`: GitHub Actions workflow commands, shown as annotations on the run and PR.

One line per result:

    ::error title=convcheck%3A <case>/<backend>,file=pyproject.toml,line=12::unexplained: ...%0A...
    ::warning title=...::explained by kernel rot180, but kernel_transform=rot180 is not in allow%0A...
    ::notice title=...::equal

`::error` for an unexplained result (and, for `check`, anything that fails: a disallowed
cause under --strict, a backend that could not run), `::warning` for a difference that
is explained but not allowed, `::notice` for a result that passes. Messages are escaped
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
from .check_text import diagnosis_lines, outcome_lines, summary_sentence, verdict_phrase


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


def _diagnosis_command(title: str, diagnosis) -> str:
    body = "\n".join(diagnosis_lines(diagnosis))
    if diagnosis.verdict is Verdict.UNEXPLAINED:
        from ..check import unexplained_message
        return command("error", title, unexplained_message(diagnosis) + "\n" + body)
    level = "warning" if diagnosis.verdict is Verdict.EXPLAINED else "notice"
    return command(level, title, verdict_phrase(diagnosis) + "\n" + body)


def render_explain(diagnosis, names: Optional[dict] = None) -> str:
    """One annotation for an `explain` diagnosis, titled with the output file."""
    names = names or {}
    return _diagnosis_command(f"convcheck: {names.get('output', 'output')}", diagnosis)


def render_compare(report) -> str:
    """One annotation per backend row of a `compare` report."""
    lines = []
    for row in report.results:
        title = f"convcheck: {row.backend}"
        if row.status == "skipped":
            lines.append(command("warning", title, f"{row.backend} was skipped: {row.reason}"))
        elif row.status != "ok" or row.diagnosis is None:
            lines.append(command("error", title, f"{row.backend} failed: {row.reason}"))
        else:
            lines.append(_diagnosis_command(title, row.diagnosis))
    return "\n".join(lines)


def _relative(config: str) -> str:
    """The config's path relative to the working directory (the repository root in Actions)."""
    path = Path(config)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return path.as_posix()


_LEVEL = {"fail": "error", "error": "error", "warn": "warning", "pass": "notice"}


def render_check(report) -> str:
    """One annotation per case and result, pointing at the case's line in the config; then a summary line."""
    config = _relative(report.config)
    lines = []
    for case in report.cases:
        for outcome in case.results:
            title = f"convcheck: {case.name}/{outcome.name}"
            if outcome.status == "pass":
                text = verdict_phrase(outcome.diagnosis) if outcome.diagnosis is not None else "pass"
                if outcome.diagnosis is not None and outcome.diagnosis.verdict is Verdict.EXPLAINED:
                    text += " (allowed)"
                message = text
            else:
                message = "\n".join(outcome_lines(outcome))
            lines.append(command(_LEVEL[outcome.status], title, message, file=config, line=case.case.line))
    lines.append(f"convcheck check: {summary_sentence(report)}")
    return "\n".join(lines)


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
           "render_compare", "render_explain"]
