"""`assert_conv_matches`: a pytest-friendly assertion for a model repository's own tests.

    from convcheck.testing import assert_conv_matches
    assert_conv_matches(ported_output, image, kernel, allow=["kernel_transform=rot180"])

It passes when the output equals the reference (CONTRACT section 1: the float64
cross-correlation) within its rigorous error bound,
or differs only by causes listed in `allow` (the same syntax as a config's `allow`), and
otherwise raises `AssertionError` whose first line names the verdict and the cause in
plain words, then numbers laid out like `numpy.testing` / `torch.testing` (mismatched
count, greatest difference with its index and bound, a few output/reference values) and
convcheck's diagnosis with the fix. convcheck's frames are hidden from pytest tracebacks
(`__tracebackhide__`). Never imports TensorFlow: only numpy and the engine.

No pytest plugin or fixture: a plain function is one import in a model repository's
test, works under any runner, and an auto-loaded plugin would run in every pytest
session of every environment that has convcheck installed.
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from .check import judge, parse_allow, unexplained_message
from .declared import merge, normalize_expected
from .engine import diagnose, index_in_user_shape
from .errors import InputError
from .geometry import geometry_pair, normalize_padding, padding_text
from .vocabulary import Verdict

__all__ = ["assert_conv_matches", "assert_model_matches"]


def _worst_sample(diagnosis, inputs) -> int:
    """Which sample of the batch `diagnosis.arrays` shows (the engine keeps the worst one):
    the sample whose output they hold, preferring the one of the greatest difference."""
    batch = inputs.output.shape[0]
    if batch == 1:
        return 0
    shown = diagnosis.arrays.output
    candidates = [n for n in range(batch)
                  if np.array_equal(np.asarray(inputs.output[n], dtype=np.float64), shown, equal_nan=True)]
    worst = diagnosis.stats.worst_index
    reading = inputs.output_reading or ""
    if worst is not None and "n" in reading and len(worst) == len(reading):
        sample = int(worst[reading.index("n")])
        if sample in candidates:
            return sample
    return candidates[0] if candidates else 0


def _closeness_lines(diagnosis, inputs, padding, stride, dilation) -> list[str]:
    """numpy/torch.testing-style lines: mismatched count, greatest differences with their index
    (into the caller's output array) and bound, then the output and reference values where they
    differ most. For a batch, the values shown are those of the worst sample. The bound is the
    one the verdict held each element to against the reference (the expected computation's);
    it is the only bound the message quotes."""
    from .formats._text import REFERENCE, values_apart
    from .geometry import output_size

    arrays = diagnosis.arrays
    output_shape = tuple(inputs.output_shape)
    height, width = inputs.image.shape[1:3]  # canonical (N, H, W, C) whatever the user's layout
    kh, kw = inputs.kernel.shape[:2]         # canonical HWIO
    expected = output_size(padding, height, width, kh, kw, stride, dilation)
    geometry = "".join(f", stride {list(pair)}" if name == "stride" else f", dilation {list(pair)}"
                       for name, pair in (("stride", stride), ("dilation", dilation)) if tuple(pair) != (1, 1))
    if (arrays is None or arrays.reference is None or tuple(arrays.output.shape[:2]) != tuple(expected)
            or arrays.reference.shape != arrays.output.shape):
        named = f"the '{padding}' output" if isinstance(padding, str) else \
            f"the output padded by {padding_text(padding)}"
        return [f"The values for attribute 'shape' do not match: {output_shape} != {expected} "
                f"({named}{geometry} of a {(height, width)} image with a {(kh, kw)} kernel has "
                f"{expected[0]} x {expected[1]} elements per channel)."]
    sample = _worst_sample(diagnosis, inputs)
    batch = inputs.output.shape[0]

    def user(index) -> tuple[int, ...]:
        return index_in_user_shape((sample, *index), output_shape, inputs.output_reading)

    output, reference, bound = arrays.output, arrays.reference, arrays.bound_before
    stats = diagnosis.stats
    delta = np.abs(output - reference)
    beyond = ~(delta <= bound)  # NaN counts as beyond
    mismatched = stats.mismatched if stats.mismatched is not None else int(np.count_nonzero(beyond))
    total = stats.total if stats.total else delta.size
    lines = [f"Mismatched elements: {mismatched} / {total} ({100.0 * mismatched / total:.1f}%)"]
    if batch > 1:
        lines.append(f"Values below are from sample {sample} of the batch of {batch}, where the output "
                     "differs most; indices are into the output array as given.")
    worst = np.unravel_index(int(np.nanargmax(np.where(np.isnan(delta), np.inf, delta))), delta.shape)
    lines.append(f"Greatest absolute difference: {delta[worst]:.3g} at index {user(worst)} "
                 f"(up to {bound[worst]:.2g} allowed)")
    magnitude = np.abs(reference)
    nonzero = magnitude > 0
    if nonzero.any():
        relative = np.zeros_like(delta)
        np.divide(delta, magnitude, out=relative, where=nonzero)
        where = np.unravel_index(int(np.argmax(relative)), relative.shape)
        lines.append(f"Greatest relative difference: {relative[where]:.3g} at index "
                     f"{user(where)} (up to {bound[where] / magnitude[where]:.2g} allowed)")
    # A few values, like numpy.testing's ACTUAL/DESIRED: where they differ most beyond the bound.
    excess = np.where(beyond, np.nan_to_num(delta, nan=np.inf), -1.0).reshape(-1)
    order = [int(i) for i in np.argsort(-excess, kind="stable")[:_SHOWN] if excess[int(i)] >= 0]
    shown_bad = mismatched if batch == 1 else int(np.count_nonzero(beyond))
    if order:
        lines.append(f"Values where they differ most (output vs {REFERENCE}"
                     f"{'; ' + str(len(order)) + ' of ' + str(shown_bad) if shown_bad > len(order) else ''}):")
        for flat in order:
            index = np.unravel_index(flat, delta.shape)
            actual, wanted = values_apart(output[index], reference[index])
            lines.append(f"  {user(index)}: output {actual}, {REFERENCE} {wanted} "
                         f"(|diff| {delta[index]:.3g}, bound {bound[index]:.2g})")
    return lines


_SHOWN = 5  # how many differing values the message lists


def _headline(diagnosis, outcome) -> str:
    """The first line (what pytest's short summary shows): the verdict and its cause, in plain words."""
    from .formats.check_text import plain_phrase

    if diagnosis.cannot_decide:
        return f"output cannot be judged, not equal: {diagnosis.reason}"
    if diagnosis.verdict is Verdict.UNEXPLAINED:
        stats = diagnosis.stats
        where = f": {diagnosis.where}" if diagnosis.where else ""
        counted = (f" ({stats.mismatched} of {stats.total} elements differ{where})"
                   if stats.mismatched is not None else f" ({diagnosis.where})" if diagnosis.where else "")
        return f"output is unexplained, not equal: no known cause reproduces it{counted}"
    not_allowed = ", ".join(_allow_text(c) for c in outcome.disallowed)
    return (f"output is {plain_phrase(diagnosis)}, not equal "
            f"({not_allowed} {'is' if len(outcome.disallowed) == 1 else 'are'} not in allow)")


def assert_conv_matches(output, image, kernel, padding="same", allow: Iterable[str] = (), *,
                        precision: Optional[str] = None, stride=(1, 1), dilation=(1, 1),
                        groups: Optional[int] = None, layout: str = "nhwc",
                        kernel_layout: Optional[str] = None, msg: Optional[str] = None,
                        expected: Optional[dict] = None, declared_uncertainty: Optional[dict] = None):
    """Assert that `output` is the convolution of `image` with `kernel`, up to the causes in `allow`.

    `output` is compared with the float64 cross-correlation (CONTRACT section 1) with
    `padding` (a name, or amounts as PyTorch and ONNX declare them: 1, (PH, PW),
    (top, bottom, left, right) or ((top, bottom), (left, right))), `stride`, `dilation` and
    `groups` (what you expect; see `convcheck.explain`), and what `expected` declares of any
    other field (CONTRACT section 2a: {"bias": layer.bias, "activation": "relu", ...}; a
    declared bias or scale is applied as given, never fitted; `declared_uncertainty` as in
    `convcheck.engine.diagnose`), held to a rigorous error bound for `precision` (default:
    the inputs' own). A field declared both as an argument and in `expected` must agree. Arrays are
    in `layout` ("nhwc", or "nchw" for PyTorch's channels first: (C, H, W) / (N, C, H, W));
    `kernel_layout` is "hwio", "oihw" (the default with layout "nchw"), "depthwise", or any
    other order of the letters h, w, i, o (e.g. "ohwi").
    Passes when the verdict is `equal`, or `explained` only by causes `allow` lists
    ("precision=float32", "kernel_transform=rot180", or a bare field such as "boundary"
    for any value). Otherwise raises `AssertionError` whose first line names the verdict
    and cause ("output is explained by kernel flipped 180° (true convolution), not equal
    ..."), then the mismatch statistics, a few output/reference values, the diagnosis and
    its fix. `msg` starts the message (and so pytest's short summary line). convcheck's
    own frames are hidden from pytest's traceback. Bad arrays or a bad `allow` raise
    `convcheck.InputError`. Returns the `Diagnosis` when it passes.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not convcheck's internals
    if not isinstance(allow, (str, list, tuple)):
        try:
            allow = list(allow)
        except TypeError:
            raise InputError(f"allow: {allow!r} is not a list; write e.g. "
                             "allow=[\"precision=float32\", \"kernel_transform=rot180\"]") from None
    rules = parse_allow(allow, "allow")
    from .inputs import prepare_inputs
    options, declared = merge(normalize_expected(expected), dict(
        padding=padding, precision=precision, stride=stride, dilation=dilation, groups=groups,
        kernel_layout=kernel_layout), _DEFAULTS)
    padding, kernel_layout = normalize_padding(options.pop("padding")), options.pop("kernel_layout")
    stride, dilation = geometry_pair(options.pop("stride"), "stride"), geometry_pair(options.pop("dilation"), "dilation")
    inputs = prepare_inputs(image, kernel, output, kernel_layout=kernel_layout, padding=padding, layout=layout)
    diagnosis = diagnose(inputs, padding=padding, stride=stride, dilation=dilation, keep_arrays=True,
                         expected=declared, declared_uncertainty=declared_uncertainty, **options)
    outcome = judge("output", diagnosis, rules, strict=True)
    if outcome.status == "pass":
        return diagnosis

    from .formats.check_text import diagnosis_lines

    headline = _headline(diagnosis, outcome)
    lines = [f"{msg}: {headline}" if msg else headline, ""]
    lines += _closeness_lines(diagnosis, inputs, padding, stride, dilation)
    lines.append("")
    if diagnosis.verdict is Verdict.UNEXPLAINED:
        lines.append(f"convcheck: {unexplained_message(diagnosis)}.")
    else:
        lines.append(f"convcheck: {outcome.message}.")
    lines += diagnosis_lines(diagnosis, outcome.disallowed, quote_bound=False)   # the bound is quoted above
    if diagnosis.verdict is Verdict.EXPLAINED:
        wanted = [str(r) for r in rules] + [_allow_text(c) for c in outcome.disallowed]
        lines.append(f"If this difference is intended, pass allow={wanted!r}.")
    raise AssertionError("\n".join(lines))


# The arguments' defaults: a value in `expected` for one of these fields is no conflict with them.
_DEFAULTS = dict(padding="same", precision=None, stride=(1, 1), dilation=(1, 1), groups=None, kernel_layout=None,
                 algorithm="direct", output_precision=None)


def _allow_text(cause) -> str:
    if cause.field in ("offset", "stride", "dilation"):
        return f"{cause.field}=[{cause.value[0]}, {cause.value[1]}]"
    if cause.field in ("bias", "scale"):
        return cause.field
    return f"{cause.field}={cause.value}"


def assert_model_matches(original, port, input=None, allow: Iterable[str] = (), msg: Optional[str] = None, *,
                         match=(), as_run: bool = False):
    """Assert that `port` computes what `original` computes, conv layer by conv layer (`convcheck model`).

    `original` and `port` are model files (.onnx, .pt2, .pt, .keras, .h5, .tflite) or a
    PyTorch `package.module:attr` name; `input` a numpy array or a .npy path in the original's
    layout (default: a seeded random input of its declared shape); `allow` the differences
    the port may have ("precision=float16", "unmatched", ...: `--allow`'s syntax); `match`
    layer pairs that override the matching ({"orig": "port"}, ("orig", "port") pairs or
    "orig=port" strings); `as_run` judges what the runtimes really run.
    Raises `AssertionError` when `convcheck model` would exit 1 (a layer unexplained, or
    explained or with weights changed by a field not in `allow`, or an original layer left
    unmatched); its first line says where the port first diverges (`msg` first), then the
    layer table. Bad files or arguments raise `convcheck.InputError`. Returns the
    `ModelReport` when it passes.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not convcheck's internals
    from .formats import model_text
    from .formats.table import render_model
    from .models.matching import parse_match
    from .models.report import parse_model_allow
    from .models.walk import walk

    if not isinstance(allow, (str, list, tuple)):
        try:
            allow = list(allow)
        except TypeError:
            raise InputError(f"allow: {allow!r} is not a list; write e.g. allow=[\"precision=float16\"]") from None
    rules = parse_model_allow(allow)
    if isinstance(match, dict):
        pairs = tuple((str(k), str(v)) for k, v in match.items())
    else:
        pairs = tuple(parse_match([m])[0] if isinstance(m, str) else (str(m[0]), str(m[1])) for m in match)
    report = walk(original, port, input=input, allow=rules, match=pairs, as_run=as_run)
    if report.exit_code() != 1:
        return report
    failures = model_text.failure_lines(report)
    headline = (f"the port diverges from the original: first divergence at {model_text.divergence_line(report)}; "
                f"{failures[0]}" + (f" (and {len(report.failures()) - 1} more)" if len(report.failures()) > 1 else ""))
    lines = [f"{msg}: {headline}" if msg else headline, "", render_model(report, color=False, width=160).rstrip()]
    raise AssertionError("\n".join(lines))
