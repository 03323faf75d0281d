"""Result objects shared by `explain`, `compare`, `check`, the reports and the pytest helper.

Frozen dataclasses with `to_dict()` giving exactly the CONTRACT section 5 shapes.
Pure Python apart from optional numpy arrays kept for plots (never serialised).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from .vocabulary import Cause, Explanation, Verdict

EXPLAIN_SCHEMA = "convcheck/explain/2"
COMPARE_SCHEMA = "convcheck/compare/2"
CHECK_SCHEMA = "convcheck/check/2"


def _finite_or_none(x: Optional[float]) -> Optional[float]:
    if x is None or not math.isfinite(x):
        return None
    return float(x)


@dataclass(frozen=True)
class Stats:
    """How far an output is from the reference, and from the explanation's reproduction.

    `max_abs_diff`, `max_rel_diff`, `mismatched` and `worst_index` compare the output with
    the reference (before any explanation; `None` where no reference of the output's
    shape exists). `mismatched` counts elements beyond the error bound of the expected
    computation. `residual_after` is the largest |output - reproduction| for the
    explanation (or the closest candidate when unexplained) and `error_bound` the largest
    element of the rigorous bound it is held to; `bound_ratio` is max(residual / bound),
    at most 1 exactly when every element is within its own bound. `left_out` counts the
    elements the explanation does not compare (an offset moves their windows past the
    reference's edge), `left_out_max_abs_diff` how far they are from the unshifted
    computation, `left_out_outside_range` how many lie outside the range of every compared
    element (no shift of the computation gives them). `unclipped_fraction` is,
    when the explanation clips (an activation, an integer output's saturation), the share of
    compared elements not clipped: what the verdict rests on (None when nothing clips).
    """

    max_abs_diff: Optional[float]
    max_rel_diff: Optional[float]
    mismatched: Optional[int]
    total: int
    worst_index: Optional[tuple[int, ...]]
    residual_after: Optional[float]
    error_bound: Optional[float]
    bound_ratio: Optional[float] = None
    worst_output: Optional[float] = None
    worst_reference: Optional[float] = None
    mismatched_after: Optional[int] = None
    unclipped_fraction: Optional[float] = None
    left_out: int = 0
    left_out_max_abs_diff: Optional[float] = None
    left_out_outside_range: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The CONTRACT section 5 `stats` object (plus added fields)."""
        return {
            "max_abs_diff": _finite_or_none(self.max_abs_diff),
            "max_rel_diff": _finite_or_none(self.max_rel_diff),
            "mismatched": self.mismatched,
            "total": self.total,
            "worst_index": list(self.worst_index) if self.worst_index is not None else None,
            "residual_after": _finite_or_none(self.residual_after),
            "error_bound": _finite_or_none(self.error_bound),
            "bound_ratio": _finite_or_none(self.bound_ratio),
            "worst_output": _finite_or_none(self.worst_output),
            "worst_reference": _finite_or_none(self.worst_reference),
            "mismatched_after": self.mismatched_after,
            "unclipped_fraction": _finite_or_none(self.unclipped_fraction),
            "left_out": self.left_out,
            "left_out_max_abs_diff": _finite_or_none(self.left_out_max_abs_diff),
            "left_out_outside_range": self.left_out_outside_range,
        }


def _short_diagnosis(diagnosis: "Diagnosis") -> str:
    """'explained by kernel flipped 180° (true convolution)', 'equal', 'unexplained (a few pixels)'."""
    if diagnosis.verdict is Verdict.EXPLAINED and diagnosis.explanation is not None:
        from .vocabulary import describe_plain
        return f"explained by {describe_plain(diagnosis.explanation, diagnosis.baseline)}"
    if diagnosis.cannot_decide:
        return "unexplained (the data cannot decide)"
    if diagnosis.verdict is Verdict.UNEXPLAINED and diagnosis.where:
        return f"unexplained ({diagnosis.where})"
    return diagnosis.verdict.value


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    import html
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _rich_text(render) -> Any:
    """A rich `Text` from one of the table renderers (called with color=True), for `__rich__`."""
    from rich.console import Console
    from rich.text import Text
    width = Console().width
    return Text.from_ansi(render(color=True, width=width))


@dataclass(frozen=True, repr=False)
class Diagnosis:
    """What `explain` concluded about one output.

    - `verdict`: equal / explained / unexplained (CONTRACT section 3).
    - `explanation`: the simplest combination of fields that reproduces the output within
      the bound; `None` when unexplained.
    - `baseline`: the expected computation (the reference's settings at the inputs' own
      precision); causes are the fields where `explanation` differs from it.
    - `closest`: when unexplained, the candidate that came nearest (it does NOT match).
    - `alternatives`: other explanations, as simple, that also reproduce the output
      (e.g. every flip of a symmetric kernel): ties reported, not hidden.
    - `where`: when unexplained, where the mismatch sits (border, interior, a few pixels,
      everywhere); `reason` a sentence when no candidate could even be formed, or why the
      data cannot decide.
    - `cannot_decide`: unexplained because a candidate passes the bound but the data are
      too weak to trust it (too few elements, a vacuous bound; see convcheck.evidence),
      not because nothing matches.
    - `evidence`: bits of evidence behind the verdict's candidate (convcheck.evidence).
    """

    verdict: Verdict
    explanation: Optional[Explanation]
    causes: tuple[Cause, ...]
    stats: Stats
    baseline: Explanation
    closest: Optional[Explanation] = None
    alternatives: tuple[Explanation, ...] = ()
    where: Optional[str] = None
    reason: Optional[str] = None
    notes: tuple[str, ...] = ()
    arrays: Any = field(default=None, repr=False, compare=False)  # DiagnosisArrays for plots
    cannot_decide: bool = False
    evidence: Optional[dict] = None

    @property
    def ok(self) -> bool:
        """True unless the verdict is unexplained."""
        return self.verdict is not Verdict.UNEXPLAINED

    def __repr__(self) -> str:
        stats = self.stats
        numbers = f"{stats.mismatched}/{stats.total} mismatched" if stats.mismatched is not None \
            else f"{stats.total} elements, no reference of this shape"
        if stats.max_abs_diff is not None:
            numbers += f", max |diff| {stats.max_abs_diff:.3g}"
        return f"<Diagnosis {_short_diagnosis(self)}; {numbers}>"

    def __rich__(self) -> Any:
        """The table format's report, for `rich.print(diagnosis)` and rich-enabled notebooks."""
        from .formats.table import render_explain
        return _rich_text(lambda color, width: render_explain(self, {}, color=color, width=width))

    def _repr_html_(self) -> str:
        """A small HTML report for Jupyter: the verdict, each cause with its fix, the numbers."""
        import html

        from .formats import _text
        parts = [f"<p><b>{html.escape(_text.verdict_label(self.verdict))}</b>: "
                 f"{html.escape(_text.explain_headline(self, {}))}</p>"]
        if self.causes:
            parts.append(_html_table(["cause", "what happened", "fix"],
                                     [[c.field, c.summary, c.fix] for c in self.causes]))
        parts.append(_html_table(["statistic", "value"], [list(row) for row in _text.explain_stats(self)]))
        return "<div class='convcheck-diagnosis'>" + "".join(parts) + "</div>"

    def to_dict(self) -> dict[str, Any]:
        """The CONTRACT section 5 explain object, without the `schema` key."""
        d: dict[str, Any] = {
            "verdict": self.verdict.value,
            "explanation": self.explanation.to_dict() if self.explanation is not None else None,
            "causes": [c.to_dict() for c in self.causes],
            "stats": self.stats.to_dict(),
            "expected": self.baseline.to_dict(),
        }
        if self.closest is not None:
            d["closest_candidate"] = self.closest.to_dict()
        d["alternatives"] = [a.to_dict() for a in self.alternatives]
        if self.where is not None:
            d["where"] = self.where
        if self.reason is not None:
            d["reason"] = self.reason
        if self.notes:
            d["notes"] = list(self.notes)
        d["cannot_decide"] = self.cannot_decide
        if self.evidence is not None:
            d["evidence"] = dict(self.evidence)
        return d

    def to_json_dict(self) -> dict[str, Any]:
        """The whole `convcheck explain --format json` document."""
        return {"schema": EXPLAIN_SCHEMA, **self.to_dict()}


@dataclass(frozen=True)
class BackendResult:
    """One row of `compare`: one backend's run and its diagnosis.

    `status` is ok / skipped / failed; `reason` says why for the last two. For `ok` rows,
    `diagnosis` is what `explain` gives for that backend's output.
    """

    backend: str
    status: str
    reason: Optional[str] = None
    version: Optional[str] = None
    compute_dtype: Optional[str] = None
    shape: Optional[tuple[int, ...]] = None
    seconds: Optional[float] = None
    notes: tuple[str, ...] = ()
    diagnosis: Optional[Diagnosis] = None
    requested: bool = False  # named by the user in --backends (exit 3 if it did not run)

    def to_dict(self) -> dict[str, Any]:
        """One entry of CONTRACT section 5 `results`."""
        d: dict[str, Any] = {"backend": self.backend, "status": self.status}
        if self.status != "ok":
            d["reason"] = self.reason
            return d
        d.update({
            "version": self.version,
            "compute_dtype": self.compute_dtype,
            "shape": list(self.shape) if self.shape is not None else None,
            "seconds": self.seconds,
        })
        if self.notes:
            d["notes"] = list(self.notes)
        assert self.diagnosis is not None
        d.update(self.diagnosis.to_dict())
        return d


@dataclass(frozen=True, repr=False)
class CompareReport:
    """Everything `compare` found: inputs, settings and one `BackendResult` per backend.

    `ok` is True exactly when `convcheck compare` would exit 0 (`exit_code()`).
    """

    inputs: dict[str, Any]
    settings: dict[str, Any]
    results: tuple[BackendResult, ...]
    notes: tuple[str, ...] = ()

    def exit_code(self, strict: bool = False) -> int:
        """CONTRACT section 4: 1 for a mismatch (with `strict`: anything not equal), else 3 when a
        requested backend did not run or any backend failed outright, else 0."""
        verdicts = [r.diagnosis.verdict for r in self.results if r.status == "ok" and r.diagnosis is not None]
        backend_problem = any(r.status != "ok" and (r.requested or r.status == "failed") for r in self.results)
        return exit_code_for(verdicts, backend_problem=backend_problem, strict=strict)

    @property
    def ok(self) -> bool:
        """True when no row is unexplained and every requested backend ran (exit code 0)."""
        return self.exit_code() == 0

    def __repr__(self) -> str:
        rows = []
        for row in self.results:
            if row.status == "ok" and row.diagnosis is not None:
                rows.append(f"{row.backend}: {_short_diagnosis(row.diagnosis)}")
            else:
                rows.append(f"{row.backend}: {row.status}")
        return f"<CompareReport {'ok' if self.ok else 'not ok'}; " + "; ".join(rows) + ">"

    def __rich__(self) -> Any:
        """The table format's report, for `rich.print(report)` and rich-enabled notebooks."""
        from .formats.table import render_compare
        return _rich_text(lambda color, width: render_compare(self, color=color, width=width))

    def _repr_html_(self) -> str:
        """An HTML table for Jupyter: one row per backend with its verdict, explanation and fix."""
        import html

        from .formats import _text
        columns = ("backend", "verdict", "explanation", "fix", "max |Δ|", "mismatched / total")
        rows = []
        for row in self.results:
            cells = _text.compare_cells(row)
            rows.append([cells[c] for c in columns])
        return (f"<div class='convcheck-compare'><p>{html.escape(_text.compare_title(self))}</p>"
                + _html_table(list(columns), rows) + "</div>")

    def to_json_dict(self) -> dict[str, Any]:
        """The whole `convcheck compare --format json` document."""
        d = {
            "schema": COMPARE_SCHEMA,
            "inputs": self.inputs,
            "settings": self.settings,
            "results": [r.to_dict() for r in self.results],
        }
        if self.notes:
            d["notes"] = list(self.notes)
        return d


def exit_code_for(verdicts: list[Verdict], backend_problem: bool = False, strict: bool = False) -> int:
    """CONTRACT section 4: 1 if anything is a mismatch, else 3 if a requested backend did not run, else 0."""
    if strict:
        mismatch = any(v is not Verdict.EQUAL for v in verdicts)
    else:
        mismatch = any(v is Verdict.UNEXPLAINED for v in verdicts)
    if mismatch:
        return 1
    if backend_problem:
        return 3
    return 0
