"""When can the data decide? The evidence rule behind every `equal` and `explained` verdict.

Passing the error bound is necessary, not sufficient: a bound as wide as the values it
judges, an output too small for the parameters fitted to it, or windows that read only
zeros would let *any* output pass, and a verdict that could not have failed says nothing.
So a candidate that passes must also show that the test had power.

The rule, from first principles. At element i the candidate predicts C_i with bound B_i,
and |C_i| <= |s| A_i where A_i = |x| (*) |k| (the magnitudes the sum runs over, s the
scale). A computation unrelated to the candidate but over the same magnitudes lands
anywhere in [-|s| A_i, |s| A_i]; the chance that it falls within +-B_i of C_i is at most
B_i / (|s| A_i). Element i therefore carries

    bits_i = log2(|s| A_i / B_i), clipped to [0, 24]

bits of evidence: 0 where the bound is as wide as the values (vacuous) or where the window
reads only zeros (A_i = 0: an offset that moves it off the image, an all-zero image).
Positions whose windows give identical values (a flat region, windows that all read the
same replicated edge) are one draw: only one of them counts. No
element counts for more than 24 bits (float32's significand): integers, ramps and
repeated values make coincidences likelier than a continuous model says. Each fitted
parameter (a bias, a scale) can be chosen to match one element exactly, so the fitted
parameters cost the largest per-element contributions. What is left must reach

    20 bits (a chance pass below one in a million)                   for `equal`, and
    20 + log2(number of candidates the search considered)   bits    for `explained`

(the search tries many candidates, so one of them passing by chance must stay below one
in a million too: a Bonferroni correction). Every other reading of the inputs that `explain`
searches (the kernel's axes in another order, the image's channels reversed: engine
`_other_readings`) is a whole further search, so the number of readings multiplies the count.

Elements are not always independent (identical windows, a 1x1 kernel whose fitted scale
absorbs any other kernel), so the count is backed by a negative control: the same
candidate with three random decoy kernels, scale and bias refitted, must fail. Below
either test the verdict is `unexplained` with a reason that says *cannot decide* and
why, never "a genuine mismatch".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE_BITS = 20.0
ELEMENT_BITS_CAP = 24.0


@dataclass(frozen=True)
class Evidence:
    """How much a passing candidate's test could have failed, in bits (see module docstring)."""

    bits: float          # evidence left after the fitted parameters
    needed: float
    compared: int        # elements compared
    informative: int     # elements carrying at least one bit
    fitted: int          # parameters fitted to the output
    raw_bits: float      # evidence before the fitted parameters took their share
    decoy_passed: bool = False   # the negative control passed too (see engine: decoy_passes)

    @property
    def decisive(self) -> bool:
        return self.bits >= self.needed and not self.decoy_passed

    def to_dict(self) -> dict:
        return {"bits": round(self.bits, 2), "needed": round(self.needed, 2),
                "compared": self.compared, "informative": self.informative, "fitted": self.fitted,
                "decoy_passed": self.decoy_passed}


def needed_bits(candidates: int) -> float:
    """The evidence a verdict needs when it was chosen among `candidates` computations."""
    return CONFIDENCE_BITS + math.log2(max(1, candidates))


def weigh(values: np.ndarray, magnitude: np.ndarray, bound: np.ndarray, *, scale: float, fitted: int,
          needed: float) -> Evidence:
    """The evidence of a candidate that passed: `values` its correlation values (Ho, Wo, O),
    `magnitude` A = |x| (*) |k| of its inputs, `bound` its elementwise bound, `fitted` how
    many parameters were fitted to the output.

    Positions whose windows give identical values are one draw, not several: only the
    first of each counts (a flat region, windows that all read the same replicated edge).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        bits = np.log2(np.multiply(magnitude, abs(scale)) / bound)
    bits = np.nan_to_num(bits, nan=0.0, posinf=ELEMENT_BITS_CAP, neginf=0.0)
    np.clip(bits, 0.0, ELEMENT_BITS_CAP, out=bits)
    outs = values.shape[-1]
    row_bits = bits.reshape(-1, outs).sum(axis=1)
    informative = int(np.count_nonzero(bits >= 1.0))
    rows = np.flatnonzero(row_bits > 0)
    # Distinct windows among a few thousand informative positions settle any realistic
    # `needed` (at most 24 bits each); all of them only when those do not suffice.
    for chosen in (rows[np.linspace(0, rows.size - 1, _SUBSET).astype(int)] if rows.size > _SUBSET else rows,
                   rows):
        _, first = np.unique(values.reshape(-1, outs)[chosen], axis=0, return_index=True)
        distinct = np.sort(row_bits[chosen[first]])
        raw = float(distinct.sum())
        taken = float(distinct[distinct.size - min(fitted, distinct.size):].sum()) if fitted else 0.0
        if raw - taken >= needed or chosen.size == rows.size:
            break
    return Evidence(raw - taken, needed, int(bits.size), informative, fitted, raw)


_SUBSET = 4096


def cannot_decide_reason(evidence: Evidence, candidate: str, precision: str, *, subnormal: bool) -> str:
    """A sentence saying why the data cannot decide, naming the candidate that passed."""
    count = evidence.compared
    elements = f"{count} element{'s' if count != 1 else ''}"
    head = (f"cannot decide: {candidate} reproduces the output within the error bound, but "
            f"{elements} {'give' if count != 1 else 'gives'} only {evidence.bits:.0f} bits of evidence "
            f"where {evidence.needed:.0f} are needed")
    if evidence.decoy_passed and evidence.bits >= evidence.needed:
        head = (f"cannot decide: {candidate} reproduces the output within the error bound, but so does "
                "the same computation with a random kernel")
        why = ("the windows are too alike, the kernel too small for the fitted scale, or the bound too wide "
               "for the data to tell one kernel from another")
    elif evidence.informative == 0:
        if subnormal:
            why = (f"the inputs hold subnormal values, where {precision}'s error bound is as large as "
                   "the values themselves (TensorFlow on CPU also flushes them to zero); rescale the data")
        else:
            why = ("every window reads only zeros, or the bound is as wide as the values: "
                   "the output would pass whatever the kernel was")
    elif evidence.fitted and evidence.raw_bits - evidence.bits >= evidence.raw_bits / 2:
        why = (f"{evidence.fitted} parameter{'s' if evidence.fitted != 1 else ''} fitted to the output "
               f"use{'s' if evidence.fitted == 1 else ''} up most of what {elements} can tell")
    elif evidence.informative < count / 2:
        why = (f"only {evidence.informative} of {elements} carry information "
               f"(the rest read zeros, or {precision}'s bound is as wide as their values)")
    else:
        why = "too few elements to rule out a coincidence among the candidates searched"
    return f"{head} ({why})."
