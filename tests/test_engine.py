"""The diagnosis engine on outputs made by real scipy.signal / scipy.ndimage calls.

No TensorFlow here (see test_engine_tensorflow.py). Every expected explanation below is
what the library call really computes, checked against CONTRACT section 2's definitions.
"""

import ml_dtypes
import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal as sig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convcheck
from convcheck.comparison import demo_paths
from convcheck.engine.reference import reference
from convcheck.geometry import transform_kernel
from convcheck.vocabulary import BOUNDARIES, KERNEL_TRANSFORMS, Verdict

RNG = np.random.default_rng(1234)
IMAGE = RNG.standard_normal((40, 36))
KERNEL = RNG.standard_normal((3, 5))  # not square, not symmetric: every transform differs
KERNEL5 = RNG.standard_normal((5, 5))


def explained(diagnosis, **fields):
    """Assert the verdict is 'explained' by exactly these non-default fields."""
    assert diagnosis.verdict is Verdict.EXPLAINED, (diagnosis.verdict, diagnosis.closest, diagnosis.notes)
    expl = diagnosis.explanation
    changed = dict(zip(expl.changed_fields(diagnosis.baseline),
                       (getattr(expl, f) for f in expl.changed_fields(diagnosis.baseline))))
    for name in ("bias", "scale"):
        if name in fields:
            assert changed.pop(name) == pytest.approx(fields.pop(name), rel=1e-9)
    assert changed == fields
    assert diagnosis.stats.bound_ratio <= 1.0
    assert diagnosis.stats.mismatched_after == 0


def hwio(k):
    return np.asarray(k)[:, :, None, None]


# --- the seed case ------------------------------------------------------------------------

def seed():
    image_path, kernel_path = demo_paths()
    return np.load(image_path), np.load(kernel_path)


def test_seed_convolve2d_is_a_flipped_kernel():
    image, kernel = seed()
    d = convcheck.explain(image, kernel, sig.convolve2d(image, kernel, mode="same"))
    explained(d, kernel_transform="rot180")
    assert d.explanation.precision == "float32"
    assert [c.field for c in d.causes] == ["kernel_transform"]
    assert "correlate2d" in d.causes[0].fix


def test_seed_convolve2d_with_transpose_as_in_the_question():
    image, kernel = seed()
    d = convcheck.explain(image, kernel, sig.convolve2d(image, kernel.T, mode="same"))
    explained(d, kernel_transform="anti_transpose")


def test_seed_correlate2d_is_equal():
    image, kernel = seed()
    d = convcheck.explain(image, kernel, sig.correlate2d(image, kernel, mode="same"))
    assert d.verdict is Verdict.EQUAL
    assert d.causes == ()
    assert d.stats.mismatched == 0


# --- each field alone ---------------------------------------------------------------------

@pytest.mark.parametrize("transform", KERNEL_TRANSFORMS)
def test_each_kernel_transform(transform):
    out = sig.correlate2d(IMAGE, np.ascontiguousarray(transform_kernel(hwio(KERNEL), transform)[:, :, 0, 0]),
                          mode="same")
    d = convcheck.explain(IMAGE, KERNEL, out)
    if transform == "identity":
        assert d.verdict is Verdict.EQUAL
    else:
        explained(d, kernel_transform=transform)


def test_convolve2d_is_rot180_in_every_mode():
    for mode in ("same", "valid", "full"):
        d = convcheck.explain(IMAGE, KERNEL5, sig.convolve2d(IMAGE, KERNEL5, mode=mode), padding=mode)
        explained(d, kernel_transform="rot180")


@pytest.mark.parametrize("mode", ["valid", "full"])
def test_padding_from_the_output_shape(mode):
    d = convcheck.explain(IMAGE, KERNEL, sig.correlate2d(IMAGE, KERNEL, mode=mode))
    explained(d, padding=mode)
    assert mode in d.causes[0].summary


