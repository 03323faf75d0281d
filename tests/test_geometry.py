"""CONTRACT v2 geometry and layout in the engine: stride, dilation, groups, batches,
channels-first, offsets at any stride, 1-D kernels and transposed outputs, on outputs
made by real scipy calls (TensorFlow and PyTorch below, marked) and by property tests."""

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal as sig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convcheck
from convcheck.engine.reference import reference
from convcheck.vocabulary import Verdict

RNG = np.random.default_rng(808)


def changed(d):
    return {f: getattr(d.explanation, f) for f in d.explanation.changed_fields(d.baseline)}


def test_a_subsampled_scipy_output_is_a_stride_and_equal_when_declared():
    # Odd sizes and kernel: TF SAME at stride 2 pads (1, 1), the windows of a stride-1 'same'.
    image, kernel = RNG.standard_normal((23, 19)), RNG.standard_normal((3, 3))
    out = sig.correlate2d(image, kernel, mode="same")[::2, ::2]
    assert np.allclose(out, reference(image, kernel, "same", stride=(2, 2)))
    assert changed(convcheck.explain(image, kernel, out)) == {"stride": (2, 2)}
    assert convcheck.explain(image, kernel, out, stride=2).verdict is Verdict.EQUAL


def test_a_dilated_kernel_is_found_from_the_values():
    image, kernel = RNG.standard_normal((20, 20)), RNG.standard_normal((3, 3))
    wide = np.zeros((5, 5))
    wide[::2, ::2] = kernel
    out = sig.correlate2d(image, wide, mode="same")
    assert changed(convcheck.explain(image, kernel, out)) == {"dilation": (2, 2)}


def test_opencv_style_per_channel_filtering_of_a_colour_image_is_equal():
    image, kernel = RNG.standard_normal((16, 12, 3)), RNG.standard_normal((3, 3))
    out = np.stack([ndi.correlate(image[:, :, c], kernel, mode="constant") for c in range(3)], -1)
    d = convcheck.explain(image, kernel, out)
    assert d.verdict is Verdict.EQUAL and d.explanation.groups == 3


def test_a_depthwise_kernel_is_recognised_from_the_output_channels_and_declared_by_them():
    image, kernel = RNG.standard_normal((12, 12, 3)), RNG.standard_normal((3, 3, 3, 2))
    out = np.stack([sig.correlate2d(image[:, :, c], kernel[:, :, c, m], mode="same")
                    for c in range(3) for m in range(2)], -1)   # output channel c * 2 + m
    # CONTRACT 2a: shapes that imply a field declare it (only a depthwise reading gives 6 channels).
    d = convcheck.explain(image, kernel, out)
    assert d.verdict is Verdict.EQUAL and d.explanation.groups == 3
    assert convcheck.explain(image, kernel, out, kernel_layout="depthwise").verdict is Verdict.EQUAL
    # Declaring another grouping makes the shapes' grouping the cause.
    assert changed(convcheck.explain(image, kernel, out, groups=1)) == {"groups": 3}


@pytest.mark.torch
def test_a_pytorch_depthwise_kernel_is_declared_by_its_shape():
    """Issue 21: an OIHW (C, 1, kh, kw) kernel on a C-channel image with a C-channel output is
    groups = C as declared, as compare runs it (a real torch depthwise conv)."""
    torch = pytest.importorskip("torch", reason="PyTorch makes the depthwise output")
    image = RNG.standard_normal((1, 4, 10, 10)).astype(np.float32)
    weight = RNG.standard_normal((4, 1, 3, 3)).astype(np.float32)
    out = torch.nn.functional.conv2d(torch.tensor(image), torch.tensor(weight), padding=1, groups=4).numpy()
    d = convcheck.explain(image, weight, out, layout="nchw", padding=1)
    assert d.verdict is Verdict.EQUAL and d.explanation.groups == 4, (d.verdict, d.causes)


