"""tf.nn.conv2d backend against the float64 loop reference (skipped without TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from convcheck.backends import get_backend
from convcheck.errors import BackendError

from .conftest import (DTYPES, PADDINGS, UNIT_ROUNDOFF, assert_within_bound, error_bound,
                       random_case, reference_correlation)

pytestmark = pytest.mark.tensorflow

BACKEND = get_backend("tf.nn.conv2d")


@pytest.fixture(scope="module", autouse=True)
def tensorflow():
    """Import TensorFlow once for the module (inside a fixture, so `-m 'not tensorflow'` never pays)."""
    return pytest.importorskip("tensorflow", reason="TensorFlow is not installed: "
                                                    "pip install tensorflow-cpu to test tf.nn.conv2d")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_conv2d_matches_reference(case, padding, dtype):
    name, image, kernel = case
    run = BACKEND.run(image, kernel, padding=padding, dtype=dtype)

    reference = reference_correlation(image, kernel, padding)
    bound = error_bound(image, kernel, padding, UNIT_ROUNDOFF[dtype], reference)
    assert_within_bound(run.output, reference, bound)
    assert run.compute_dtype == dtype
    assert run.output.dtype.name == dtype  # bfloat16 comes back as ml_dtypes.bfloat16
    assert run.padding == padding
    assert run.seconds >= 0
    assert (any("explicit padding" in note for note in run.notes)) == (padding == "full")


def test_library_defaults_keep_padding_and_image_dtype():
    image, kernel = random_case("multi")
    run = BACKEND.run(image, kernel.astype(np.float32), padding="valid", dtype="float16",
                      library_defaults=True)
    assert run.compute_dtype == "float64"
    assert run.padding == "valid"
    assert run.output.shape == (4, 5, 2)
    assert run.notes[0] == ("library defaults: tf.nn.conv2d has no default padding "
                            "(padding='valid' kept); inputs passed as loaded (float64), "
                            "the float32 kernel cast to float64 to match")
    kernel32 = kernel.astype(np.float32).astype(np.float64)
    reference = reference_correlation(image, kernel32, "valid")
    assert_within_bound(run.output, reference, error_bound(
        image, kernel32, "valid", UNIT_ROUNDOFF["float64"], reference))


def test_library_defaults_float16_image_computes_in_float16():
    image, kernel = random_case("single")
    run = BACKEND.run(image.astype(np.float16), kernel, padding="same", dtype="float64",
                      library_defaults=True)
    assert run.compute_dtype == "float16"
    assert run.output.dtype == np.float16


def test_library_defaults_integers_cast_to_float32():
    rng = np.random.default_rng(3)
    image = rng.integers(-9, 10, (5, 6, 2))
    kernel = rng.integers(-3, 4, (3, 3, 2, 2))
    run = BACKEND.run(image, kernel, padding="same", dtype="float64", library_defaults=True)
    assert run.compute_dtype == "float32"
    np.testing.assert_array_equal(run.output, reference_correlation(image, kernel, "same"))
    assert "the int64 inputs were cast to float32" in run.notes[0]


def test_framework_error_becomes_one_line_backend_error():
    # With library defaults the arrays go in as loaded, and Conv2D has no complex kernel.
    image = np.ones((4, 4, 1), dtype=np.complex128)
    kernel = np.ones((3, 3, 1, 1))
    with pytest.raises(BackendError) as info:
        BACKEND.run(image, kernel, padding="valid", dtype="float32", library_defaults=True)
    assert info.value.backend == "tf.nn.conv2d"
    assert info.value.reason.startswith("InvalidArgumentError: ")
    assert "complex128" in info.value.reason and "\n" not in info.value.reason
