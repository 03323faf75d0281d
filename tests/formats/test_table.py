"""--format table: the rich table for people at a terminal."""

from __future__ import annotations

import re

import pytest

from convcheck.formats import render_compare, render_explain
from convcheck.formats._text import num, story
from convcheck.vocabulary import Verdict

from .conftest import NAMES

ANSI = re.compile(r"\x1b\[")


def test_numbers_have_three_significant_digits():
    assert num(1.2e-07) == "1.2e-07"
    assert num(1.23456e-07) == "1.23e-07"
    assert num(4.99938) == "5"
    assert num(47.72246) == "47.7"
    assert num(0.000123456) == "0.000123"
    assert num(None) == "–"


def test_compare_table_has_every_column_and_row(report):
    text = render_compare(report, "table", color=False, width=400)  # wide: no cell wraps
    for header in ("backend", "compute", "dtype", "max |Δ|", "max rel Δ", "mismatched", "/ total",
                   "worst", "index", "verdict", "explanation", "fix"):
        assert header in text
    for result in report.results:
        assert result.backend in text
    assert "≈ explained" in text and "✓ equal" in text and "✗ unexplained" in text
    assert "64/64" in text and "0/64" in text
    assert "kernel flipped 180° (true convolution)" in text and "matches the reference" in text
    assert "– skipped" in text and "tensorflow is not installed" in text
    assert "✗ failed" in text and "ValueError: bad | thing" in text
    assert "closest candidate (does NOT match)" in text


def test_why_is_said_once_per_distinct_cause_then_the_notes(report):
    text = render_compare(report, "table", color=False, width=160)
    assert text.count("Why: ") == 1  # two rows flipped the kernel: one sentence
    assert "Deep-learning 'convolutions'" in text
    assert text.index("Why: ") < text.index("run with --library-defaults to see more.")


def test_no_ansi_without_colour_and_verdict_colours_with_it(report, diagnoses):
    assert not ANSI.search(render_compare(report, "table", color=False))
    assert not ANSI.search(render_explain(diagnoses["explained"], "table", names=NAMES, color=False))
    coloured = render_compare(report, "table", color=True, width=160)
    assert "\x1b[32m✓ equal" in coloured          # green
    assert "\x1b[33m≈ explained" in coloured      # yellow
    assert "\x1b[31m✗ unexplained" in coloured    # red


@pytest.mark.parametrize("width", [80, 100, 130, 160, 200])
def test_table_fits_the_width_and_keeps_the_explanation(report, width):
    text = render_compare(report, "table", color=False, width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "kernel flipped 180°" in text
    assert "fix" in text and "scipy.signal.correlate2d," in text
    assert all(line == line.rstrip() for line in text.splitlines())


def test_explain_explained_says_cause_fix_and_stats(diagnoses):
    text = render_explain(diagnoses["explained"], "table", names=NAMES, color=False, width=160)
    first = text.splitlines()[0]
    assert first.startswith("≈ explained: output.npy differs from the reference")
    assert "kernel_transform: the kernel was flipped 180 degrees" in text
    assert "fix: use scipy.signal.correlate2d, or pass kernel[::-1, ::-1]" in text
    stats = diagnoses["explained"].stats
    assert f"max |Δ| before  {num(stats.max_abs_diff)}" in text
    assert f"max |Δ| after   {num(stats.residual_after)}" in text
    assert f"{stats.mismatched} of {stats.total} elements beyond the error bound" in text
    assert "worst index" in text and "output 2.04309, reference -2.95629" in text
    assert f"error bound     {num(stats.error_bound)}" in text
    assert f"worst residual/bound {num(stats.bound_ratio)}" in text
    assert "image.npy with kernel.npy" in text


def test_explain_equal(diagnoses):
    text = render_explain(diagnoses["equal"], "table", names=NAMES, color=False)
    assert text.startswith("✓ equal: output.npy matches the reference")
    assert "Why:" not in text


def test_explain_unexplained_shows_where_and_closest(diagnoses):
    diagnosis = diagnoses["unexplained"]
    assert diagnosis.verdict is Verdict.UNEXPLAINED
    text = render_explain(diagnosis, "table", names=NAMES, color=False, width=160)
    assert text.startswith("✗ unexplained: output.npy differs")
    assert f"where: {diagnosis.where}" in text
    assert "closest candidate (does NOT match)" in text
    for note in diagnosis.notes:
        assert note in text
    assert "mismatched after" in text


def test_explain_unexplained_without_candidate_gives_the_reason(diagnoses):
    diagnosis = diagnoses["shape"]
    text = render_explain(diagnosis, "table", names=NAMES, color=False, width=200)
    assert diagnosis.reason in text
    assert "no reference has the output's shape" in text


def test_explain_shows_alternatives(diagnoses):
    diagnosis = diagnoses["tie"]
    assert diagnosis.alternatives
    text = render_explain(diagnosis, "table", names=NAMES, color=False, width=200)
    assert "equally explained by" in text
    assert "boundary edge" in text
    assert text.count("boundary edge") == 1  # the engine's tie note is not repeated


def test_story_is_derived_from_the_verdicts(report):
    lines = story(report)
    assert lines[0].startswith("scipy.signal.convolve2d and my.flipped.conv differ from the reference only "
                               "because the kernel was flipped 180 degrees")
    assert any(line.startswith("scipy.signal.correlate2d computes the cross-correlation") and
               "within float64 rounding" in line for line in lines)
    assert any(line.startswith("my.buggy.conv disagrees") for line in lines)
    assert any("Could not run here: tf.nn.conv2d" in line for line in lines)
