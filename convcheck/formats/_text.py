"""What the human-readable formats say, decided once: the table and markdown only lay it out.

Pure Python (no rich, no numpy): every function turns result objects into plain strings.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

from ..vocabulary import Explanation, Verdict, describe, describe_plain, pads_text

VERDICT_MARKS = {Verdict.EQUAL: "✓", Verdict.EXPLAINED: "≈", Verdict.UNEXPLAINED: "✗"}
VERDICT_STYLES = {Verdict.EQUAL: "green", Verdict.EXPLAINED: "yellow", Verdict.UNEXPLAINED: "red"}
STATUS_STYLES = {"skipped": "dim", "failed": "red"}
NONE = "–"
# CONTRACT section 1's name for what every output is compared with: the one name every format,
# the plot and the pytest helper use.
REFERENCE = "reference"

COMPARE_COLUMNS = ("backend", "compute dtype", "max |Δ|", "max rel Δ", "mismatched / total",
                   "worst index", "verdict", "explanation", "fix")
NUMERIC_COLUMNS = ("max |Δ|", "max rel Δ", "mismatched / total")


def num(value: Optional[float]) -> str:
    """A difference with 3 significant digits: 4.99, 0.00123, 1.2e-07; '–' for None."""
    if value is None:
        return NONE
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3g}"


def value_text(value: Optional[float]) -> str:
    """An array value with 6 significant digits (enough to see where two values part)."""
    return NONE if value is None else f"{float(value):.6g}"


def values_apart(a: Optional[float], b: Optional[float], least: int = 6) -> tuple[str, str]:
    """Two array values with just enough significant digits (at least `least`, at most 17)
    that they read differently when they differ: 1.0000001 vs 1.0 is not '1 vs 1'."""
    if a is None or b is None:
        return value_text(a), value_text(b)
    a, b = float(a), float(b)
    for digits in range(least, 18):
        first, second = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if first != second or a == b:
            return first, second
    return repr(a), repr(b)


def index_text(index: Optional[Iterable[int]]) -> str:
    """[3, 4] style, '–' for None."""
    return NONE if index is None else "[" + ", ".join(str(int(i)) for i in index) + "]"


def verdict_label(verdict: Verdict) -> str:
    """'✓ equal', '≈ explained' or '✗ unexplained'."""
    verdict = Verdict(verdict)
    return f"{VERDICT_MARKS[verdict]} {verdict.value}"


def status_label(status: str) -> str:
    """The verdict cell of a row that did not run: '– skipped', '✗ failed'."""
    return f"{'✗' if status == 'failed' else NONE} {status}"


def candidate_text(candidate: Explanation, baseline: Explanation) -> str:
    """A candidate explanation in words; the baseline itself is named as such."""
    if not candidate.changed_fields(baseline):
        return "the expected computation itself"
    return describe(candidate, baseline)


def closest_text(diagnosis) -> Optional[str]:
    """'closest candidate (does NOT match): ...' for an unexplained diagnosis, else None."""
    if diagnosis.closest is None:
        return None
    text = f"closest candidate (does NOT match): {candidate_text(diagnosis.closest, diagnosis.baseline)}"
    after = diagnosis.stats.mismatched_after
    if after:
        text += f", still {after} of {diagnosis.stats.total} elements beyond the bound"
    return text


def left_out_text(diagnosis, short: bool = False) -> Optional[str]:
    """'8 elements left out (up to 1.1e+03 from the reference; 8 of them outside the range of every
    compared element, ...): the offset moves their windows ...' when the explanation (or the closest
    candidate) leaves elements out, else None; `short` for table cells: '8 elements left out (up to
    1.1e+03 from the reference; 8 outside the compared range)'.

    An offset moves some windows past the reference's edge: those elements are not compared
    (CONTRACT section 2), and every format says how many and how far they are, never in silence
    (issue 20). They are measured against the computation without the offset: the reference
    itself when the offset is the only change."""
    stats = diagnosis.stats
    if not stats.left_out:
        return None
    candidate = diagnosis.explanation if diagnosis.explanation is not None else diagnosis.closest
    if candidate is None or set(candidate.changed_fields(diagnosis.baseline)) <= {"offset"}:
        against = "the reference"
    elif diagnosis.verdict is Verdict.UNEXPLAINED:
        against = "the closest candidate without its offset"
    else:
        against = "the explanation without its offset"
    count, outside = stats.left_out, stats.left_out_outside_range
    text = f"{count} element{'s' if count != 1 else ''} left out"
    details = []
    if stats.left_out_max_abs_diff is not None:
        details.append(f"up to {num(stats.left_out_max_abs_diff)} from {against}")
    if outside and short:
        details.append(f"{outside} outside the compared range")
    elif outside:
        details.append(f"{outside} of them outside the range of every compared element: no shift of the "
                       "computation gives them")
    if details:
        text += f" ({'; '.join(details)})"
    return text if short else text + ": the offset moves their windows past the reference's edge, so they are " \
                                      "not compared"


def notes_besides_left_out(diagnosis) -> list[str]:
    """The diagnosis's notes minus the engine's own note on the elements left out, which
    `left_out_text` says with the numbers wherever a format shows them."""
    stats = diagnosis.stats
    marker = f"{stats.left_out} of {stats.total} elements were left out"
    return [note for note in diagnosis.notes if not (stats.left_out and note.startswith(marker))]


def explanation_cell(diagnosis) -> str:
    """The compare table's plain-words explanation of one row (and the elements it leaves out)."""
    left_out = left_out_text(diagnosis, short=True)
    if left_out is not None and diagnosis.verdict is Verdict.EXPLAINED:
        return f"{describe_plain(diagnosis.explanation, diagnosis.baseline)}; {left_out}"
    if diagnosis.verdict is Verdict.EQUAL:
        return "matches the reference"
    if diagnosis.verdict is Verdict.EXPLAINED:
        return describe_plain(diagnosis.explanation, diagnosis.baseline)
    if diagnosis.cannot_decide:
        return diagnosis.reason
    parts = ["no known cause"]
    if diagnosis.where:
        parts[0] += f" (mismatch: {diagnosis.where})"
    closest = closest_text(diagnosis)
    if closest:
        parts.append(closest)
        if left_out is not None:
            parts.append(left_out)
    elif diagnosis.reason:
        parts.append(diagnosis.reason)
    return "; ".join(parts)


