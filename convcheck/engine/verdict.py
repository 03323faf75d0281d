"""The verdict for one reading of the inputs, in the order the README's "How a verdict is
reached" tells it: set-up, the expected computation, the search passes (with confirmation
and alternatives), the closest candidate when nothing holds, then the statistics and
notes of the `Diagnosis`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np

from . import evidence as ev
from . import precision as prec
from ..errors import InputError
from ..geometry import geometry_pair, normalize_padding, output_size
from ..results import Diagnosis, Stats
from ..vocabulary import ALGORITHMS, BOUNDARIES, OUTPUT_PRECISIONS, PADDINGS, Explanation, Verdict, causes_for, describe
from ..geometry import transform_kernel
from .candidates import Layout, as_explanation, expected_structure, geometry_changes, layouts_for
from .clipping import clip_limits, clipped_values
from .evaluation import REFUTING_ELEMENTS, Full, evaluate_full, storage_refuted
from .passes import Found, prefer_unfitted, run_control, same_computation, search_passes
from .problem import Problem
from .reference import correlate, correlate_blocks
from .search import Search
from .statistics import Differences, index_in_user_shape
from .summary import all_clipped, clipping_note, diagnosis_stats, mismatch_site
from .windows import extended_image, window_origin


@dataclass(frozen=True)
class DiagnosisArrays:
    """Whole-image arrays behind a diagnosis, kept for plots (`keep_arrays=True`)."""

    output: np.ndarray
    reference: Optional[np.ndarray]
    bound_before: Optional[np.ndarray]
    reproduction: Optional[np.ndarray]
    bound_after: Optional[np.ndarray]


def expected_computation(inputs, padding, stride, dilation, groups, declared: Optional[dict] = None) -> Explanation:
    """The expected computation: what the caller declared (the options, and `declared`: the
    other fields of CONTRACT section 2a, normalised by `convcheck.declared`), the contract's
    defaults elsewhere."""
    declared_groups = groups if groups is not None else getattr(inputs, "expected_groups", 1)
    fields = dict(declared or {})
    return Explanation(padding=padding, stride=tuple(stride), dilation=tuple(dilation), groups=int(declared_groups),
                       output_layout=getattr(inputs, "declared_output_layout", "hwc"),
                       kernel_layout=getattr(inputs, "kernel_layout", "hwio"),
                       kernel_axis=getattr(inputs, "kernel_axis", None), **fields)


@dataclass
class _Reading:
    """One reading's set-up: the problem, the expected computation (`baseline`), the fields
    every candidate of this reading shares (`shared`, `fixed` of them changed), the layouts
    the output's shape allows (computed when first asked: an expected computation that holds
    needs none), and how to index the user's output (`to_user`)."""

    inputs: object
    problem: Problem
    baseline: Explanation
    shared: Explanation
    fixed: int
    to_user: Callable
    _layouts: Optional[list] = None

    @property
    def layouts(self) -> list:
        if self._layouts is None:
            self._layouts = layouts_for(self.problem, self.baseline)
        return self._layouts

    def expected_layout(self) -> Optional[Layout]:
        """The declared geometry's layout when it gives the output's size, else None."""
        baseline, problem = self.baseline, self.problem
        kh, kw = transform_kernel(problem.kernel, baseline.kernel_transform).shape[:2]
        size = output_size(baseline.padding, *problem.image_hw, kh, kw, tuple(baseline.stride),
                           tuple(baseline.dilation))
        if size != tuple(problem.output.shape[1:3]):
            return None
        return Layout(baseline.kernel_transform, baseline.padding, tuple(baseline.stride), tuple(baseline.dilation))


