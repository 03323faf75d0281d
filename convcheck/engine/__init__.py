"""The diagnosis engine: which computation produced an output? Shared by `explain`, `compare`,
`check`, the pytest helper and the model walk, which import only what `__all__` lists.

A *candidate* is an exact computation in the vocabulary of CONTRACT section 2: transform
the kernel, extend the image by a boundary rule, round the inputs to a precision,
cross-correlate in float64, shift by an offset, fit scale and bias in closed form (one
number, or one per output channel), then an activation (ReLU, ReLU6) and the rounding of
the type the result is stored in. A candidate is accepted only when |output - candidate|
lies within the rigorous error bound of that precision and algorithm at every element
(an element clipped by the activation or saturated to an integer type's range only has to
lie beyond its limit within the bound), with enough evidence that the test could have
failed (`evidence`).

Layering, top to bottom. Each module imports only modules below it (never above, never
in a circle; `tests/test_engine_layers.py` checks it from the import statements):

    readings      diagnose / explain: the readings of the inputs the shapes cannot settle
    verdict       one reading: the expected computation, the search, the Diagnosis
    summary       what a diagnosis reports besides its verdict: statistics, where it misses, notes
    passes        the staged search over the whole output: passes, confirmation, alternatives
    search        stages 1 and 2 on sampled positions, the negative control
    evaluation    a candidate on the whole output (block by block when nothing is fitted)
    statistics    differences from the reference, block by block; indices in the user's layout
    plausibility  FFT, Winograd and TF32 plausibility (they only take explanations away)
    fits          scale, bias and border-value fits
    problem       the numeric problem: the inputs as float64, rounded copies, a candidate's bound
    candidates    structures and layouts the search enumerates, the order it ranks them in
    clipping      activation and integer-saturation limits
    evidence      the evidence rule (when the data can decide)
    winograd      the Winograd tiles and their bound
    bounds        the direct and FFT bounds
    precision     precisions, rounding, the rounding model of a computation
    reference     the float64 reference correlation, in blocks of rows
    threads       a second thread beside the first, one BLAS thread
    windows       the image extended by a boundary rule; the windows outputs read

Beside them, on the precision models alone: `weights` (with `weight_factors`), how one kernel
was turned into another (a layout, a reshape, a flip, a factor per channel, a rounding).

Below the engine: `convcheck.geometry` (CONTRACT section 1's sizes and paddings),
`convcheck.vocabulary` (the fields, their values and sentences), `convcheck.inputs`,
`convcheck.results`, `convcheck.errors`.

Where a new field of the vocabulary goes (CONTRACT section 2):
1. its row in `convcheck.vocabulary` (values, default, cause / fix / why sentences, plain
   label) and its attribute on `Explanation`;
2. how a candidate computes it: `candidates` (a structural field the search enumerates) or
   `problem` / `fits` (a value the data or a fit decide), and the reproduction in
   `evaluation` / `search`;
3. its tests.
"""

from __future__ import annotations

from .precision import native_precision
from .readings import diagnose, explain
from .statistics import index_in_user_shape
from .threads import cores
from .verdict import DiagnosisArrays

__all__ = ["diagnose", "explain", "index_in_user_shape", "native_precision", "cores", "DiagnosisArrays",
           "relate_weights", "WeightsRelation"]


def __getattr__(name: str):
    """`relate_weights` and `WeightsRelation` (`convcheck weights`), imported on first use:
    a layer's diagnosis does not need them (4 ms of a 0.15 s layer check, issue 21 item 8)."""
    if name not in ("relate_weights", "WeightsRelation"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import weights
    globals().update(relate_weights=weights.relate, WeightsRelation=weights.WeightsRelation)
    return globals()[name]
