"""The verdict for one reading of the inputs: the expected computation first, then the
staged search, then the statistics and notes of the `Diagnosis`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import precision as prec
from . import evidence as ev
from ..errors import InputError
from ..geometry import geometry_pair, output_size
from ..results import Diagnosis, Stats
from ..vocabulary import ALGORITHMS, BOUNDARIES, Explanation, OUTPUT_PRECISIONS, PADDINGS, Verdict, causes_for, describe
from .candidates import Layout, Structure, as_explanation, complexity, geometry_changes, layouts_for, winograd_layouts, winograd_precisions
from .evaluation import Full, evaluate_full
from .passes import FULL_CHECK_ELEMENTS, MAX_FULL_CHECKS, algorithm_passes, border_only, prefer_unfitted, run_control, same_computation
from .problem import Problem
from .reference import correlate, correlate_blocks
from .search import Search
from .statistics import Differences, index_in_user_shape
from .summary import all_clipped, clipping_note, diagnosis_stats, mismatch_site


@dataclass(frozen=True)
class DiagnosisArrays:
    """Whole-image arrays behind a diagnosis, kept for plots (`keep_arrays=True`)."""

    output: np.ndarray
    reference: Optional[np.ndarray]
    bound_before: Optional[np.ndarray]
    reproduction: Optional[np.ndarray]
    bound_after: Optional[np.ndarray]


def expected_computation(inputs, padding: str, stride, dilation, groups) -> Explanation:
    """The expected computation: what the caller declared, the contract's defaults elsewhere."""
    declared_groups = groups if groups is not None else getattr(inputs, "expected_groups", 1)
    return Explanation(padding=padding, stride=tuple(stride), dilation=tuple(dilation), groups=int(declared_groups),
                       output_layout=getattr(inputs, "declared_output_layout", "hwc"),
                       kernel_layout=getattr(inputs, "kernel_layout", "hwio"),
                       kernel_axis=getattr(inputs, "kernel_axis", None))


