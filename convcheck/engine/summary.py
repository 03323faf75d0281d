"""What a diagnosis says besides its verdict: the statistics before and after, where a
mismatch sits, and the notes on what the verdict rests on."""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import precision as prec
from ..results import Stats
from .clipping import clip_limits, clipped_mask
from .evaluation import Full
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
    if after is not None:
        residual_after, error_bound = after.max_residual, after.max_bound
        ratio, bad_after = after.worst_ratio, after.bad
        if after.clipped and after.compared:
            unclipped = (after.compared - after.clipped) / after.compared
    return Stats(max_abs, max_rel, mismatched, total, worst, residual_after, error_bound,
                 bound_ratio=ratio, worst_output=worst_out, worst_reference=worst_ref,
                 mismatched_after=bad_after, unclipped_fraction=unclipped)