@pytest.mark.parametrize("mode, boundary", [
    ("reflect", "symmetric"),   # scipy.ndimage's default 'reflect' is numpy's 'symmetric'
    ("mirror", "reflect"),      # OpenCV BORDER_REFLECT_101
    ("wrap", "wrap"),
    ("nearest", "edge"),
])
def test_ndimage_boundaries(mode, boundary):
    out = ndi.correlate(IMAGE, KERNEL5, mode=mode)
    explained(convcheck.explain(IMAGE, KERNEL5, out), boundary=boundary)


@pytest.mark.parametrize("boundary_arg, boundary", [("symm", "symmetric"), ("wrap", "wrap")])
def test_scipy_signal_boundaries(boundary_arg, boundary):
    out = sig.correlate2d(IMAGE, KERNEL5, mode="same", boundary=boundary_arg)
    explained(convcheck.explain(IMAGE, KERNEL5, out), boundary=boundary)


def test_ndimage_default_on_an_even_kernel_is_boundary_plus_offset():
    kernel = RNG.standard_normal((4, 4))
    # mode='reflect'; ndimage centres at kh // 2 = 2, TF at (kh - 1) // 2 = 1, so windows
    # start one row/column earlier: output[i, j] == reference[i - 1, j - 1].
    out = ndi.correlate(IMAGE, kernel)
    explained(convcheck.explain(IMAGE, kernel, out), boundary="symmetric", offset=(-1, -1))


def test_even_kernel_convolve2d_same_is_rot180_and_offset():
    kernel = RNG.standard_normal((4, 4))
    out = sig.convolve2d(IMAGE, kernel, mode="same")
    explained(convcheck.explain(IMAGE, kernel, out), kernel_transform="rot180", offset=(-1, -1))


def test_ndimage_origin_shift():
    out = ndi.correlate(IMAGE, KERNEL5, mode="constant", origin=(1, -2))
    explained(convcheck.explain(IMAGE, KERNEL5, out), offset=(-1, 2))


def test_float64_data_computed_in_float32():
    out = sig.correlate2d(IMAGE.astype(np.float32), KERNEL.astype(np.float32), mode="same")
    d = convcheck.explain(IMAGE, KERNEL, out)
    explained(d, precision="float32")
    assert "dtype='float64'" in d.causes[0].fix


def _round(a, dtype):
    return np.asarray(a).astype(dtype).astype(np.float32)


def test_float16_computation():
    out = sig.correlate2d(_round(IMAGE, np.float16), _round(KERNEL, np.float16), mode="same").astype(np.float16)
    explained(convcheck.explain(IMAGE, KERNEL, out), precision="float16")


def test_bfloat16_computation():
    bf = ml_dtypes.bfloat16
    out = sig.correlate2d(_round(IMAGE, bf), _round(KERNEL, bf), mode="same").astype(bf)
    # handed over in memory as bfloat16 ...
    explained(convcheck.explain(IMAGE, KERNEL, out), precision="bfloat16")
    # ... or as float32 after the usual cast before np.save
    explained(convcheck.explain(IMAGE, KERNEL, out.astype(np.float32)), precision="bfloat16")


def _tf32(a, rounding):
    """float32 with a 10-bit mantissa, by truncation or round-to-nearest-away (both exist)."""
    bits = np.asarray(a, dtype=np.float32).view(np.uint32)
    if rounding == "nearest":
        bits = bits + np.uint32(0x1000)
    return (bits & np.uint32(0xFFFFE000)).view(np.float32)


@pytest.mark.parametrize("rounding", ["truncate", "nearest"])
def test_tf32_is_told_apart_from_float16(rounding):
    image = IMAGE.astype(np.float32)
    kernel = KERNEL.astype(np.float32)
    out = sig.correlate2d(_tf32(image, rounding), _tf32(kernel, rounding), mode="same")
    d = convcheck.explain(image, kernel, out)
    explained(d, precision="tfloat32")
    assert "enable_tensor_float_32_execution(False)" in d.causes[0].fix


