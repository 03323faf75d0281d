"""What a diagnosis says besides its verdict: the statistics before and after, where a
mismatch sits, and the notes on what the verdict rests on."""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import precision as prec
from ..geometry import transform_kernel
from ..results import Stats
from .clipping import clip_limits, clipped_mask, clipped_values
from .evaluation import Full, values_at
from .problem import Problem
from .statistics import Differences




def mismatch_site(full: Full, kernel_hw: tuple[int, int], to_user) -> tuple[str, str]:
    """Where a mismatch sits: (category, detail sentence); `to_user` maps canonical indices.

    Read from reductions of the mask (never an index array per mismatched element)."""
    bad = full.mismatch
    count = full.bad
    total = full.compared or bad.size
    out_h, out_w = bad.shape[1:3]
    band = max(kernel_hw)
    all_on_border = not bad[:, band:out_h - band, band:out_w - band].any()
    where_batch = ""
    if bad.shape[0] > 1:
        hit = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))
        where_batch = (f" (in {hit.size} of {bad.shape[0]} samples of the batch"
                       + (f": sample {hit[0]}" if hit.size == 1 else "") + ")")
    if count <= max(3, total // 100) and not all_on_border:
        positions = ", ".join(str(list(to_user(idx))) for idx in _first_true(bad, 5))
        return "a few pixels", (f"{count} of {total} elements differ, at {positions}" + (" ..." if count > 5 else "")
                                + where_batch)
    if all_on_border:
        return "border", f"{count} of {total} elements differ, all within {band} pixels of the edge{where_batch}"
    if count > total // 2:
        return "everywhere", f"{count} of {total} elements differ, across the whole output{where_batch}"
    rows = np.flatnonzero(bad.any(axis=(0, 2, 3)))
    cols = np.flatnonzero(bad.any(axis=(0, 1, 3)))
    return "a region", (f"{count} of {total} elements differ, in rows {rows.min()}-{rows.max()}, "
                        f"columns {cols.min()}-{cols.max()}{where_batch}")


def _first_true(mask: np.ndarray, count: int) -> list:
    """The first `count` indices (in C order) where `mask` is True, reading it a block at a time."""
    found: list = []
    for n in range(mask.shape[0]):
        step = max(1, (1 << 20) // max(1, mask[n, :1].size))
        for r0 in range(0, mask.shape[1], step):
            for idx in np.argwhere(mask[n, r0:r0 + step])[:count - len(found)]:
                found.append((np.int64(n), np.int64(r0 + idx[0]), idx[1], idx[2]))
            if len(found) >= count:
                return found
    return found


def all_clipped(problem: Problem, storages) -> Optional[str]:
    """The limits ('0', '0 or 6', '0 or 255', ...) at which every output element sits, when some
    activation or integer type the search tried clips them all; else None."""
    for storage in storages:
        for activation in problem.activations_for(storage):
            limits = clip_limits(activation, storage)
            clipped = clipped_mask(problem.output, limits)
            if clipped is not None and clipped.all():
                values = sorted({float(v) for v in np.unique(problem.output)})
                return " or ".join(f"{v:g}" for v in values)
    return None


def clipping_note(full: Full) -> str:
    """How much of the output a verdict with clipped elements rests on."""
    expl = full.explanation
    what = []
    if expl.activation != "linear":
        what.append("clipped by the " + {"relu": "ReLU (to 0)", "relu6": "ReLU6 (to 0 or 6)"}[expl.activation])
    if expl.output_precision in prec.INTEGER_RANGES:
        low, high = prec.INTEGER_RANGES[expl.output_precision]
        what.append(f"saturated to {expl.output_precision}'s range [{low}, {high}]")
    compared = full.compared or 1
    kept = compared - full.clipped
    return (f"{full.clipped} of {compared} elements are {' or '.join(what)}: each says only that its sum lay "
            f"beyond the limit (checked within the bound), so the verdict rests on the other {kept} "
            f"({100 * kept / compared:.1f}% of the output)")


def diagnosis_stats(problem: Problem, reference, before: Optional[Full], after: Optional[Full], to_user) -> Stats:
    """The numbers of a diagnosis; for a batch, the worst element over all samples."""
    total = int(problem.output.size)
    max_abs = max_rel = mismatched = worst = worst_out = worst_ref = None
    if reference is not None and before is not None:
        differences = reference if isinstance(reference, Differences) else Differences.of(problem.output, reference)
        max_abs = differences.max_abs
        max_rel = float(np.max(differences.relative)) if differences.relative else None
        mismatched = before.bad
        worst = to_user(differences.index)
        worst_out = float(problem.output[differences.index])
        worst_ref = differences.reference_at
    residual_after = error_bound = ratio = bad_after = unclipped = None
    left = (0, None, 0)
    if after is not None:
        residual_after, error_bound = after.max_residual, after.max_bound
        ratio, bad_after = after.worst_ratio, after.bad
        if after.clipped and after.compared:
            unclipped = (after.compared - after.clipped) / after.compared
        left = left_out(problem, after)
    return Stats(max_abs, max_rel, mismatched, total, worst, residual_after, error_bound,
                 bound_ratio=ratio, worst_output=worst_out, worst_reference=worst_ref,
                 mismatched_after=bad_after, unclipped_fraction=unclipped, left_out=left[0],
                 left_out_max_abs_diff=left[1], left_out_outside_range=left[2])


def left_out(problem: Problem, full: Full) -> tuple[int, Optional[float], int]:
    """(how many elements `full`'s explanation leaves out, how far they are from its
    computation without the offset, how many lie outside the range of every compared element
    by more than the bound): CONTRACT section 2's offset compares only the elements whose
    shifted window the reference has; the others are said, never dropped in silence
    (issue 20)."""
    expl = full.explanation
    batch, out_h, out_w, outs = problem.output.shape
    row_ok, col_ok = problem.compared_mask(expl, np.arange(out_h), np.arange(out_w), (out_h, out_w))
    mask = ~(row_ok[:, None] & col_ok[None, :])
    if not mask.any():
        return 0, None, 0
    chosen = np.flatnonzero(np.broadcast_to(mask, (batch, out_h, out_w)).ravel())
    unshifted = expl.with_(offset=(0, 0))
    kernel = transform_kernel(problem.rounded_kernel(expl.precision), expl.kernel_transform)
    values, _ = values_at(problem, unshifted, kernel, chosen, (0, 0), (out_h, out_w))
    scale, bias = (np.asarray(v, dtype=np.float64) for v in (expl.scale, expl.bias))
    values = clipped_values(values * scale + bias, clip_limits(expl.activation, expl.output_precision))
    output = problem.output.reshape(-1, outs)[chosen]
    kept = np.asarray(problem.output)[:, row_ok][:, :, col_ok]
    low, high = (float(np.min(kept)), float(np.max(kept))) if kept.size else (0.0, 0.0)
    margin = full.max_bound if np.isfinite(full.max_bound) else 0.0
    outside = int(np.count_nonzero((output < low - margin) | (output > high + margin)))
    return int(chosen.size * outs), float(np.max(np.abs(output - values))), outside
