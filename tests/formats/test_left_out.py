"""Elements an offset leaves out are said in every format (issue 20 item 7): how many, how far from the
reference, and how many lie outside the compared range, never in silence. Real outputs made with
np.roll (the wrapped row replaced by values around 1e3, or kept)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import scipy.signal

from convcheck.engine import explain
from convcheck.formats import render_compare, render_explain
from convcheck.formats._text import left_out_text
from convcheck.formats.model_text import cause_text
from convcheck.results import BackendResult, CompareReport

from .conftest import NAMES


@pytest.fixture(scope="module")
def rolled():
    """{'wild': np.roll by one row, the wrapped row replaced by values around 1e3; 'plain': np.roll
    alone; 'flipped': a true convolution rolled by one row}, each with its diagnosis."""
    rng = np.random.default_rng(0)
    image, kernel = rng.standard_normal((8, 8)), rng.standard_normal((3, 3))
    reference = scipy.signal.correlate2d(image, kernel, mode="same")
    wild = np.roll(reference, -1, axis=0)
    wild[-1, :] = rng.uniform(900, 1100, 8)
    flipped = np.roll(scipy.signal.convolve2d(image, kernel, mode="same"), -1, axis=0)
    return {"wild": explain(image, kernel, wild), "plain": explain(image, kernel, np.roll(reference, -1, axis=0)),
            "flipped": explain(image, kernel, flipped), "reference": reference, "wild_output": wild}


def test_the_engine_counts_and_measures_them(rolled):
    stats = rolled["wild"].stats
    assert rolled["wild"].explanation.offset == (1, 0)
    assert (stats.left_out, stats.left_out_outside_range) == (8, 8)
    top = np.max(np.abs(rolled["wild_output"][-1] - rolled["reference"][-1]))
    assert stats.left_out_max_abs_diff == pytest.approx(top, rel=1e-12)
    assert (rolled["plain"].stats.left_out, rolled["plain"].stats.left_out_outside_range) == (8, 0)


def test_the_sentence_fits_the_case(rolled):
    wild = left_out_text(rolled["wild"])
    assert wild.startswith("8 elements left out (up to 1.1e+03 from the reference; 8 of them outside the range of "
                           "every compared element: no shift of the computation gives them): the offset moves")
    assert left_out_text(rolled["wild"], short=True) == ("8 elements left out (up to 1.1e+03 from the reference; "
                                                         "8 outside the compared range)")
    plain = left_out_text(rolled["plain"], short=True)
    assert plain.startswith("8 elements left out (up to ") and plain.endswith(" from the reference)")
    # with a flipped kernel too, they are measured against the flip without the offset, not the reference
    flipped = left_out_text(rolled["flipped"], short=True)
    assert flipped.endswith("from the explanation without its offset)")
    equal = explain(np.eye(4), np.ones((3, 3)), scipy.signal.correlate2d(np.eye(4), np.ones((3, 3)), mode="same"))
    assert left_out_text(equal) is None


@pytest.mark.parametrize("fmt", ["table", "markdown", "junit", "github"])
def test_explain_says_them_once_in_every_format(rolled, fmt):
    text = render_explain(rolled["wild"], fmt, names=NAMES, color=False, width=400)
    if fmt == "junit":
        text = ET.fromstring(text).find(".//system-out").text
    assert text.count("8 elements left out (up to 1.1e+03 from the reference; 8 of them outside the range") == 1
    assert "were left out" not in text   # the engine's note is not repeated beside the numbers


@pytest.mark.parametrize("fmt", ["table", "markdown", "junit", "github"])
def test_compare_says_them_in_every_format(rolled, fmt):
    rows = (BackendResult("my.rolled", "ok", compute_dtype="float64", shape=(8, 8), diagnosis=rolled["wild"]),
            BackendResult("my.plain", "ok", compute_dtype="float64", shape=(8, 8), diagnosis=rolled["plain"]))
    inputs = {"image": {"shape": [8, 8], "dtype": "float64", "path": "image.npy"},
              "kernel": {"shape": [3, 3], "dtype": "float64", "path": "kernel.npy"}}
    report = CompareReport(inputs, {"padding": "same", "dtype": "float64"}, rows)
    text = " ".join(render_compare(report, fmt, color=False, width=400).split())
    assert "8 elements left out (up to 1.1e+03 from the reference; 8 " in text
    assert text.count("8 elements left out (up to ") == 2   # each row says its own


def test_a_model_layer_says_them_in_its_cause(rolled):
    from convcheck.models.report import LayerResult

    original = {"name": "conv", "kernel": [3, 3, 1, 1], "stride": [1, 1], "dilation": [1, 1], "groups": 1}
    layer = LayerResult(0, original, {"name": "conv"}, None, None, "explained", rolled["wild"])
    assert cause_text(layer) == ("output shifted by [1, 0]; 8 elements left out (up to 1.1e+03 from the reference; "
                                 "8 outside the compared range)")