def test_bias():
    out = sig.correlate2d(IMAGE, KERNEL, mode="same") + 0.125
    explained(convcheck.explain(IMAGE, KERNEL, out), bias=0.125)


def test_kernel_normalised_to_sum_one():
    kernel = np.abs(KERNEL5) + 0.1
    out = sig.correlate2d(IMAGE, kernel / kernel.sum(), mode="same")
    explained(convcheck.explain(IMAGE, kernel, out), scale=1 / kernel.sum())


# --- combinations -------------------------------------------------------------------------

def test_float32_opencv_style_call_with_a_flipped_kernel():
    # cv2.filter2D(float32, kernel) reflects (BORDER_REFLECT_101) and correlates; feeding it a
    # pre-flipped kernel, as people do to get a "convolution", adds rot180.
    out = ndi.correlate(IMAGE.astype(np.float32), KERNEL5[::-1, ::-1].astype(np.float32), mode="mirror")
    explained(convcheck.explain(IMAGE, KERNEL5, out), kernel_transform="rot180", boundary="reflect",
              precision="float32")


def test_convolve2d_valid_in_float32():
    out = sig.convolve2d(IMAGE.astype(np.float32), KERNEL.astype(np.float32), mode="valid")
    explained(convcheck.explain(IMAGE, KERNEL, out), kernel_transform="rot180", padding="valid",
              precision="float32")


def test_bias_and_flip():
    out = sig.convolve2d(IMAGE, KERNEL5, mode="same") - 3.0
    explained(convcheck.explain(IMAGE, KERNEL5, out), kernel_transform="rot180", bias=-3.0)


# --- multi-channel and integers -----------------------------------------------------------

def test_multichannel_hwio_with_a_transposed_kernel():
    image = RNG.standard_normal((20, 22, 3))
    kernel = RNG.standard_normal((3, 3, 3, 2))
    out = np.stack([sum(sig.correlate2d(image[:, :, c], kernel[:, :, c, o].T, mode="same") for c in range(3))
                    for o in range(2)], axis=-1)
    d = convcheck.explain(image, kernel, out)
    explained(d, kernel_transform="transpose")
    assert d.stats.total == out.size


def test_multichannel_float64_to_float32_cast():
    image = RNG.standard_normal((20, 22, 3))
    kernel = RNG.standard_normal((5, 5, 3, 1)).astype(np.float32)
    out = sum(sig.correlate2d(image[:, :, c].astype(np.float32), kernel[:, :, c, 0], mode="same") for c in range(3))
    explained(convcheck.explain(image, kernel, out[:, :, None]), precision="float32")


def test_oihw_kernel_layout():
    image = RNG.standard_normal((12, 12, 2))
    kernel = RNG.standard_normal((3, 3, 2, 4))
    out = reference(image, kernel)
    d = convcheck.explain(image, kernel.transpose(3, 2, 0, 1), out, kernel_layout="oihw")
    assert d.verdict is Verdict.EQUAL


def test_uint8_photo_with_an_integer_laplacian():
    image = RNG.integers(0, 256, (30, 30), dtype=np.uint8)
    laplacian = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    same = sig.correlate2d(image.astype(np.int64), laplacian, mode="same")
    assert convcheck.explain(image, laplacian, same).verdict is Verdict.EQUAL
    sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    d = convcheck.explain(image, sobel, ndi.correlate(image.astype(np.float32), sobel.astype(np.float32)))
    explained(d, boundary="symmetric")


# --- ties ---------------------------------------------------------------------------------

def test_symmetric_kernel_prefers_identity():
    kernel = np.ones((3, 3))
    assert convcheck.explain(IMAGE, kernel, sig.convolve2d(IMAGE, kernel, mode="same")).verdict is Verdict.EQUAL