def fixes_text(causes) -> str:
    """Every cause's fix, in the causes' order, each once: a row explained by two causes needs both
    (Keras's 'valid' padding and its float32 cast), never only the first."""
    return "; ".join(dict.fromkeys(cause.fix for cause in causes if cause.fix))


def fix_cell(diagnosis) -> str:
    """Every cause's fix (`fixes_text`); for unexplained rows, where to look next."""
    if diagnosis.verdict is Verdict.EXPLAINED and diagnosis.causes:
        return fixes_text(diagnosis.causes)
    if diagnosis.cannot_decide:
        return "test on a larger output, or compute in a wider precision, so the data can decide"
    if diagnosis.verdict is Verdict.UNEXPLAINED:
        return "a genuine mismatch: run convcheck explain on this output, and --plot it"
    return NONE


def compare_cells(result) -> dict[str, str]:
    """One `BackendResult` as the compare table's cells (keys: COMPARE_COLUMNS, plus 'status')."""
    cells = dict.fromkeys(COMPARE_COLUMNS, NONE)
    cells["backend"] = result.backend
    cells["status"] = result.status
    if result.status != "ok" or result.diagnosis is None:
        cells["verdict"] = status_label(result.status)
        cells["explanation"] = result.reason or result.status
        return cells
    diagnosis = result.diagnosis
    stats = diagnosis.stats
    cells["compute dtype"] = result.compute_dtype or NONE
    cells["max |Δ|"] = num(stats.max_abs_diff)
    cells["max rel Δ"] = num(stats.max_rel_diff)
    mismatched = NONE if stats.mismatched is None else str(stats.mismatched)
    if shape_difference(diagnosis) is not None:
        mismatched = "shape differs;"  # never '0/36' for an output of the wrong size
    cells["mismatched / total"] = f"{mismatched} {stats.total}" if mismatched.endswith(";") else \
        f"{mismatched}/{stats.total}"
    cells["worst index"] = index_text(stats.worst_index)
    cells["verdict"] = verdict_label(diagnosis.verdict)
    cells["explanation"] = explanation_cell(diagnosis)
    cells["fix"] = fix_cell(diagnosis)
    return cells


def why_sentences(diagnoses: Iterable[Any]) -> list[str]:
    """One `Cause.why` per distinct cause (field, and sentence: the two algorithms have their own),
    across the diagnoses, in first-seen order."""
    seen: dict[tuple[str, str], str] = {}
    for diagnosis in diagnoses:
        if diagnosis is None:
            continue
        for cause in diagnosis.causes:
            if (cause.field, cause.why) not in seen and cause.why:
                seen[(cause.field, cause.why)] = cause.why
    return list(seen.values())


def diagnosis_notes(diagnosis) -> list[str]:
    """The diagnosis's notes, minus one that only repeats the alternatives listed separately and
    the one on the elements left out (`left_out_text` says it with the numbers)."""
    notes = []
    alternatives = [describe(a, diagnosis.baseline) for a in diagnosis.alternatives]
    for note in notes_besides_left_out(diagnosis):
        if alternatives and all(text in note for text in alternatives):
            continue
        notes.append(note)
    return notes


