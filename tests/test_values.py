"""Values (CONTRACT section 2, issue 9): bias and scale per output channel, ReLU/ReLU6
activations, and the type the result is stored in (`output_precision`).

Outputs here come from scipy.signal.correlate2d sums and numpy (real Keras, JAX and OpenCV
outputs are in test_values_frameworks.py). Every positive has a negative next to it: a
corrupted element, a different clipping threshold, a bias on only some pixels.
"""

import json

import ml_dtypes
import numpy as np
import pytest
import scipy.signal as sig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convcheck
from convcheck.check import parse_allow
from convcheck.formats import github, junit, markdown, table
from convcheck.formats import json as json_format
from convcheck.vocabulary import Verdict

RNG = np.random.default_rng(909)
# Large enough that an element in the middle is no border effect (the engine's fallback
# passes for border-only mismatches would only make the negatives slower).
IMAGE = RNG.standard_normal((36, 38, 3))
KERNEL = RNG.standard_normal((3, 3, 3, 4))
BIAS = np.array([0.5, -0.25, 1.5, -1.0])


def correlate(image, kernel):
    """(H, W, C) x HWIO -> (H, W, O) 'same' cross-correlation, one scipy call per channel pair."""
    return np.stack([sum(sig.correlate2d(image[:, :, c], kernel[:, :, c, o], mode="same")
                         for c in range(kernel.shape[2])) for o in range(kernel.shape[3])], -1)


CONV = correlate(IMAGE, KERNEL)


def changed(d):
    return {f: getattr(d.explanation, f) for f in d.explanation.changed_fields(d.baseline)}


def explained(d, **fields):
    """Assert 'explained' by exactly these fields (bias and scale compared to 1e-9)."""
    assert d.verdict is Verdict.EXPLAINED, (d.verdict, d.reason, d.closest, d.notes)
    got = changed(d)
    for name in ("bias", "scale"):
        if name in fields:
            assert np.allclose(got.pop(name), fields.pop(name), rtol=1e-9, atol=1e-12)
    assert got == fields
    assert d.stats.bound_ratio <= 1.0 and d.stats.mismatched_after == 0


def unexplained(d, *, decidable=True):
    assert d.verdict is Verdict.UNEXPLAINED, changed(d)
    if decidable:
        assert not d.cannot_decide, d.reason


# --- bias and scale per output channel --------------------------------------------------------

def test_a_bias_per_channel_is_a_list_one_number_per_channel():
    d = convcheck.explain(IMAGE, KERNEL, CONV + BIAS)
    explained(d, bias=tuple(BIAS))
    assert isinstance(d.explanation.bias, tuple)
    document = json.loads(json_format.render_explain(d))
    assert document["explanation"]["bias"] == pytest.approx(list(BIAS), rel=1e-9)
    assert document["causes"][0]["value"] == pytest.approx(list(BIAS), rel=1e-9)
    assert "each output channel" in d.causes[0].summary and "use_bias=False" in d.causes[0].fix


def test_the_same_bias_on_every_channel_is_one_number():
    d = convcheck.explain(IMAGE, KERNEL, CONV + 0.75)
    explained(d, bias=0.75)
    assert isinstance(d.explanation.bias, float)
    assert json.loads(json_format.render_explain(d))["explanation"]["bias"] == pytest.approx(0.75)


def test_a_scale_per_channel():
    scale = np.array([0.5, 2.0, -1.0, 1 / 9])
    explained(convcheck.explain(IMAGE, KERNEL, CONV * scale), scale=tuple(scale))


def test_scale_and_bias_per_channel():
    scale = np.array([0.5, 2.0, 3.0, 1 / 9])
    explained(convcheck.explain(IMAGE, KERNEL, CONV * scale + BIAS), scale=tuple(scale), bias=tuple(BIAS))


def test_a_bias_on_only_some_pixels_is_unexplained():
    out = CONV + BIAS
    out[18:, :, 2] -= BIAS[2]           # the lower half of one channel without its bias
    unexplained(convcheck.explain(IMAGE, KERNEL, out))


