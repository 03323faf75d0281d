"""Judging a result: pass, warn or fail one diagnosis against a case's `allow` rules and strictness,
the sentence that says why, and a case's status from its results'.
"""

from __future__ import annotations

from ..results import Diagnosis
from ..vocabulary import Cause, Verdict, describe, describe_plain
from .allow import AllowRule
from .report import ResultOutcome


def judge(name: str, diagnosis: Diagnosis, allow: tuple[AllowRule, ...], strict: bool) -> ResultOutcome:
    """Pass, warn or fail one diagnosis against a case's `allow` rules.

    `equal` passes; `unexplained` fails; `explained` passes when `allow` covers every
    cause, otherwise fails under `strict` and warns without it.
    """
    if diagnosis.verdict is Verdict.EQUAL:
        return ResultOutcome(name, "pass", diagnosis)
    if diagnosis.verdict is Verdict.UNEXPLAINED:
        return ResultOutcome(name, "fail", diagnosis, message=unexplained_message(diagnosis))
    disallowed = tuple(c for c in diagnosis.causes if not any(rule.permits(c) for rule in allow))
    if not disallowed:
        return ResultOutcome(name, "pass", diagnosis)
    listed = ", ".join(_cause_text(c) for c in disallowed)
    assert diagnosis.explanation is not None
    message = (f"explained by {describe_plain(diagnosis.explanation, diagnosis.baseline)}, but {listed} "
               f"{'is' if len(disallowed) == 1 else 'are'} not in allow")
    return ResultOutcome(name, "fail" if strict else "warn", diagnosis, disallowed=disallowed, message=message)


def _cause_text(cause: Cause) -> str:
    value = list(cause.value) if isinstance(cause.value, tuple) else cause.value
    if isinstance(value, float):
        value = f"{value:.6g}"
    return f"{cause.field}={value}"


def unexplained_message(diagnosis: Diagnosis) -> str:
    """One sentence for an unexplained diagnosis: where it differs, or why nothing fits."""
    if diagnosis.reason:
        return f"unexplained: {diagnosis.reason}"
    stats = diagnosis.stats
    where = f" ({diagnosis.where})" if diagnosis.where else ""
    differ = (f"{stats.mismatched} of {stats.total} elements differ from the reference"
              if stats.mismatched is not None else "the output differs from the reference")
    closest = diagnosis.closest
    if closest is not None and closest.changed_fields(diagnosis.baseline) and stats.mismatched_after is not None:
        return (f"unexplained: {differ}, and even the closest candidate ({describe(closest, diagnosis.baseline)}) "
                f"leaves {stats.mismatched_after} beyond the error bound{where}")
    return (f"unexplained: {differ}{where}, and no combination of kernel transform, padding, boundary, "
            "offset, precision, bias, scale, activation and output precision reproduces them")


def case_status(results: list[ResultOutcome]) -> str:
    """A case's status: 'fail', 'error' or 'warn' when any of its results has it (in that order), else 'pass'."""
    statuses = {r.status for r in results}
    for status in ("fail", "error", "warn"):
        if status in statuses:
            return status
    return "pass"