def test_boundaries_that_coincide_are_reported_as_ties():
    kernel = RNG.standard_normal((3, 3))  # a one-pixel margin: 'edge' and 'symmetric' pad alike
    d = convcheck.explain(IMAGE, kernel, ndi.correlate(IMAGE, kernel, mode="nearest"))
    explained(d, boundary="symmetric")
    assert [a.boundary for a in d.alternatives] == ["edge"]
    assert any("cannot be told apart" in n for n in d.notes)


# --- what must stay unexplained -----------------------------------------------------------

def test_a_different_kernel_is_unexplained():
    out = sig.correlate2d(IMAGE, RNG.standard_normal((3, 5)), mode="same")
    d = convcheck.explain(IMAGE, KERNEL, out)
    assert d.verdict is Verdict.UNEXPLAINED
    assert d.explanation is None and d.causes == ()
    assert d.closest is not None
    assert d.where == "everywhere"


def test_a_few_corrupted_pixels_are_unexplained():
    out = sig.convolve2d(IMAGE, KERNEL, mode="same")
    out[10, 11] += 0.5
    out[30, 7] -= 0.25
    d = convcheck.explain(IMAGE, KERNEL, out)
    assert d.verdict is Verdict.UNEXPLAINED
    assert d.where == "a few pixels"
    assert d.closest.kernel_transform == "rot180"   # the right computation, labelled as closest
    assert d.stats.mismatched_after == 2


def test_one_pixel_off_by_1e_3_in_float64_data():
    out = sig.correlate2d(IMAGE, KERNEL, mode="same")
    out[17, 5] += 1e-3
    d = convcheck.explain(IMAGE, KERNEL, out)
    assert d.verdict is Verdict.UNEXPLAINED
    assert d.stats.mismatched == 1
    assert d.stats.worst_index == (17, 5)


def test_noise_is_unexplained():
    out = sig.correlate2d(IMAGE, KERNEL, mode="same") + 1e-7 * RNG.standard_normal(IMAGE.shape)
    assert convcheck.explain(IMAGE, KERNEL, out).verdict is Verdict.UNEXPLAINED


def test_half_computed_one_way_half_another():
    out = sig.correlate2d(IMAGE, KERNEL5, mode="same")
    out[:, 18:] = sig.convolve2d(IMAGE, KERNEL5, mode="same")[:, 18:]
    d = convcheck.explain(IMAGE, KERNEL5, out)
    assert d.verdict is Verdict.UNEXPLAINED
    assert d.where in ("a region", "everywhere")


def test_a_constant_output_is_not_explained_by_scale_zero():
    out = np.full(IMAGE.shape, 2.5)
    d = convcheck.explain(IMAGE, KERNEL, out)
    assert d.verdict is Verdict.UNEXPLAINED


def test_output_shape_that_fits_no_padding():
    out = sig.correlate2d(IMAGE, KERNEL, mode="full")[:, :-1]  # a cropped column
    out = np.pad(out, ((0, 3), (0, 0)))                         # and padded rows
    d = convcheck.explain(IMAGE, KERNEL, out)
    # Explicit pads (contract v3) of at most a kernel's span per side cannot give 3 more
    # rows of zeros beyond 'full' (only a transposed kernel's shape fits, and its values fail).
    assert d.verdict is Verdict.UNEXPLAINED and not d.cannot_decide
    out = np.pad(sig.correlate2d(IMAGE, KERNEL, mode="full"), ((0, 20), (0, 20)))   # far beyond any padding
    d = convcheck.explain(IMAGE, KERNEL, out)
    assert d.verdict is Verdict.UNEXPLAINED
    assert "fits no padding, stride" in d.reason and "cropped" in d.reason


