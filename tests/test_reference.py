"""The float64 reference and its geometry, checked against scipy and numpy.pad."""

import numpy as np
import pytest
import scipy.signal as sig
from hypothesis import given, settings
from hypothesis import strategies as st

from convcheck.engine.windows import boundary_index, gather_windows, pad_image
from convcheck.engine.reference import correlate, reference
from convcheck.geometry import output_size, transform_kernel
from convcheck.vocabulary import BOUNDARIES, KERNEL_TRANSFORMS, PADDINGS

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("shape", [(9, 7, 1, 3, 3, 1), (9, 7, 3, 4, 2, 2), (12, 10, 8, 3, 3, 20)])
def test_reference_matches_scipy_correlate2d(padding, shape):
    height, width, channels, kh, kw, outs = shape  # the last case takes the im2col path
    image = RNG.standard_normal((height, width, channels))
    kernel = RNG.standard_normal((kh, kw, channels, outs))
    got = reference(image, kernel, padding)
    full = np.stack([sum(sig.correlate2d(image[:, :, c], kernel[:, :, c, o], mode="full") for c in range(channels))
                     for o in range(outs)], axis=-1)
    top = {"same": ((kh - 1) // 2, (kw - 1) // 2), "valid": (0, 0), "full": (kh - 1, kw - 1)}[padding]
    r0, c0 = kh - 1 - top[0], kw - 1 - top[1]
    expected = full[r0:r0 + got.shape[0], c0:c0 + got.shape[1]]
    assert got.shape[:2] == output_size(padding, height, width, kh, kw)
    magnitude = reference(np.abs(image), np.abs(kernel), padding)
    assert np.all(np.abs(got - expected) <= 2 * kh * kw * channels * 2.0 ** -53 * magnitude)


def test_reference_2d_layouts():
    image, kernel = RNG.standard_normal((6, 5)), RNG.standard_normal((3, 3))
    assert reference(image, kernel).shape == (6, 5)
    assert np.allclose(reference(image, kernel), sig.correlate2d(image, kernel, mode="same"), rtol=0, atol=1e-14)


def test_magnitude_is_the_correlation_of_magnitudes():
    image, kernel = RNG.standard_normal((8, 8, 2)), RNG.standard_normal((3, 3, 2, 1))
    _, mags = correlate(image, kernel, magnitude=True)
    assert np.allclose(mags, reference(np.abs(image), np.abs(kernel)), rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", KERNEL_TRANSFORMS)
def test_transforms_match_the_contract(name):
    k = RNG.standard_normal((2, 3))
    expected = {"identity": k, "rot180": k[::-1, ::-1], "transpose": k.T, "anti_transpose": k[::-1, ::-1].T,
                "flip_ud": k[::-1, :], "flip_lr": k[:, ::-1], "rot90": np.rot90(k, 1), "rot270": np.rot90(k, -1)}[name]
    assert np.array_equal(transform_kernel(k[:, :, None, None], name)[:, :, 0, 0], expected)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 6), margin=st.integers(0, 15), boundary=st.sampled_from(BOUNDARIES))
def test_boundary_index_agrees_with_numpy_pad(size, margin, boundary):
    line = np.arange(1, size + 1, dtype=float)
    if boundary == "reflect" and size == 1:
        expected = np.full(size + 2 * margin, 1.0)
    else:
        expected = pad_image(line[:, None, None], boundary, (margin, 0), (margin, 0))[:, 0, 0]
    idx, ok = boundary_index(np.arange(-margin, size + margin), size, boundary)
    assert np.array_equal(np.where(ok, line[idx], 0.0), expected)


def test_gather_windows_reads_the_padded_image():
    image = RNG.standard_normal((7, 6, 2))
    rows, cols = np.array([-3, 0, 4]), np.array([-2, 3, 5])
    for boundary in BOUNDARIES:
        padded = pad_image(image, boundary, (10, 10), (10, 10))
        blocks = gather_windows(image, boundary, rows, cols, 5, 4)
        for n, (r, c) in enumerate(zip(rows, cols)):
            assert np.array_equal(blocks[n], padded[r + 10:r + 15, c + 10:c + 14])
