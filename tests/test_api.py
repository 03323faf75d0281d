"""The Python API as a user meets it: help(), dir(), reprs in a REPL and a notebook."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal

import convcheck
from convcheck.comparison import compare as comparison_compare
from convcheck.engine import explain as engine_explain

SCIPY = ["scipy.signal.convolve2d", "scipy.signal.correlate2d"]


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(11)
    image, kernel = rng.standard_normal((9, 9)), rng.standard_normal((3, 3))
    return image, kernel, scipy.signal.convolve2d(image, kernel, mode="same")


def test_explain_and_compare_show_their_real_keywords():
    # The wrappers in convcheck/__init__.py must stay in step with the functions they call.
    for public, real in ((convcheck.explain, engine_explain), (convcheck.compare, comparison_compare)):
        signature = inspect.signature(public)
        assert not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        assert list(signature.parameters) == list(inspect.signature(real).parameters), public.__name__
        for name, parameter in inspect.signature(real).parameters.items():
            assert signature.parameters[name].default == parameter.default, name
    import pydoc
    text = pydoc.render_doc(convcheck.explain)
    assert "padding" in text and "precision" in text and "options" not in text


def test_dir_lists_the_lazy_names():
    names = dir(convcheck)
    for name in ("Diagnosis", "CompareReport", "BackendResult", "Stats", "Explanation", "Cause", "Verdict",
                 "explain", "compare", "InputError", "__version__"):
        assert name in names
    assert set(convcheck.__all__) <= set(names)


def test_importing_convcheck_stays_light():
    code = ("import sys, convcheck; dir(convcheck); "
            "print(sorted(m for m in ('numpy', 'dataclasses', 'convcheck.results') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "numpy" not in done.stdout and "convcheck.results" not in done.stdout, done.stdout


def test_diagnosis_repr_is_short_and_says_the_verdict(arrays):
    d = convcheck.explain(*arrays)
    text = repr(d)
    assert text.startswith("<Diagnosis explained by kernel flipped 180° (true convolution); ")
    assert "mismatched" in text and len(text) < 200 and "\n" not in text


def test_diagnosis_rich_and_html(arrays):
    from rich.console import Console
    d = convcheck.explain(*arrays)
    console = Console(record=True, width=120, color_system=None)
    console.print(d)
    assert "kernel_transform: the kernel was flipped 180 degrees" in console.export_text()
    page = d._repr_html_()
    assert page.startswith("<div") and "<table>" in page and "kernel_transform" in page
    assert "use scipy.signal.correlate2d" in page


def test_compare_report_ok_repr_rich_and_html(arrays):
    image, kernel, _ = arrays
    report = convcheck.compare(image, kernel, backends=SCIPY)
    assert report.ok is True and report.exit_code() == 0 and report.exit_code(strict=True) == 1
    text = repr(report)
    assert text.startswith("<CompareReport ok; scipy.signal.convolve2d: explained by kernel flipped 180°")
    assert "scipy.signal.correlate2d: equal" in text and "\n" not in text
    from rich.console import Console
    console = Console(record=True, width=200, color_system=None)
    console.print(report)
    assert "scipy.signal.correlate2d" in console.export_text()
    page = report._repr_html_()
    assert page.count("<tr>") == 3 and "scipy.signal.convolve2d" in page


def test_compare_report_not_ok_when_a_row_is_unexplained():
    from convcheck.results import BackendResult, CompareReport
    report = CompareReport(inputs={}, settings={}, results=(
        BackendResult("tf.nn.conv2d", "skipped", reason="not installed", requested=True),))
    assert report.ok is False and report.exit_code() == 3
    assert repr(report) == "<CompareReport not ok; tf.nn.conv2d: skipped>"
