"""`diagnose` and `explain`: the readings of the inputs that the shapes cannot settle.

A 1-D kernel along the rows or the columns, the output as given or transposed, the kernel's
axes in another order and the image's channels reversed: each reading is one diagnosis
(`convcheck.engine.verdict`), the first that explains the output winning.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from . import evidence as ev
from ..declared import check_applies, merge, normalize_expected
from ..errors import InputError
from ..geometry import geometry_pair, normalize_padding
from ..results import Diagnosis
from ..vocabulary import Verdict
from .candidates import Layout, layouts_for
from .evaluation import evaluate_full
from .problem import Problem
from .threads import single_threaded_blas
from .verdict import diagnose_reading, expected_computation


@single_threaded_blas()  # many small matrix products: BLAS threads cost more than they gain
def diagnose(inputs, *, padding="same", precision: Optional[str] = None, stride=(1, 1),
             dilation=(1, 1), groups: Optional[int] = None, algorithm: str = "direct",
             keep_arrays: bool = False, output_precision: Optional[str] = None,
             expected: Optional[dict] = None, declared_uncertainty: Optional[dict] = None) -> Diagnosis:
    """Diagnose `inputs.output` (an `convcheck.inputs.Inputs` with an output) against the reference.

    `padding` (a convention's name or explicit ((top, bottom), (left, right)) amounts),
    `stride`, `dilation` and `groups` are what the caller expected (the baseline; `groups`
    None: what the kernel layout declares, else 1); `precision` the precision it expected
    the computation to run in (default: the inputs' own); `algorithm` how it expected the
    sums to be computed ('direct', 'fft' or 'winograd'); `output_precision` the type it
    expected the result to be stored in (default: the precision's own, e.g. 'float32' for a
    library that sums bfloat16 inputs in float32 and returns float32). `expected` declares
    any other field (CONTRACT section 2a, `convcheck.declared`): a bias or scale is then
    applied as given, never fitted; `declared_uncertainty` ({'scale': relative, 'bias':
    absolute}, each one number or one per output channel) is how far a runtime's own values
    of a declared scale and bias may be from the declared ones (e.g. a BatchNorm folded by a
    converter in its own precision). The verdict is `equal` when the expected computation
    reproduces the output within its rigorous bound and with enough evidence, `explained`
    when the simplest other candidate does, else `unexplained`.

    Readings the shapes cannot settle are tried in turn, the first that explains the
    output winning: a 1-D kernel along the rows, then along the columns (`kernel_axis`);
    the output as given, then with its H and W axes swapped (`output_transform`); then
    the kernel's axes in another order and the image's channels reversed (`kernel_layout`,
    `channel_order`: see `_other_readings`). A declared reading is the one searched.
    """
    options = dict(padding=padding, precision=precision, stride=stride, dilation=dilation, groups=groups,
                   algorithm=algorithm, output_precision=output_precision)
    options, declared = merge(normalize_expected(expected), options, _DEFAULTS)
    options["padding"] = normalize_padding(options["padding"])
    inputs, declared = _declared_reading(inputs, declared)
    check_applies(declared, outs=int(inputs.output.shape[-1]), image_hw=tuple(inputs.image.shape[1:3]),
                  padding=options["padding"], groups=options["groups"],
                  channels=int(inputs.image.shape[-1]))
    _check_range(inputs.image, inputs.kernel)
    options.update(keep_arrays=keep_arrays, expected=declared, declared_uncertainty=declared_uncertainty)
    if declared.get("output_transform") == "transpose":
        options["output_transform"] = "transpose"
    others = None
    if getattr(inputs, "kernel_reading", None) is not None:
        # The declared kernel layout fits no shape: this reading is one of several searched.
        others = _readings_of(inputs)
        options["readings"] = 1 + len(others)
    diagnosis = diagnose_reading(inputs, **options)
    if inputs.kernel_axis == "rows" and diagnosis.verdict is not Verdict.EQUAL and "kernel_axis" not in declared:
        columns = diagnose_reading(replace(inputs, kernel=np.swapaxes(inputs.kernel, 0, 1), kernel_axis="columns"),
                                   **options)
        # The reading that explains with fewer changed fields (a column kernel is not a
        # transposed row kernel); rows on a tie.
        if _rank(columns) < _rank(diagnosis):
            diagnosis = columns
    if diagnosis.verdict is Verdict.UNEXPLAINED and not diagnosis.cannot_decide and "output_transform" not in declared \
            and not _holds_mostly(diagnosis):
        reading = inputs.output_reading or "nhwc"
        swapped = replace(inputs, output=np.swapaxes(inputs.output, 1, 2),
                          output_reading=reading.translate(str.maketrans("hw", "wh")))
        # A square output fits either way: search its transpose only when it is nearer the
        # expected computation than the output as given (a whole second search otherwise).
        if diagnosis.stats.mismatched is None or _nearer_transposed(swapped, diagnosis, options):
            transposed = diagnose_reading(swapped, output_transform="transpose", **options)
            if transposed.verdict is not Verdict.UNEXPLAINED:
                diagnosis = transposed
    return _other_readings(inputs, diagnosis, options, others)


_DEFAULTS = dict(padding="same", precision=None, stride=(1, 1), dilation=(1, 1), groups=None, algorithm="direct",
                 output_precision=None)


def _declared_reading(inputs, declared: dict):
    """The inputs as the declared readings read them: a 1-D kernel along the declared axis,
    the output transposed, the image's channels reversed; the kernel layout declared must be
    the one the inputs were read in. Returns (inputs, what is left declared)."""
    declared = dict(declared)
    layout = declared.pop("kernel_layout", None)
    if layout is not None and layout != inputs.kernel_layout:
        raise InputError(f"kernel_layout is declared as {layout!r} but the kernel was read as {inputs.kernel_layout!r}: "
                         "pass it as kernel_layout= (--kernel-layout) so the kernel is read that way")
    if declared.get("kernel_axis") not in (None, inputs.kernel_axis):
        if inputs.kernel_axis is None:
            raise InputError("kernel_axis is declared, but the kernel is not 1-D")
        inputs = replace(inputs, kernel=np.swapaxes(inputs.kernel, 0, 1), kernel_axis=declared["kernel_axis"])
    declared.pop("kernel_axis", None)
    if declared.get("output_transform") == "transpose":
        reading = inputs.output_reading or "nhwc"
        inputs = replace(inputs, output=np.swapaxes(inputs.output, 1, 2),
                         output_reading=reading.translate(str.maketrans("hw", "wh")))
    if declared.get("channel_order") == "reversed":
        inputs = replace(inputs, image=inputs.image[..., ::-1], channel_order="reversed")
    output_layout = declared.pop("output_layout", None)
    if output_layout is not None and output_layout != getattr(inputs, "declared_output_layout", "hwc"):
        raise InputError(f"output_layout is declared as {output_layout!r} but the arrays were read with layout "
                         f"{'nchw' if output_layout == 'hwc' else 'nhwc'}: pass layout= (--layout) instead")
    return inputs, declared


def _readings_of(inputs) -> list:
    """The other readings of the kernel's axes and the image's channels (convcheck.inputs.other_readings)."""
    from ..inputs import other_readings
    return other_readings(inputs) if getattr(inputs, "raw_kernel", None) is not None else []


def _other_readings(inputs, diagnosis: Diagnosis, options: dict, others: Optional[list] = None) -> Diagnosis:
    """The output explained with the kernel's axes or the image's channels read otherwise
    (CONTRACT section 2, Layout: `kernel_layout`, `channel_order`), when the reading given
    explains nothing; `others` the readings when already listed.

    Tried only when the given reading is unexplained, and not for want of evidence (what
    passes but cannot decide must not become a verdict under another reading). Each reading
    (convcheck.inputs.other_readings: another order of the kernel's axes, OIHW weights
    reshaped into HWIO, the image's channels reversed, or both) is one more whole search, so
    every search counts all of them in the evidence rule's candidate count (`readings`), and
    each searches only the simplest geometry stage with direct summation and the declared
    boundary rule (`narrow`): a mis-read kernel on top of an undeclared dilation, an FFT or
    another boundary rule stays unexplained rather than costing a full search per reading.
    Fewest changed fields win, the likeliest reading on a tie; a reading that passes but
    cannot decide ends the search, as a pass does in `diagnose_reading`. The statistics before the
    explanation stay those of the reading given (the reference the caller expected), or
    none when the declared layout fits no shape.
    """
    declared = diagnosis
    misread = getattr(inputs, "kernel_reading", None) is not None
    searched = 0
    if diagnosis.verdict is Verdict.UNEXPLAINED and not diagnosis.cannot_decide and not _holds_mostly(diagnosis):
        others = _readings_of(inputs) if others is None else others
        best: Optional[Diagnosis] = None
        nearest: Optional[Diagnosis] = None   # the unexplained reading whose closest candidate misses least
        for reading in others:
            changes = (reading.kernel_reading not in (None, reading.kernel_layout)) + (
                reading.channel_order != "as_given")
            if best is not None and _rank(best)[1] <= changes:
                break  # every reading from here on changes at least as many fields
            if options["algorithm"] == "winograd" and tuple(reading.kernel.shape[:2]) != (3, 3):
                continue  # Winograd F(m x m, 3 x 3), declared, cannot compute with this reading's kernel
            found = diagnose_reading(reading, **{**options, "readings": 1 + len(others), "narrow": True})
            searched += 1
            if found.cannot_decide and best is None:
                best = found
                break
            if found.verdict is not Verdict.UNEXPLAINED and (best is None or _rank(found) < _rank(best)):
                best = found
            elif found.verdict is Verdict.UNEXPLAINED and _misses(found) < min(_misses(nearest), _misses(declared)):
                nearest = found
        if best is not None:
            diagnosis = best
        elif nearest is not None:
            diagnosis = nearest   # unexplained still, but its closest candidate and where it misses say more
    notes = list(diagnosis.notes)
    if misread:
        notes.append(f"the kernel's shape {tuple(inputs.kernel_shape)} fits the image and output only with its axes "
                     f"in another order than the declared {inputs.kernel_layout.upper()}: it was read as "
                     f"{inputs.kernel_reading.upper()} ({_axis_names(inputs.kernel_reading)}) first; pass "
                     f"--kernel-layout {inputs.kernel_reading} (kernel_layout='{inputs.kernel_reading}') "
                     "if that is its layout")
    if diagnosis.verdict is Verdict.UNEXPLAINED and not diagnosis.cannot_decide and searched:
        notes.append(f"{searched} other reading{'s' if searched != 1 else ''} of the kernel's axes and the image's "
                     f"channels (kernel_layout, channel_order) {'were' if searched != 1 else 'was'} searched too; "
                     "none explains the output")
    if diagnosis is declared and not misread:
        return replace(diagnosis, notes=tuple(notes)) if notes != list(diagnosis.notes) else diagnosis
    stats, arrays = diagnosis.stats, diagnosis.arrays
    before = None if misread else declared
    stats = replace(stats, **{name: getattr(before.stats, name) if before is not None else None
                              for name in ("max_abs_diff", "max_rel_diff", "mismatched", "worst_index",
                                           "worst_output", "worst_reference")})
    if arrays is not None:
        # Plots show one sample, chosen per diagnosis: the declared reference only when there is one.
        kept = before is not None and before.arrays is not None and inputs.output.shape[0] == 1
        arrays = replace(arrays, reference=before.arrays.reference if kept else None,
                         bound_before=before.arrays.bound_before if kept else None)
    return replace(diagnosis, stats=stats, arrays=arrays, notes=tuple(notes))


def _holds_mostly(diagnosis: Diagnosis) -> bool:
    """Whether the expected computation holds at most elements already: another reading of the
    kernel or the image would change nearly every output, so it cannot explain the rest."""
    mismatched = diagnosis.stats.mismatched
    return mismatched is not None and 2 * mismatched <= diagnosis.stats.total


def _misses(diagnosis: Optional[Diagnosis]) -> float:
    """How many elements an unexplained diagnosis's closest candidate leaves beyond the bound."""
    after = diagnosis.stats.mismatched_after if diagnosis is not None and diagnosis.closest is not None else None
    return float("inf") if after is None else after


def _axis_names(layout: str) -> str:
    from ..inputs import axis_names
    return axis_names(layout)


def _nearer_transposed(swapped, diagnosis: Diagnosis, options: dict) -> bool:
    """Whether the transposed output has fewer elements beyond the expected computation's bound."""
    quick = {k: v for k, v in options.items() if k in ("padding", "precision", "stride", "dilation", "groups",
                                                      "algorithm", "output_precision")}
    problem = Problem(swapped, expected_computation(swapped, quick["padding"], geometry_pair(quick["stride"], "stride"),
                                                    geometry_pair(quick["dilation"], "dilation"), quick["groups"],
                                                    options.get("expected"))
                      .with_(algorithm=quick["algorithm"], output_precision=quick["output_precision"]),
                      quick["precision"], quick["output_precision"], options.get("declared_uncertainty"))
    baseline = problem.baseline
    expected = Layout(baseline.kernel_transform, baseline.padding, baseline.stride, baseline.dilation)
    if expected not in layouts_for(problem, baseline):
        return False
    full, _ = evaluate_full(problem, problem.baseline.with_(groups=problem.groups), "none",
                             needed=ev.needed_bits(1), keep_values=False)
    return full.bad < diagnosis.stats.mismatched


def _rank(diagnosis: Diagnosis) -> tuple:
    order = {Verdict.EQUAL: 0, Verdict.EXPLAINED: 1, Verdict.UNEXPLAINED: 2}[diagnosis.verdict]
    changed = len(diagnosis.explanation.changed_fields(diagnosis.baseline)) if diagnosis.explanation else 0
    return order, changed


def explain(image, kernel, output, *, padding="same", precision: Optional[str] = None,
            stride=(1, 1), dilation=(1, 1), groups: Optional[int] = None, layout: str = "nhwc",
            kernel_layout: Optional[str] = None, algorithm: str = "direct", keep_arrays: bool = False,
            output_precision: Optional[str] = None, expected: Optional[dict] = None,
            declared_uncertainty: Optional[dict] = None) -> Diagnosis:
    """Which computation produced `output` from `image` and `kernel`? Returns a `Diagnosis`.

    Layouts (CONTRACT section 1): image (H, W), (H, W, C) or a batch (N, H, W, C), or with
    `layout="nchw"` (C, H, W) / (N, C, H, W); kernel (kh, kw), HWIO (kh, kw, C_in / groups,
    C_out), OIHW with `kernel_layout="oihw"` (the default with layout "nchw"), or
    (kh, kw, C, multiplier) with `kernel_layout="depthwise"`, or any other order of the letters
    h, w, i, o (e.g. "ohwi"); output in the image's layout
    with its own sizes (a batch of one and a single channel may drop their axes).
    `padding` ('same', 'valid', 'full', or amounts: PyTorch's padding=1, (PH, PW),
    (top, bottom, left, right), ((top, bottom), (left, right))), `stride`, `dilation` and
    `groups` are what you expected; `precision` the precision you expected (default: the
    inputs' own, e.g. float64 for float64 data); `algorithm` 'fft' when you know the output
    came from an FFT convolution, 'winograd' from Winograd F(m x m, 3 x 3) tiles (a 3x3
    kernel at stride 1 and dilation 1); `output_precision` the type you expected the result
    stored in (default: the precision's own). `expected` declares any field of CONTRACT
    section 2 ({"bias": layer_bias, "activation": "relu", "offset": (-1, -1), ...}, section 2a):
    a declared bias or scale is applied as given, never fitted. `declared_uncertainty`: see
    `diagnose`. Bad arrays and values raise `convcheck.InputError`. Never imports TensorFlow.
    """
    from ..inputs import prepare_inputs
    options = dict(padding=padding, precision=precision, stride=stride, dilation=dilation, groups=groups,
                   algorithm=algorithm, output_precision=output_precision, kernel_layout=kernel_layout)
    options, declared = merge(normalize_expected(expected), options, dict(_DEFAULTS, kernel_layout=None))
    kernel_layout = options.pop("kernel_layout")
    padding = normalize_padding(options.pop("padding"))
    inputs = prepare_inputs(image, kernel, output, kernel_layout=kernel_layout, padding=padding, layout=layout)
    return diagnose(inputs, padding=padding, keep_arrays=keep_arrays, expected=declared,
                    declared_uncertainty=declared_uncertainty, **options)


def _check_range(image: np.ndarray, kernel: np.ndarray) -> None:
    """Refuse an image and kernel whose float64 sums may overflow (bad input, exit 2): every
    sum is at most max|x| times the largest sum over an output channel's |k|, and when that
    is not finite the reference (and its bound) would be inf, a verdict on nothing."""
    if not image.size or not kernel.size:
        return
    with np.errstate(over="ignore", invalid="ignore"):
        top = max(abs(float(np.max(image))), abs(float(np.min(image))))
        # A column's sum of |k| is at most its taps times max |k| (computed, within a factor
        # 1 + taps 2^-52): when that and its product with max |x| are below 2^1000, far from
        # float64's range, the column sums below are finite too (summed only otherwise).
        bound = kernel.size // kernel.shape[-1] * max(abs(float(np.max(kernel))), abs(float(np.min(kernel))))
        if bound < 2.0 ** 1000 and top * bound < 2.0 ** 1000:
            return
        weights = np.abs(np.asarray(kernel, dtype=np.float64)).reshape(-1, kernel.shape[-1]).sum(axis=0)
        largest = top * float(np.max(weights))
    if not np.isfinite(largest):
        raise InputError(f"the image (values up to {top:.3g}) and the kernel (|weights| summing to "
                         f"{float(np.max(weights)):.3g}) give sums beyond float64's range: the reference would "
                         "overflow; rescale them")