def test_an_output_whose_size_only_explicit_pads_give_is_explained_by_them():
    """CONTRACT 2a: pads are named for an output whose size no named padding gives: ONNX pads
    (3, 3) with a 3x3 kernel, a crop of 'full' by one column (pads [[2, 2], [4, 3]])."""
    kernel = KERNEL5[:3, :3]
    out = sig.correlate2d(np.pad(IMAGE, 3), kernel, mode="valid")
    d = convcheck.explain(IMAGE, kernel, out)
    assert d.verdict is Verdict.EXPLAINED and d.explanation.padding == ((3, 3), (3, 3))
    assert [c.field for c in d.causes] == ["padding"]
    out = sig.correlate2d(IMAGE, KERNEL, mode="full")[:, :-1]
    d = convcheck.explain(IMAGE, KERNEL, out)
    assert d.verdict is Verdict.EXPLAINED and d.explanation.padding == ((2, 2), (4, 3)), d.explanation
    assert convcheck.explain(IMAGE, KERNEL, out, padding=(2, 2, 4, 3)).verdict is Verdict.EQUAL


def test_a_strided_output_is_a_stride():
    out = sig.correlate2d(IMAGE, KERNEL, mode="same")[::2, ::2]
    d = convcheck.explain(IMAGE, KERNEL, out)
    assert d.verdict is Verdict.EXPLAINED
    assert d.explanation.stride == (2, 2)


def test_border_only_mismatch_is_located():
    out = ndi.correlate(IMAGE, KERNEL5, mode="constant")
    out[0, :] = ndi.correlate(IMAGE, KERNEL5, mode="constant", cval=1.0)[0, :]  # a boundary no one uses
    d = convcheck.explain(IMAGE, KERNEL5, out)
    assert d.verdict is Verdict.UNEXPLAINED
    assert d.where == "border"


# --- the contract's JSON shape ------------------------------------------------------------

def test_to_json_dict_has_the_contract_keys():
    image, kernel = seed()
    doc = convcheck.explain(image, kernel, sig.convolve2d(image, kernel, mode="same")).to_json_dict()
    assert doc["schema"] == "convcheck/explain/2"
    assert doc["verdict"] == "explained"
    from convcheck.choices import FIELDS
    assert list(doc["explanation"]) == list(FIELDS)   # CONTRACT v2: every section 2 field
    assert doc["explanation"]["stride"] == [1, 1] and doc["explanation"]["groups"] == 1
    assert doc["explanation"]["offset"] == [0, 0]
    assert doc["causes"][0]["field"] == "kernel_transform" and doc["causes"][0]["value"] == "rot180"
    assert {"summary", "fix"} <= set(doc["causes"][0])
    assert {"max_abs_diff", "max_rel_diff", "mismatched", "total", "worst_index", "residual_after",
            "error_bound"} <= set(doc["stats"])
    assert doc["stats"]["total"] == 64
    assert doc["stats"]["residual_after"] <= doc["stats"]["error_bound"]


# --- properties ---------------------------------------------------------------------------

def _extend(image, boundary, pad):
    mode = {"zero": "constant", "reflect": "reflect", "symmetric": "symmetric", "wrap": "wrap",
            "edge": "edge"}[boundary]
    return np.pad(image, pad, mode=mode)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed_=st.integers(0, 2**32 - 1), kh=st.integers(2, 5), kw=st.integers(2, 5),
       transform=st.sampled_from(KERNEL_TRANSFORMS), boundary=st.sampled_from(BOUNDARIES),
       dy=st.integers(-1, 1), dx=st.integers(-1, 1))
def test_property_random_transform_boundary_offset_is_recovered(seed_, kh, kw, transform, boundary, dy, dx):
    rng = np.random.default_rng(seed_)
    image = rng.standard_normal((rng.integers(12, 24), rng.integers(12, 24)))
    kernel = rng.standard_normal((kh, kw))
    out = _made_by_scipy(image, kernel, transform, boundary, dy, dx)
    d = convcheck.explain(image, kernel, out)
    assert d.verdict is not Verdict.UNEXPLAINED, (transform, boundary, dy, dx, d.closest)
    got = d.explanation
    assert got.offset == (dy, dx)
    assert np.array_equal(transform_kernel(hwio(kernel), got.kernel_transform), transform_kernel(hwio(kernel), transform))
    if got.boundary != boundary:  # a tie only when both boundaries give the very same output
        # where it is compared: an offset leaves out the rows/columns the reference lacks
        rows = slice(max(0, -dy), out.shape[0] - max(0, dy))
        cols = slice(max(0, -dx), out.shape[1] - max(0, dx))
        assert np.array_equal(_made_by_scipy(image, kernel, transform, got.boundary, dy, dx)[rows, cols],
                              out[rows, cols])


