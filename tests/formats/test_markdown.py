"""--format markdown: a GitHub-flavoured report for a PR comment, same content as the table."""

from __future__ import annotations

from convcheck.formats import render_compare, render_explain
from convcheck.formats._text import COMPARE_COLUMNS
from convcheck.formats.markdown import cell

from .conftest import NAMES


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def test_compare_is_a_gfm_table_with_one_row_per_backend(report):
    text = render_compare(report, "markdown", color=False)
    rows = _table_rows(text)
    header, separator, body = rows[0], rows[1], rows[2:]
    assert header.replace("\\|", "").count("|") == len(COMPARE_COLUMNS) + 1
    assert "max \\|Δ\\|" in header and "fix" in header
    assert separator.count("|") == len(COMPARE_COLUMNS) + 1 and "---:" in separator
    assert len(body) == len(report.results)
    for row, result in zip(body, report.results):
        assert row.startswith(f"| `{result.backend}` |")
        # every row has exactly as many cells as the header: pipes inside cells are escaped
        assert row.replace("\\|", "").count("|") == len(COMPARE_COLUMNS) + 1


def test_compare_says_what_the_table_says(report):
    text = render_compare(report, "markdown", color=False)
    assert "**≈ explained**" in text and "**✓ equal**" in text and "**✗ unexplained**" in text
    assert "kernel flipped 180° (true convolution)" in text
    assert "use scipy.signal.correlate2d, or pass kernel\\[::-1, ::-1\\]" in text  # escaped, rendered as typed
    assert "skipped" in text and "tensorflow is not installed" in text
    assert "failed" in text and "ValueError: bad \\| thing" in text
    assert "closest candidate (does NOT match)" in text
    assert "**Why**" in text and text.count("Deep-learning 'convolutions'") == 1
    assert "**Notes**" in text and "run with --library-defaults to see more." in text
    assert "\x1b[" not in text


def test_explain_has_causes_stats_and_mismatch(diagnoses):
    explained = render_explain(diagnoses["explained"], "markdown", names=NAMES, color=False)
    assert explained.startswith("### convcheck explain")
    assert "**≈ explained**" in explained
    assert "| `kernel_transform` | the kernel was flipped 180 degrees" in explained
    assert "| max \\|Δ\\| before |" in explained and "| error bound |" in explained
    unexplained = render_explain(diagnoses["unexplained"], "markdown", names=NAMES, color=False)
    assert "**closest candidate (does NOT match)" in unexplained
    assert "**Mismatch**" in unexplained
    shape = render_explain(diagnoses["shape"], "markdown", names=NAMES, color=False)
    assert "fits no padding" in shape


def test_cell_escapes_pipes_and_newlines():
    assert cell("a | b\nc") == "a \\| b c"


def test_names_cannot_inject_html_or_emphasis():
    from convcheck.formats.markdown import cell, code
    assert cell("<img src=x onerror=alert(1)> *bold* _it_ [link](u) a|b `c`") == \
        "&lt;img src=x onerror=alert(1)&gt; \\*bold\\* \\_it\\_ \\[link\\](u) a\\|b \\`c\\`"
    assert code("scipy.signal.convolve2d") == "`scipy.signal.convolve2d`"
    assert code("a`b|c") == "``a`b\\|c``"


def test_check_markdown_escapes_case_names(tmp_path):
    from convcheck.check import load_suite, run_suite
    from convcheck.formats.check_text import render_check_markdown

    from ..check_data import case, write_config, write_data
    data = write_data(tmp_path / "repo")
    config = write_config(data, case("<script>alert(1)</script> **loud**", "ported",
                                     allow=["kernel_transform=rot180"]))
    text = render_check_markdown(run_suite(load_suite(config)))
    row = next(line for line in text.splitlines() if line.startswith("| &lt;script"))
    assert row.startswith("| &lt;script&gt;alert(1)&lt;/script&gt; \\*\\*loud\\*\\* | `ported.npy` |")
    summary = next(line for line in text.splitlines() if line.startswith("<details>"))
    assert "<script>" not in summary  # an HTML block: escaped as HTML, where markdown is not read
