"""Values (issue 9) on real framework outputs: a Keras Conv2D with a bias per channel and a
ReLU (also under mixed_bfloat16), JAX's bfloat16 convolution accumulated and kept in float32
(preferred_element_type), and cv2.filter2D on a uint8 image (ddepth=-1: rounded and
saturated to uint8). Each with a corrupted element that must stay unexplained.

Frameworks are imported inside the tests only (markers: tensorflow, jax, opencv).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import convcheck
from convcheck.vocabulary import Verdict

RNG = np.random.default_rng(2027)
IMAGE = RNG.standard_normal((36, 40, 3))   # a middle element is no border effect
KERNEL = RNG.standard_normal((3, 3, 3, 4))
BIAS = np.array([0.5, -0.25, 1.5, -1.0])


def changed(d):
    return {f: getattr(d.explanation, f) for f in d.explanation.changed_fields(d.baseline)}


# --- Keras Conv2D(activation=..., use_bias=True) -------------------------------------------------

@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed: pip install tensorflow-cpu")
    return pytest.importorskip("keras", reason="Keras is not installed: pip install keras")


def keras_layer(keras, policy, activation, kernel=KERNEL):
    layer = keras.layers.Conv2D(filters=4, kernel_size=3, padding="same", activation=activation, use_bias=True,
                                dtype=policy)
    layer.build((None, *IMAGE.shape))
    layer.set_weights([kernel, BIAS])
    out = layer(IMAGE[None]).numpy()[0]
    return np.asarray(out.astype(np.float32) if out.dtype == ml_dtypes.bfloat16 else out)


@pytest.mark.tensorflow
@pytest.mark.parametrize("policy, precision", [("float64", None), ("float32", "float32"),
                                               ("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
def test_keras_relu_with_a_bias_per_channel(keras, policy, precision):
    out = keras_layer(keras, policy, "relu")
    assert np.any(out == 0)
    d = convcheck.explain(IMAGE, KERNEL, out)
    assert d.verdict is Verdict.EXPLAINED, (d.reason, d.closest)
    got = changed(d)
    # The bias as the layer held it (rounded to bfloat16/float16 under a mixed policy).
    np.testing.assert_allclose(got.pop("bias"), BIAS, rtol=2.0 ** -7)
    assert got == {"activation": "relu", **({"precision": precision} if precision else {})}
    assert d.stats.bound_ratio <= 1.0
    assert d.stats.unclipped_fraction == pytest.approx(np.mean(out != 0))


@pytest.mark.tensorflow
def test_keras_relu6(keras):
    out = keras_layer(keras, "float64", "relu6", kernel=3 * KERNEL)
    assert np.any(out == 6) and np.any(out == 0)
    d = convcheck.explain(IMAGE, 3 * KERNEL, out)
    assert d.verdict is Verdict.EXPLAINED
    assert changed(d) == {"bias": pytest.approx(tuple(BIAS), rel=1e-12), "activation": "relu6"}


@pytest.mark.tensorflow
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_keras_relu_with_a_corrupted_pixel_is_unexplained(keras, policy):
    out = keras_layer(keras, policy, "relu")
    i, j, o = np.argwhere(out[16:20, 18:22] > 0.5)[0] + (16, 18, 0)
    out[i, j, o] += 0.05 * abs(out[i, j, o]) + 0.01
    d = convcheck.explain(IMAGE, KERNEL, out)
    assert d.verdict is Verdict.UNEXPLAINED and not d.cannot_decide


# --- JAX: bfloat16 inputs, float32 accumulation and result -----------------------------------------

@pytest.fixture(scope="module")
def jax_conv():
    pytest.importorskip("jax", reason="JAX is not installed: pip install jax")
    import jax
    import jax.numpy as jnp

    def run(image, kernel):
        out = jax.lax.conv_general_dilated(jnp.asarray(image[None], jnp.bfloat16), jnp.asarray(kernel, jnp.bfloat16),
                                           (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                           preferred_element_type=jnp.float32)
        assert out.dtype == jnp.float32
        return np.array(out)[0]
    return run


@pytest.mark.jax
def test_jax_preferred_element_type_float32_on_bfloat16_inputs(jax_conv):
    image, kernel = IMAGE.astype(ml_dtypes.bfloat16), KERNEL.astype(ml_dtypes.bfloat16)
    out = jax_conv(image, kernel)
    d = convcheck.explain(image, kernel, out)
    assert d.verdict is Verdict.EXPLAINED, (d.reason, d.closest)
    assert changed(d) == {"output_precision": "float32"}
    assert d.explanation.precision == "bfloat16"
    assert "preferred_element_type" in d.causes[0].fix
    # The float32 result's bound is far tighter than a bfloat16 result's (2^-8 of the values).
    assert d.stats.error_bound < 2.0 ** -12 * np.max(np.abs(out))
    # Declared, the same output is what was expected.
    assert convcheck.explain(image, kernel, out, output_precision="float32").verdict is Verdict.EQUAL


@pytest.mark.jax
def test_jax_float32_result_with_a_corrupted_element_is_unexplained(jax_conv):
    image, kernel = IMAGE.astype(ml_dtypes.bfloat16), KERNEL.astype(ml_dtypes.bfloat16)
    out = jax_conv(image, kernel)
    out[18, 19, 2] *= 1 + 2.0 ** -10       # well inside bfloat16's rounding, far outside float32's
    d = convcheck.explain(image, kernel, out)
    assert d.verdict is Verdict.UNEXPLAINED and not d.cannot_decide


# --- OpenCV: cv2.filter2D(uint8, ddepth=-1) -----------------------------------------------------------

@pytest.fixture(scope="module")
def cv2():
    return pytest.importorskip("cv2", reason="OpenCV is not installed: pip install opencv-python-headless")


PHOTO = RNG.integers(0, 256, (30, 34), dtype=np.uint8)
SHARPEN = (np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]) * 0.4 + RNG.uniform(-0.05, 0.05, (3, 3))).astype(np.float32)


@pytest.mark.opencv
@pytest.mark.parametrize("border, expected", [("constant", {}), ("default", {"boundary": "reflect"})])
def test_cv2_filter2d_on_uint8_rounds_and_saturates(cv2, border, expected):
    out = cv2.filter2D(PHOTO, -1, SHARPEN, borderType=cv2.BORDER_CONSTANT if border == "constant"
                       else cv2.BORDER_DEFAULT)
    assert out.dtype == np.uint8 and np.any(out == 255) and np.any(out == 0)
    d = convcheck.explain(PHOTO, SHARPEN, out)
    assert d.verdict is Verdict.EXPLAINED, (d.reason, d.closest)
    assert changed(d) == {**expected, "output_precision": "uint8"}
    assert d.stats.bound_ratio <= 1.0
    assert d.stats.unclipped_fraction == pytest.approx(np.mean((out != 0) & (out != 255)))


@pytest.mark.opencv
def test_cv2_filter2d_on_int16(cv2):
    image = RNG.integers(-3000, 3000, (24, 26)).astype(np.int16)
    out = cv2.filter2D(image, -1, SHARPEN, borderType=cv2.BORDER_CONSTANT)
    assert out.dtype == np.int16
    d = convcheck.explain(image, SHARPEN, out)
    assert d.verdict is Verdict.EXPLAINED
    assert changed(d) == {"output_precision": "int16"}


@pytest.mark.opencv
@pytest.mark.parametrize("delta", [1, -1])
def test_cv2_filter2d_one_unit_off_is_unexplained(cv2, delta):
    out = cv2.filter2D(PHOTO, -1, SHARPEN, borderType=cv2.BORDER_CONSTANT)
    i, j = np.argwhere((out[12:18, 12:18] > 5) & (out[12:18, 12:18] < 250))[0] + 12
    out[i, j] = int(out[i, j]) + delta
    d = convcheck.explain(PHOTO, SHARPEN, out)
    assert d.verdict is Verdict.UNEXPLAINED and not d.cannot_decide


@pytest.mark.opencv
def test_cli_compare_library_defaults_explains_cv2_on_a_uint8_photo(cv2, tmp_path):
    np.save(tmp_path / "photo.npy", PHOTO)
    np.save(tmp_path / "sharpen.npy", SHARPEN)
    result = subprocess.run([sys.executable, "-m", "convcheck", "compare", "photo.npy", "sharpen.npy",
                             "--library-defaults", "--backends", "cv2", "--format", "json"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)["results"]
    assert row["verdict"] == "explained"
    assert {c["field"]: c["value"] for c in row["causes"]} == {"boundary": "reflect", "output_precision": "uint8"}
    assert 0 < row["stats"]["unclipped_fraction"] < 1
