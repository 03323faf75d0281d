"""The staged search over the whole output: which passes run (direct, Winograd, FFT, a
boundary per axis, a constant border) and how their candidates are confirmed.

Each pass runs its search (`Search`) over the geometry stages, simplest first, and
confirms the simplest survivor on the whole output; candidates as simple that also hold
are alternatives. A fitted bias or scale gives way to an unfitted FFT or Winograd
computation only at rounding level (`prefer_unfitted`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from . import evidence as ev
from ..geometry import pad_before, transform_kernel
from ..vocabulary import BOUNDARIES, Explanation
from .candidates import (BOUNDARY_PAIRS, Layout, Structure, as_explanation, complexity, geometry_changes,
                         winograd_layouts, winograd_precisions)
from .evaluation import Full, evaluate_full, refutes
from .problem import Problem
from .search import Search, offset_radius
from .windows import extended_image, window_origin


MAX_FULL_CHECKS = 8            # whole-image confirmations before giving up (at least)
# ... or as many as cost this many output elements in all (at most 256): a small output's
# confirmations are cheap, and there stage 1's screen lets many candidates through (fuzz
# case 4404v: a 16-element output whose true cause came after eight rivals that failed).
FULL_CHECK_ELEMENTS = 1 << 14


def border_only(tried: list, problem: Problem) -> bool:
    """True when the nearest candidate so far misses only at elements whose windows may reach
    past the image's edge (under its geometry, give or take the search's largest offset): a
    boundary rule changes nothing else, so a pass of boundary rules can mend only those."""
    if not tried:
        return False
    nearest = min(tried, key=lambda f: f.bad)
    if nearest.bad == 0:
        return False
    expl = nearest.explanation
    kernel_hw = transform_kernel(problem.kernel, expl.kernel_transform).shape[:2]
    out_hw = nearest.mismatch.shape[1:3]
    top_left = pad_before(expl.padding, *kernel_hw, *problem.image_hw, tuple(expl.stride), tuple(expl.dilation))
    touching, reach = [], offset_radius(problem)
    for axis in (0, 1):
        starts = np.arange(out_hw[axis]) * expl.stride[axis] + expl.offset[axis] - top_left[axis]
        span = (kernel_hw[axis] - 1) * expl.dilation[axis] + 1
        touching.append((starts - reach < 0) | (starts + span - 1 + reach > problem.image_hw[axis] - 1))
    inside = ~touching[0][:, None] & ~touching[1][None, :]
    return not (nearest.mismatch & inside[None, :, :, None]).any()


def algorithm_passes(problem: Problem, baseline: Explanation, layouts: list[Layout], storages) -> list[tuple]:
    """The (algorithm, boundary rules, output storage, precisions) passes of the search, in order.

    Direct summation first. When nothing direct explains the output: half-precision inputs
    whose sums were kept wide (`Problem.wide_halves`: float inputs rounded to bfloat16 or
    float16, summed and stored in float32 or float64, as JAX's preferred_element_type and
    tensor cores do), a pass of their own (precisions 'wide': zero padding and the declared
    geometry only, as the libraries that keep half sums wide run them). Then Winograd for a 3x3
    kernel at stride 1 (what cuDNN and NNPACK pick for such kernels; its componentwise
    bound is tried before the FFT's normwise one, which would also cover its errors), then
    an FFT. Then a different boundary rule per axis, and a constant border, when no single
    rule explains it. A declared Winograd computation is searched with zero padding only
    (no library pads its tiles otherwise). `storages` are the output types the direct
    passes read the output in, in turn (see `diagnose_reading`); the other passes, its own.
    """
    if baseline.algorithm == "winograd":
        return [("winograd", ("zero",), None, None)]
    passes = [(baseline.algorithm, BOUNDARIES, storage, None) for storage in storages]
    if baseline.algorithm == "direct" and problem.wide_halves:
        passes.append(("direct", ("zero",), None, "wide"))
    if baseline.algorithm == "direct":
        if winograd_layouts(problem, layouts) and winograd_precisions(problem.precisions):
            passes.append(("winograd", ("zero",), None, None))
        passes.append(("fft", ("zero",), None, None))
    passes += [(baseline.algorithm, BOUNDARY_PAIRS, storage, None) for storage in storages]
    passes.append((baseline.algorithm, ("constant",), None, None))
    return passes


def prefer_unfitted(problem: Problem, accepted: Full, baseline: Explanation,
                     keep_arrays: bool = False) -> Optional[Full]:
    """The answer without its fitted bias or scale, computed by Winograd or an FFT, when that
    reproduces the output too (with enough evidence and the negative control): a structural
    cause, which fits nothing, is preferred to a fitted one that changes as many fields (see
    `complexity`). The direct pass runs first, and a bias of a few units in the last place
    can absorb an algorithm's rounding where the direct bound is only just exceeded."""
    expl = accepted.explanation
    unfitted = expl.bias == baseline.bias and expl.scale == baseline.scale
    if unfitted or expl.algorithm != "direct" or expl.boundary != "zero":
        return None
    # Only a fitted parameter at the level of rounding may give way: without it the direct
    # computation must still come within twice its bound at every element (|y - d| <=
    # |y - (d + b)| + |b|, and |b| within the bound where the parameter is only rounding).
    # A larger bias or scale is data the direct bound resolves, and an FFT's loose normwise
    # bound must not absorb it (fuzz case 1270: a bias of -0.364 on a 3x10 output; 1609: a
    # bias of -0.187 below one unit in the last place of the largest float16 outputs but
    # six times the bound of the small ones, both claimed as 'algorithm fft').
    plain = expl.with_(bias=baseline.bias, scale=baseline.scale)
    layout = Layout(expl.kernel_transform, expl.padding, tuple(expl.stride), tuple(expl.dilation))
    saved = problem.algorithm, problem.boundaries
    try:
        # Summed directly, as the answer was (the search leaves `problem` set to its last
        # pass, an FFT's, whose normwise term would loosen this gate).
        problem.algorithm, problem.boundaries = "direct", ("zero",)
        direct, _ = evaluate_full(problem, plain, "none", needed=accepted.evidence.needed)
        if not direct.worst_ratio <= 2.0:
            return None
        for algorithm in ("winograd", "fft"):
            if algorithm == "winograd" and (expl.offset != (0, 0) or not winograd_layouts(problem, [layout])
                                            or expl.precision not in winograd_precisions([expl.precision])):
                continue
            candidate = plain.with_(algorithm=algorithm)
            if len(candidate.changed_fields(baseline)) > len(expl.changed_fields(baseline)):
                continue
            problem.algorithm, problem.boundaries = algorithm, ("zero",)
            full, _ = evaluate_full(problem, candidate, "none", needed=accepted.evidence.needed,
                                     keep_arrays=keep_arrays, keep_values=False)
            if full.ok:
                run_control(Search(problem, [layout]), full, Structure(
                    expl.kernel_transform, expl.padding, "zero", tuple(expl.offset), "none", tuple(expl.stride),
                    tuple(expl.dilation)))
                if full.evidence.decisive:
                    return full
    finally:
        problem.algorithm, problem.boundaries = saved
    return None


def run_control(search: "Search", full: Full, struct: Structure) -> None:
    """Run the negative control on a passing candidate with enough bits (convcheck.evidence)."""
    if full.evidence.decisive and search.decoy_passes(struct, full.explanation.precision):
        full.evidence = replace(full.evidence, decoy_passed=True)


def same_computation(problem: Problem, a: Explanation, b: Explanation) -> bool:
    """True when two explanations differ only in kernel transform or boundary, yet compute
    the same thing: the transformed kernels are equal (a symmetric kernel) and the image
    extended by each boundary is equal where the windows read it (e.g. 'edge' and
    'symmetric' with a one-pixel margin)."""
    # Scale and bias must be the same too: a tie that differs in a fitted value computes
    # other values, and must hold on the whole output itself (issue 20: "scale 1.00001",
    # listed after the sampled check alone, failed its bound by 98x).
    if a.with_(kernel_transform=b.kernel_transform, boundary=b.boundary) != b:
        return False
    ka = transform_kernel(problem.kernel, a.kernel_transform)
    kb = transform_kernel(problem.kernel, b.kernel_transform)
    if ka.shape != kb.shape or not np.array_equal(ka, kb):
        return False
    if a.boundary == b.boundary:
        return True
    image = problem.rounded(a.precision)[0]
    out_h, out_w = problem.output.shape[1:3]
    origin = window_origin(a.padding, ka.shape[:2], a.offset, problem.image_hw, a.stride, a.dilation)
    span = ((out_h - 1) * a.stride[0] + 1, (out_w - 1) * a.stride[1] + 1)
    wide = ((ka.shape[0] - 1) * a.dilation[0] + 1, (ka.shape[1] - 1) * a.dilation[1] + 1)
    return all(np.array_equal(extended_image(sample, a.boundary, origin, span, wide),
                              extended_image(sample, b.boundary, origin, span, wide)) for sample in image)


@dataclass
class Found:
    """What the staged search has found so far (see `search_passes`).

    `accepted`: the answer, a candidate that holds on the whole output with enough
    evidence; `undecided`: the first that holds but cannot decide; `alternatives`: as
    simple as the answer and holding too; `tried`: every candidate confirmed on the whole
    output (the expected computation first), for the closest one when nothing holds;
    `best_rejected`: (search, (structure, scale, bias), storage) of the structure nearest
    on the samples in the first search; `weak`: the first candidate within its bound whose
    fitted parameter the data cannot tell from its default (`fits.undetermined`).
    """

    accepted: Optional[Full] = None
    undecided: Optional[Full] = None
    alternatives: list = field(default_factory=list)
    tried: list = field(default_factory=list)
    best_rejected: Optional[tuple] = None
    weak: Optional[Full] = None   # within the bound, but with a fitted parameter the data do not determine
    refuted: Optional[str] = None   # the output's values refute a wider storage (this half format's values)
    grid: bool = False   # and they lie on a fixed-point grid: quantised, no evidence of the half format
    searched: int = 1    # the most candidates a stage's evidence rule counted (ev.needed_bits)

    def answer_changes(self, baseline: Explanation) -> int:
        """How many fields the answer changes (the accepted explanation's)."""
        return len(self.accepted.explanation.changed_fields(baseline))


def search_passes(problem: Problem, baseline: Explanation, shared: Explanation, layouts: list[Layout],
                  found: Found, *, storages, keep_arrays: bool, readings: int, narrow: bool,
                  near: bool = False) -> None:
    """Run the passes of `algorithm_passes` in order, each over the geometry stages (fewest
    changed geometry fields first), until an answer is accepted or a candidate holds but
    cannot decide; records what it finds in `found`.

    A later pass runs after an answer only as a rival: an exact reading of an integer
    output after its rounded reading, which replaces the answer when strictly simpler.
    `shared` carries the fields every candidate of this reading shares; `readings` how
    many readings the whole diagnosis searches (the evidence rule counts every candidate
    of every pass and reading); `narrow` keeps the first pass and stage only; `near` (the
    expected computation holds at most elements already) searches its own geometry only:
    another kernel transform, offset, padding, stride or dilation moves nearly every
    window, so it cannot keep the elements that hold and mend the others; what can is a
    value-level change (precision, algorithm, a fitted scale or bias, an activation, the
    output's type, a boundary rule at the border). Leaves `problem` set to the last pass
    that ran (its algorithm, boundaries and storage).
    """
    if near:
        layouts = [lay for lay in layouts if lay == Layout(baseline.kernel_transform, baseline.padding,
                                                           tuple(baseline.stride), tuple(baseline.dilation))]
    stages = sorted({geometry_changes(lay, baseline) for lay in layouts})
    passes = algorithm_passes(problem, baseline, layouts, storages)
    all_precisions = problem.precisions
    if narrow:
        # Another reading of the weights or the image: a mix-up of layouts, searched at the
        # declared boundary rule only (zero padding unless declared otherwise). A mis-read
        # kernel on top of an undeclared boundary rule stays unexplained rather than costing
        # five searches per reading (issue 21: an unexplained layer in seconds).
        algorithm_pass, boundaries, storage, precisions = passes[0]
        if isinstance(baseline.boundary, str) and baseline.boundary in boundaries:
            boundaries = (baseline.boundary,)
        passes, stages = [(algorithm_pass, boundaries, storage, precisions)], stages[:1]
    fixed = len(shared.changed_fields(baseline))
    previous_boundaries = None
    for index, (algorithm_pass, boundaries, storage, precisions) in enumerate(passes):
        rival = found.accepted is not None and storage is None and precisions is None \
            and boundaries is previous_boundaries and found.answer_changes(baseline) > fixed
        previous_boundaries = boundaries
        if (found.accepted is not None and not rival) or (index > 0 and found.undecided is not None):
            # A candidate that already passes but cannot decide is the answer's best case: a
            # later pass's smaller search must not turn the same data into a verdict.
            break
        if boundaries[0] != BOUNDARIES[0] and not border_only(found.tried, problem):
            continue  # a per-axis rule changes only the border: it cannot mend anything else
        problem.algorithm, problem.boundaries = algorithm_pass, boundaries
        problem.precisions, pass_layouts = all_precisions, layouts
        if precisions == "wide":
            problem.precisions = list(problem.wide_halves)
        if algorithm_pass == "winograd":
            problem.precisions = winograd_precisions(all_precisions)
            pass_layouts = winograd_layouts(problem, layouts)
        problem.set_storage(storage)
        shared = shared.with_(algorithm=algorithm_pass)
        fixed = len(shared.changed_fields(baseline))
        for stage in stages[:1] if precisions == "wide" else stages:
            if found.accepted is not None and found.answer_changes(baseline) <= stage + fixed:
                break  # every candidate of this stage changes at least as many fields
            stage_layouts = [lay for lay in pass_layouts if geometry_changes(lay, baseline) == stage]
            if not stage_layouts or not problem.precisions:
                continue
            search = Search(problem, stage_layouts, near=near)
            # Every pass may run before a verdict (each only when the ones before found
            # nothing), so the verdict is chosen among the candidates of all of them.
            searched = search.size * len(stages) * readings * len(passes)
            found.searched = max(found.searched, searched)
            needed = ev.needed_bits(searched)
            survivors, rejected = search.structures()
            found.best_rejected = found.best_rejected or (rejected and (search, rejected, storage))
            candidates = sorted(((complexity(struct, q, baseline, fixed, problem.storage[q], search.outs), struct, q)
                                 for struct in survivors for q in problem.precisions), key=lambda item: item[0])
            _confirm(problem, search, candidates, found, baseline, shared, needed=needed, keep_arrays=keep_arrays)
    problem.precisions = all_precisions


def _confirm(problem: Problem, search: Search, candidates: list, found: Found, baseline: Explanation,
             shared: Explanation, *, needed: float, keep_arrays: bool) -> None:
    """Confirmation: each sampled survivor, simplest first, that also passes its precision's
    exact bound on the samples is evaluated on the whole output (and, if it holds, put to
    the negative control), within a budget of whole-output checks. The first to hold with
    enough evidence is the answer; later ones as simple are alternatives when they hold
    too; a strictly simpler one of a rival pass replaces the answer."""
    full_checks = tie_checks = 0
    budget = max(MAX_FULL_CHECKS, min(256, FULL_CHECK_ELEMENTS // max(1, problem.output.size)))
    for key, struct, q in candidates:
        if found.accepted is not None and key[0] > found.answer_changes(baseline):
            break
        if full_checks >= budget or tie_checks >= budget:
            break
        ok, scale, bias, _ = search.sampled_check(struct, q)
        if not ok:
            continue
        expl = as_explanation(struct, q, scale, bias, shared, problem.storage[q])
        if found.refuted is not None and refutes(problem, expl, found.refuted):
            continue   # the output's values refute this candidate's storage (evaluation.refutes)
        if found.accepted is not None and key[0] < found.answer_changes(baseline):
            # A rival pass's strictly simpler candidate: it replaces the answer if it holds.
            full, _ = evaluate_full(problem, expl, struct.fit, needed=needed, keep_arrays=keep_arrays,
                                    keep_values=False)
            full_checks += 1
            if full.ok:
                run_control(search, full, struct)
                if full.evidence.decisive:
                    found.accepted, found.alternatives = full, []
            continue
        if found.accepted is not None:
            tie_checks += _tie(problem, search, struct, expl, found, needed)
            continue
        full, _ = evaluate_full(problem, expl, struct.fit, needed=needed, keep_arrays=keep_arrays, keep_values=False)
        full_checks += 1
        found.tried.append(full)
        if full.bad == 0 and full.undetermined and found.weak is None:
            found.weak = full
        if full.ok:
            run_control(search, full, struct)
            if full.evidence.decisive:
                found.accepted = full
            elif found.undecided is None:
                found.undecided = full


def _tie(problem: Problem, search: Search, struct: Structure, expl: Explanation, found: Found, needed: float) -> int:
    """A candidate as simple as the answer: an alternative when it reproduces the output too.
    Returns how many whole-output checks it cost (0 or 1)."""
    accepted = found.accepted.explanation
    if accepted == expl or expl.changed_fields(accepted) == ("precision",):
        return 0  # the answer itself, or at another precision: implied, not a rival
    if same_computation(problem, expl, accepted):
        found.alternatives.append(expl)
        return 0
    tie, _ = evaluate_full(problem, expl, struct.fit, needed=needed, keep_values=False)
    if tie.ok:
        run_control(search, tie, struct)
    if tie.ok and tie.evidence.decisive:
        found.alternatives.append(tie.explanation)
    return 1