def diagnose_reading(inputs, *, padding="same", precision: Optional[str] = None, stride=(1, 1),
                     dilation=(1, 1), groups: Optional[int] = None, algorithm: str = "direct",
                     keep_arrays: bool = False, output_transform: str = "identity", readings: int = 1,
                     narrow: bool = False, output_precision: Optional[str] = None,
                     expected: Optional[dict] = None, declared_uncertainty: Optional[dict] = None) -> Diagnosis:
    """`diagnose` for one reading of the kernel and output (see there).

    `readings` is how many readings of the kernel and image the whole diagnosis searches
    (each is one more search: the evidence rule's candidate count grows by that factor);
    `narrow` searches only the simplest geometry stage and the first pass (see
    `convcheck.engine.readings`)."""
    _check_options(padding, precision, algorithm, output_precision)
    reading = _set_up(inputs, padding=padding, precision=precision, stride=stride, dilation=dilation, groups=groups,
                      algorithm=algorithm, output_transform=output_transform, output_precision=output_precision,
                      expected=expected, declared_uncertainty=declared_uncertainty)
    problem, baseline = reading.problem, reading.baseline
    if reading.expected_layout() is None and not reading.layouts:
        return _no_layout(reading)
    found = Found()
    before, reference = _expected(reading, found, keep_arrays)
    unheld = _declared_storage_unheld(problem)
    if unheld is not None:
        # Every candidate stored in the declared format is refuted by the values: the search
        # stores in the format the output shows instead, and names it (output_precision).
        found.accepted = found.undecided = found.refuted = None
        problem.declared_storage = _shown_storage(problem)
        problem.set_storage(None)
        if before is not None and reading.expected_layout() is not None:   # as `_expected` asks
            found.refuted = storage_refuted(problem, before.explanation.with_(output_precision=problem.declared_storage))
            found.grid = found.refuted is not None and problem.holds(found.refuted, grid=True)
    # An output of a small integer type (uint8, int8, uint16, int16): rounded and saturated
    # to its type first (on a tie that reading wins: a narrower float's rounding can mimic an
    # integer's), then, as a rival, computed exactly, which wins only when strictly simpler.
    storages = [problem.integer_output] if problem.declared_storage else \
        [problem.integer_output, None] if problem.integer_output else [None]
    if found.accepted is None:   # else every pass stops before it starts (the layouts unneeded)
        search_passes(problem, baseline, reading.shared, reading.layouts, found, storages=storages,
                      keep_arrays=keep_arrays, readings=readings, narrow=narrow,
                      near=_near(problem, before, baseline))
    if found.accepted is not None and found.accepted is not before and baseline.algorithm == "direct" and not narrow:
        unfitted = prefer_unfitted(problem, found.accepted, baseline, keep_arrays)
        if unfitted is not None:
            found.alternatives, found.accepted = [found.accepted.explanation], unfitted
    if found.refuted is not None and not found.grid and before is not None and reading.expected_layout() is not None:
        _stored_narrower(reading, found, before, keep_arrays)
    if found.accepted is None and found.undecided is None and found.refuted is not None and before.ok:
        found.undecided = before   # it holds, but the output's values say it is not what was run
    closest = None
    if found.accepted is None and found.undecided is None:
        closest = _closest(reading, found, before, keep_arrays)
    diagnosis = _diagnosis(reading, found, before, reference, closest, storages, keep_arrays)
    if unheld is None:
        return diagnosis
    return replace(diagnosis, notes=diagnosis.notes + (
        f"the output's values are not all {unheld} values, as a result stored in {unheld} (declared) would be, "
        f"whatever the error bound: candidates were stored in {problem.declared_storage} instead",))


def _declared_storage_unheld(problem: Problem) -> Optional[str]:
    """The declared output precision (a float format narrower than the output array's) when
    some output value is not one of its values; else None. A result stored in bfloat16 or
    float16 (or float32, in a float64 array) is a value of that format, every element, whatever
    the bound: the bound of a half format's rounding (2^-9 of each value) is wide enough to
    cover a float32 result, and a float32 layer declared `--output-precision float16` was
    `equal` (hunt 4: 0.05% of its values were float16 values). Not for an output holding a
    NaN (never a stored value, and a mismatch anyway)."""
    storage = problem.declared_storage
    if storage not in prec.SIGNIFICAND_BITS or problem.output_dtype.kind != "f" or not problem.output.size:
        return None
    if prec.SIGNIFICAND_BITS[storage] >= prec.SIGNIFICAND_BITS.get(problem.output_dtype.name, 0):
        return None   # the array holds nothing but that format's values (float16 values in float16)
    if problem.holds(storage) or np.isnan(np.min(problem.output)):
        return None
    return storage