def test_a_nchw_batch_with_oihw_weights_is_one_diagnosis():
    image = RNG.standard_normal((3, 2, 10, 9))          # N, C, H, W
    weights = RNG.standard_normal((4, 2, 3, 3))          # O, I, kh, kw
    out = np.stack([reference(sample.transpose(1, 2, 0), weights.transpose(2, 3, 1, 0), "same")
                    for sample in image]).transpose(0, 3, 1, 2)
    assert convcheck.explain(image, weights, out, layout="nchw").verdict is Verdict.EQUAL
    out[2, 1, 4, 4] += 1e-3
    d = convcheck.explain(image, weights, out, layout="nchw")
    assert d.verdict is Verdict.UNEXPLAINED
    assert d.stats.worst_index == (2, 1, 4, 4)   # in the caller's (N, C, H, W) axes


def test_a_channels_first_output_of_channels_last_inputs_is_an_output_layout():
    image, kernel = RNG.standard_normal((9, 11, 2)), RNG.standard_normal((3, 3, 2, 3))
    out = reference(image, kernel, "same").transpose(2, 0, 1)
    assert changed(convcheck.explain(image, kernel, out)) == {"output_layout": "chw"}


def test_np_roll_by_one_row_is_an_offset():
    image, kernel = RNG.standard_normal((14, 14)), RNG.standard_normal((3, 3))
    out = np.roll(sig.correlate2d(image, kernel, mode="same"), 1, axis=0)
    assert changed(convcheck.explain(image, kernel, out)) == {"offset": (-1, 0)}


def test_pytorch_stride_2_padding_1_on_an_even_size_is_an_offset_of_tf_same():
    image, kernel = RNG.standard_normal((16, 16, 2)), RNG.standard_normal((3, 3, 2, 3))
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))     # PyTorch padding=1, both sides
    out = reference(padded, kernel, "valid", stride=(2, 2))
    d = convcheck.explain(image, kernel, out, stride=2)
    assert changed(d) == {"offset": (-1, -1)}


@pytest.mark.parametrize("axis, name", [(1, "rows"), (0, "columns")])
def test_a_1d_kernel_says_along_which_axis_it_ran(axis, name):
    image, kernel = RNG.standard_normal((15, 13)), RNG.standard_normal(5)
    d = convcheck.explain(image, kernel, ndi.correlate1d(image, kernel, axis=axis, mode="constant"))
    assert d.verdict is Verdict.EQUAL and d.explanation.kernel_axis == name


def test_a_transposed_square_output_is_an_output_transform():
    image, kernel = RNG.standard_normal((12, 12)), RNG.standard_normal((3, 3))
    d = convcheck.explain(image, kernel, sig.correlate2d(image, kernel, mode="same").T)
    assert changed(d) == {"output_transform": "transpose"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), stride=st.integers(1, 3), dilation=st.integers(1, 3),
       padding=st.sampled_from(["same", "valid"]), groups=st.sampled_from([1, 2]),
       layout=st.sampled_from(["nhwc", "nchw"]), corrupt=st.booleans())
def test_property_random_geometry_is_recovered_and_corruption_never_explained(
        seed, stride, dilation, padding, groups, layout, corrupt):
    rng = np.random.default_rng(seed)
    batch, height, width = int(rng.integers(1, 3)), int(rng.integers(12, 20)), int(rng.integers(12, 20))
    image = rng.standard_normal((batch, height, width, 2 * groups))
    kernel = rng.standard_normal((3, 3, 2, 2 * groups))
    out = np.stack([reference(sample, kernel, padding, stride=(stride, stride), dilation=(dilation, dilation),
                              groups=groups) for sample in image])
    if corrupt:
        n, i, j, o = (int(rng.integers(0, size)) for size in out.shape)
        out[n, i, j, o] += 1e-3 * (1 + abs(out[n, i, j, o]))
    if layout == "nchw":
        image, out, kernel = image.transpose(0, 3, 1, 2), out.transpose(0, 3, 1, 2), kernel.transpose(3, 2, 0, 1)
    d = convcheck.explain(image, kernel, out, padding=padding, stride=stride, dilation=dilation, layout=layout)
    if corrupt:
        assert d.verdict is Verdict.UNEXPLAINED
    else:
        assert d.verdict is not Verdict.UNEXPLAINED, (d.reason, d.notes)
        assert set(changed(d)) <= {"groups"}   # everything declared but the grouping the shapes imply


# --- real TensorFlow and PyTorch outputs --------------------------------------------------------

