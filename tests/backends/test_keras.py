"""keras.layers.Conv2D backend against the float64 loop reference (skipped without TF/Keras)."""

from __future__ import annotations

import numpy as np
import pytest

from convcheck.backends import get_backend

from .conftest import (DTYPES, PADDINGS, UNIT_ROUNDOFF, assert_within_bound, error_bound,
                       random_case, reference_correlation)

pytestmark = pytest.mark.tensorflow

BACKEND = get_backend("keras.layers.Conv2D")


@pytest.fixture(scope="module", autouse=True)
def keras():
    """Import Keras (on TensorFlow) once for the module, inside a fixture so deselection is free."""
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed: "
                                             "pip install tensorflow-cpu to test keras.layers.Conv2D")
    return pytest.importorskip("keras", reason="Keras is not installed: pip install keras")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_conv2d_layer_matches_reference(case, padding, dtype):
    name, image, kernel = case
    run = BACKEND.run(image, kernel, padding=padding, dtype=dtype)

    reference = reference_correlation(image, kernel, padding)
    bound = error_bound(image, kernel, padding, UNIT_ROUNDOFF[dtype], reference)
    assert_within_bound(run.output, reference, bound)  # a cross-correlation: no flip
    assert run.compute_dtype == dtype
    assert run.output.dtype.name == dtype
    assert run.padding == padding
    assert run.seconds >= 0
    full_note = any("has no 'full' padding" in note for note in run.notes)
    assert full_note == (padding == "full")


def test_library_defaults_float32_policy_and_valid_padding():
    image, kernel = random_case("multi")
    run = BACKEND.run(image, kernel, padding="same", dtype="float64", library_defaults=True)
    assert run.padding == "valid"
    assert run.compute_dtype == "float32"
    assert run.output.dtype == np.float32
    assert run.output.shape == (4, 5, 2)
    assert run.notes[0] == "library defaults: Keras float32 dtype policy, padding='valid'"
    assert "Keras cast the float64 image to float32 (its dtype policy)" in run.notes
    assert "the float64 kernel was stored as float32 (the layer's variable dtype)" in run.notes
    reference = reference_correlation(image, kernel, "valid")
    assert_within_bound(run.output, reference, error_bound(
        image, kernel, "valid", UNIT_ROUNDOFF["float32"], reference))


def test_library_defaults_integer_image_cast_to_compute_dtype():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (6, 6, 1)).astype(np.uint8)
    kernel = rng.integers(-2, 3, (3, 3, 1, 1)).astype(np.float64)
    run = BACKEND.run(image, kernel, padding="valid", dtype="float32", library_defaults=True)
    assert run.compute_dtype == "float32"
    np.testing.assert_array_equal(run.output, reference_correlation(image, kernel, "valid"))
    assert any("the uint8 image was cast to float32 first" in note for note in run.notes)