def compare_title(report) -> str:
    """'image.npy (8x8 float32) with kernel.npy (3x3 float32) · padding same · compute dtype float32'."""
    def one(role: str) -> str:
        info = report.inputs.get(role, {}) or {}
        name = info.get("path") or role
        shape = "x".join(str(d) for d in info.get("shape", ())) or "?"
        return f"{name} ({shape} {info.get('dtype', '?')})"

    settings = report.settings
    parts = [f"{one('image')} with {one('kernel')}", f"padding {settings.get('padding', '?')}"]
    if settings.get("library_defaults"):
        parts.append("each library's own defaults")
    else:
        parts.append(f"compute dtype {settings.get('dtype', '?')}")
    return " · ".join(parts)


def compare_footer(report) -> tuple[list[str], list[str]]:
    """(why sentences, notes) printed below a compare table."""
    notes = []
    for result in report.results:
        for note in result.notes:
            notes.append(f"{result.backend}: {note}")
        if result.diagnosis is not None:
            for note in diagnosis_notes(result.diagnosis):
                notes.append(f"{result.backend}: {note}")
            for alternative in result.diagnosis.alternatives:
                notes.append(f"{result.backend}: equally explained by "
                             f"{describe(alternative, result.diagnosis.baseline)} "
                             "(computes the same values here)")
    notes.extend(report.notes)
    return why_sentences(r.diagnosis for r in report.results), notes


# ----------------------------------------------------------------------------- explain


def reference_text(baseline: Explanation, names: dict) -> str:
    """What the reference is, in words (CONTRACT section 1: computed exactly in float64 from the
    inputs as loaded, with what the caller declared; the expected precision is what its error
    bound allows for)."""
    image = names.get("image", "image")
    kernel = names.get("kernel", "kernel")
    padding = baseline.padding if isinstance(baseline.padding, str) else f"pads {pads_text(baseline.padding)}"
    text = (f"the float64 cross-correlation (kernel not flipped) of {image} with {kernel}, padding {padding}, "
            f"{baseline.boundary if isinstance(baseline.boundary, str) else '/'.join(baseline.boundary)} boundary")
    declared = describe(baseline, Explanation(padding=baseline.padding, boundary=baseline.boundary,
                                              precision=baseline.precision, output_layout=baseline.output_layout,
                                              kernel_layout=baseline.kernel_layout, kernel_axis=baseline.kernel_axis,
                                              output_precision=baseline.output_precision))
    if declared != "matches the reference":
        text += f", with {declared}"
    if baseline.precision != "float64":
        text += f"; its error bound allows for a {baseline.precision} computation"
    return text


def explain_headline(diagnosis, names: dict) -> str:
    """The sentence after the verdict mark."""
    output = names.get("output", "output")
    if diagnosis.verdict is Verdict.EQUAL:
        return f"{output} matches the reference within the rigorous error bound; nothing to explain."
    if diagnosis.verdict is Verdict.EXPLAINED:
        count = len(diagnosis.causes)
        return (f"{output} differs from the reference, and {count} cause{'s' if count != 1 else ''} "
                f"reproduce{'s' if count == 1 else ''} it within the error bound:")
    if diagnosis.cannot_decide:
        return (f"{output} cannot be judged: a candidate passes the error bound, but the data are too "
                "weak to tell it from a coincidence.")
    return (f"{output} differs from the reference, and no combination of kernel transform, padding, stride, "
            "dilation, boundary, offset, groups, layout, precision, algorithm, bias, scale, activation and output "
            "precision reproduces it: "
            "a genuine mismatch.")


# Fields that change the output's size: when one is a cause, the output was compared with a
# reference of its own shape, not with the expected one, and the numbers must say so.
SHAPE_FIELDS = ("padding", "stride", "dilation")


def shape_difference(diagnosis) -> Optional[str]:
    """'the output's shape differs from the expected one ('valid' padding, not 'same')', or None."""
    explanation = diagnosis.explanation if diagnosis.explanation is not None else None
    if explanation is None:
        return None
    changed = [f for f in explanation.changed_fields(diagnosis.baseline) if f in SHAPE_FIELDS]
    if not changed:
        return None
    what = ", ".join(f"{f} {_field_text(getattr(explanation, f))}, not {_field_text(getattr(diagnosis.baseline, f))}"
                     for f in changed)
    return f"the output's shape differs from the expected one ({what})"


def _field_text(value) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return f"'{value}'" if isinstance(value, str) else str(value)