@pytest.mark.tensorflow
@pytest.mark.parametrize("size", [(9, 9), (8, 10)])
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (3, 1), (1, 2), (1, 3)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_tf_conv2d_strides_and_dilations(size, stride, dilation, padding):
    tf = pytest.importorskip("tensorflow", reason="TensorFlow is not installed: pip install 'convcheck[tensorflow]'")
    image = RNG.standard_normal((1, *size, 3))
    kernel = RNG.standard_normal((3, 3, 3, 4))
    out = tf.nn.conv2d(image, kernel, strides=stride, dilations=dilation, padding=padding).numpy()
    d = convcheck.explain(image, kernel, out, padding=padding.lower(), stride=stride, dilation=dilation)
    assert d.verdict is Verdict.EQUAL, (d.reason, d.closest)
    found = convcheck.explain(image, kernel, out, padding=padding.lower())
    assert found.verdict is not Verdict.UNEXPLAINED


@pytest.mark.tensorflow
def test_tf_depthwise_conv2d_at_stride_2():
    tf = pytest.importorskip("tensorflow", reason="TensorFlow is not installed: pip install 'convcheck[tensorflow]'")
    image, kernel = RNG.standard_normal((2, 10, 10, 4)), RNG.standard_normal((3, 3, 4, 2))
    out = tf.nn.depthwise_conv2d(image, kernel, strides=[1, 2, 2, 1], padding="SAME").numpy()
    d = convcheck.explain(image, kernel, out, kernel_layout="depthwise", stride=2)
    assert d.verdict is Verdict.EQUAL


@pytest.mark.torch
@pytest.mark.parametrize("stride, padding, dilation, groups", [(2, 1, 1, 1), (1, 2, 2, 1), (2, 0, 1, 2), (1, 1, 1, 4)])
def test_torch_conv2d_nchw(stride, padding, dilation, groups):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'convcheck[torch]'")
    image = torch.from_numpy(RNG.standard_normal((2, 4, 12, 12)))
    weight = torch.from_numpy(RNG.standard_normal((4, 4 // groups, 3, 3)))
    out = torch.nn.functional.conv2d(image, weight, stride=stride, padding=padding, dilation=dilation,
                                     groups=groups).numpy()
    d = convcheck.explain(image.numpy(), weight.numpy(), out, layout="nchw", stride=stride, dilation=dilation,
                          groups=groups, padding="valid" if padding == 0 else "same")
    assert d.verdict is not Verdict.UNEXPLAINED, (d.reason, d.notes)
    assert set(changed(d)) <= {"offset", "padding"}   # PyTorch's symmetric padding vs TF SAME


def test_a_different_boundary_per_axis_is_a_boundary_pair():
    """scipy.ndimage's separable filters take a mode per axis."""
    image, rows, cols = RNG.standard_normal((20, 18)), RNG.standard_normal(3), RNG.standard_normal(5)
    out = ndi.correlate1d(ndi.correlate1d(image, rows, axis=0, mode="mirror"), cols, axis=1, mode="wrap")
    d = convcheck.explain(image, np.outer(rows, cols), out)
    assert changed(d) == {"boundary": ("reflect", "wrap")}
    assert d.to_dict()["explanation"]["boundary"] == ["reflect", "wrap"]
    out[0, 3] += 1e-3
    assert convcheck.explain(image, np.outer(rows, cols), out).verdict is Verdict.UNEXPLAINED


@pytest.mark.parametrize("cval", [2.5, -1.25])
def test_a_constant_border_value_is_found(cval):
    image, kernel = RNG.standard_normal((20, 18)), RNG.standard_normal((3, 3))
    out = ndi.correlate(image, kernel, mode="constant", cval=cval)
    d = convcheck.explain(image, kernel, out)
    assert set(changed(d)) == {"boundary", "cval"}
    assert d.explanation.boundary == "constant" and d.explanation.cval == pytest.approx(cval, rel=1e-9)
    for i, j in ((0, 5), (10, 10)):   # a corrupted border pixel and a corrupted interior one
        bad = out.copy()
        bad[i, j] += 1e-3
        assert convcheck.explain(image, kernel, bad).verdict is Verdict.UNEXPLAINED
