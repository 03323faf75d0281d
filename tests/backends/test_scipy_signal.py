"""scipy.signal.convolve2d / correlate2d backends against the float64 loop reference.

Must not import TensorFlow (checked at the end of the module).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convcheck.backends import get_backend
from convcheck.errors import BackendError, InputError

from .conftest import (DTYPES, PADDINGS, UNIT_ROUNDOFF, assert_within_bound, error_bound,
                       random_case, reference_correlation, within_bound)

CONVOLVE = get_backend("scipy.signal.convolve2d")
CORRELATE = get_backend("scipy.signal.correlate2d")


def expected_compute_dtype(dtype: str) -> str:
    # scipy.signal has no float16/bfloat16 loop: the backend rounds to them, computes in float32.
    return "float32" if dtype in ("float16", "bfloat16") else dtype


def shifted_overlap(output, reference, dy, dx):
    """The parts of `output` and `reference` where output[i, j] == reference[i + dy, j + dx]."""
    height, width = output.shape[:2]
    rows_out = slice(max(0, -dy), min(height, height - dy))
    cols_out = slice(max(0, -dx), min(width, width - dx))
    rows_ref = slice(rows_out.start + dy, rows_out.stop + dy)
    cols_ref = slice(cols_out.start + dx, cols_out.stop + dx)
    return output[rows_out, cols_out], (rows_ref, cols_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_correlate2d_matches_reference(case, padding, dtype):
    name, image, kernel = case
    run = CORRELATE.run(image, kernel, padding=padding, dtype=dtype)

    reference = reference_correlation(image, kernel, padding)
    bound = error_bound(image, kernel, padding, UNIT_ROUNDOFF[dtype], reference)
    assert_within_bound(run.output, reference, bound)
    assert run.compute_dtype == expected_compute_dtype(dtype)
    assert run.output.dtype == np.dtype(expected_compute_dtype(dtype))
    assert run.padding == padding
    assert run.seconds >= 0
    channels = image.shape[2]
    assert (f"per-channel 2-D calls summed over {channels} input channels" in run.notes) == (channels > 1)
    if dtype in ("float16", "bfloat16"):
        assert f"scipy.signal has no {dtype}: inputs rounded to {dtype}, computed in float32" in run.notes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_convolve2d_is_the_flipped_reference(case, padding, dtype):
    name, image, kernel = case
    run = CONVOLVE.run(image, kernel, padding=padding, dtype=dtype)

    flipped = kernel[::-1, ::-1]
    reference = reference_correlation(image, flipped, padding)
    bound = error_bound(image, flipped, padding, UNIT_ROUNDOFF[dtype], reference)
    kh, kw = kernel.shape[:2]
    if padding == "same" and (kh % 2 == 0 or kw % 2 == 0):
        # Flipping the kernel moves the extra 'same' row/column of an even kernel to the
        # top/left: one pixel up/left of TensorFlow's convention on each even axis.
        dy, dx = -(kh % 2 == 0), -(kw % 2 == 0)
        assert not within_bound(run.output, reference, bound)
        part, (rows, cols) = shifted_overlap(run.output, reference, dy, dx)
        assert_within_bound(part, reference[rows, cols], bound[rows, cols])
    else:
        assert_within_bound(run.output, reference, bound)
    assert run.compute_dtype == expected_compute_dtype(dtype)
    assert run.padding == padding


@pytest.mark.parametrize("kernel_shape, offset", [((4, 3), (-1, 0)), ((3, 4), (0, -1)),
                                                  ((2, 2), (-1, -1)), ((5, 3), (0, 0))])
def test_convolve2d_same_offset_per_even_axis(kernel_shape, offset):
    rng = np.random.default_rng(1)
    image = rng.uniform(-1, 1, (6, 7, 1))
    kernel = rng.uniform(-1, 1, kernel_shape + (1, 1))
    run = CONVOLVE.run(image, kernel, padding="same", dtype="float64")
    flipped = kernel[::-1, ::-1]
    reference = reference_correlation(image, flipped, "same")
    bound = error_bound(image, flipped, "same", UNIT_ROUNDOFF["float64"], reference)
    part, (rows, cols) = shifted_overlap(run.output, reference, *offset)
    assert_within_bound(part, reference[rows, cols], bound[rows, cols])
    # correlate2d needs no offset: scipy centres it as TensorFlow does.
    correlated = CORRELATE.run(image, kernel, padding="same", dtype="float64")
    plain = reference_correlation(image, kernel, "same")
    assert_within_bound(correlated.output, plain,
                        error_bound(image, kernel, "same", UNIT_ROUNDOFF["float64"], plain))


@settings(max_examples=40, deadline=None)
@given(height=st.integers(1, 6), width=st.integers(1, 6), kh=st.integers(1, 4),
       kw=st.integers(1, 4), channels=st.integers(1, 2), outputs=st.integers(1, 2),
       padding=st.sampled_from(PADDINGS), seed=st.integers(0, 2**16))
def test_correlate2d_any_shape(height, width, kh, kw, channels, outputs, padding, seed):
    rng = np.random.default_rng(seed)
    image = rng.uniform(-2, 2, (height, width, channels))
    kernel = rng.uniform(-2, 2, (kh, kw, channels, outputs))
    if padding == "valid" and (kh > height or kw > width):
        with pytest.raises(InputError, match="'valid' padding leaves no output"):
            CORRELATE.run(image, kernel, padding=padding, dtype="float64")
        return
    run = CORRELATE.run(image, kernel, padding=padding, dtype="float64")
    reference = reference_correlation(image, kernel, padding)
    assert_within_bound(run.output, reference,
                        error_bound(image, kernel, padding, UNIT_ROUNDOFF["float64"], reference))


def test_two_dimensional_inputs_are_one_channel():
    image, kernel = random_case("single")
    run = CORRELATE.run(image[:, :, 0], kernel[:, :, 0, 0], padding="same", dtype="float64")
    assert run.output.shape == (7, 8, 1)
    assert run.notes == ()


def test_library_defaults_float64_is_full_mode():
    image, kernel = random_case("multi")
    run = CORRELATE.run(image, kernel, padding="same", dtype="float16", library_defaults=True)
    assert run.padding == "full"
    assert run.compute_dtype == "float64"
    assert run.output.shape == (7 + 3, 8 + 3, 2)
    reference = reference_correlation(image, kernel, "full")
    assert_within_bound(run.output, reference,
                        error_bound(image, kernel, "full", UNIT_ROUNDOFF["float64"], reference))
    assert run.notes[0].startswith("library defaults: scipy.signal mode='full', inputs as loaded")
    assert "per-channel 2-D calls summed over 3 input channels" in run.notes


def test_library_defaults_integers_stay_integers():
    rng = np.random.default_rng(2)
    image = rng.integers(-9, 10, (5, 6, 2))
    kernel = rng.integers(-3, 4, (3, 3, 2, 1))
    run = CONVOLVE.run(image, kernel, padding="valid", dtype="float32", library_defaults=True)
    assert run.compute_dtype == "int64"
    assert run.output.dtype == np.int64
    np.testing.assert_array_equal(run.output, reference_correlation(image, kernel[::-1, ::-1], "full"))
    assert any("integer arithmetic (int64)" in note for note in run.notes)


def test_library_defaults_int8_wraps_around():
    image = np.full((3, 3, 1), 100, dtype=np.int8)
    kernel = np.full((2, 2, 1, 1), 100, dtype=np.int8)
    run = CORRELATE.run(image, kernel, padding="same", dtype="float32", library_defaults=True)
    assert run.output.dtype == np.int8
    assert run.output[1, 1, 0] == 64  # 4 * 100 * 100 = 40000 = 156 * 256 + 64


@pytest.mark.parametrize("low", [np.float16, ml_dtypes.bfloat16])
def test_library_defaults_half_precision_raises(low):
    image, kernel = random_case("single")
    with pytest.raises(BackendError) as info:
        CORRELATE.run(image.astype(low), kernel.astype(low), padding="same", dtype="float32",
                      library_defaults=True)
    assert info.value.backend == "scipy.signal.correlate2d"
    assert "cannot compute in" in info.value.reason and "float32" in info.value.reason
    assert "\n" not in info.value.reason


def test_library_defaults_float16_image_with_float64_kernel_promotes():
    image, kernel = random_case("single")
    run = CORRELATE.run(image.astype(np.float16), kernel, padding="same", dtype="float32",
                        library_defaults=True)
    assert run.compute_dtype == "float64"


def test_float16_overflow_is_noted():
    image, kernel = random_case("single")
    image[0, 0, 0] = 1e5
    run = CORRELATE.run(image, kernel, padding="same", dtype="float16")
    assert any("overflows float16" in note for note in run.notes)


def test_bad_arguments_are_input_errors():
    image, kernel = random_case("multi")
    with pytest.raises(InputError):
        CORRELATE.run(image[:, :, :2], kernel, padding="same", dtype="float64")
    with pytest.raises(InputError):
        CORRELATE.run(image, kernel, padding="circular", dtype="float64")
    with pytest.raises(InputError):
        CORRELATE.run(image, kernel, padding="same", dtype="int32")


def test_scipy_backends_never_import_tensorflow():
    # In a fresh interpreter: other test modules in this session may have imported it.
    code = ("import sys, numpy as np\n"
            "import tests.backends.test_scipy_signal as t\n"
            "for b in (t.CONVOLVE, t.CORRELATE):\n"
            "    b.run(np.ones((4, 4, 2)), np.ones((2, 2, 2, 1)), padding='same', dtype='float32')\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