def _made_by_scipy(image, kernel, transform, boundary, dy, dx):
    """output[i, j] = ref[i + dy, j + dx]: a scipy 'valid' correlation of the extended image, cropped."""
    tk = np.ascontiguousarray(transform_kernel(hwio(kernel), transform)[:, :, 0, 0])
    top, left = (tk.shape[0] - 1) // 2, (tk.shape[1] - 1) // 2
    margin = max(kernel.shape) + 2
    full = sig.correlate2d(_extend(image, boundary, margin), tk, mode="valid")
    r0, c0 = margin - top + dy, margin - left + dx
    return full[r0:r0 + image.shape[0], c0:c0 + image.shape[1]]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed_=st.integers(0, 2**32 - 1), n_bad=st.integers(1, 4), dtype=st.sampled_from([np.float32, np.float64]),
       make=st.sampled_from(["correlate", "convolve", "reflect"]))
def test_property_corrupted_outputs_are_never_explained(seed_, n_bad, dtype, make):
    rng = np.random.default_rng(seed_)
    image = rng.standard_normal((rng.integers(10, 30), rng.integers(10, 30))).astype(dtype)
    kernel = rng.standard_normal((rng.integers(1, 5), rng.integers(2, 5))).astype(dtype)
    if make == "correlate":
        out = sig.correlate2d(image, kernel, mode="same")
    elif make == "convolve":
        out = sig.convolve2d(image, kernel, mode="same")
    else:
        out = ndi.correlate(image, kernel, mode="mirror")
    out = out.astype(np.float64)
    magnitude = reference(np.abs(image), np.abs(kernel))
    # Distinct pixels, so no two corruptions can land on one element and cancel out: every
    # corrupted element is off by at least 1e-3, far beyond any rounding bound. Off the
    # outermost rows/columns, which an offset explanation would not compare.
    inner = out[1:-1, 1:-1].shape
    flat = rng.choice(inner[0] * inner[1], size=min(n_bad, inner[0] * inner[1]), replace=False)
    for i, j in zip(*(index + 1 for index in np.unravel_index(flat, inner))):
        out[i, j] += (1e-3 * magnitude[i, j] + 1e-3) * rng.choice([-1, 1])
    d = convcheck.explain(image, kernel, out)
    assert d.verdict is Verdict.UNEXPLAINED, d.explanation


def test_non_finite_outputs_are_mismatches_not_matches():
    # A backend row can overflow (float16 beyond 65504): NaN/inf must never count as within bound.
    from convcheck.engine import diagnose
    from convcheck.inputs import prepare_inputs
    out = sig.correlate2d(IMAGE, KERNEL, mode="same")
    out[3, 4] = np.inf
    out[6, 7] = np.nan
    inputs = prepare_inputs(IMAGE, KERNEL, np.zeros_like(out))
    from dataclasses import replace
    d = diagnose(replace(inputs, output=out[None, :, :, None], output_shape=out.shape))
    assert d.verdict is Verdict.UNEXPLAINED
    assert d.stats.mismatched == 2


def test_closest_candidate_keeps_the_precision_that_fits():
    # Every pixel is sampled on a small output, so the corrupted one rejects the right
    # structure early; the closest candidate must still be rot180 + float32 (1 element off).
    image = RNG.standard_normal((16, 16))
    out = sig.convolve2d(image.astype(np.float32), KERNEL5.astype(np.float32), mode="same")
    out[4, 4] += 0.75
    d = convcheck.explain(image, KERNEL5, out)
    assert d.verdict is Verdict.UNEXPLAINED
    assert (d.closest.kernel_transform, d.closest.precision) == ("rot180", "float32")
    assert d.stats.mismatched_after == 1


