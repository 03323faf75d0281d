"""`--format junit`: JUnit XML, as GitLab (`artifacts:reports:junit`) and Jenkins read it.

Shape (the common JUnit schema: testsuites > testsuite > testcase):

    <testsuites name="convcheck" tests= failures= errors= time=>
      <testsuite name="convcheck check: convcheck.toml" tests= failures= errors= skipped= time=>
        <testcase classname="<case>" name="<backend or saved output>" time=>
          <failure message="..." type="unexplained">verdict, causes + fixes, stats</failure>

An unexplained result (or, under --strict, one explained by a cause outside `allow`) is a
`<failure>`; a backend that failed is an `<error>`; one that was skipped (not installed)
is `<skipped>`. Passing results carry their explanation in `<system-out>`, so a warning
is visible in the CI's test view without failing the job.

The document is valid against Jenkins' JUnit schema (xunit-plugin's junit-10.xsd), which
GitLab reads too: `<testsuites>` has no `skipped` attribute there (each `<testsuite>`
does). Paths in `classname` and suite names are relative to the working directory (or
just the file name when outside it), so reports from different machines compare equal.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from typing import Optional

from ..vocabulary import Verdict
from .check_text import diagnosis_lines, outcome_lines

# Characters XML 1.0 cannot carry at all (control characters other than tab/newline/CR).
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    return _INVALID_XML.sub("?", text)


def display_path(path) -> str:
    """`path` for a report: relative to the working directory when inside it, else its file name."""
    text = os.fspath(path)
    if not os.path.isabs(text):
        return text.replace(os.sep, "/")
    try:
        relative = os.path.relpath(text)
    except ValueError:  # another drive on Windows
        return os.path.basename(text)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return os.path.basename(text)
    return relative.replace(os.sep, "/")


class _Suite:
    """One `<testsuite>` being filled, keeping its counts."""

    def __init__(self, name: str):
        self.element = ET.Element("testsuite", name=_clean(name))
        self.tests = self.failures = self.errors = self.skipped = 0
        self.seconds = 0.0

    def case(self, classname: str, name: str, seconds: Optional[float], *, failure=None, error=None,
             skipped=None, output: Optional[str] = None) -> None:
        """Add a testcase; `failure`/`error` are (message, type, body), `skipped` a message."""
        seconds = float(seconds or 0.0)
        element = ET.SubElement(self.element, "testcase", classname=_clean(classname), name=_clean(name),
                                time=f"{seconds:.6f}")
        self.tests += 1
        self.seconds += seconds
        if failure is not None:
            message, kind, body = failure
            node = ET.SubElement(element, "failure", message=_clean(message), type=kind)
            node.text = _clean(body)
            self.failures += 1
        elif error is not None:
            message, kind, body = error
            node = ET.SubElement(element, "error", message=_clean(message), type=kind)
            node.text = _clean(body)
            self.errors += 1
        elif skipped is not None:
            ET.SubElement(element, "skipped", message=_clean(skipped))
            self.skipped += 1
        if output:
            ET.SubElement(element, "system-out").text = _clean(output)

    def finish(self) -> ET.Element:
        self.element.set("tests", str(self.tests))
        self.element.set("failures", str(self.failures))
        self.element.set("errors", str(self.errors))
        self.element.set("skipped", str(self.skipped))
        self.element.set("time", f"{self.seconds:.6f}")
        return self.element


def _document(suites: list[_Suite]) -> str:
    root = ET.Element("testsuites", name="convcheck")
    totals = {"tests": 0, "failures": 0, "errors": 0}  # junit-10.xsd: no 'skipped' on <testsuites>
    seconds = 0.0
    for suite in suites:
        root.append(suite.finish())
        for key in totals:
            totals[key] += getattr(suite, key)
        seconds += suite.seconds
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{seconds:.6f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _diagnosis_case(suite: _Suite, classname: str, name: str, diagnosis, seconds=None) -> None:
    """A testcase for a diagnosis without `allow` rules (explain/compare): only unexplained fails."""
    body = "\n".join(diagnosis_lines(diagnosis))
    if diagnosis.verdict is Verdict.UNEXPLAINED:
        from ..check import unexplained_message
        suite.case(classname, name, seconds, failure=(unexplained_message(diagnosis), "unexplained", body))
    else:
        suite.case(classname, name, seconds, output=body)


def _backend_case(suite: _Suite, classname: str, row) -> None:
    if row.status == "skipped":
        suite.case(classname, row.backend, 0.0, skipped=f"{row.backend} was skipped: {row.reason}")
    elif row.status != "ok" or row.diagnosis is None:
        message = f"{row.backend} failed: {row.reason}"
        suite.case(classname, row.backend, 0.0, error=(message, "BackendError", message))
    else:
        _diagnosis_case(suite, classname, row.backend, row.diagnosis, row.seconds)


def render_explain(diagnosis, names: Optional[dict] = None) -> str:
    """One `explain` diagnosis as a suite of one testcase (named after the output file)."""
    names = names or {}
    suite = _Suite("convcheck explain")
    _diagnosis_case(suite, f"explain {display_path(names.get('image', 'image'))} * "
                           f"{display_path(names.get('kernel', 'kernel'))}",
                    display_path(names.get("output", "output")), diagnosis)
    return _document([suite])


def render_compare(report) -> str:
    """One `compare` report as a suite with one testcase per backend."""
    image = report.inputs.get("image", {}).get("path", "image")
    kernel = report.inputs.get("kernel", {}).get("path", "kernel")
    suite = _Suite("convcheck compare")
    for row in report.results:
        _backend_case(suite, f"compare {display_path(image)} * {display_path(kernel)}", row)
    return _document([suite])


def render_check(report) -> str:
    """A `check` report: one suite, one testcase per case and result (classname = case name); a model
    case has one testcase per layer, its skipped format one `<skipped>` testcase."""
    suite = _Suite(f"convcheck check: {display_path(report.config)}")
    for case in report.cases:
        for outcome in case.results:
            row = outcome.backend_result
            if outcome.status == "error" and row is not None:
                _backend_case(suite, case.name, row)
                continue
            seconds = row.seconds if row is not None else case.seconds
            if case.case.kind == "model":   # the walk's time, shared by its layers (the totals stay right)
                seconds = case.seconds / len(case.results)
            body = "\n".join(outcome_lines(outcome))
            if outcome.skipped:
                suite.case(case.name, outcome.name, 0.0, skipped=outcome.message)
            elif outcome.status == "error":
                suite.case(case.name, outcome.name, seconds, error=(outcome.message, "not-judged", body))
            elif outcome.status == "fail":
                kind = "unexplained" if outcome.verdict is Verdict.UNEXPLAINED else "not-allowed"
                suite.case(case.name, outcome.name, seconds, failure=(outcome.message, kind, body))
            elif outcome.status == "warn":
                suite.case(case.name, outcome.name, seconds, output=f"warning: {body}")
            else:
                text = "\n".join(diagnosis_lines(outcome.diagnosis)) if outcome.diagnosis is not None else None
                suite.case(case.name, outcome.name, seconds, output=text)
    return _document([suite])


def _model_suite_name(report) -> str:
    """'convcheck model: net.pt2 → net.keras' (paths as `display_path` gives them)."""
    port = report.models.get("port")
    name = display_path(report.models["original"]["path"])
    if port is not None:
        name += f" → {display_path(port['path'])}"
    return f"convcheck model: {name}"


def _failure_kind(layer, reasons: list[str]) -> str:
    """The JUnit failure type of a failing layer: 'unexplained', 'not-allowed' (a cause outside
    --allow) or 'weights' (only its weights fail it)."""
    if layer.verdict == "unexplained":
        return "unexplained"
    return "not-allowed" if any(not why.startswith("weights") for why in reasons) else "weights"


def render_model(report) -> str:
    """A `convcheck model` walk as one suite: a testcase per matched layer, named by both layer
    names (classname: the two models), failing when the walk's exit rules fail it (unexplained,
    a cause `--allow` does not list, a weights defect); a layer that could not be judged is
    skipped with the reason; each original layer left unmatched is a failure (skipped when
    `--allow unmatched`), each port layer left unmatched a skipped testcase (never dropped)."""
    from .model_text import layer_lines, layer_name

    suite = _Suite(_model_suite_name(report))
    classname = _model_suite_name(report).removeprefix("convcheck ")
    for layer in report.layers:
        body = "\n".join(layer_lines(layer, report.allow))
        reasons = layer.failures(report.allow)
        if reasons:
            message = f"{layer_name(layer)}: " + "; ".join(reasons)
            suite.case(classname, layer_name(layer), 0.0, failure=(message, _failure_kind(layer, reasons), body))
        elif layer.verdict == "not_judged":
            suite.case(classname, layer_name(layer), 0.0, skipped=f"not judged: {layer.reason}", output=body)
        else:
            suite.case(classname, layer_name(layer), 0.0, output=body)
    for name in report.unmatched_original:
        what = f"original layer {name} has no counterpart in the port"
        if report.allow.unmatched:
            suite.case(classname, name, 0.0, skipped=f"{what} (allowed: --allow unmatched)")
        else:
            suite.case(classname, name, 0.0, failure=(what, "unmatched", f"{what}; pass --allow unmatched if the "
                                                                            "port is meant to leave it out"))
    for name in report.unmatched_port:
        suite.case(classname, name, 0.0, skipped=f"port layer {name} has no counterpart in the original")
    return _document([suite])


__all__ = ["display_path", "render_check", "render_compare", "render_explain", "render_model"]
