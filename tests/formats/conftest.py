"""Diagnoses and compare reports for the format tests: real ones from the engine (pure
numpy and scipy, no TensorFlow) plus hand-built rows for what a real run rarely gives
(skipped and failed backends)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from convcheck.comparison import demo_paths
from convcheck.engine import explain
from convcheck.results import BackendResult, CompareReport

NAMES = {"image": "image.npy", "kernel": "kernel.npy", "output": "output.npy"}


@pytest.fixture(scope="session")
def arrays():
    """The packaged demo image and kernel, as float64."""
    image_path, kernel_path = demo_paths()
    return np.load(image_path).astype(np.float64), np.load(kernel_path).astype(np.float64)


@pytest.fixture(scope="session")
def diagnoses(arrays):
    """One real diagnosis of each kind: equal, explained, unexplained, unfit shape, a tie."""
    image, kernel = arrays
    corrupted = scipy.signal.correlate2d(image, kernel, mode="same")
    corrupted[4, 4] += 1.0
    symmetric = np.ones((3, 3))
    return {
        "equal": explain(image, kernel, scipy.signal.correlate2d(image, kernel, mode="same")),
        "explained": explain(image, kernel, scipy.signal.convolve2d(image, kernel, mode="same")),
        "unexplained": explain(image, kernel, corrupted),
        "shape": explain(image, kernel, np.zeros((13, 13))),  # larger than 'full' at any stride
        "tie": explain(image, symmetric,
                       scipy.signal.correlate2d(image, symmetric, mode="same", boundary="symm")),
    }


@pytest.fixture(scope="session")
def report(diagnoses):
    """A compare report with every kind of row, including two rows with the same cause."""
    def ok(name, diagnosis):
        return BackendResult(name, "ok", version="1.0", compute_dtype="float64", shape=(8, 8),
                             seconds=0.001, diagnosis=diagnosis)

    rows = (
        ok("scipy.signal.convolve2d", diagnoses["explained"]),
        ok("scipy.signal.correlate2d", diagnoses["equal"]),
        ok("my.flipped.conv", diagnoses["explained"]),
        ok("my.buggy.conv", diagnoses["unexplained"]),
        BackendResult("tf.nn.conv2d", "skipped", reason="tensorflow is not installed: pip install tensorflow",
                      requested=True),
        BackendResult("keras.layers.Conv2D", "failed", reason="ValueError: bad | thing"),
    )
    inputs = {"image": {"shape": [8, 8], "dtype": "float64", "path": "image.npy"},
              "kernel": {"shape": [3, 3], "dtype": "float64", "path": "kernel.npy"}}
    settings = {"padding": "same", "dtype": "float64"}
    return CompareReport(inputs, settings, rows, notes=("run with --library-defaults to see more.",))