def explain_stats(diagnosis, names: Optional[dict] = None) -> list[tuple[str, str]]:
    """(label, value) rows of the explain report's numbers (first, with `names`, the reference)."""
    stats = diagnosis.stats
    rows = []
    if names is not None:
        rows.append(("reference", reference_text(diagnosis.baseline, names)))
    shape = shape_difference(diagnosis)
    if shape is not None:
        rows.append(("shape", f"{shape}: the numbers below compare it with a reference of its own shape"))
    if stats.max_abs_diff is None:
        rows.append(("max |Δ| before", f"{NONE} (no reference has the output's shape)"))
    else:
        rows.append(("max |Δ| before", f"{num(stats.max_abs_diff)} (output vs reference; "
                                       f"max rel Δ {num(stats.max_rel_diff)})"))
    if stats.mismatched is not None:
        rows.append(("mismatched", f"{stats.mismatched} of {stats.total} elements beyond the error bound"
                                   + (" of that reference" if shape is not None else "")))
    if stats.worst_index is not None:
        output, reference = values_apart(stats.worst_output, stats.worst_reference)
        rows.append(("worst index", f"{index_text(stats.worst_index)}: output {output}, reference {reference}"))
    against = ("the closest candidate" if diagnosis.verdict is Verdict.UNEXPLAINED
               else "the explanation's reproduction" if diagnosis.verdict is Verdict.EXPLAINED
               else "the reference")
    if stats.residual_after is not None:
        rows.append(("max |Δ| after", f"{num(stats.residual_after)} (output vs {against})"))
    if stats.error_bound is not None:
        bound = f"{num(stats.error_bound)} (largest element of the bound)"
        if stats.bound_ratio is not None:
            bound += f"; worst residual/bound {num(stats.bound_ratio)} (≤ 1 is within the bound)"
        rows.append(("error bound", bound))
    if diagnosis.verdict is Verdict.UNEXPLAINED and stats.mismatched_after is not None:
        rows.append(("mismatched after", f"{stats.mismatched_after} of {stats.total} elements "
                                         f"beyond the bound of {against}"))
    left_out = left_out_text(diagnosis)
    if left_out is not None:
        rows.append(("not compared", left_out))
    return rows


def explain_unexplained(diagnosis) -> list[str]:
    """For an unexplained diagnosis: where the mismatch sits, the closest candidate or the reason."""
    lines = []
    if diagnosis.where:
        lines.append(f"where: {diagnosis.where}")
    closest = closest_text(diagnosis)
    if closest:
        lines.append(closest)
    if diagnosis.reason:
        lines.append(diagnosis.reason)
    return lines


def alternatives_text(diagnosis) -> Optional[str]:
    """The tied explanations in words, or None."""
    if not diagnosis.alternatives:
        return None
    tied = "; ".join(describe(a, diagnosis.baseline) for a in diagnosis.alternatives)
    return f"equally explained by (these compute the same values here, so they cannot be told apart): {tied}"


# ----------------------------------------------------------------------------- demo


def join_names(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _verb(names: list[str], singular: str, plural: str) -> str:
    return singular if len(names) == 1 else plural


def story(report) -> list[str]:
    """A few sentences telling what a compare found, derived from its verdicts (for `demo`)."""
    explained: dict[tuple, list] = {}
    equal: list[str] = []
    equal_dtypes: set[str] = set()
    unexplained: list[str] = []
    undecided: list[str] = []
    not_run: list[str] = []
    for result in report.results:
        diagnosis = result.diagnosis
        if result.status != "ok" or diagnosis is None:
            not_run.append(f"{result.backend} ({result.reason or result.status})")
        elif diagnosis.verdict is Verdict.EQUAL:
            equal.append(result.backend)
            equal_dtypes.add(result.compute_dtype or diagnosis.baseline.precision)
        elif diagnosis.verdict is Verdict.EXPLAINED:
            key = tuple((c.field, str(c.value)) for c in diagnosis.causes)
            explained.setdefault(key, [diagnosis.causes, []])[1].append(result.backend)
        elif diagnosis.cannot_decide:
            undecided.append(result.backend)
        else:
            unexplained.append(result.backend)

    lines = []
    for causes, names in explained.values():
        what = "; and ".join(c.summary for c in causes)
        lines.append(f"{join_names(names)} {_verb(names, 'differs', 'differ')} from the reference only "
                     f"because {what}. Fix: {fixes_text(causes)}.")
    if equal:
        rounding = (f"{next(iter(equal_dtypes))} rounding" if len(equal_dtypes) == 1
                    else "the rounding of their compute dtypes")
        lines.append(f"{join_names(equal)} {_verb(equal, 'computes', 'compute')} the cross-correlation "
                     f"that deep-learning frameworks call convolution, and {_verb(equal, 'agrees', 'agree')} "
                     f"with the reference within {rounding}.")
    if unexplained:
        lines.append(f"{join_names(unexplained)} {_verb(unexplained, 'disagrees', 'disagree')} with the "
                     "reference in a way no known cause explains: a genuine mismatch.")
    if undecided:
        lines.append(f"{join_names(undecided)}: the data cannot decide (too few elements, or a bound as "
                     "wide as the values): see the row's reason.")
    if not_run:
        lines.append(f"Could not run here: {join_names(not_run)}.")
    return lines