def test_a_corrupted_pixel_under_a_per_channel_bias_is_unexplained():
    out = CONV + BIAS
    out[17, 19, 1] += 1e-3
    d = convcheck.explain(IMAGE, KERNEL, out)
    unexplained(d)
    assert d.stats.mismatched_after >= 1


def test_a_channel_too_small_to_decide_its_own_bias_cannot_decide():
    # One output pixel per channel: each channel's bias takes it, nothing is left to decide.
    image, kernel = IMAGE[:1, :1], KERNEL
    out = correlate(image, kernel) + BIAS
    d = convcheck.explain(image, kernel, out)
    assert d.verdict is Verdict.UNEXPLAINED and d.cannot_decide, (d.verdict, d.explanation)
    assert "channel" in d.reason, d.reason


# --- activations ------------------------------------------------------------------------------

def test_relu_after_a_bias_per_channel():
    out = np.maximum(CONV + BIAS, 0.0)
    d = convcheck.explain(IMAGE, KERNEL, out)
    explained(d, bias=tuple(BIAS), activation="relu")
    fraction = np.mean(out != 0)
    assert d.stats.unclipped_fraction == pytest.approx(fraction)
    assert json.loads(json_format.render_explain(d))["stats"]["unclipped_fraction"] == pytest.approx(fraction)
    assert any("clipped by the ReLU" in note and "verdict rests on" in note for note in d.notes)
    assert "activation=None" in [c for c in d.causes if c.field == "activation"][0].fix


def test_relu6_clips_at_zero_and_six():
    out = np.clip(3 * CONV + BIAS, 0.0, 6.0)
    assert np.any(out == 6) and np.any(out == 0)
    explained(convcheck.explain(IMAGE, 3 * KERNEL, out), bias=tuple(BIAS), activation="relu6")


def test_an_output_clipped_at_five_is_not_a_relu6():
    out = np.clip(3 * CONV + BIAS, 0.0, 5.0)
    unexplained(convcheck.explain(IMAGE, 3 * KERNEL, out))


def test_a_positive_element_set_to_zero_is_not_clipped():
    out = np.maximum(CONV + BIAS, 0.0)
    i, j, o = np.argwhere(out[16:20, 16:20] > 1.0)[0] + (16, 16, 0)
    out[i, j, o] = 0.0
    d = convcheck.explain(IMAGE, KERNEL, out)
    unexplained(d)
    assert d.stats.mismatched_after == 1


def test_a_corrupted_unclipped_element_under_relu():
    out = np.maximum(CONV + BIAS, 0.0)
    i, j, o = np.argwhere(out[16:20, 16:20] > 1.0)[1] + (16, 16, 0)
    out[i, j, o] *= 1 + 1e-6
    unexplained(convcheck.explain(IMAGE, KERNEL, out))


def test_a_mostly_clipped_output_cannot_decide():
    out = np.maximum(CONV - 9.0, 0.0)[..., :1]
    assert 0 < np.mean(out > 0) < 0.1
    d = convcheck.explain(IMAGE, KERNEL[..., :1], out)
    assert d.verdict is Verdict.UNEXPLAINED and d.cannot_decide
    assert "unclipped" in d.reason


def test_relu_is_not_tried_on_outputs_with_negatives():
    out = np.maximum(CONV + BIAS, 0.0)
    out[18, 18, 0] = -1e-3
    d = convcheck.explain(IMAGE, KERNEL, out)
    unexplained(d)
    assert d.closest is None or d.closest.activation == "linear"


# --- output precision -------------------------------------------------------------------------

BF16 = ml_dtypes.bfloat16


def test_bfloat16_inputs_accumulated_and_kept_in_float32():
    image, kernel = IMAGE.astype(BF16), KERNEL.astype(BF16)
    out = correlate(image.astype(np.float32), kernel.astype(np.float32)).astype(np.float32)
    d = convcheck.explain(image, kernel, out)
    explained(d, output_precision="float32")
    assert d.explanation.precision == "bfloat16"
    assert "preferred_element_type" in d.causes[0].summary
    # A bound without the bfloat16 rounding of the result: far below bfloat16's 2^-8.
    assert d.stats.error_bound < 1e-4 * np.max(np.abs(out))
    # ... which a bfloat16 rounding of one element breaks.
    out[4, 4, 2] = float(out[4, 4, 2].astype(BF16)) if out[4, 4, 2] != out[4, 4, 2].astype(BF16) \
        else out[4, 4, 2] * (1 + 2 ** -9)
    unexplained(convcheck.explain(image, kernel, out))


