"""A row explained by several causes shows every cause's fix (issue 21: with --library-defaults the
Keras row's fix left out the float32 cast): in the compare cell, the table, markdown and the demo's
story. A numpy-made output with Keras's two defaults, then Keras itself (marked tensorflow)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from convcheck.engine import explain
from convcheck.formats import render_compare
from convcheck.formats._text import compare_cells, story
from convcheck.results import BackendResult, CompareReport

PADDING_FIX = "pass padding='same' (mode='same' in scipy.signal), or compare against a 'valid' reference"
FLOAT32_FIX = "compute in float64: give the layer dtype='float64'"


@pytest.fixture(scope="module")
def keras_like():
    """Keras's own defaults on float64 data, made with numpy: 'valid' padding and a float32 cast."""
    rng = np.random.default_rng(7)
    image, kernel = rng.standard_normal((9, 9)), rng.standard_normal((3, 3))
    output = scipy.signal.correlate2d(image.astype(np.float32), kernel.astype(np.float32), mode="valid")
    diagnosis = explain(image, kernel, output)
    assert [c.field for c in diagnosis.causes] == ["padding", "precision"]
    return diagnosis


def _report(diagnosis):
    row = BackendResult("keras.layers.Conv2D", "ok", compute_dtype="float32", shape=(7, 7), diagnosis=diagnosis)
    inputs = {"image": {"shape": [9, 9], "dtype": "float64", "path": "image.npy"},
              "kernel": {"shape": [3, 3], "dtype": "float64", "path": "kernel.npy"}}
    return CompareReport(inputs, {"padding": "same", "dtype": "float64", "library_defaults": True}, (row,))


def test_the_fix_cell_has_every_causes_fix(keras_like):
    cell = compare_cells(_report(keras_like).results[0])["fix"]
    assert cell.startswith(PADDING_FIX + "; ") and FLOAT32_FIX in cell


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_the_table_and_markdown_show_both(keras_like, fmt):
    text = " ".join(render_compare(_report(keras_like), fmt, color=False, width=400).split())
    assert FLOAT32_FIX in text and "compare against a 'valid' reference" in text


def test_the_demo_story_gives_both_fixes(keras_like):
    (line,) = story(_report(keras_like))
    assert f"Fix: {PADDING_FIX}; {FLOAT32_FIX}" in line


@pytest.mark.tensorflow
def test_keras_with_its_library_defaults_shows_the_float32_cast():
    pytest.importorskip("keras")
    import convcheck

    rng = np.random.default_rng(7)
    image, kernel = rng.standard_normal((9, 9)), rng.standard_normal((3, 3))
    report = convcheck.compare(image, kernel, backends=["keras.layers.Conv2D"], library_defaults=True)
    (row,) = report.results
    assert {c.field: c.value for c in row.diagnosis.causes} == {"padding": "valid", "precision": "float32"}
    fix = compare_cells(row)["fix"]
    assert PADDING_FIX in fix and FLOAT32_FIX in fix