@pytest.mark.parametrize("mode, boundary", [("reflect", "symmetric"), ("mirror", "reflect"), ("wrap", "wrap"),
                                            ("nearest", "edge")])
def test_boundary_rules_of_a_large_image_with_a_fitted_scale_and_bias(mode, boundary, monkeypatch):
    # A large image has interior sample positions: stage 1 searches the other boundary rules
    # only where the interior passes (Search._interior_gate), and here it must.
    from convcheck.engine.search import Search
    gates = []
    gate = Search._interior_gate
    monkeypatch.setattr(Search, "_interior_gate", lambda self, *a, **k: gates.append(gate(self, *a, **k)) or gates[-1])
    rng = np.random.default_rng(20261206)
    image = rng.standard_normal((96, 90)).astype(np.float32)
    kernel = rng.standard_normal((5, 5)).astype(np.float32)
    out = (ndi.correlate(image, kernel, mode=mode) * np.float32(2.5) + np.float32(0.75)).astype(np.float32)
    d = convcheck.explain(image, kernel, out)
    assert d.verdict.value == "explained" and d.explanation.boundary == boundary, d.reason
    assert d.explanation.scale == pytest.approx(2.5) and d.explanation.bias == pytest.approx(0.75)
    assert gates and gates[0] is True


def test_other_weights_on_a_large_image_skip_the_boundary_rules(monkeypatch):
    from convcheck.engine.search import Search
    gates = []
    gate = Search._interior_gate
    monkeypatch.setattr(Search, "_interior_gate", lambda self, *a, **k: gates.append(gate(self, *a, **k)) or gates[-1])
    rng = np.random.default_rng(20261207)
    image = rng.standard_normal((96, 90))
    out = ndi.correlate(image, rng.standard_normal((5, 5)), mode="mirror")
    d = convcheck.explain(image, rng.standard_normal((5, 5)), out)
    assert d.verdict.value == "unexplained" and gates and not any(gates)


@pytest.mark.parametrize("declared", [False, True])
def test_a_candidate_mostly_beyond_its_bound_is_compared_with_every_magnitude_made(monkeypatch, declared):
    """Where a probe finds most elements beyond the lower-bound bound (here the true
    convolution's output read as a correlation: the kernel's flip), each block's product makes
    every magnitude instead of gathering every window again: the same mismatches, maxima and
    ratio as the gathering path, and `mostly_beyond` is False where the candidate holds."""
    from convcheck.engine.evaluation import _Held
    rng = np.random.default_rng(2048)
    image = rng.standard_normal((300, 280, 3))
    kernel = rng.standard_normal((7, 7, 3, 4))
    bias = rng.standard_normal(4) if declared else None
    right = reference(image, kernel, padding="same") + (0.0 if bias is None else bias)
    wrong = reference(image, transform_kernel(kernel, "rot180"), padding="same") + (0.0 if bias is None else bias)
    expected = {"bias": bias} if declared else None
    probes = []
    original = _Held.mostly_beyond
    monkeypatch.setattr(_Held, "mostly_beyond", lambda self, *a: probes.append(original(self, *a)) or probes[-1])
    assert convcheck.explain(image, kernel, right, expected=expected).verdict is Verdict.EQUAL
    assert probes[0] is False
    probes.clear()
    fast = convcheck.explain(image, kernel, wrong, expected=expected)
    assert probes[0] is True
    monkeypatch.setattr(_Held, "mostly_beyond", lambda self, *a: False)
    slow = convcheck.explain(image, kernel, wrong, expected=expected)
    assert fast.verdict is slow.verdict is Verdict.EXPLAINED
    assert fast.explanation == slow.explanation and fast.explanation.kernel_transform == "rot180"
    for name in ("mismatched", "max_abs_diff", "worst_index"):
        assert getattr(fast.stats, name) == getattr(slow.stats, name), name


