"""This repository's own tests: convcheck.testing.assert_conv_matches on our convolutions."""

from pathlib import Path

import numpy as np
import pytest

from convcheck.testing import assert_conv_matches
from tinymodel import conv2d_same

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def image():
    return np.load(DATA / "image.npy")


@pytest.fixture(scope="module")
def kernel():
    return np.load(DATA / "kernel.npy")


def test_our_layer_is_a_cross_correlation(image, kernel):
    assert_conv_matches(conv2d_same(image, kernel), image, kernel)


def test_our_layer_in_float32(image, kernel):
    output = conv2d_same(image.astype(np.float32), kernel.astype(np.float32))
    assert_conv_matches(output, image, kernel, allow=["precision=float32"])


def test_ported_output_differs_only_as_documented(image, kernel):
    ported = np.load(DATA / "ported_output.npy")
    assert_conv_matches(ported, image, kernel, allow=["kernel_transform=rot180", "precision=float32"])


def test_flipped_kernel_is_caught(image, kernel):
    # A regression we want to hear about: someone "fixes" the layer by flipping the kernel.
    with pytest.raises(AssertionError, match="kernel was flipped 180 degrees"):
        assert_conv_matches(conv2d_same(image, kernel[::-1, ::-1]), image, kernel)
