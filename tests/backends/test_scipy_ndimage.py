"""scipy.ndimage.correlate / convolve backends: emulated padding and channel sums, both checked."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convcheck.backends import get_backend

from .conftest import (DTYPES, PADDINGS, UNIT_ROUNDOFF, assert_within_bound, changed_fields,
                       check_consistent_run, defaults_case, error_bound, explain_defaults, kept_output_precision,
                       reference_correlation)

CORRELATE = get_backend("scipy.ndimage.correlate")
CONVOLVE = get_backend("scipy.ndimage.convolve")


def expected_compute_dtype(dtype):
    return "float32" if dtype in ("float16", "bfloat16") else dtype


def flipped(kernel):
    """What a true convolution cross-correlates with: the kernel turned 180 degrees."""
    return np.ascontiguousarray(kernel[::-1, ::-1])


@pytest.mark.parametrize("backend", [CORRELATE, CONVOLVE], ids=lambda b: b.name)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_consistent_settings_are_equal(backend, case, padding, dtype):
    name, image, kernel = case
    if backend is CONVOLVE:
        # A true convolution, run as it is (issue 21): within the bound of the cross-correlation with
        # the flipped kernel, which the engine finds equal; against the kernel itself, its row is the flip.
        import convcheck
        run = backend.run(image, kernel, padding=padding, dtype=dtype)
        reference = reference_correlation(image, flipped(kernel), padding)
        assert_within_bound(run.output, reference, error_bound(image, flipped(kernel), padding, UNIT_ROUNDOFF[dtype],
                                                               reference))
        assert run.padding == padding and run.compute_dtype == expected_compute_dtype(dtype)
        kept = kept_output_precision(run, dtype)
        for given, changed in ((flipped(kernel), {}), (kernel, {"kernel_transform": "rot180"})):
            diagnosis = convcheck.explain(image, given, run.output, padding=padding, precision=dtype,
                                          output_precision=kept)
            assert changed_fields(diagnosis) == changed
    else:
        run = check_consistent_run(backend, case, padding, dtype, compute_dtype=expected_compute_dtype(dtype))
    if image.shape[2] > 1:
        assert any("summed over 3 input channels" in note for note in run.notes)
    if padding != "same":
        assert any(f"has no '{padding}' padding" in note for note in run.notes)
    if backend is CONVOLVE:
        assert any("is a true convolution: it flips the kernel 180 degrees" in note for note in run.notes)
    even = kernel.shape[0] % 2 == 0
    assert any("origin=[-1, -1]" in note for note in run.notes) == (
        backend is CORRELATE and padding == "same" and even)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(height=st.integers(1, 7), width=st.integers(1, 7), kh=st.integers(1, 4),
       kw=st.integers(1, 4), padding=st.sampled_from(PADDINGS), seed=st.integers(0, 2**16))
def test_any_kernel_shape_places_windows_as_tensorflow(height, width, kh, kw, padding, seed):
    rng = np.random.default_rng(seed)
    image = rng.uniform(-2, 2, (height, width, 2))
    kernel = rng.uniform(-2, 2, (kh, kw, 2, 1))
    if padding == "valid" and (kh > height or kw > width):
        return
    reference = reference_correlation(image, kernel, padding)
    bound = error_bound(image, kernel, padding, UNIT_ROUNDOFF["float64"], reference)
    for backend, passed in ((CORRELATE, kernel), (CONVOLVE, flipped(kernel))):   # convolve flips it back
        run = backend.run(image, passed, padding=padding, dtype="float64")
        assert_within_bound(run.output, reference, bound)


def test_library_defaults_correlate_reflects_and_centres_even_kernels():
    image, kernel = defaults_case(kernel_size=4)
    run, diagnosis = explain_defaults(CORRELATE, image, kernel)
    assert run.padding == "same" and run.compute_dtype == "float64"
    assert run.notes[0].startswith("library defaults: mode='reflect'")
    assert diagnosis.verdict.value == "explained"
    assert changed_fields(diagnosis) == {"boundary": "symmetric", "offset": (-1, -1)}


def test_library_defaults_correlate_odd_kernel_is_the_border_only():
    image, kernel = defaults_case(kernel_size=3)
    run, diagnosis = explain_defaults(CORRELATE, image, kernel)
    assert changed_fields(diagnosis) == {"boundary": "symmetric"}


def test_library_defaults_convolve_is_flipped_and_reflected():
    image, kernel = defaults_case(kernel_size=3)
    run, diagnosis = explain_defaults(CONVOLVE, image, kernel)
    assert changed_fields(diagnosis) == {"kernel_transform": "rot180", "boundary": "symmetric"}


def test_library_defaults_float16_image_is_cast():
    image, kernel = defaults_case(kernel_size=3, channels=1, outputs=1)
    run = CORRELATE.run(image.astype(np.float16), kernel, padding="same", dtype="float32",
                        library_defaults=True)
    assert run.compute_dtype == "float32"
    assert any("has no float16" in note for note in run.notes)
