"""algorithm = fft: real scipy.signal.fftconvolve / oaconvolve outputs are explained by the
FFT's normwise bound (precision.fft_convolution_bound), never beyond it, and a corrupted
FFT output stays unexplained."""

import numpy as np
import pytest
import scipy.signal as sig

import convcheck
from convcheck.engine.reference import reference
from convcheck.vocabulary import Verdict

RNG = np.random.default_rng(2024)


def hdr_image(shape, dtype):
    """High dynamic range: most pixels near 1, a tenth of them near 1e6."""
    spikes = np.where(RNG.random(shape) < 0.1, 1e6, 1.0)
    return (RNG.standard_normal(shape) * spikes).astype(dtype)


def changed(d):
    return {f: getattr(d.explanation, f) for f in d.explanation.changed_fields(d.baseline)}


CASES = [(sig.fftconvolve, (48, 40), (5, 5)), (sig.fftconvolve, (64, 64), (7, 3)),
         (sig.oaconvolve, (96, 80), (9, 9))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("call, shape, kshape", CASES)
def test_real_fft_outputs_on_high_dynamic_range_data_are_explained(call, shape, kshape, dtype):
    image, kernel = hdr_image(shape, dtype), RNG.standard_normal(kshape).astype(dtype)
    out = call(image, kernel[::-1, ::-1], mode="same") if kshape[0] % 2 else None
    if out is None:
        pytest.skip("an even kernel's 'same' is centred differently: covered by the offset tests")
    d = convcheck.explain(image, kernel, out)
    assert d.verdict is Verdict.EXPLAINED
    assert changed(d) == {"algorithm": "fft"}
    assert d.stats.bound_ratio <= 1.0
    declared = convcheck.explain(image, kernel, out, algorithm="fft")
    assert declared.verdict is Verdict.EQUAL


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_fft_bound_holds_on_the_true_error(dtype):
    """The largest real error of fftconvolve against the exact sum stays within the bound."""
    image, kernel = hdr_image((80, 72), dtype), RNG.standard_normal((5, 5)).astype(dtype)
    out = sig.fftconvolve(image, kernel[::-1, ::-1], mode="same").astype(np.float64)
    exact = reference(image.astype(np.float64), kernel.astype(np.float64), "same")
    d = convcheck.explain(image, kernel, out, algorithm="fft")
    assert d.verdict is Verdict.EQUAL
    assert np.max(np.abs(out - exact)) <= d.stats.error_bound


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["spike", "flat"])
def test_a_corrupted_fft_output_stays_unexplained(dtype, where):
    image, kernel = hdr_image((48, 40), dtype), RNG.standard_normal((5, 5)).astype(dtype)
    out = sig.fftconvolve(image, kernel[::-1, ::-1], mode="same").astype(np.float64)
    i, j = (int(v) for v in np.unravel_index(np.argmax(np.abs(out)) if where == "spike"
                                              else np.argmin(np.abs(out)), out.shape))
    out[i, j] += 1e-3 * np.max(np.abs(out))
    d = convcheck.explain(image, kernel, out)
    assert d.verdict is Verdict.UNEXPLAINED
    assert convcheck.explain(image, kernel, out, algorithm="fft").verdict is Verdict.UNEXPLAINED


def test_direct_is_preferred_when_it_explains():
    image, kernel = RNG.standard_normal((20, 20)), RNG.standard_normal((3, 3))
    d = convcheck.explain(image, kernel, sig.correlate2d(image, kernel, mode="same"))
    assert d.verdict is Verdict.EQUAL and d.explanation.algorithm == "direct"


def test_an_unknown_algorithm_is_an_input_error():
    with pytest.raises(convcheck.InputError):
        convcheck.explain(np.ones((4, 4)), np.ones((3, 3)), np.ones((4, 4)), algorithm="magic")


@pytest.mark.parametrize("boundary", ["reflect", "wrap", "edge", "symmetric"])
def test_a_declared_fft_with_another_boundary_is_held_to_its_rounding_too(boundary):
    """The FFT's simulation reads the image extended by the candidate's boundary: a direct sum
    with the kernel rounded to float16 is not an FFT under any boundary rule."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((16, 12, 12, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    from convcheck.engine.reference import correlate
    out = correlate(x.astype(np.float64), k.astype(np.float16).astype(np.float64), boundary=boundary)[0]
    assert convcheck.explain(x, k, out.astype(np.float32), algorithm="fft").verdict is Verdict.UNEXPLAINED


def test_a_real_bias_of_a_few_ulps_is_not_called_fft_rounding():
    """A direct float32 output plus a uniform bias of 1.6e-5 (about 17 units in the last place
    of its largest values): the bias, not an FFT, is the answer."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 24, 24, 4)).astype(np.float32)
    k = rng.standard_normal((3, 3, 4, 2)).astype(np.float32)
    out = (reference(x.astype(np.float64), k.astype(np.float64)) + 1.6e-5).astype(np.float32)
    d = convcheck.explain(x, k, out)
    assert d.explanation is not None and d.explanation.algorithm == "direct", changed(d)


@pytest.mark.parametrize("rounded", ["kernel", "image"])
def test_input_rounding_that_only_the_loose_fft_bound_covers_is_not_called_an_fft(rounded):
    """One input rounded to float16, the sum computed directly in float64 and stored in
    float32: not in the vocabulary. The residual fits inside the FFT's normwise bound, but
    its RMS is ~1e3 times what an FFT's rounding leaves (convcheck.engine.plausibility.FFT_RMS_RATIO), so an
    FFT must not be named."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((16, 12, 12, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    xr = x.astype(np.float16) if rounded == "image" else x
    kr = k.astype(np.float16) if rounded == "kernel" else k
    out = reference(xr.astype(np.float64), kr.astype(np.float64)).astype(np.float32)
    d = convcheck.explain(x, k, out)
    assert d.verdict is Verdict.UNEXPLAINED or d.explanation.algorithm == "direct", changed(d)
    assert convcheck.explain(x, k, out, algorithm="fft").verdict is Verdict.UNEXPLAINED


def test_the_fft_simulation_computes_the_candidate_correlation():
    """convcheck.engine.plausibility.fft_simulated is the candidate's correlation (padding, offset, stride,
    dilation, a kernel transform) within float64 FFT rounding."""
    from convcheck.engine.plausibility import fft_simulated
    from convcheck.engine.problem import Problem
    from convcheck.engine.reference import correlate
    from convcheck.geometry import transform_kernel
    from convcheck.inputs import prepare_inputs

    rng = np.random.default_rng(12)
    x, k = rng.standard_normal((2, 9, 11, 2)), rng.standard_normal((3, 2, 2, 3))
    for fields in ({}, {"padding": "full", "offset": (1, -1)}, {"stride": (2, 1), "padding": "valid"},
                   {"dilation": (2, 2)}, {"kernel_transform": "rot180", "padding": "valid"},
                   {"boundary": "reflect", "offset": (-1, 2)}, {"boundary": "wrap", "stride": (2, 2)},
                   {"boundary": ("edge", "symmetric"), "padding": "full", "dilation": (1, 2)}):
        expl = convcheck.Explanation(precision="float64", **{"padding": "same", **fields})
        values, _ = correlate(x, transform_kernel(k, expl.kernel_transform), padding=expl.padding,
                                     boundary=expl.boundary, offset=expl.offset, stride=expl.stride,
                                     dilation=expl.dilation)
        problem = Problem(prepare_inputs(x, k, values), expl, "float64")
        simulated = fft_simulated(problem, expl, values.shape)
        assert np.allclose(simulated, values, rtol=0, atol=1e-12), fields
