"""Helpers for the backend tests: an independent float64 reference and its error bound.

The reference is a plain loop written here (no scipy, no framework): the CONTRACT
section 1 cross-correlation with zero padding, 'same' placed as TensorFlow does
(top = (kh - 1) // 2, left = (kw - 1) // 2, the extra row/column at the bottom/right).
"""

from __future__ import annotations

import numpy as np
import pytest

UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11,
                 "bfloat16": 2.0**-8}
PADDINGS = ("same", "valid", "full")
DTYPES = ("float16", "bfloat16", "float32", "float64")

# name: (image shape, kernel shape HWIO). 'single' is a 2-D problem as the caller hands it
# over (one channel); 'multi' has 3 input channels, 2 output channels and an even kernel.
CASES = {
    "single": ((7, 8, 1), (3, 3, 1, 1)),
    "multi": ((7, 8, 3), (4, 4, 3, 2)),
}


def pad_amounts(kh: int, kw: int, padding: str) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero padding for a padding convention."""
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "full":
        return kh - 1, kh - 1, kw - 1, kw - 1
    top, left = (kh - 1) // 2, (kw - 1) // 2
    return top, kh - 1 - top, left, kw - 1 - left


def reference_correlation(image: np.ndarray, kernel: np.ndarray, padding: str) -> np.ndarray:
    """Naive float64 cross-correlation of (H, W, C) with HWIO (kh, kw, C, O): (Ho, Wo, O)."""
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    height, width, channels = image.shape
    kh, kw, _, outputs = kernel.shape
    top, bottom, left, right = pad_amounts(kh, kw, padding)
    padded = np.zeros((height + top + bottom, width + left + right, channels))
    padded[top:top + height, left:left + width] = image
    out_h, out_w = padded.shape[0] - kh + 1, padded.shape[1] - kw + 1
    out = np.zeros((out_h, out_w, outputs))
    for i in range(out_h):
        for j in range(out_w):
            for o in range(outputs):
                total = 0.0
                for u in range(kh):
                    for v in range(kw):
                        for c in range(channels):
                            total += padded[i + u, j + v, c] * kernel[u, v, c, o]
                out[i, j, o] = total
    return out


def error_bound(image: np.ndarray, kernel: np.ndarray, padding: str, unit_roundoff: float,
                reference: np.ndarray) -> np.ndarray:
    """Elementwise bound on |computed - reference| for a computation at `unit_roundoff`.

    (n + 2) u (|image| correlated with |kernel|) + u |reference|: n multiply-adds
    accumulate (gamma_n), rounding each input to the compute dtype adds 2u per product,
    and rounding the result to the output dtype adds u |reference|.
    """
    kh, kw, channels, _ = np.shape(kernel)
    n = kh * kw * channels
    magnitudes = reference_correlation(np.abs(np.asarray(image, dtype=np.float64)),
                                       np.abs(np.asarray(kernel, dtype=np.float64)), padding)
    return (n + 2) * unit_roundoff * magnitudes + unit_roundoff * np.abs(reference)


def assert_within_bound(output: np.ndarray, reference: np.ndarray, bound: np.ndarray) -> None:
    """Every element of `output` lies within its own bound of `reference`."""
    output = np.asarray(output).astype(np.float64)
    assert output.shape == reference.shape, (output.shape, reference.shape)
    difference = np.abs(output - reference)
    excess = difference - bound
    worst = np.unravel_index(np.argmax(excess), excess.shape)
    assert np.all(np.isfinite(output)), "non-finite output"
    assert np.all(excess <= 0), (f"{int(np.sum(excess > 0))} elements beyond the bound; worst at "
                                 f"{worst}: |diff| {difference[worst]:.3g} > bound {bound[worst]:.3g}")


def within_bound(output: np.ndarray, reference: np.ndarray, bound: np.ndarray) -> bool:
    """Whether `assert_within_bound` would pass."""
    output = np.asarray(output).astype(np.float64)
    return output.shape == reference.shape and bool(np.all(np.abs(output - reference) <= bound))


def random_case(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A float64 image and HWIO kernel for CASES[name].

    Magnitudes in [0.25, 2] with random signs: no product underflows even in float16,
    so the relative error bound holds without an absolute underflow term.
    """
    rng = np.random.default_rng(seed)
    image_shape, kernel_shape = CASES[name]

    def draw(shape):
        return rng.uniform(0.25, 2.0, shape) * rng.choice([-1.0, 1.0], shape)

    return draw(image_shape), draw(kernel_shape)


@pytest.fixture(params=sorted(CASES))
def case(request):
    """(name, image, kernel) for each case in CASES."""
    image, kernel = random_case(request.param)
    return request.param, image, kernel


def changed_fields(diagnosis) -> dict:
    """The explanation's fields that differ from the baseline: {} for 'equal'."""
    if diagnosis.explanation is None:
        return {"unexplained": True}
    return {f: getattr(diagnosis.explanation, f)
            for f in diagnosis.explanation.changed_fields(diagnosis.baseline)}


def kept_output_precision(run, dtype):
    """As compare expects it: a library without half precision sums the rounded inputs in
    float32 and returns float32, so output_precision float32 is what that row should show."""
    return run.compute_dtype if dtype in ("float16", "bfloat16") and run.compute_dtype in ("float32", "float64") \
        else None


def check_consistent_run(backend, case, padding, dtype, *, compute_dtype=None):
    """Run `backend` with consistent settings on `case` and check it twice over.

    Against the independent loop reference and its bound, and through the engine
    (`convcheck.explain`, as `compare` does): the verdict must be 'equal'. Returns the run.
    """
    import convcheck

    name, image, kernel = case
    run = backend.run(image, kernel, padding=padding, dtype=dtype)
    reference = reference_correlation(image, kernel, padding)
    bound = error_bound(image, kernel, padding, UNIT_ROUNDOFF[dtype], reference)
    assert_within_bound(run.output, reference, bound)
    assert run.padding == padding
    assert run.compute_dtype == (compute_dtype or dtype)
    assert run.seconds >= 0
    diagnosis = convcheck.explain(image, kernel, run.output, padding=padding, precision=dtype,
                                  output_precision=kept_output_precision(run, dtype))
    assert diagnosis.verdict.value == "equal", (changed_fields(diagnosis), diagnosis.stats)
    return run


def explain_defaults(backend, image, kernel, *, padding="same", dtype=None):
    """Run `backend` with its library defaults and diagnose it as `compare` does."""
    import convcheck
    from convcheck.comparison import default_dtype

    dtype = dtype or default_dtype(image.dtype, kernel.dtype)
    run = backend.run(image, kernel, padding=padding, dtype=dtype, library_defaults=True)
    diagnosis = convcheck.explain(image, kernel, run.output, padding=padding,
                                  precision=default_dtype(image.dtype, kernel.dtype))
    return run, diagnosis


def defaults_case(kernel_size: int = 4, channels: int = 3, outputs: int = 2, seed: int = 5):
    """A float64 image (9, 10, C) and an HWIO kernel for library-default checks."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(-1, 1, (9, 10, channels))
    kernel = rng.uniform(-1, 1, (kernel_size, kernel_size, channels, outputs))
    return image, kernel