def _shown_storage(problem: Problem) -> str:
    """The format candidates store in once the declared one is refuted: the precision's own
    (float32 for a float32 run), or the output array's where that is narrower (a float16 array
    holds a float16 result), or wider where the own format cannot hold the values."""
    own = prec.stored_in(problem.baseline.precision, None)
    array = problem.output_dtype.name
    if array in prec.SIGNIFICAND_BITS and prec.SIGNIFICAND_BITS[array] < prec.SIGNIFICAND_BITS[own]:
        return array
    return own if problem.holds(own) else array


def _stored_narrower(reading: _Reading, found: Found, before: Full, keep_arrays: bool) -> None:
    """When the output's values refute the expected storage (`found.refuted`, a half format): the
    expected computation with its result stored in that format (output_precision), the other
    reading of the same values. It is the answer when the search found none; beside a found
    one (inputs rounded to the half format, 'precision'), an alternative: on a wide layer both
    hold within their bounds, and which one ran the output cannot say (the inputs' rounding
    moves a sum by about 2^-11 of it over the square root of its taps, below either bound)."""
    problem = reading.problem
    expl = before.explanation.with_(output_precision=found.refuted)
    saved = problem.storage, problem.algorithm, problem.boundaries
    problem.set_storage(found.refuted)   # the negative control's bound stores in it too
    # The search leaves `problem` set to its last pass (an FFT's, whose normwise term every
    # bound then carries): this candidate is the expected computation, summed as declared.
    # Hunt 4: with the FFT pass's bound, a bfloat16-stored layer with one channel's bias off
    # by 0.01 (or a kernel tap off by 0.5%) was `explained` by output_precision alone.
    problem.algorithm, problem.boundaries = reading.baseline.algorithm, BOUNDARIES
    try:
        # One more candidate than the search counted: the evidence rule's count, as its own.
        full, _ = evaluate_full(problem, expl, "none", needed=ev.needed_bits(found.searched + 1),
                                keep_arrays=keep_arrays, keep_values=False)
        if full.ok:
            run_control(Search(problem, [reading.expected_layout()]), full, expected_structure(reading.baseline))
    finally:
        problem.storage, problem.algorithm, problem.boundaries = saved
    if not (full.ok and full.evidence.decisive):
        return
    if found.accepted is None:
        found.accepted, found.undecided = full, None
    elif full.explanation != found.accepted.explanation and full.explanation not in found.alternatives:
        found.alternatives.append(full.explanation)


def _near(problem: Problem, before: Optional[Full], baseline: Explanation) -> bool:
    """Whether the expected computation itself holds at most of the elements that could tell
    another geometry from it (at most half of those beyond its bound): then only value-level
    changes can explain the rest (see `passes.search_passes`).

    Another kernel transform or offset moves a window's values only where the window is not
    flat: where it reads one value throughout (a zero background, a constant image), every
    geometry gives the same sum, and holding there says nothing about the geometry. So the
    mismatches are weighed against the compared elements whose windows are not flat
    (`_informative_positions`), not against all of them (a hunt found a true convolution on a
    zero-background image called a genuine mismatch, and a Sobel kernel's flip named
    'scale -1', with the geometry search skipped). And channel by channel: a flip leaves a
    channel whose kernel is symmetric unchanged, so one channel that fails at most of its
    informative elements is enough to search the geometry (a filter bank of symmetric kernels
    and one Sobel kernel, convolved by scipy, was 'scale [1, 1, 1, -1]')."""
    if before is None or before.bad == 0:
        return False
    expl = before.explanation
    same = (expl.padding == baseline.padding and tuple(expl.stride) == tuple(baseline.stride)
            and tuple(expl.dilation) == tuple(baseline.dilation))
    if not (same and before.compared > 0 and 2 * before.bad <= before.compared):
        return False
    informative = _informative_positions(problem, expl)
    worst = int(np.max(np.count_nonzero(before.mismatch.reshape(-1, before.mismatch.shape[-1]), axis=0)))
    return 2 * worst <= informative