def _same_floats(a, b) -> bool:
    """Bit for bit, NaN payloads aside (a NaN's sign still counts)."""
    a, b = np.atleast_1d(a), np.atleast_1d(b)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    return a.shape == b.shape and np.array_equal(nan_a, nan_b) and np.array_equal(np.signbit(a), np.signbit(b)) \
        and np.array_equal(np.where(nan_a, 0, a).view(np.uint64), np.where(nan_b, 0, b).view(np.uint64))


def test_bfloat16_rounding_is_ml_dtypes_bit_for_bit():
    """precision.round_bfloat16 (numpy only: no 0.6 s import of ml_dtypes before the first
    bfloat16 candidate) against ml_dtypes' own cast: every float64 and float32 bit pattern
    drawn, the values next to every rounding midpoint across bfloat16's whole exponent range
    (ties to even, carries into the next binade), overflow, gradual underflow, NaN, signed zero,
    and the rounding through float32 that PyTorch's casts make."""
    from convcheck.engine.precision import round_bfloat16, round_to, rounder

    def cast(values):
        with np.errstate(over="ignore", invalid="ignore"):
            return np.asarray(values).astype(ml_dtypes.bfloat16).astype(np.float64)

    rng = np.random.default_rng(16)
    exponents, steps = rng.integers(-140, 129, 200_000), rng.integers(0, 256, 200_000)
    grid = np.ldexp(1 + steps / 128.0, exponents) * rng.choice([-1.0, 1.0], 200_000)
    with np.errstate(invalid="ignore"):
        cases = [rng.integers(0, 2 ** 64, 1_000_000, dtype=np.uint64).view(np.float64),
                 rng.integers(0, 2 ** 32, 500_000, dtype=np.uint32).view(np.float32),
                 *(grid * (1 + d) for d in (0.0, 2 ** -9, -2 ** -9, 2 ** -9 + 2 ** -40, 2 ** -9 - 2 ** -40, 2 ** -40)),
                 np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 3.4e38, -3.4e38, 1e39,
                           float.fromhex("0x1.fep127"), float.fromhex("0x1.ff0p127"), float.fromhex("0x1.fefffffp127"),
                           2.0 ** -133, 2.0 ** -134, 2.0 ** -134 + 2.0 ** -160, 3 * 2.0 ** -134, 2.0 ** -126,
                           2.0 ** -126 * (1 - 2.0 ** -9), 5e-324, 1.7976931348623157e308]),
                 np.float64(1.00390625 + 2.0 ** -30), rng.standard_normal((7, 5, 3)).astype(np.float32)]
        for values in cases:
            assert _same_floats(round_bfloat16(values), cast(values))
            assert np.shape(round_bfloat16(values)) == np.shape(values)
        wide = rng.standard_normal(50_000) * 10.0 ** rng.integers(-45, 39, 50_000)
        through = cast(wide.astype(np.float32))
        assert _same_floats(round_to(wide, "bfloat16", via="float32"), through)
        # Just above a midpoint of bfloat16 values: rounded up directly, but float32 makes them
        # ties first, which go to even (down, for an even last bit).
        normal = (exponents > -120) & (exponents < 127)
        near_ties = np.ldexp(1 + steps[normal] / 128.0 + 2.0 ** -8 + 2.0 ** -40, exponents[normal])
        assert not _same_floats(round_to(near_ties, "bfloat16"), round_to(near_ties, "bfloat16", via="float32"))
        assert _same_floats(round_to(near_ties, "bfloat16", via="float32"), cast(near_ties.astype(np.float32)))
        buffer = wide.copy()
        rounder("bfloat16", "float32")(buffer)
        assert _same_floats(buffer, through)
