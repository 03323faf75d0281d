"""The diagnosis engine on outputs made by real TensorFlow and Keras calls.

Marked `tensorflow`: `make test-fast` (-m "not tensorflow") skips them without importing TF.
"""

import os

import ml_dtypes
import numpy as np
import pytest

import convcheck
from convcheck.vocabulary import Verdict

pytestmark = pytest.mark.tensorflow

RNG = np.random.default_rng(99)
IMAGE = RNG.standard_normal((24, 20, 3))
KERNEL = RNG.standard_normal((3, 3, 3, 2))


@pytest.fixture(scope="module")
def tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return pytest.importorskip("tensorflow", reason="TensorFlow is not installed: pip install tensorflow-cpu")


@pytest.fixture(scope="module")
def keras(tf):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    return pytest.importorskip("keras", reason="Keras is not installed: pip install keras")


def keras_conv(keras, image, kernel, *, dtype=None, padding="same", bias=None):
    layer = keras.layers.Conv2D(kernel.shape[3], kernel.shape[:2], padding=padding,
                                use_bias=bias is not None, **({"dtype": dtype} if dtype else {}))
    layer.build((None, *image.shape))
    layer.set_weights([kernel] + ([np.full(kernel.shape[3], bias)] if bias is not None else []))
    return np.asarray(layer(image[None]).numpy()[0])


def changed(d):
    return {f: getattr(d.explanation, f) for f in d.explanation.changed_fields(d.baseline)}


def test_keras_default_policy_casts_float64_to_float32(keras):
    d = convcheck.explain(IMAGE, KERNEL, keras_conv(keras, IMAGE, KERNEL))
    assert d.verdict is Verdict.EXPLAINED
    assert changed(d) == {"precision": "float32"}


def test_keras_float64_layer_is_equal(keras):
    d = convcheck.explain(IMAGE, KERNEL, keras_conv(keras, IMAGE, KERNEL, dtype="float64"))
    assert d.verdict is Verdict.EQUAL


@pytest.mark.parametrize("policy, precision", [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16"),
                                               ("float16", "float16"), ("bfloat16", "bfloat16")])
def test_keras_mixed_and_half_precision_policies(keras, policy, precision):
    out = keras_conv(keras, IMAGE, KERNEL, dtype=policy)
    d = convcheck.explain(IMAGE, KERNEL, out)
    assert d.verdict is Verdict.EXPLAINED
    assert changed(d) == {"precision": precision}


def test_keras_bias_and_valid_padding(keras):
    out = keras_conv(keras, IMAGE, KERNEL, dtype="float64", padding="valid", bias=0.5)
    d = convcheck.explain(IMAGE, KERNEL, out)
    assert changed(d) == {"padding": "valid", "bias": pytest.approx(0.5, rel=1e-12)}


def test_tf_conv2d_with_a_flipped_kernel_and_bias_add(tf):
    image = IMAGE.astype(np.float32)
    kernel = KERNEL.astype(np.float32)
    out = tf.nn.bias_add(tf.nn.conv2d(image[None], kernel[::-1, ::-1].copy(), 1, "SAME"), [0.25, 0.25])
    d = convcheck.explain(image, kernel, out.numpy()[0])
    assert changed(d) == {"kernel_transform": "rot180", "bias": pytest.approx(0.25, rel=1e-6)}


def test_tf_conv2d_float16(tf):
    out = tf.nn.conv2d(IMAGE[None].astype(np.float16), KERNEL.astype(np.float16), 1, "VALID").numpy()[0]
    d = convcheck.explain(IMAGE, KERNEL, out)
    assert changed(d) == {"padding": "valid", "precision": "float16"}


def test_tf_conv2d_bfloat16_output_in_memory(tf):
    out = tf.nn.conv2d(tf.constant(IMAGE[None], tf.bfloat16), tf.constant(KERNEL, tf.bfloat16), 1, "SAME").numpy()[0]
    assert out.dtype == ml_dtypes.bfloat16
    d = convcheck.explain(IMAGE, KERNEL, out)
    assert changed(d) == {"precision": "bfloat16"}


def test_tf_conv2d_transposed_weights_unexplained_when_a_pixel_is_corrupted(tf):
    out = tf.nn.conv2d(IMAGE[None], KERNEL.transpose(1, 0, 2, 3).copy(), 1, "SAME").numpy()[0]
    assert changed(convcheck.explain(IMAGE, KERNEL, out)) == {"kernel_transform": "transpose"}
    out[5, 5, 1] += 1e-3
    d = convcheck.explain(IMAGE, KERNEL, out)
    assert d.verdict is Verdict.UNEXPLAINED
    assert d.closest.kernel_transform == "transpose"
    assert d.stats.mismatched_after == 1