def _informative_positions(problem: Problem, expl: Explanation) -> int:
    """How many compared output positions of `expl` read a window that is not flat: one whose
    pixels (extended per its boundary rule, every channel) are not all equal. A window of
    one pixel along an axis is widened by a pixel each side there (a 1x1 kernel's window is
    always flat, while an offset reads its neighbour). Counted with integral images of the
    neighbour differences: O(pixels)."""
    kernel_hw = transform_kernel(problem.kernel, expl.kernel_transform).shape[:2]
    stride, dilation = tuple(expl.stride), tuple(expl.dilation)
    out_h, out_w = problem.output.shape[1:3]
    wide = [(k - 1) * d + 1 for k, d in zip(kernel_hw, dilation)]
    grow = [1 if w == 1 else 0 for w in wide]
    origin = window_origin(expl.padding, kernel_hw, tuple(expl.offset), problem.image_hw, stride, dilation)
    origin = (origin[0] - grow[0], origin[1] - grow[1])
    wide = [w + 2 * g for w, g in zip(wide, grow)]
    span = ((out_h - 1) * stride[0] + 1, (out_w - 1) * stride[1] + 1)
    row_ok, col_ok = problem.compared_mask(expl, np.arange(out_h), np.arange(out_w), (out_h, out_w))
    compared = row_ok[:, None] & col_ok[None, :]
    rows = np.arange(out_h) * stride[0]
    cols = np.arange(out_w) * stride[1]
    total = 0
    for sample in problem.image:
        image = extended_image(sample, expl.boundary, origin, span, tuple(wide),
                               cval=expl.cval if expl.boundary == "constant" else 0.0)
        # down[r, c]: pixel (r, c) differs from (r + 1, c); right[r, c]: from (r, c + 1).
        down = np.any(image[1:] != image[:-1], axis=-1)
        right = np.any(image[:, 1:] != image[:, :-1], axis=-1)
        changes = _box_counts(down, rows, cols, wide[0] - 1, wide[1]) + \
            _box_counts(right, rows, cols, wide[0], wide[1] - 1)
        total += int(np.count_nonzero((changes > 0) & compared))
    return total


def _box_counts(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray, height: int, width: int) -> np.ndarray:
    """The count of True in mask[r:r + height, c:c + width] for each r in `rows`, c in `cols`
    (an integral image; zero for an empty box)."""
    if height <= 0 or width <= 0 or mask.size == 0:
        return np.zeros((rows.size, cols.size), dtype=np.int64)
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    np.cumsum(np.cumsum(mask, axis=0), axis=1, out=table[1:, 1:])
    r0, c0 = rows[:, None], cols[None, :]
    r1, c1 = np.minimum(r0 + height, mask.shape[0]), np.minimum(c0 + width, mask.shape[1])
    return table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]


