"""Native stride, dilation and groups (issue 8): each deep-learning backend against the reference.

TensorFlow, Keras (on TensorFlow, and on JAX / PyTorch in a subprocess), PyTorch and JAX
take the geometry in their own call (`Backend.native_geometry`); float64 runs must equal
`convcheck.reference.reference` to float64 rounding. scipy, ndimage, OpenCV and
fftconvolve do not: `run` refuses geometry for them (compare emulates it).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from convcheck.backends import BACKENDS, get_backend
from convcheck.errors import InputError
from convcheck.engine.reference import reference
from convcheck.geometry import normalize_padding

# backend name: (modules it needs, pytest marks)
NATIVE = {
    "tf.nn.conv2d": (("tensorflow",), (pytest.mark.tensorflow,)),
    "keras.layers.Conv2D": (("tensorflow", "keras"), (pytest.mark.tensorflow,)),
    "torch.nn.functional.conv2d": (("torch",), (pytest.mark.torch,)),
    "jax.lax.conv_general_dilated": (("jax",), (pytest.mark.jax,)),
    "keras.layers.Conv2D[jax]": (("keras", "jax"), (pytest.mark.tensorflow, pytest.mark.jax)),
    "keras.layers.Conv2D[torch]": (("keras", "torch"), (pytest.mark.tensorflow, pytest.mark.torch)),
}
EMULATED = ("scipy.signal.convolve2d", "scipy.signal.correlate2d", "scipy.signal.fftconvolve",
            "scipy.ndimage.correlate", "scipy.ndimage.convolve", "cv2.filter2D")
SUBPROCESS = ("keras.layers.Conv2D[jax]", "keras.layers.Conv2D[torch]")


def needs(name):
    """The backend, or a clean skip naming what is missing."""
    for module in NATIVE[name][0]:
        pytest.importorskip(module, reason=f"{module} is not installed: {name} cannot be tested")
    return get_backend(name)


def backend_params(names):
    return [pytest.param(name, marks=NATIVE[name][1], id=name) for name in names]


def geometry_case(size, groups_kind, seed=0):
    """A float64 (H, W, 4) image and a grouped HWIO kernel: (image, kernel, groups)."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(-1, 1, size + (4,))
    if groups_kind == "dense":
        kernel, groups = rng.uniform(-1, 1, (3, 2, 4, 3)), 1
    elif groups_kind == "groups2":
        kernel, groups = rng.uniform(-1, 1, (2, 3, 2, 4)), 2
    else:  # depthwise, multiplier 2: (kh, kw, 1, C * 2)
        kernel, groups = rng.uniform(-1, 1, (3, 3, 1, 8)), 4
    return image, kernel, groups


SIZES = {"even": (10, 12), "odd": (11, 9)}
GROUPS = ("dense", "groups2", "depthwise")
GRID = list(itertools.product((1, 2, 3), (1, 2, 3), ("same", "valid"), sorted(SIZES), GROUPS))
# The Keras subprocess rows answer over a pipe: a smaller grid that still has every kind.
SMALL_GRID = [case for case in GRID if case[3] == "even" and case[0] != 3 and case[1] != 3] + \
             [(3, 1, "same", "odd", "dense"), (1, 3, "valid", "odd", "groups2"), (3, 2, "same", "odd", "depthwise")]


def check(backend, stride, dilation, padding, size, groups_kind):
    image, kernel, groups = geometry_case(SIZES[size], groups_kind)
    run = backend.run(image, kernel, padding=padding, dtype="float64", stride=(stride, stride),
                      dilation=(dilation, dilation), groups=groups)
    expected = reference(image, kernel, padding, stride=(stride, stride), dilation=(dilation, dilation),
                         groups=groups)
    assert run.output.shape == expected.shape
    assert run.compute_dtype == "float64"
    np.testing.assert_allclose(run.output, expected, rtol=1e-12, atol=1e-13)
    return run


@pytest.mark.parametrize("name", backend_params(n for n in NATIVE if n not in SUBPROCESS))
def test_native_geometry_matches_reference(name):
    backend = needs(name)
    assert backend.native_geometry
    for case in GRID:
        try:
            check(backend, *case)
        except AssertionError as exc:
            raise AssertionError(f"stride, dilation, padding, size, groups = {case}: {exc}") from None


@pytest.mark.parametrize("name", backend_params(SUBPROCESS))
def test_keras_subprocess_geometry_matches_reference(name):
    backend = needs(name)
    assert backend.native_geometry
    for case in SMALL_GRID:
        try:
            check(backend, *case)
        except AssertionError as exc:
            raise AssertionError(f"stride, dilation, padding, size, groups = {case}: {exc}") from None


