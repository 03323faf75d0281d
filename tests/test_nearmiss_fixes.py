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


@pytest.mark.parametrize("how", ["argument", "expected"])
def test_declared_winograd_skips_readings_whose_kernel_it_cannot_compute(how):
    """Near-miss case 792: algorithm='winograd' declared with a valid 3x3 kernel and an output the
    reading given does not explain. The other readings of a (3, 3, 4, 12) kernel include OIHW
    weights reshaped into a (3, 12) one, which Winograd F(m x m, 3 x 3) cannot compute: that
    reading is no candidate, and never an InputError about a kernel the user did not pass."""
    rng = np.random.default_rng(792)
    image = rng.standard_normal((37, 37, 4)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 4, 12)).astype(np.float32)
    output = rng.standard_normal((37, 37, 12)).astype(np.float32)
    kw = {"algorithm": "winograd"} if how == "argument" else {"expected": {"algorithm": "winograd"}}
    d = convcheck.explain(image, kernel, output, **kw)
    assert d.verdict is Verdict.UNEXPLAINED and not d.cannot_decide
    assert any("other readings" in note for note in d.notes), d.notes


def test_a_fitted_bias_within_the_noise_of_its_bounds_is_no_cause():
    """Issue 20 item 2 (near-miss case 331): elements at the edges of their bounds pin a bias
    to [2e-05, 3e-05], a range narrower than the bias, but 400 elements each uncertain by 0.01
    cannot tell 2.5e-05 from 0 (3 standard errors: 0.0015). A bias of 0.01 they can."""
    from convcheck.engine.fits import undetermined

    rng = np.random.default_rng(331)
    values = rng.standard_normal((400, 1))
    bound = np.full_like(values, 0.01)
    noise = rng.uniform(-0.0099, 0.0099, values.shape)
    noise[0, 0], noise[1, 0] = 0.01 + 2e-5, -0.01 + 3e-5
    noise[2, 0], noise[3, 0] = 0.01 + 1e-5, 0.01 + 1.5e-5   # three elements need the bias, not one
    why = undetermined(values, values + noise, bound, "bias", 1.0, 2.5e-5, None, (1.0, 0.0))
    assert why is not None and "noise" in why, why
    assert undetermined(values, values + noise + 0.01, bound, "bias", 1.0, 0.01 + 2.5e-5, None, (1.0, 0.0)) is None
    # Per channel, each channel's own elements decide: the same two channels side by side.
    both = np.concatenate([noise, noise + 0.01], axis=1)
    values2, bound2 = np.repeat(values, 2, axis=1), np.repeat(bound, 2, axis=1)
    why = undetermined(values2, values2 + both, bound2, "channel_bias", 1.0, np.array([2.5e-5, 0.01 + 2.5e-5]),
                       None, (1.0, 0.0))
    assert why is not None and "output channel 0" in why, why


def test_a_fitted_bias_only_one_element_needs_is_no_cause():
    """Near-miss case 595: on a bfloat16 output one element moved by 9x its bound was
    "explained" by a bias on its channel that every other element tolerates but none needs. A
    parameter needed by as many elements as it has cannot tell a real bias from those elements
    being off; needed by three, it can."""
    from convcheck.engine.fits import undetermined

    rng = np.random.default_rng(595)
    values = rng.standard_normal((500, 1))
    bound = np.full_like(values, 0.01)
    bound[:50] = 1e-4                      # small values: tight bounds that pin a bias
    target = values + rng.uniform(-0.5, 0.5, values.shape) * bound
    moved = target.copy()
    moved[7, 0] += 9 * bound[7, 0]
    why = undetermined(values, moved, bound, "bias", 1.0, 5e-4, None, (1.0, 0.0))
    assert why is not None and "needed by 1 element only" in why, why
    shifted = target + 5e-4                # a real bias: every tight element needs it
    assert undetermined(values, shifted, bound, "bias", 1.0, 5e-4, None, (1.0, 0.0)) is None
