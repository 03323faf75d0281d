"""The staged search over the whole output: which passes run (direct, Winograd, FFT, a
boundary per axis, a constant border) and how their candidates are confirmed.

Each pass runs its search (`Search`) over the geometry stages, simplest first, and
confirms the simplest survivor on the whole output; candidates as simple that also hold
are alternatives. A fitted bias or scale gives way to an unfitted FFT or Winograd
computation only at rounding level (`prefer_unfitted`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from ..geometry import transform_kernel
from ..vocabulary import BOUNDARIES, Explanation
from .candidates import BOUNDARY_PAIRS, Layout, Structure, winograd_layouts, winograd_precisions
from .evaluation import Full, evaluate_full
from .problem import Problem
from .search import Search
from .windows import extended_image, window_origin


MAX_FULL_CHECKS = 8            # whole-image confirmations before giving up (at least)


# ... or as many as cost this many output elements in all (at most 256): a small output's
# confirmations are cheap, and there stage 1's screen lets many candidates through (fuzz
# case 4404v: a 16-element output whose true cause came after eight rivals that failed).
FULL_CHECK_ELEMENTS = 1 << 14


def border_only(tried: list, kernel_hw) -> bool:
    """True when the nearest candidate so far misses only within the border band."""
    if not tried:
        return False
    nearest = min(tried, key=lambda f: f.bad)
    if nearest.bad == 0:
        return False
    band = max(kernel_hw) * 4 + 4   # dilated and offset windows reach further in
    return not nearest.mismatch[:, band:-band or None, band:-band or None].any()


def algorithm_passes(problem: Problem, baseline: Explanation, layouts: list[Layout], storages) -> list[tuple]:
    """The (algorithm, boundary rules, output storage) passes of the search, in order.

    Direct summation first. When nothing direct explains the output: Winograd for a 3x3
    kernel at stride 1 (what cuDNN and NNPACK pick for such kernels; its componentwise
    bound is tried before the FFT's normwise one, which would also cover its errors), then
    an FFT. Then a different boundary rule per axis, and a constant border, when no single
    rule explains it. A declared Winograd computation is searched with zero padding only
    (no library pads its tiles otherwise). `storages` are the output types the direct
    passes read the output in, in turn (see `diagnose_reading`); the other passes, its own.
    """
    if baseline.algorithm == "winograd":
        return [("winograd", ("zero",), None)]
    passes = [(baseline.algorithm, BOUNDARIES, storage) for storage in storages]
    if baseline.algorithm == "direct":
        if winograd_layouts(problem, layouts) and winograd_precisions(problem.precisions):
            passes.append(("winograd", ("zero",), None))
        passes.append(("fft", ("zero",), None))
    passes += [(baseline.algorithm, BOUNDARY_PAIRS, storage) for storage in storages]
    passes.append((baseline.algorithm, ("constant",), None))
    return passes


def prefer_unfitted(problem: Problem, accepted: Full, baseline: Explanation,
                     keep_arrays: bool = False) -> Optional[Full]:
    """The answer without its fitted bias or scale, computed by Winograd or an FFT, when that
    reproduces the output too (with enough evidence and the negative control): a structural
    cause, which fits nothing, is preferred to a fitted one that changes as many fields (see
    `complexity`). The direct pass runs first, and a bias of a few units in the last place
    can absorb an algorithm's rounding where the direct bound is only just exceeded."""
    expl = accepted.explanation
    if (expl.bias == 0.0 and expl.scale == 1.0) or expl.algorithm != "direct" or expl.boundary != "zero":
        return None
    # Only a fitted parameter at the level of rounding may give way: without it the direct
    # computation must still come within twice its bound at every element (|y - d| <=
    # |y - (d + b)| + |b|, and |b| within the bound where the parameter is only rounding).
    # A larger bias or scale is data the direct bound resolves, and an FFT's loose normwise
    # bound must not absorb it (fuzz case 1270: a bias of -0.364 on a 3x10 output; 1609: a
    # bias of -0.187 below one unit in the last place of the largest float16 outputs but
    # six times the bound of the small ones, both claimed as 'algorithm fft').
    plain = expl.with_(bias=0.0, scale=1.0)
    direct, _ = evaluate_full(problem, plain, "none", needed=accepted.evidence.needed)
    if not direct.worst_ratio <= 2.0:
        return None
    layout = Layout(expl.kernel_transform, expl.padding, tuple(expl.stride), tuple(expl.dilation))
    saved = problem.algorithm, problem.boundaries
    try:
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
    if a.with_(kernel_transform=b.kernel_transform, boundary=b.boundary, scale=b.scale, bias=b.bias) != b:
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
