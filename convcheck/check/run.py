"""Running a check suite: every case validated first, then each run in turn (a saved output
explained, backends compared) and judged, into a `CheckReport`.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import InputError
from ..results import CompareReport, Diagnosis
from ..vocabulary import Verdict
from .config import Case, Suite, find_config, load_suite
from .judging import case_status, judge
from .model_cases import run_model_case, validate_model_case
from .report import CaseResult, CheckReport, ResultOutcome

# Validated inputs kept from the first pass up to this many bytes (see run_suite).
_KEPT_BYTES = 1 << 25
# Suites with at least this many compare cases may diagnose in a second process (convcheck.worker).
_WORKER_MIN_CASES = 8


def check(path: Optional[os.PathLike] = None, *, strict: bool = False, progress=None,
          keep_arrays: bool = False) -> CheckReport:
    """Find the config (`path`, or upwards from the current directory), load it and run it."""
    return run_suite(load_suite(find_config(path)), strict=strict, progress=progress, keep_arrays=keep_arrays)


def run_suite(suite: Suite, *, strict: bool = False, progress: Optional[Callable[[int, int, Optional[str]], None]] = None,
              keep_arrays: bool = False) -> CheckReport:
    """Run every case of `suite` in this process and judge each result.

    All files are loaded and validated first, one case at a time (an `InputError` stops
    the run before any framework is imported); then each case runs (loaded again unless
    kept from the first pass, up to 32 MiB of them) and is released before the next:
    memory does not grow with the number of cases. A saved output is explained, backends
    are compared (each framework imported once for the whole suite). `strict` (or the
    config's own `strict`) turns results explained by causes outside `allow` into failures.
    In a suite of many compare cases, when their backends take a fair share of the time,
    a second process makes the diagnoses while this one runs the next case's backends
    (`convcheck.worker.Pipeline`): the same diagnoses, each case finished one case later
    (so two cases' arrays may be alive at once).
    `progress(done, total, name)` is called before each case with the number finished and
    the case's name, and once at the end with `name=None`. `keep_arrays` keeps the arrays
    behind each diagnosis, for `convcheck.plot`.
    """
    started = time.perf_counter()
    kept = _validate(suite)
    suite_strict = strict or suite.strict
    total = len(suite.cases) + len(suite.models)
    results = _run_cases(suite, kept, suite_strict, progress, keep_arrays, total)
    for done, case in enumerate(suite.models, start=len(suite.cases)):
        if progress is not None:
            progress(done, total, case.name)
        results.append(run_model_case(case, suite.config))
    if progress is not None:
        progress(total, total, None)
    return CheckReport(_display_path(suite.config), suite_strict, tuple(results), time.perf_counter() - started)


def _validate(suite: Suite) -> dict[int, Any]:
    """Every case's files loaded and validated; the `Inputs` of the first ones, by case index,
    while they fit in _KEPT_BYTES (small suites load once), the others let go and loaded
    again when they run: memory stays bounded however many cases there are."""
    kept: dict[int, Any] = {}
    budget = _KEPT_BYTES
    for index, case in enumerate(suite.cases):
        inputs = _load(case, suite.config)
        if case.output is not None:
            _declared(case, inputs, suite.config)
        size = sum(a.nbytes for a in (inputs.image, inputs.kernel, inputs.output) if a is not None)
        if size <= budget:
            kept[index], budget = inputs, budget - size
        del inputs
    for case in suite.models:
        validate_model_case(case, suite.config)
    return kept


def _declared(case: Case, inputs, config: Path) -> dict:
    """The case's `expect` values as `diagnose` takes them: bias and scale files read (one value per
    output channel), and every value checked to apply to these arrays; an `InputError` is prefixed
    with the file and case."""
    from ..declared import check_applies
    from ..inputs import check_channel_count, read_channel_values
    from .expect import ChannelFile

    outs = int(inputs.output.shape[-1])
    expected = {}
    try:
        for field, value in case.expect:
            if isinstance(value, ChannelFile):
                label = f"expect.{field}: {value.label}"
                try:
                    value = read_channel_values(value.path, field)
                except InputError as exc:
                    raise InputError(f"expect.{field}: {exc}") from None
                check_channel_count(value, label, outs)
            expected[field] = value
        check_applies(expected, outs=outs, image_hw=tuple(inputs.image.shape[1:3]), padding=case.padding)
    except InputError as exc:
        raise InputError(f"{config}: case '{case.name}': {exc}") from None
    return expected


def _load(case: Case, config: Path):
    """The case's validated `Inputs`; an `InputError` is prefixed with the file and case."""
    from ..inputs import load_inputs

    try:
        return load_inputs(case.image, case.kernel, case.output, kernel_layout=case.kernel_layout,
                           padding=case.padding, layout=case.layout)
    except InputError as exc:
        raise InputError(f"{config}: case '{case.name}': {exc}") from None


def _run_cases(suite: Suite, kept: dict[int, Any], suite_strict: bool, progress, keep_arrays: bool,
               total: int) -> list[CaseResult]:
    """Each case run and judged, in order, released before the next loads.

    Compare cases' diagnoses go to a second process, which works on one case while this
    one runs the next case's backends (convcheck.worker); the same diagnoses, in order: a
    compare case is finished (`owed`) once the next case has run its backends, or before
    a case with a saved output.
    """
    from ..worker import Pipeline

    plotted: list[int] = [0]   # results whose arrays are kept for the plot so far
    results = []
    pipeline = Pipeline(sum(case.output is None for case in suite.cases), _WORKER_MIN_CASES)
    owed = None   # the compare case whose diagnoses the worker is making: finished one case later
    try:
        for done, case in enumerate(suite.cases):
            if progress is not None:
                progress(done, total, case.name)
            if case.output is not None and owed is not None:
                results.append(_finish_compare(*owed, keep_arrays, plotted))
                owed = None
            inputs = kept.pop(done) if done in kept else _load(case, suite.config)
            case_strict = suite_strict or case.strict
            if case.output is not None:
                results.append(_explain_case(case, inputs, case_strict, keep_arrays, plotted, suite.config))
            else:
                report, ran = _run_backends(case, inputs, pipeline, owed, keep_arrays, plotted)
                pipeline.ran(ran)
                if owed is not None:
                    results.append(_finish_compare(*owed, keep_arrays, plotted))
                owed = (case, report, case_strict, ran)
            del inputs  # released before the next case loads
        if owed is not None:
            results.append(_finish_compare(*owed, keep_arrays, plotted))
    finally:
        pipeline.close()
    return results


def _explain_case(case: Case, inputs, case_strict: bool, keep_arrays: bool, plotted: list[int],
                  config: Path) -> CaseResult:
    """A case with a saved output: its diagnosis against what the case declares, judged."""
    from ..engine import diagnose

    started = time.perf_counter()
    expected = _declared(case, inputs, config)
    try:
        diagnosis = diagnose(inputs, padding=case.padding, stride=case.stride, dilation=case.dilation,
                             groups=case.groups, precision=case.precision, output_precision=case.output_precision,
                             algorithm=case.algorithm, expected=expected, keep_arrays=keep_arrays)
    except InputError as exc:
        raise InputError(f"{config}: case '{case.name}': {exc}") from None
    diagnosis = _for_plot(diagnosis, plotted) if keep_arrays else diagnosis
    outcomes = [judge(str(case.raw.get("output", case.output)), diagnosis, case.allow, case_strict)]
    return CaseResult(case, case_status(outcomes), tuple(outcomes), None, time.perf_counter() - started)


def _run_backends(case: Case, inputs, pipeline, owed: Optional[tuple], keep_arrays: bool,
                  plotted: list[int]) -> tuple[CompareReport, float]:
    """A compare case's backends run, their diagnoses asked of the pipeline, and the seconds it took.

    If they fail, the case before (`owed`) is finished first, so that its error is raised
    first, as it was."""
    from ..comparison import compare_inputs

    started = time.perf_counter()
    try:
        report = compare_inputs(inputs, padding=case.padding, dtype=case.dtype,
                                backends=list(case.backends or ()),
                                library_defaults=case.library_defaults, keep_arrays=keep_arrays,
                                stride=case.stride, dilation=case.dilation,
                                diagnoser=pipeline.diagnoser())
    except BaseException:
        if owed is not None:   # an error of the case before is raised first, as it was
            _finish_compare(*owed, keep_arrays, plotted)
        raise
    return report, time.perf_counter() - started


def _finish_compare(case: Case, report: CompareReport, case_strict: bool, ran: float, keep_arrays: bool,
                    plotted: list[int]) -> CaseResult:
    """A compare case's result once its diagnoses are in (`ran`: the seconds its backends took)."""
    from ..comparison import settled

    started = time.perf_counter()
    report = settled(report)
    if keep_arrays:
        report = replace(report, results=tuple(
            replace(row, diagnosis=_for_plot(row.diagnosis, plotted)) if row.diagnosis is not None else row
            for row in report.results))
    outcomes = []
    for row in report.results:
        if row.status != "ok" or row.diagnosis is None:
            what = "was skipped" if row.status == "skipped" else "failed"
            outcomes.append(ResultOutcome(row.backend, "error", backend_result=row,
                                          message=f"{row.backend} {what}: {row.reason}"))
            continue
        judged = judge(row.backend, row.diagnosis, case.allow, case_strict)
        outcomes.append(ResultOutcome(judged.name, judged.status, judged.diagnosis, row,
                                      judged.disallowed, judged.message))
    return CaseResult(case, case_status(outcomes), tuple(outcomes), report,
                      ran + time.perf_counter() - started)


def _for_plot(diagnosis: Diagnosis, plotted: list[int]) -> Diagnosis:
    """The diagnosis with its arrays only if the plot will draw it (not equal, and among the
    first `convcheck.plot.MAX_ROWS`): a suite's memory stays that of a few cases."""
    from ..plot import MAX_ROWS

    if diagnosis.arrays is None:
        return diagnosis
    if diagnosis.verdict is Verdict.EQUAL or plotted[0] >= MAX_ROWS:
        return replace(diagnosis, arrays=None)
    plotted[0] += 1
    return diagnosis


def _display_path(path: Path) -> str:
    """`path` relative to the working directory when it lies below it (as CI logs show paths)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)