@pytest.mark.parametrize("name", backend_params(NATIVE))
def test_full_padding_and_unequal_geometry(name):
    backend = needs(name)
    image, kernel, groups = geometry_case((9, 10), "groups2", seed=3)
    for stride, dilation, padding in (((2, 3), (3, 2), "full"), ((3, 2), (1, 2), "same"), ((1, 2), (2, 1), "valid")):
        run = backend.run(image, kernel, padding=padding, dtype="float64", stride=stride, dilation=dilation,
                          groups=groups)
        np.testing.assert_allclose(run.output, reference(image, kernel, padding, stride=stride,
                                                         dilation=dilation, groups=groups),
                                   rtol=1e-12, atol=1e-13)
        assert run.padding == padding


@pytest.mark.parametrize("name", backend_params(["tf.nn.conv2d", "torch.nn.functional.conv2d",
                                                 "jax.lax.conv_general_dilated"]))
def test_strides_with_dilations_run_natively(name):
    # tf.nn.conv2d (checked on tensorflow-cpu 2.21), F.conv2d and lax take both at once:
    # nothing is emulated, so no note says so.
    backend = needs(name)
    run = check(backend, 2, 2, "same", "even", "dense")
    assert not any("emulated" in note for note in run.notes), run.notes


@pytest.mark.tensorflow
def test_keras_conv2d_emulates_stride_with_dilation_and_says_so():
    backend = needs("keras.layers.Conv2D")
    run = check(backend, 2, 2, "same", "even", "dense")
    assert any("raises ValueError for strides > 1 with dilation_rate > 1" in note and "stride emulated" in note
               for note in run.notes), run.notes
    # DepthwiseConv2D takes both natively.
    run = check(backend, 2, 2, "same", "even", "depthwise")
    assert not any("emulated" in note for note in run.notes), run.notes
    assert any("DepthwiseConv2D" in note for note in run.notes)


@pytest.mark.tensorflow
def test_tf_depthwise_emulates_stride_with_dilation_and_says_so():
    # tf.nn.depthwise_conv2d only warns at strides > 1 with dilations > 1, and its values are wrong.
    backend = needs("tf.nn.conv2d")
    run = check(backend, 2, 2, "same", "even", "depthwise")
    assert any("depthwise_conv2d computes strides > 1 with dilations > 1 wrongly" in note for note in run.notes)
    run = check(backend, 2, 1, "same", "even", "depthwise")
    assert any("tf.nn.depthwise_conv2d" in note for note in run.notes)
    assert not any("emulated" in note for note in run.notes), run.notes


@pytest.mark.tensorflow
def test_tf_depthwise_unequal_strides_emulated():
    backend = needs("tf.nn.conv2d")
    image, kernel, groups = geometry_case((9, 10), "depthwise", seed=5)
    run = backend.run(image, kernel, padding="same", dtype="float64", stride=(2, 1), groups=groups)
    np.testing.assert_allclose(run.output, reference(image, kernel, "same", stride=(2, 1), groups=groups),
                               rtol=1e-12, atol=1e-13)
    assert any("rejects unequal strides" in note for note in run.notes)


@pytest.mark.torch
def test_torch_uneven_same_padding_uses_f_pad():
    backend = needs("torch.nn.functional.conv2d")
    run = check(backend, 2, 1, "same", "even", "dense")  # 10 rows, 3-row kernel: total 1, all at the bottom
    assert any("F.pad" in note for note in run.notes), run.notes


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("name", backend_params(["tf.nn.conv2d", "keras.layers.Conv2D",
                                                 "torch.nn.functional.conv2d", "jax.lax.conv_general_dilated"]))
def test_lower_precision_geometry_computes_in_dtype(name, dtype):
    backend = needs(name)
    image, kernel, groups = geometry_case((10, 11), "groups2", seed=6)
    run = backend.run(image, kernel, padding="same", dtype=dtype, stride=(2, 2), dilation=(2, 1), groups=groups)
    assert run.compute_dtype == dtype
    expected = reference(image, kernel, "same", stride=(2, 2), dilation=(2, 1), groups=groups)
    # A loose sanity check only: the engine's bound judges these rows in compare.
    np.testing.assert_allclose(run.output.astype(np.float64), expected, atol=0.1 if dtype == "float16" else 1e-4)


@pytest.mark.parametrize("name", EMULATED)
def test_other_backends_refuse_geometry(name):
    backend = BACKENDS[name]
    assert not backend.native_geometry
    image, kernel, _ = geometry_case((8, 8), "dense")
    with pytest.raises(InputError, match="emulates"):
        backend.run(image, kernel, padding="same", dtype="float64", stride=(2, 2))


