"""What the near-miss fixes must keep: a real TF32 computation (inputs cut by any of the three
known roundings) is still TF32, and a declared FFT as accurate as a direct sum is equal. The
near misses themselves are replayed from their real library outputs in
tests/test_fuzz_nearmiss.py (test_cases_the_long_run_found)."""

import numpy as np
import pytest
import scipy.signal as sig

import convcheck
from convcheck.engine.precision import round_tf32
from convcheck.results import Verdict


def _tf32(a, mode):
    return round_tf32(a, mode).astype(np.float32)


def _conv(image, kernel):
    """float32 inputs, summed exactly (float64), stored in float32: what a float32 conv gives
    within its rounding."""
    return sig.correlate2d(image.astype(np.float64), kernel.astype(np.float64), mode="same").astype(np.float32)


@pytest.mark.parametrize("mode", ["truncate", "nearest", "nearest-even"])
def test_a_real_tf32_computation_is_tf32(mode):
    rng = np.random.default_rng(20261206)
    image = rng.standard_normal((24, 24)).astype(np.float32)
    kernel = rng.standard_normal((3, 3)).astype(np.float32)
    d = convcheck.explain(image, kernel, _conv(_tf32(image, mode), _tf32(kernel, mode)))
    assert d.verdict is Verdict.EXPLAINED and d.explanation.changed_fields(d.baseline) == ("precision",)
    assert d.explanation.precision == "tfloat32"


def test_a_declared_fft_that_is_as_accurate_as_a_direct_sum_is_equal():
    """A real float64 scipy.signal.fftconvolve output, algorithm='fft' declared (case 242): its
    residual is too small to show an FFT's noise, and that is no argument against it."""
    rng = np.random.default_rng(242)
    image = rng.standard_normal((20, 20))
    kernel = rng.standard_normal((3, 3))
    out = sig.fftconvolve(image, kernel[::-1, ::-1], mode="same")
    assert convcheck.explain(image, kernel, out, algorithm="fft").verdict is Verdict.EQUAL