def diagnose_reading(inputs, *, padding: str = "same", precision: Optional[str] = None, stride=(1, 1),
              dilation=(1, 1), groups: Optional[int] = None, algorithm: str = "direct",
              keep_arrays: bool = False, output_transform: str = "identity", readings: int = 1,
              narrow: bool = False, output_precision: Optional[str] = None) -> Diagnosis:
    """`diagnose` for one reading of the kernel and output (see there).

    `readings` is how many readings of the kernel and image the whole diagnosis searches
    (each is one more search: the evidence rule's candidate count grows by that factor);
    `narrow` searches only the simplest geometry stage and the first pass (see
    `_other_readings`)."""
    if algorithm not in ALGORITHMS:
        raise InputError(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
    if padding not in PADDINGS:
        raise InputError(f"padding {padding!r} is not one of {', '.join(PADDINGS)}")
    if precision is not None and precision not in prec.SIGNIFICAND_BITS:
        raise InputError(f"precision {precision!r} is not one of {', '.join(prec.SIGNIFICAND_BITS)}; "
                         "pass one of them, or None for the inputs' own precision")
    if output_precision is not None and output_precision not in OUTPUT_PRECISIONS:
        raise InputError(f"output_precision {output_precision!r} is not one of {', '.join(OUTPUT_PRECISIONS)}; "
                         "pass one of them, or None for the precision's own")
    stride, dilation = geometry_pair(stride, "stride"), geometry_pair(dilation, "dilation")
    problem = Problem(inputs, expected_computation(inputs, padding, stride, dilation, groups)
                       .with_(algorithm=algorithm, output_precision=output_precision), precision, output_precision)
    if algorithm == "winograd" and (tuple(problem.kernel.shape[:2]) != (3, 3) or stride != (1, 1)
                                    or dilation != (1, 1)):
        raise InputError(f"algorithm 'winograd' (Winograd F(m x m, 3 x 3)) applies only to 3x3 kernels at stride 1 "
                         f"and dilation 1, not a {tuple(problem.kernel.shape[:2])} kernel at stride {list(stride)}, "
                         f"dilation {list(dilation)}; use algorithm 'direct' or 'fft'")
    baseline = problem.baseline
    shared = baseline.with_(groups=problem.groups, output_layout=getattr(inputs, "output_layout", "hwc"),
                            output_transform=output_transform,
                            kernel_layout=getattr(inputs, "kernel_reading", None) or baseline.kernel_layout,
                            channel_order=getattr(inputs, "channel_order", "as_given"))
    fixed = len(shared.changed_fields(baseline))
    kernel_hw = problem.kernel.shape[:2]
    total = int(problem.output.size)
    reading = getattr(inputs, "output_reading", None)
    output_shape = inputs.output_shape or problem.output.shape

    def to_user(index):
        return index_in_user_shape(index, tuple(output_shape), reading)

    layouts = layouts_for(problem, baseline)
    if not layouts:
        h, w = problem.image_hw
        sizes = ", ".join(f"{pad} {output_size(pad, h, w, *kernel_hw, stride, dilation)}" for pad in PADDINGS)
        reason = (f"output shape {tuple(problem.output.shape[1:3])} fits no padding, stride or dilation of a "
                  f"{(h, w)} image with a {tuple(kernel_hw)} kernel ({sizes}); was it cropped?")
        stats = Stats(None, None, None, total, None, None, None)
        return Diagnosis(Verdict.UNEXPLAINED, None, (), stats, baseline, reason=reason)

    # "Before" statistics: the reference of the output's own size, at the expected precision.
    identity = [lay for lay in layouts if lay.transform == "identity"]
    expected = Layout("identity", padding, stride, dilation)
    stats_layout = expected if expected in identity else (
        min(identity, key=lambda lay: geometry_changes(lay, baseline) + (lay.padding != padding))
        if identity else None)
    before: Optional[Full] = None
    reference = None
    if stats_layout is not None:
        start = shared.with_(padding=stats_layout.padding, stride=stats_layout.stride, dilation=stats_layout.dilation)
        before, values = evaluate_full(problem, start, "none", needed=ev.needed_bits(1), keep_arrays=keep_arrays)
        geometry = dict(padding=stats_layout.padding, stride=stats_layout.stride, dilation=stats_layout.dilation,
                        groups=problem.groups)
        reference = values if problem.rounding_is_exact(baseline.precision) else (
            correlate(problem.image, problem.kernel, **geometry)[0] if keep_arrays else Differences.of(
                problem.output, ((n, i0, v) for n, i0, v, _ in correlate_blocks(problem.image, problem.kernel,
                                                                                **geometry))))
        del values

    accepted: Optional[Full] = None
    undecided: Optional[Full] = None   # passes the bound, but with too little evidence
    alternatives: list[Explanation] = []
    closest: Optional[Full] = None
    tried_full: list[Full] = [before] if before is not None else []
    search = Search(problem, [lay for lay in layouts if geometry_changes(lay, baseline) == 0] or layouts)
    # The expected computation stores its result in its own precision: an output that
    # precision cannot hold was stored otherwise (see Problem.wide_storage), whatever the bound.
    if before is not None and before.ok and stats_layout == expected and baseline.precision not in problem.wide_storage:
        run_control(search, before, Structure("identity", padding, "zero", (0, 0), "none", stride, dilation))
        if before.evidence.decisive and fixed == 0:
            accepted = before
        elif not before.evidence.decisive:
            undecided = before
    best_rejected = None
    stages = sorted({geometry_changes(lay, baseline) for lay in layouts})
    # An output of a small integer type (uint8, int8, uint16, int16): rounded and saturated
    # to its type first (on a tie that reading wins: a narrower float's rounding can mimic an
    # integer's), then, as a rival, computed exactly, which wins only when strictly simpler.
    storages = [problem.integer_output] if problem.declared_storage else \
        [problem.integer_output, None] if problem.integer_output else [None]
    passes = algorithm_passes(problem, baseline, layouts, storages)
    all_precisions = problem.precisions
    if narrow:
        passes, stages = passes[:1], stages[:1]
    previous_boundaries = None
    for index, (algorithm_pass, boundaries, storage) in enumerate(passes):
        rival = accepted is not None and storage is None and boundaries is previous_boundaries \
            and len(accepted.explanation.changed_fields(baseline)) > fixed
        previous_boundaries = boundaries
        if (accepted is not None and not rival) or (index > 0 and undecided is not None):
            # A candidate that already passes but cannot decide is the answer's best case: a
            # later pass's smaller search must not turn the same data into a verdict.
            break
        if boundaries[0] != BOUNDARIES[0] and not border_only(tried_full, kernel_hw):
            continue  # a per-axis rule changes only the border: it cannot mend anything else
        problem.algorithm, problem.boundaries = algorithm_pass, boundaries
        problem.precisions, pass_layouts = all_precisions, layouts
        if algorithm_pass == "winograd":
            problem.precisions = winograd_precisions(all_precisions)
            pass_layouts = winograd_layouts(problem, layouts)
        problem.set_storage(storage)
        shared = shared.with_(algorithm=algorithm_pass)
        fixed = len(shared.changed_fields(baseline))
        for stage in stages:
            if accepted is not None and len(accepted.explanation.changed_fields(baseline)) <= stage + fixed:
                break  # every candidate of this stage changes at least as many fields
            stage_layouts = [lay for lay in pass_layouts if geometry_changes(lay, baseline) == stage]
            if not stage_layouts or not problem.precisions:
                continue
            search = Search(problem, stage_layouts)
            # Every pass may run before a verdict (each only when the ones before found
            # nothing), so the verdict is chosen among the candidates of all of them.
            needed = ev.needed_bits(search.size * len(stages) * readings * len(passes))
            survivors, rejected = search.structures()
            best_rejected = best_rejected or (rejected and (search, rejected, storage))
            candidates = sorted(((complexity(struct, q, baseline, fixed, problem.storage[q], search.outs), struct, q)
                                 for struct in survivors for q in problem.precisions), key=lambda item: item[0])
            full_checks = tie_checks = 0
            budget = max(MAX_FULL_CHECKS, min(256, FULL_CHECK_ELEMENTS // max(1, problem.output.size)))
            for key, struct, q in candidates:
                if accepted is not None and key[0] > len(accepted.explanation.changed_fields(baseline)):
                    break
                if full_checks >= budget or tie_checks >= budget:
                    break
                ok, scale, bias, _ = search.sampled_check(struct, q)
                if not ok:
                    continue
                expl = as_explanation(struct, q, scale, bias, shared, problem.storage[q])
                if accepted is not None and key[0] < len(accepted.explanation.changed_fields(baseline)):
                    # A rival pass's strictly simpler candidate: it replaces the answer if it holds.
                    full, _ = evaluate_full(problem, expl, struct.fit, needed=needed, keep_arrays=keep_arrays,
                                             keep_values=False)
                    full_checks += 1
                    if full.ok:
                        run_control(search, full, struct)
                        if full.evidence.decisive:
                            accepted, alternatives = full, []
                    continue
                if accepted is not None:
                    if accepted.explanation == expl or expl.changed_fields(accepted.explanation) == ("precision",):
                        continue  # the answer itself, or at another precision: implied, not a rival
                    # As simple as the answer: a tie when it reproduces the output too.
                    if same_computation(problem, expl, accepted.explanation):
                        alternatives.append(expl)
                        continue
                    tie, _ = evaluate_full(problem, expl, struct.fit, needed=needed, keep_values=False)
                    tie_checks += 1
                    if tie.ok:
                        run_control(search, tie, struct)
                    if tie.ok and tie.evidence.decisive:
                        alternatives.append(tie.explanation)
                    continue
                full, _ = evaluate_full(problem, expl, struct.fit, needed=needed, keep_arrays=keep_arrays,
                                         keep_values=False)
                full_checks += 1
                tried_full.append(full)
                if full.ok:
                    run_control(search, full, struct)
                    if full.evidence.decisive:
                        accepted = full
                    elif undecided is None:
                        undecided = full
    problem.precisions = all_precisions
    if accepted is not None and accepted is not before and baseline.algorithm == "direct" and not narrow:
        unfitted = prefer_unfitted(problem, accepted, baseline, keep_arrays)
        if unfitted is not None:
            alternatives, accepted = [accepted.explanation], unfitted
    if accepted is None and undecided is None:
        if best_rejected and not any(f is not before for f in tried_full):
            # The structure nearest on the samples (from the first, direct pass), at the
            # precision that fits most of them.
            problem.algorithm, problem.boundaries = baseline.algorithm, BOUNDARIES
            shared = shared.with_(algorithm=baseline.algorithm)
            search, (struct, _, _), storage = best_rejected
            problem.set_storage(storage)
            fractions = {q: search.sampled_check(struct, q) for q in problem.precisions}
            q = max(problem.precisions, key=lambda name: fractions[name][3])
            _, s, b, _ = fractions[q]
            tried_full.append(evaluate_full(problem, as_explanation(struct, q, s, b, shared, problem.storage[q]),
                                             struct.fit, needed=ev.needed_bits(1), keep_arrays=keep_arrays,
                                             keep_values=False)[0])
        if tried_full:
            # Fewest elements beyond the bound; then the simplest (an FFT's looser bound
            # would otherwise look closer than the expected computation itself).
            closest = min(tried_full, key=lambda f: (f.bad, len(f.explanation.changed_fields(baseline)),
                                                     f.worst_ratio))

    verdict = (Verdict.EQUAL if accepted is before and accepted is not None
               else Verdict.EXPLAINED if accepted is not None else Verdict.UNEXPLAINED)
    after = accepted if accepted is not None else undecided if undecided is not None else closest
    stats = diagnosis_stats(problem, reference, before, after, to_user)
    where = reason = None
    notes: list[str] = []
    if undecided is not None and accepted is None:
        candidate = ("the expected computation" if undecided is before
                     else describe(undecided.explanation, baseline))
        reason = ev.cannot_decide_reason(undecided.evidence, candidate, undecided.explanation.precision,
                                         subnormal=problem.has_subnormals(undecided.explanation.precision))
    elif verdict is Verdict.UNEXPLAINED and all_clipped(problem, storages):
        reason = (f"cannot decide: every element of the output sits at {all_clipped(problem, storages)}, which "
                  "an activation or the integer type gives for any sums beyond it: the output says nothing about "
                  "the computation (a verdict needs at least "
                  f"{100 * ev.MIN_UNCLIPPED_FRACTION:.0f}% of the output unclipped).")
    elif verdict is Verdict.UNEXPLAINED and after is not None:
        where, detail = mismatch_site(after, kernel_hw, to_user)
        notes.append(detail)
    if verdict is Verdict.UNEXPLAINED and problem.has_subnormals(baseline.precision):
        notes.append(f"the inputs hold subnormal {baseline.precision} values (nonzero, below its smallest "
                     "normal number): TensorFlow on CPU and many GPU kernels flush them to zero (FTZ/DAZ), "
                     "which changes results there; rescale the data, or compare in float64")
    if inputs.kernel_axis is not None:
        notes.append(f"the 1-D kernel was read along the {inputs.kernel_axis} (as a "
                     f"{'(1, k)' if inputs.kernel_axis == 'rows' else '(k, 1)'} kernel)"
                     + (", which explains it more simply than along the rows" if inputs.kernel_axis == "columns"
                        else ""))
    if after is not None and after.clipped and (verdict is not Verdict.UNEXPLAINED or undecided is not None):
        notes.append(clipping_note(after))
    if problem.output.shape[0] > 1 and verdict is not Verdict.UNEXPLAINED:
        notes.append(f"one computation explains all {problem.output.shape[0]} samples of the batch")
    explanation = accepted.explanation if accepted is not None else None
    causes = causes_for(explanation, baseline) if verdict is Verdict.EXPLAINED else ()
    identical = [a for a in alternatives if accepted is not None
                 and same_computation(problem, a, accepted.explanation)]
    fitted_ties = [a for a in alternatives if a not in identical]
    if identical:
        notes.append("these compute exactly the same values here, so they cannot be told apart: "
                     + "; ".join(describe(a, baseline) for a in identical))
    if fitted_ties:
        notes.append("these reproduce the output within the error bound too, with as few changed fields "
                     "(a structural cause is preferred to a fitted bias or scale): "
                     + "; ".join(describe(a, baseline) for a in fitted_ties))
    if accepted is not None and accepted.detail:
        notes.append(accepted.detail)
    arrays = None
    if keep_arrays:
        # Plots show one image: the sample of the batch where the output is worst.
        worst = after if after is not None else before
        sample = int(np.argmax(worst.mismatch.reshape(worst.mismatch.shape[0], -1).sum(axis=1))) \
            if worst is not None else 0

        def one(array):
            return None if array is None else array[sample]

        arrays = DiagnosisArrays(np.asarray(problem.output[sample], dtype=np.float64), one(reference),
                                 one(before.bound if before is not None else None),
                                 one(after.prediction if after is not None else None),
                                 one(after.bound if after is not None else None))
    return Diagnosis(verdict, explanation, causes, stats, baseline,
                     closest=closest.explanation if (closest is not None and verdict is Verdict.UNEXPLAINED) else None,
                     alternatives=tuple(alternatives), where=where, reason=reason, notes=tuple(notes),
                     arrays=arrays, cannot_decide=reason is not None,
                     evidence=after.evidence.to_dict() if after is not None and after.evidence else None)
