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


def _layer(index, name, port_name, diagnosis, *, verdict=None, weights=None, reason="", drift=(0.0, 0.0),
           notes=()):
    """A `LayerResult` of a 3x3 8->8 conv (stride 2 for odd indices) judged by `diagnosis`."""
    from convcheck.models.report import LayerResult

    original = {"name": name, "kernel": [3, 3, 8, 8], "stride": [1 + index % 2] * 2, "dilation": [1, 1],
                "groups": 1, "padding": [[1, 1], [1, 1]]}
    port = {"name": port_name} if port_name is not None else None
    input_drift, output_drift = (None if d is None else {"max_abs_diff": d, "max_rel_diff": d / 10} for d in drift)
    return LayerResult(index, original, port, {"by": "weights", "similarity": 1.0} if port else None, weights,
                       verdict or diagnosis.verdict.value if diagnosis is not None else verdict, diagnosis, reason,
                       input_drift if port else None, output_drift if port else None, tuple(notes))


@pytest.fixture(scope="session")
def model_report(diagnoses):
    """A synthetic walk (no framework): an equal layer; the first divergence, explained by a flipped
    kernel that --allow does not list, its weights flipped too; a layer explained by a boundary that
    --allow lists; an unexplained layer; one that could not be judged; a weights defect alone; an
    original layer and a port layer left unmatched."""
    from convcheck.models.judge import WeightsJudgement
    from convcheck.models.report import ModelReport, parse_model_allow
    from convcheck.vocabulary import Explanation, cause_for

    equal_weights = WeightsJudgement("equal")
    flipped = cause_for("kernel_transform", "rot180", Explanation())
    flipped_weights = WeightsJudgement("explained", (flipped,), (flipped,))
    layers = (
        _layer(0, "stem.conv", "stem_conv", diagnoses["equal"], weights=equal_weights),
        _layer(1, "block1.conv1", "block1_conv1", diagnoses["explained"], weights=flipped_weights,
               drift=(0.0, 4.99)),
        _layer(2, "block1.conv2", "block1_conv2", diagnoses["tie"], weights=equal_weights, drift=(4.99, 0.5)),
        _layer(3, "block2.conv1", "block2_conv1", diagnoses["unexplained"], weights=equal_weights,
               drift=(0.5, 1.0), notes=("the port fused this layer's ReLU",)),
        _layer(4, "block2.conv2", "block2_conv2", None, verdict="not_judged", weights=equal_weights,
               reason="the port adds a residual input inside the conv", drift=(1.0, None)),
        _layer(5, "head.conv", "head_conv", diagnoses["equal"], weights=flipped_weights, drift=(1.0, 1.0)),
    )
    models = {"original": {"path": "net.pt2", "format": "pytorch", "convs": 7},
              "port": {"path": "net.keras", "format": "keras", "convs": 7}}
    return ModelReport(models, {"shape": [1, 3, 16, 16], "dtype": "float32", "source": "random, seed 0"}, layers,
                       unmatched_original=("classifier.conv",), unmatched_port=("extra_conv",),
                       allow=parse_model_allow(["boundary"]))
