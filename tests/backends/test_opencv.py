"""cv2.filter2D backend on real calls (skipped without OpenCV)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convcheck.backends import get_backend

from .conftest import (DTYPES, PADDINGS, UNIT_ROUNDOFF, assert_within_bound, changed_fields,
                       check_consistent_run, defaults_case, error_bound, explain_defaults,
                       reference_correlation)

pytestmark = pytest.mark.opencv

BACKEND = get_backend("cv2.filter2D")


@pytest.fixture(scope="module", autouse=True)
def cv2():
    return pytest.importorskip("cv2", reason="OpenCV is not installed: pip install 'convcheck[opencv]'")


def expected_compute_dtype(dtype):
    return "float32" if dtype in ("float16", "bfloat16") else dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_consistent_settings_are_equal(case, padding, dtype):
    run = check_consistent_run(BACKEND, case, padding, dtype,
                               compute_dtype=expected_compute_dtype(dtype))
    name, image, kernel = case
    even = kernel.shape[0] % 2 == 0
    assert any("anchor=(1, 1) to place the even kernel" in note for note in run.notes) == (
        padding == "same" and even)
    assert any(f"has no '{padding}' padding" in note for note in run.notes) == (padding != "same")


@settings(max_examples=25, deadline=None, derandomize=True)
@given(height=st.integers(1, 7), width=st.integers(1, 7), kh=st.integers(1, 5),
       kw=st.integers(1, 5), padding=st.sampled_from(PADDINGS), seed=st.integers(0, 2**16))
def test_any_kernel_shape_places_windows_as_tensorflow(height, width, kh, kw, padding, seed):
    rng = np.random.default_rng(seed)
    image = rng.uniform(-2, 2, (height, width, 1))
    kernel = rng.uniform(-2, 2, (kh, kw, 1, 1))
    if padding == "valid" and (kh > height or kw > width):
        return
    run = BACKEND.run(image, kernel, padding=padding, dtype="float64")
    reference = reference_correlation(image, kernel, padding)
    assert_within_bound(run.output, reference,
                        error_bound(image, kernel, padding, UNIT_ROUNDOFF["float64"], reference))


def test_library_defaults_reflect_101_float32_and_centre():
    image, kernel = defaults_case(kernel_size=4)
    run, diagnosis = explain_defaults(BACKEND, image, kernel)
    assert run.padding == "same" and run.compute_dtype == "float32"
    assert run.notes[0].startswith("library defaults: borderType=BORDER_DEFAULT (reflect-101)")
    assert changed_fields(diagnosis) == {"boundary": "reflect", "offset": (-1, -1),
                                         "precision": "float32"}


def test_library_defaults_odd_kernel():
    image, kernel = defaults_case(kernel_size=3)
    run, diagnosis = explain_defaults(BACKEND, image, kernel)
    assert changed_fields(diagnosis) == {"boundary": "reflect", "precision": "float32"}


def test_library_defaults_uint8_stays_uint8():
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (6, 7, 1)).astype(np.uint8)
    kernel = np.full((3, 3, 1, 1), 1 / 9)
    run = BACKEND.run(image, kernel, padding="same", dtype="float32", library_defaults=True)
    assert run.output.dtype == np.uint8
    assert "uint8 image kept" in run.notes[0]


def test_large_kernels_mention_the_dft_path():
    image, kernel = defaults_case(kernel_size=11, channels=1, outputs=1)
    run = BACKEND.run(image, kernel, padding="same", dtype="float64")
    assert any("through a DFT" in note for note in run.notes)
