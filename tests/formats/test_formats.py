"""The --format choices: every one maps to a real implementation (pip-audit style)."""

from __future__ import annotations

import sys

import pytest

from convcheck.formats import FORMATS, Format, formatter, render_compare, render_explain

from .conftest import NAMES


def test_formats_are_the_enum_values():
    assert FORMATS == ("table", "json", "markdown", "junit", "github")
    assert FORMATS == tuple(f.value for f in Format)
    assert Format("json") is Format.JSON and str(Format.JSON) == "json"


@pytest.mark.parametrize("fmt", list(Format))
def test_every_format_dispatches_to_an_implementation(fmt, diagnoses, report):
    module = formatter(fmt)
    assert callable(module.render_explain) and callable(module.render_compare)
    text = render_explain(diagnoses["explained"], fmt, names=NAMES, color=False)
    assert isinstance(text, str) and text.strip()
    text = render_compare(report, fmt, color=False)
    assert isinstance(text, str) and text.strip()


def test_unknown_format_is_refused(diagnoses):
    with pytest.raises(ValueError):
        render_explain(diagnoses["equal"], "yaml", names=NAMES, color=False)


def test_importing_formats_imports_no_renderer():
    import subprocess
    code = ("import sys, convcheck.formats; "
            "print(any(m in sys.modules for m in ('rich', 'numpy', 'convcheck.formats.table')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