@pytest.mark.parametrize("kwargs", [{"stride": 0}, {"stride": (1, 2, 3)}, {"dilation": (1, -1)},
                                    {"groups": 0}, {"groups": 3}, {"stride": 1.5}])
def test_bad_geometry_is_an_input_error(kwargs):
    image, kernel, _ = geometry_case((8, 8), "groups2")
    backend = BACKENDS["tf.nn.conv2d"]
    kwargs = {"groups": 2, **kwargs}
    with pytest.raises(InputError):
        backend.run(image, kernel, padding="same", dtype="float64", **kwargs)


def test_valid_refuses_a_dilated_kernel_larger_than_the_image():
    image, kernel, _ = geometry_case((5, 5), "dense")
    with pytest.raises(InputError, match="larger than"):
        BACKENDS["torch.nn.functional.conv2d"].run(image, kernel, padding="valid", dtype="float64",
                                                   dilation=(3, 1))


# ----------------------------------------------------------------------------- explicit pads (CONTRACT section 1, v3)

EXPLICIT_PADS = {"P": 1, "PH,PW": (1, 2), "T,B,L,R": (0, 2, 1, 0), "pairs": ((2, 0), (0, 3))}
ALL_BACKENDS = [pytest.param(name, marks=NATIVE[name][1], id=name) for name in NATIVE] + \
    [pytest.param(name, marks=(pytest.mark.opencv,) if name == "cv2.filter2D" else (), id=name) for name in EMULATED]


def any_backend(name):
    if name in NATIVE:
        return needs(name)
    if name == "cv2.filter2D":
        pytest.importorskip("cv2", reason="cv2 is not installed: cv2.filter2D cannot be tested")
    return get_backend(name)


def expected_with(image, kernel, name, padding, **geometry):
    """The reference, for a library that flips the kernel (a true convolution) with the flipped kernel."""
    flips = name in ("scipy.signal.convolve2d", "scipy.signal.fftconvolve", "scipy.ndimage.convolve")
    return reference(image, kernel[::-1, ::-1] if flips else kernel, normalize_padding(padding), **geometry)


@pytest.mark.parametrize("name", ALL_BACKENDS)
def test_explicit_pads_reach_every_backend(name):
    # PyTorch's padding=1, (PH, PW), ONNX-style unequal amounts: every backend computes the
    # reference's windows on the zero-padded image (natively, or 'valid' on an image padded by hand).
    backend = any_backend(name)
    rng = np.random.default_rng(5)
    image, kernel = rng.uniform(-1, 1, (9, 10, 4)), rng.uniform(-1, 1, (3, 2, 4, 3))
    for label, padding in EXPLICIT_PADS.items():
        run = backend.run(image, kernel, padding=padding, dtype="float64")
        expected = expected_with(image, kernel, name, padding)
        assert run.output.shape == expected.shape, label
        np.testing.assert_allclose(run.output, expected, rtol=1e-12, atol=1e-13, err_msg=label)
        assert run.padding == normalize_padding(padding)
        if name in EMULATED:
            assert any("zero-padded by hand" in note for note in run.notes), run.notes


@pytest.mark.parametrize("name", backend_params(NATIVE))
def test_explicit_pads_with_native_geometry(name):
    backend = needs(name)
    image, kernel, groups = geometry_case((10, 11), "groups2", seed=7)
    for padding in (1, ((0, 2), (1, 0))):
        for stride, dilation in (((2, 2), (1, 1)), ((2, 1), (2, 2)), ((1, 3), (1, 1))):
            run = backend.run(image, kernel, padding=padding, dtype="float64", stride=stride, dilation=dilation,
                              groups=groups)
            expected = reference(image, kernel, normalize_padding(padding), stride=stride, dilation=dilation,
                                 groups=groups)
            assert run.output.shape == expected.shape, (padding, stride, dilation)
            np.testing.assert_allclose(run.output, expected, rtol=1e-12, atol=1e-13,
                                       err_msg=f"{padding}, {stride}, {dilation}")


def test_explicit_pads_leaving_no_output_are_refused():
    backend = get_backend("scipy.signal.correlate2d")
    with pytest.raises(InputError, match="leaves no output"):
        backend.run(np.ones((2, 2)), np.ones((4, 4)), padding=(0, 1, 0, 1), dtype="float64")
    with pytest.raises(InputError, match="padding"):
        backend.run(np.ones((5, 5)), np.ones((3, 3)), padding=(1, -1), dtype="float64")
