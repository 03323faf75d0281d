"""`assert_conv_matches`: a pytest-friendly assertion for a model repository's own tests.

    from convcheck.testing import assert_conv_matches
    assert_conv_matches(ported_output, image, kernel, allow=["kernel_transform=rot180"])

It passes when the output equals the float64 reference within its rigorous error bound,
or differs only by causes listed in `allow` (the same syntax as a config's `allow`), and
otherwise raises `AssertionError` worded like `torch.testing.assert_close`, followed by
convcheck's diagnosis and the fix. Never imports TensorFlow: only numpy and the engine.
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from .check import judge, parse_allow, unexplained_message
from .engine import explain, index_in_user_shape
from .errors import InputError
from .vocabulary import Verdict

__all__ = ["assert_conv_matches"]


def _spatial(shape: tuple[int, ...], kind: str, layout: str) -> tuple[int, int]:
    if kind == "image":
        return tuple(shape[1:3]) if len(shape) == 4 else tuple(shape[:2])  # type: ignore[return-value]
    return tuple(shape[2:4]) if (len(shape) == 4 and layout == "oihw") else tuple(shape[:2])  # type: ignore


def _closeness_lines(diagnosis, output_shape, image_shape, kernel_shape, padding, layout) -> list[str]:
    """The torch.testing-style lines: mismatched count, greatest absolute and relative differences."""
    from .reference import output_size

    arrays = diagnosis.arrays
    height, width = _spatial(image_shape, "image", layout)
    kh, kw = _spatial(kernel_shape, "kernel", layout)
    expected = output_size(padding, height, width, kh, kw)
    if (arrays is None or arrays.reference is None or tuple(arrays.output.shape[:2]) != tuple(expected)
            or arrays.reference.shape != arrays.output.shape):
        return [f"The values for attribute 'shape' do not match: {tuple(output_shape)} != {expected} "
                f"(the '{padding}' output of a {(height, width)} image with a {(kh, kw)} kernel has "
                f"{expected[0]} x {expected[1]} elements per channel)."]
    output, reference, bound = arrays.output, arrays.reference, arrays.bound_before
    stats = diagnosis.stats
    delta = np.abs(output - reference)
    mismatched = stats.mismatched if stats.mismatched is not None else int(np.count_nonzero(delta > bound))
    total = delta.size
    lines = [f"Mismatched elements: {mismatched} / {total} ({100.0 * mismatched / total:.1f}%)"]
    worst = np.unravel_index(int(np.argmax(delta)), delta.shape)
    lines.append(f"Greatest absolute difference: {delta[worst]:.3g} at index {index_in_user_shape(worst, output_shape)} "
                 f"(up to {bound[worst]:.2g} allowed)")
    magnitude = np.abs(reference)
    nonzero = magnitude > 0
    if nonzero.any():
        relative = np.zeros_like(delta)
        np.divide(delta, magnitude, out=relative, where=nonzero)
        where = np.unravel_index(int(np.argmax(relative)), relative.shape)
        lines.append(f"Greatest relative difference: {relative[where]:.3g} at index "
                     f"{index_in_user_shape(where, output_shape)} (up to {bound[where] / magnitude[where]:.2g} allowed)")
    return lines


def assert_conv_matches(output, image, kernel, padding: str = "same", allow: Iterable[str] = (), *,
                        precision: Optional[str] = None, kernel_layout: str = "hwio"):
    """Assert that `output` is the convolution of `image` with `kernel`, up to the causes in `allow`.

    `output` is compared with the float64 cross-correlation (CONTRACT section 1) with
    `padding`, held to a rigorous error bound for `precision` (default: the inputs' own).
    Passes when the verdict is `equal`, or `explained` only by causes `allow` lists
    ("precision=float32", "kernel_transform=rot180", or a bare field such as "boundary"
    for any value). Otherwise raises `AssertionError` with the mismatch statistics, the
    diagnosis and its fix. Bad arrays or a bad `allow` raise `convcheck.InputError`.
    Returns the `Diagnosis` when it passes.
    """
    if not isinstance(allow, (str, list, tuple)):
        try:
            allow = list(allow)
        except TypeError:
            raise InputError(f"allow: {allow!r} is not a list; write e.g. "
                             "allow=[\"precision=float32\", \"kernel_transform=rot180\"]") from None
    rules = parse_allow(allow, "allow")
    diagnosis = explain(image, kernel, output, padding=padding, precision=precision,
                        kernel_layout=kernel_layout, keep_arrays=True)
    outcome = judge("output", diagnosis, rules, strict=True)
    if outcome.status == "pass":
        return diagnosis

    from .formats.check_text import diagnosis_lines

    lines = ["Tensor-likes are not close!", ""]
    lines += _closeness_lines(diagnosis, np.shape(output), np.shape(image), np.shape(kernel), padding, kernel_layout)
    lines.append("")
    if diagnosis.verdict is Verdict.UNEXPLAINED:
        lines.append(f"convcheck: {unexplained_message(diagnosis)}.")
    else:
        lines.append(f"convcheck: {outcome.message}.")
    lines += diagnosis_lines(diagnosis, outcome.disallowed)
    if diagnosis.verdict is Verdict.EXPLAINED:
        wanted = [str(r) for r in rules] + [_allow_text(c) for c in outcome.disallowed]
        lines.append(f"If this difference is intended, pass allow={wanted!r}.")
    raise AssertionError("\n".join(lines))


def _allow_text(cause) -> str:
    if cause.field == "offset":
        return f"offset=[{cause.value[0]}, {cause.value[1]}]"
    if cause.field in ("bias", "scale"):
        return cause.field
    return f"{cause.field}={cause.value}"