def _check_options(padding, precision, algorithm, output_precision) -> None:
    """Refuse option values outside the contract's vocabulary (InputError)."""
    if algorithm not in ALGORITHMS:
        raise InputError(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
    normalize_padding(padding)
    if precision is not None and precision not in prec.SIGNIFICAND_BITS:
        raise InputError(f"precision {precision!r} is not one of {', '.join(prec.SIGNIFICAND_BITS)}; "
                         "pass one of them, or None for the inputs' own precision")
    if output_precision is not None and output_precision not in OUTPUT_PRECISIONS:
        raise InputError(f"output_precision {output_precision!r} is not one of {', '.join(OUTPUT_PRECISIONS)}; "
                         "pass one of them, or None for the precision's own")


def _set_up(inputs, *, padding, precision, stride, dilation, groups, algorithm, output_transform,
            output_precision, expected, declared_uncertainty) -> _Reading:
    """Set-up: the problem, the expected computation and the layouts the output's shape allows."""
    stride, dilation = geometry_pair(stride, "stride"), geometry_pair(dilation, "dilation")
    padding = normalize_padding(padding)
    problem = Problem(inputs, expected_computation(inputs, padding, stride, dilation, groups, expected)
                      .with_(algorithm=algorithm, output_precision=output_precision), precision, output_precision,
                      declared_uncertainty)
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
    output_shape = tuple(inputs.output_shape or problem.output.shape)
    user_axes = getattr(inputs, "output_reading", None)

    def to_user(index):
        return index_in_user_shape(index, output_shape, user_axes)

    return _Reading(inputs, problem, baseline, shared, len(shared.changed_fields(baseline)), to_user)


def _no_layout(reading: _Reading) -> Diagnosis:
    """Unexplained: no padding, stride or dilation gives the output's size."""
    problem, baseline = reading.problem, reading.baseline
    kernel_hw = problem.kernel.shape[:2]
    h, w = problem.image_hw
    sizes = ", ".join(f"{pad} {output_size(pad, h, w, *kernel_hw, baseline.stride, baseline.dilation)}"
                      for pad in PADDINGS)
    reason = (f"output shape {tuple(problem.output.shape[1:3])} fits no padding, stride or dilation of a "
              f"{(h, w)} image with a {tuple(kernel_hw)} kernel ({sizes}); was it cropped?")
    stats = Stats(None, None, None, int(problem.output.size), None, None, None)
    return Diagnosis(Verdict.UNEXPLAINED, None, (), stats, baseline, reason=reason)


def _expected(reading: _Reading, found: Found, keep_arrays: bool):
    """The expected computation, first: evaluated on the whole output, it gives the "before"
    statistics (the reference of the output's own size, at the expected precision, with
    what the caller declared) and, when it holds with enough evidence and nothing else was
    read otherwise, the answer `equal`. Returns (its `Full`, the reference: an array with
    `keep_arrays` or declared values, else its `Differences` from the output), both None when
    no layout with the declared kernel transform gives the output's size."""
    problem, baseline, shared = reading.problem, reading.baseline, reading.shared
    padding = baseline.padding
    expected = reading.expected_layout()
    stats_layout = expected
    if expected is None:
        identity = [lay for lay in reading.layouts if lay.transform == baseline.kernel_transform]
        stats_layout = min(identity, key=lambda lay: geometry_changes(lay, baseline) + (lay.padding != padding)) \
            if identity else None
    if stats_layout is None:
        return None, None
    start = shared.with_(padding=stats_layout.padding, stride=stats_layout.stride, dilation=stats_layout.dilation)
    before, values = evaluate_full(problem, start, "none", needed=ev.needed_bits(1), keep_arrays=keep_arrays)
    reference = _reference(problem, start, values, keep_arrays)
    del values
    found.tried.append(before)
    # The expected computation stores its result in its own precision: an output that
    # precision cannot hold was stored otherwise (see Problem.wide_storage), whatever the bound;
    # one whose values are a narrower format's where chance would not give them was stored in
    # that (evaluation.storage_refuted), whatever the bound.
    if stats_layout == expected and baseline.precision not in problem.wide_storage:
        found.refuted = storage_refuted(problem, before.explanation)
        found.grid = found.refuted is not None and problem.holds(found.refuted, grid=True)
        if before.ok:
            run_control(Search(problem, [expected]), before, expected_structure(baseline))
            if not before.evidence.decisive:
                found.undecided = before
            elif reading.fixed == 0 and found.refuted is None:
                found.accepted = before
    return before, reference


def _reference(problem: Problem, start: Explanation, values, keep_arrays: bool):
    """The reference of the "before" statistics: the expected computation on the inputs as
    loaded (exact in float64), with a declared scale, bias and activation applied. An array,
    or (nothing declared, no plot) its `Differences` from the output computed a block at a
    time. `values` are the expected computation's sums at its precision (the same when the
    inputs' rounding to it is exact)."""
    geometry = dict(padding=start.padding, stride=tuple(start.stride), dilation=tuple(start.dilation),
                    groups=problem.groups, boundary=start.boundary, offset=tuple(start.offset), cval=start.cval)
    if isinstance(values, Differences):
        return values   # the block path measured them against the candidate, declared values and all
    kernel = transform_kernel(problem.kernel, start.kernel_transform)
    limits = clip_limits(start.activation, start.output_precision)
    if not problem.declares_values and limits == (None, None):
        return values if problem.rounding_is_exact(start.precision) else (
            correlate(problem.image, kernel, **geometry)[0] if keep_arrays else Differences.of(
                problem.output, ((n, i0, v) for n, i0, v, _ in correlate_blocks(problem.image, kernel, **geometry))))
    sums = values if problem.rounding_is_exact(start.precision) else correlate(problem.image, kernel, **geometry)[0]
    scale, bias = problem.declared_values("float64")
    return clipped_values(sums * scale + bias, limits)


def _closest(reading: _Reading, found: Found, before: Optional[Full], keep_arrays: bool) -> Optional[Full]:
    """When nothing holds: the candidate with the fewest elements beyond its bound. When only
    the expected computation was tried on the whole output, the structure nearest on the
    samples (from the first, direct pass) is evaluated too, at the precision that fits most
    of them."""
    problem, baseline = reading.problem, reading.baseline
    if found.best_rejected and not any(f is not before for f in found.tried):
        problem.algorithm, problem.boundaries = baseline.algorithm, BOUNDARIES
        shared = reading.shared.with_(algorithm=baseline.algorithm)
        search, (struct, _, _), storage = found.best_rejected
        problem.set_storage(storage)
        fractions = {q: search.sampled_check(struct, q) for q in problem.precisions}
        q = max(problem.precisions, key=lambda name: fractions[name][3])
        _, s, b, _ = fractions[q]
        found.tried.append(evaluate_full(problem, as_explanation(struct, q, s, b, shared, problem.storage[q]),
                                         struct.fit, needed=ev.needed_bits(1), keep_arrays=keep_arrays,
                                         keep_values=False)[0])
    if not found.tried:
        return None
    # Fewest elements beyond the bound; then the simplest (an FFT's looser bound would
    # otherwise look closer than the expected computation itself).
    return min(found.tried, key=lambda f: (f.bad, len(f.explanation.changed_fields(baseline)), f.worst_ratio))


def _diagnosis(reading: _Reading, found: Found, before: Optional[Full], reference, closest: Optional[Full],
               storages, keep_arrays: bool) -> Diagnosis:
    """The statistics, the reason or where the mismatch sits, and the notes: the `Diagnosis`."""
    problem, baseline = reading.problem, reading.baseline
    accepted, undecided = found.accepted, found.undecided
    verdict = (Verdict.EQUAL if accepted is before and accepted is not None
               else Verdict.EXPLAINED if accepted is not None else Verdict.UNEXPLAINED)
    far = closest is not None and closest is not before and not _close(closest, baseline, before)
    if far:
        closest = before   # "nothing close": no far-fetched chain of causes pointing the wrong way
    after = accepted if accepted is not None else undecided if undecided is not None else closest
    stats = diagnosis_stats(problem, reference, before, after, reading.to_user)
    where = reason = None
    notes: list[str] = []
    if undecided is not None and accepted is None and undecided is before and found.refuted is not None:
        expl = before.explanation
        storage = prec.stored_in(expl.precision, expl.output_precision)
        if found.grid:
            reason = (f"cannot decide: the expected computation holds within its error bound, but every value of "
                      f"the output lies on a fixed-point grid (a multiple of one power of two, at most 2^"
                      f"{prec.SIGNIFICAND_BITS[found.refuted]} steps), which a result stored in {storage} is not by "
                      "chance: the output was quantised (a fake-quantisation, an integer type cast back) or stored "
                      "in a narrow format, which no computation of the vocabulary names with enough evidence")
        else:
            reason = (f"cannot decide: the expected computation holds within its error bound, but every value of the "
                      f"output is a {found.refuted} value, which a result stored in {storage} is not by chance (at "
                      f"least {REFUTING_ELEMENTS} elements whose {storage} reference is not one): the result was "
                      f"stored in {found.refuted} or computed in it (a half-precision or mixed-precision run), and "
                      "no such computation holds with enough evidence to name it")
    elif undecided is not None and accepted is None:
        candidate = ("the expected computation" if undecided is before
                     else describe(undecided.explanation, baseline))
        reason = ev.cannot_decide_reason(undecided.evidence, candidate, undecided.explanation.precision,
                                         subnormal=problem.has_subnormals(undecided.explanation.precision))
    elif verdict is Verdict.UNEXPLAINED and found.weak is not None:
        reason = (f"cannot decide: {describe(found.weak.explanation, baseline)} reproduces the output within the "
                  f"error bound, but {found.weak.undetermined}; no computation without it does")
    elif verdict is Verdict.UNEXPLAINED and all_clipped(problem, storages):
        reason = (f"cannot decide: every element of the output sits at {all_clipped(problem, storages)}, which "
                  "an activation or the integer type gives for any sums beyond it: the output says nothing about "
                  "the computation (a verdict needs at least "
                  f"{100 * ev.MIN_UNCLIPPED_FRACTION:.0f}% of the output unclipped).")
    elif verdict is Verdict.UNEXPLAINED and after is not None and after.bad:   # (none: a refuted storage says why)
        where, detail = mismatch_site(after, problem.kernel.shape[:2], reading.to_user)
        notes.append(detail)
    notes += _notes(reading, found, verdict, after, undecided)
    if far:
        notes.append("nothing close: no candidate that changes one or two fields reproduces most of the output, "
                     "so none is shown (the statistics after are the expected computation's)")
    if stats.left_out:
        notes.append(_left_out_note(stats))
    explanation = accepted.explanation if accepted is not None else None
    causes = (causes_for(explanation, baseline, kernel_size=tuple(problem.kernel.shape[:2]))
              if verdict is Verdict.EXPLAINED else ())
    return Diagnosis(verdict, explanation, causes, stats, baseline,
                     closest=closest.explanation if (closest is not None and verdict is Verdict.UNEXPLAINED) else None,
                     alternatives=tuple(found.alternatives), where=where, reason=reason, notes=tuple(notes),
                     arrays=_arrays(problem, before, after, reference) if keep_arrays else None,
                     cannot_decide=reason is not None,
                     evidence=after.evidence.to_dict() if after is not None and after.evidence else None)


def _notes(reading: _Reading, found: Found, verdict: Verdict, after: Optional[Full],
           undecided: Optional[Full]) -> list[str]:
    """The notes on what the verdict rests on: subnormal inputs, a 1-D kernel's axis,
    clipping, a batch, alternatives that compute the same values or tie with fitted ones."""
    problem, baseline, inputs = reading.problem, reading.baseline, reading.inputs
    notes: list[str] = []
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
    if after is not None and after.evidence is not None and after.evidence.dead_channels:
        notes.append(_dead_channels_note(after, baseline))
    if problem.output.shape[0] > 1 and verdict is not Verdict.UNEXPLAINED:
        notes.append(f"one computation explains all {problem.output.shape[0]} samples of the batch")
    accepted = found.accepted
    identical = [a for a in found.alternatives if accepted is not None
                 and same_computation(problem, a, accepted.explanation)]
    fitted_ties = [a for a in found.alternatives if a not in identical]
    if identical:
        notes.append("these compute exactly the same values here, so they cannot be told apart: "
                     + "; ".join(describe(a, baseline) for a in identical))
    if fitted_ties:
        notes.append("these reproduce the output within the error bound too, with as few changed fields "
                     "(a structural cause is preferred to a fitted bias or scale): "
                     + "; ".join(describe(a, baseline) for a in fitted_ties))
    if accepted is not None and accepted.detail:
        notes.append(accepted.detail)
    if accepted is not None and accepted.explanation.precision == "tfloat32" and _in_float16_range(problem):
        notes.append("TF32 cannot be told apart here from inputs rounded to float16 and summed in float32 (JAX "
                     "preferred_element_type=float32, tensor cores with a float32 result): every input lies in "
                     "float16's normal range, where both keep 11 significant bits")
    return notes


def _in_float16_range(problem: Problem) -> bool:
    """Whether every nonzero input lies in float16's normal range (2^-14 to 65504 in
    magnitude), where rounding to float16 keeps 11 significant bits as TF32 does (hunt 4:
    float16-rounded inputs summed in float32 were named TF32, with nothing said)."""
    return max(problem.raw_extent()) <= 65504.0 and not problem.has_subnormals("float16")


def _close(full: Full, baseline: Explanation, before: Optional[Full]) -> bool:
    """Whether an unexplained diagnosis's nearest candidate is close enough to show (issue 21):
    it changes one or two fields, reproduces most of the elements it compares, and mends
    most of those the expected computation (`before`) leaves beyond its bound. Hunt 4: a
    leaky ReLU's output, half its elements beyond the bound of the expected computation, had
    'precision tfloat32' shown as closest for mending 32 of 1,936 of them."""
    return (len(full.explanation.changed_fields(baseline)) <= 2 and full.bad <= full.compared / 2
            and (before is None or full.bad <= before.bad / 2))


def _left_out_note(stats: Stats) -> str:
    """How many elements the offset leaves out, and how far they are (never in silence)."""
    note = (f"{stats.left_out} of {stats.total} elements were left out: the offset moves their windows past the "
            "edge of the reference's (CONTRACT section 2), so they are not compared; they are up to "
            f"{stats.left_out_max_abs_diff:.3g} from the computation without the offset")
    if stats.left_out_outside_range:
        note += (f"; {stats.left_out_outside_range} of them lie outside the range of every compared element: no "
                 "shift of this computation gives them (a wrapped row or column replaced by other values?)")
    return note


def _dead_channels_note(full: Full, baseline: Explanation) -> str:
    """Which channels are dead (every element at a limit) and the bound their bias has, or
    that their expected bias is kept (the data allow it: fits.settle_dead_channels)."""
    dead = full.evidence.dead_channels
    bias, declared = full.explanation.bias, baseline.bias

    def value(b, c):
        return float(b[c]) if isinstance(b, (tuple, list, np.ndarray)) else float(b)

    kept = [c for c in dead if value(bias, c) == value(declared, c)]
    where = ", ".join(f"{c} (bias {value(bias, c):.6g}{', the expected one' if c in kept else ''})"
                      for c in dead[:8]) + (" ..." if len(dead) > 8 else "")
    text = (f"{len(dead)} output channel{'s are' if len(dead) != 1 else ' is'} dead (every element clipped by the "
            f"activation or saturated): channel {where}; such a channel says only on which side of the limit its "
            "sums lay, so its bias is only bounded")
    if len(kept) < len(dead):
        text += (" (reported as the bound: the largest that keeps every sum below the low limit; the smallest "
                 "above the high one)")
    if kept:
        text += ("; the expected bias (declared, or 0) is kept where it lies within that bound" if len(kept) < len(dead)
                 else ", and the expected bias (declared, or 0) lies within the bound, so it is kept")
    return text + ", not a fitted value, and the other channels decide the verdict"


def _arrays(problem: Problem, before: Optional[Full], after: Optional[Full], reference) -> DiagnosisArrays:
    """The whole-output arrays plots show: one image, the sample of the batch where the output
    is worst."""
    worst = after if after is not None else before
    sample = int(np.argmax(worst.mismatch.reshape(worst.mismatch.shape[0], -1).sum(axis=1))) \
        if worst is not None else 0

    def one(array):
        return None if array is None else array[sample]

    return DiagnosisArrays(np.asarray(problem.output[sample], dtype=np.float64), one(reference),
                           one(before.bound if before is not None else None),
                           one(after.prediction if after is not None else None),
                           one(after.bound if after is not None else None))
