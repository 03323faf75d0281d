"""What a check run found: one `ResultOutcome` per result, one `CaseResult` per case, and the
`CheckReport` with its counts, exit code and JSON document (CONTRACT section 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..models.report import SCHEMA as MODEL_SCHEMA
from ..results import CHECK_SCHEMA, BackendResult, CompareReport, Diagnosis
from ..vocabulary import Cause, Verdict
from .config import Case

STATUSES = ("pass", "warn", "fail", "error")


@dataclass(frozen=True)
class ResultOutcome:
    """How one result of a case fared: one backend row, or the saved output's diagnosis.

    `status` is pass / warn / fail / error. `disallowed` are the causes `allow` does not
    cover; `message` one sentence saying why it did not pass (empty when it passed). In a
    model case, `layer` is the walked layer (`convcheck.models.report.LayerResult`) this
    result is, and `skipped` marks the one result of a case whose format's extra is missing.
    """

    name: str
    status: str
    diagnosis: Optional[Diagnosis] = None
    backend_result: Optional[BackendResult] = None
    disallowed: tuple[Cause, ...] = ()
    message: str = ""
    layer: Any = None
    skipped: bool = False

    @property
    def verdict(self) -> Optional[Verdict]:
        """The diagnosis's verdict, `None` for a backend that did not run."""
        return self.diagnosis.verdict if self.diagnosis is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The compare row dict (or explain dict), plus `outcome`, `disallowed` and `message`."""
        if self.backend_result is not None:
            d = self.backend_result.to_dict()
        elif self.layer is not None:
            d = {"layer": self.name, **self.layer.to_json_dict()}
        elif self.skipped:
            d = {"result": self.name, "status": "skipped", "reason": self.message.removeprefix("skipped: ")}
        elif self.diagnosis is None and self.message:
            d = {"result": self.name}
        else:
            d = {"output": self.name}
            if self.diagnosis is not None:
                d.update(self.diagnosis.to_dict())
        d["outcome"] = self.status
        d["disallowed"] = [c.to_dict() for c in self.disallowed]
        if self.message:
            d["message"] = self.message
        return d


@dataclass(frozen=True)
class CaseResult:
    """One case's results. `report` is the `CompareReport` of a compare case (else `None`)."""

    case: Case
    status: str
    results: tuple[ResultOutcome, ...]
    report: Optional[CompareReport] = None
    seconds: float = 0.0
    model: Any = None   # a model case's ModelReport (None for the others, or when it was skipped)

    @property
    def name(self) -> str:
        return self.case.name

    def to_dict(self) -> dict[str, Any]:
        """One entry of the check JSON's `cases`: a model case adds `model` (the `convcheck/model/1`
        document without its `layers`, which are the case's `results`), an explain case with
        declared values adds `expect`."""
        allow = self.case.allow
        d: dict[str, Any] = {"name": self.case.name, "status": self.status, "kind": self.case.kind,
                             "allow": allow.texts() if hasattr(allow, "texts") else [str(rule) for rule in allow],
                             "seconds": round(self.seconds, 6)}
        if self.case.line is not None:
            d["line"] = self.case.line
        if getattr(self.case, "expect", ()):
            d["expect"] = {name: _declared_json(value) for name, value in self.case.expect}
        d["results"] = [r.to_dict() for r in self.results]
        if self.case.kind == "model":
            document = self.model.to_json_dict() if self.model is not None else {"schema": MODEL_SCHEMA}
            document.pop("layers", None)
            d["model"] = document
        return d


def _declared_json(value) -> Any:
    """A declared value as JSON writes it: tuples as lists, a bias or scale file as its path."""
    if hasattr(value, "label") and hasattr(value, "path"):
        return value.text or value.path
    if isinstance(value, tuple):
        return [_declared_json(v) for v in value]
    return value


@dataclass(frozen=True)
class CheckReport:
    """Everything a `check` run found: the config, strictness and one `CaseResult` per case."""

    config: str
    strict: bool
    cases: tuple[CaseResult, ...]
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        """How many cases ended in each status (every status present, zeros included)."""
        counts = {status: 0 for status in STATUSES}
        for case in self.cases:
            counts[case.status] += 1
        return counts

    def result_counts(self) -> dict[str, int]:
        """How many results (backend rows and saved outputs) ended in each status."""
        counts = {status: 0 for status in STATUSES}
        for case in self.cases:
            for result in case.results:
                counts[result.status] += 1
        return counts

    def exit_code(self) -> int:
        """CONTRACT section 4: 1 if any case failed, else 3 if a backend could not run, else 0."""
        counts = self.counts()
        if counts["fail"]:
            return 1
        if counts["error"]:
            return 3
        return 0

    def to_json_dict(self) -> dict[str, Any]:
        """The whole `convcheck check --format json` document (schema convcheck/check/2)."""
        return {
            "schema": CHECK_SCHEMA,
            "config": self.config,
            "strict": self.strict,
            "cases": [c.to_dict() for c in self.cases],
            "summary": {"cases": len(self.cases), **self.counts(),
                        "results": {"total": sum(len(c.results) for c in self.cases), **self.result_counts()},
                        "exit_code": self.exit_code(), "seconds": round(self.seconds, 6)},
        }