def test_declared_output_precision_float32_is_equal():
    image, kernel = IMAGE.astype(BF16), KERNEL.astype(BF16)
    out = correlate(image.astype(np.float32), kernel.astype(np.float32)).astype(np.float32)
    d = convcheck.explain(image, kernel, out, output_precision="float32")
    assert d.verdict is Verdict.EQUAL
    with pytest.raises(convcheck.InputError, match="output_precision"):
        convcheck.explain(image, kernel, out, output_precision="float8")


def rounded_uint8(values):
    """OpenCV's saturate_cast<uchar>: round to nearest (ties to even), then saturate."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


PHOTO = RNG.integers(0, 256, (20, 22)).astype(np.uint8)
SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]) * 0.4 + RNG.uniform(-0.05, 0.05, (3, 3))


def test_uint8_rounded_and_saturated():
    exact = sig.correlate2d(PHOTO.astype(np.float64), SHARPEN, mode="same")
    out = rounded_uint8(exact)
    assert np.any(out == 0) and np.any(out == 255)
    d = convcheck.explain(PHOTO, SHARPEN, out)
    explained(d, output_precision="uint8")
    assert d.stats.unclipped_fraction == pytest.approx(np.mean((out != 0) & (out != 255)))
    assert "ddepth=cv2.CV_32F" in d.causes[0].fix
    # The bound is half an integer unit wider, no more.
    assert 0.5 < d.stats.error_bound < 0.5 + 1e-9


@pytest.mark.parametrize("delta", [1, -1])
def test_uint8_off_by_one_unit_is_unexplained(delta):
    out = rounded_uint8(sig.correlate2d(PHOTO.astype(np.float64), SHARPEN, mode="same"))
    i, j = np.argwhere((out > 5) & (out < 250))[10]
    out[i, j] = int(out[i, j]) + delta
    unexplained(convcheck.explain(PHOTO, SHARPEN, out))


def test_a_saturated_element_that_should_not_be_is_unexplained():
    out = rounded_uint8(sig.correlate2d(PHOTO.astype(np.float64), SHARPEN, mode="same"))
    i, j = np.argwhere((out > 20) & (out < 200))[4]
    out[i, j] = 255
    unexplained(convcheck.explain(PHOTO, SHARPEN, out))


def test_an_exact_integer_output_stays_equal():
    laplacian = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.int16)
    out = sig.correlate2d(PHOTO.astype(np.int16), laplacian, mode="same").astype(np.int16)
    assert convcheck.explain(PHOTO, laplacian, out).verdict is Verdict.EQUAL


# --- reports and allow rules --------------------------------------------------------------------

@pytest.mark.parametrize("render", [table.render_explain, markdown.render_explain, github.render_explain,
                                    junit.render_explain, json_format.render_explain])
def test_every_format_names_the_new_causes_and_their_fixes(render):
    d = convcheck.explain(IMAGE, KERNEL, np.maximum(CONV + BIAS, 0.0))
    text = render(d, {"output": "out.npy"})
    for cause in d.causes:
        assert cause.fix.split(" (")[0][:40] in text.replace("\\", "")
    assert "ReLU" in text
    d = convcheck.explain(PHOTO, SHARPEN, rounded_uint8(sig.correlate2d(PHOTO.astype(float), SHARPEN, mode="same")))
    assert "ddepth=cv2.CV_32F" in render(d, {"output": "out.npy"}).replace("\\", "")


def test_allow_rules_for_the_new_fields():
    d = convcheck.explain(IMAGE, KERNEL, np.maximum(CONV + 0.5, 0.0))
    (relu,) = [c for c in d.causes if c.field == "activation"]
    assert parse_allow(["activation=relu"])[0].permits(relu)
    assert not parse_allow(["activation=relu6"])[0].permits(relu)
    (bias,) = [c for c in d.causes if c.field == "bias"]
    assert parse_allow(["bias=0.5"])[0].permits(bias)
    per_channel = convcheck.explain(IMAGE, KERNEL, CONV + BIAS).causes[0]
    assert parse_allow(["bias"])[0].permits(per_channel)
    assert not parse_allow(["bias=0.5"])[0].permits(per_channel)
    with pytest.raises(convcheck.InputError):
        parse_allow(["activation=sigmoid"])


# --- property: random values recovered, corrupted outputs never explained ----------------------

@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed_=st.integers(0, 2**32 - 1), outs=st.sampled_from([1, 2, 3]),
       activation=st.sampled_from(["linear", "relu", "relu6"]),
       fit=st.sampled_from(["bias", "scale", "both"]), corrupt=st.booleans())
def test_property_random_values_are_recovered_and_corruption_never_explained(seed_, outs, activation, fit, corrupt):
    rng = np.random.default_rng(seed_)
    image = rng.standard_normal((12, 13, 2))
    kernel = rng.standard_normal((3, 3, 2, outs))
    bias = np.round(rng.uniform(-1, 1, outs), 3) if fit in ("bias", "both") else np.zeros(outs)
    scale = rng.choice([0.5, 2.0, 3.0, -1.0, 1 / 9], outs) if fit in ("scale", "both") else np.ones(outs)
    if activation == "relu6":
        scale = scale * 3          # enough sums beyond 6
    pre = correlate(image, kernel) * scale + bias
    out = {"linear": pre, "relu": np.maximum(pre, 0), "relu6": np.clip(pre, 0, 6)}[activation]
    if corrupt:
        candidates = np.argwhere((out > 0.5) & (out < 5.5)) if activation != "linear" else np.argwhere(out == out)
        i, j, o = candidates[rng.integers(len(candidates))]
        out = out.copy()
        out[i, j, o] += 0.05 * (1 + abs(out[i, j, o]))
    d = convcheck.explain(image, kernel, out)
    if corrupt:
        assert d.verdict is Verdict.UNEXPLAINED, changed(d)
        return
    if d.verdict is Verdict.UNEXPLAINED:
        assert d.cannot_decide, (d.closest, d.notes)   # never a false alarm
        return
    got = changed(d)
    # The simplest activation that clips what is clipped: a ReLU6 that never reached 6 is a ReLU.
    simplest = "relu6" if np.any(out == 6) else "relu" if np.any(out == 0) else "linear"
    assert got.pop("activation", "linear") == simplest
    np.testing.assert_allclose(np.broadcast_to(got.pop("bias", 0.0), outs), bias, atol=1e-9)
    np.testing.assert_allclose(np.broadcast_to(got.pop("scale", 1.0), outs), scale, rtol=1e-9)
    assert got == {}


@pytest.mark.parametrize("factors", ["float32", "float16"])
def test_batchnorm_factors_in_float32_or_float16_on_a_float16_conv(factors):
    """Keras mixed precision stores the float16 conv, then runs BatchNorm in float32 with
    float32 factors; a conv's own bias is cast to float16. Declared, both are float16."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 8, 8, 4)).astype(np.float32)
    k = rng.normal(0, .5, (3, 3, 4, 4)).astype(np.float32)
    s, t = rng.uniform(.5, 1.5, 4), rng.normal(0, .3, 4)
    x16, k16 = (a.astype(np.float16).astype(np.float64) for a in (x, k))
    p = np.pad(x16, ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = sum(np.einsum("nhwc,co->nhwo", p[:, u:u + 8, v:v + 8], k16[u, v]) for u in range(3) for v in range(3))
    kind = np.float32 if factors == "float32" else np.float16
    y = (conv.astype(np.float16).astype(kind) * s.astype(kind) + t.astype(kind)).astype(np.float16)
    d = convcheck.explain(x, k, y, padding="same", precision="float32", expected={"scale": tuple(s), "bias": tuple(t)})
    assert d.verdict.value == "explained" and d.explanation.changed_fields(d.baseline) == ("precision",)
    assert d.explanation.precision == "float16"
