"""Where what a command says goes: the report to stdout, --output and --report files (checked
before any work, written atomically), --plot figures, progress and talk to stderr, colour
and width for a terminal, ASCII for a stream that cannot carry convcheck's symbols.

Importing this module imports click and convcheck's pure-Python modules only: never
numpy, so `convcheck --help` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Callable, Iterable, Optional

import click

from ..errors import InputError
from ..formats import Format

def check_destination(path: Optional[str], option: str) -> None:
    """Refuse an --output/--plot path whose folder does not exist, before any work is done."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"{option} '{path}': folder '{folder}' does not exist; create it or choose another path")
    if os.path.isdir(path):
        raise InputError(f"{option} '{path}': is a directory; give a file name")


def check_plot(path: Optional[str]) -> None:
    """Refuse --plot early (before any backend runs) when matplotlib is missing or the path is bad."""
    if path is None:
        return
    check_destination(path, "--plot")
    from ..plot import plot_format

    plot_format(path)


def check_outputs(*, output: Optional[str] = None, reports: Iterable[tuple[str, str]] = (),
                  plot: Optional[str] = None, protected: Iterable[tuple[str, Any]] = ()) -> None:
    """Check every file a command will write before it does any work (CONTRACT section 4: exit 2,
    nothing written): folders exist, none is a directory, none is one of the `protected`
    (role, path) inputs or the config, no two name the same file, and --plot's format."""
    from ..files import refuse_overwriting, same_file

    protected = [(role, path) for role, path in protected if path is not None]
    destinations = ([("--output", output)] if output is not None else []) + \
        [(f"--report {fmt}={path}", path) for fmt, path in reports] + \
        ([("--plot", plot)] if plot is not None else [])
    for option, path in destinations:
        check_destination(path, option)
        refuse_overwriting(path, option, protected)
    for i, (option, path) in enumerate(destinations):
        for other_option, other in destinations[:i]:
            if same_file(path, other):
                raise InputError(f"{option}: '{path}' is also the file of {other_option}; give each report "
                                 "its own file")
    check_plot(plot)


def save_plot(items: Iterable[tuple[str, Any]], path: Optional[str]) -> None:
    """Save the figure for (title, diagnosis) pairs to `path` (no-op for None); talk on stderr."""
    if path is None:
        return
    from ..plot import save_plot as _save_plot

    _save_plot(list(items), path)
    talk(f"wrote plot to {path}")


# ----------------------------------------------------------------------------- output


def use_color(stream=None) -> bool:
    """Whether to colour what goes to `stream` (stdout by default).

    NO_COLOR (any non-empty value, https://no-color.org) always wins; FORCE_COLOR turns
    colour on for pipes; otherwise only a terminal gets colour.
    """
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = stream if stream is not None else sys.stdout
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def terminal_width() -> int:
    """The terminal's width (COLUMNS if set); 160 when stdout is not a terminal (files, pipes).

    What shutil.get_terminal_size((160, 24)).columns gives, without importing shutil
    (with bz2 and lzma: 4 ms of every run)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 160


def emit(render: Callable[..., str], fmt: str, output: Optional[str],
         reports: Iterable[tuple[str, str]] = ()) -> None:
    """Send a report where it belongs: stdout, FILE (--output) and each --report FORMAT=FILE.

    `render(fmt, color=..., width=...)` returns the report as a string. With `output`,
    the report in `fmt` is written to the file (never coloured) and the table printed to
    stdout. Every file is written atomically (`convcheck.files.write_text_atomic`) and
    before stdout, so a failure leaves stdout empty. When one of the formats is github and
    $GITHUB_STEP_SUMMARY is set, the markdown report is appended to the job summary: the
    passing results live there, not in annotations.
    """
    files = ([(fmt, output)] if output is not None else []) + list(reports)
    for file_fmt, path in files:
        option = "--output" if (file_fmt, path) == (fmt, output) else f"--report {file_fmt}={path}"
        text = render(file_fmt, color=False, width=None)
        try:
            from ..files import write_text_atomic
            write_text_atomic(path, text if text.endswith("\n") else text + "\n")
        except OSError as exc:
            raise InputError(f"{option} '{path}': cannot write the report "
                             f"({exc.strerror or exc}); check the path and permissions") from None
        talk(f"wrote {file_fmt} report to {path}")
    if output is not None:
        fmt = Format.TABLE.value
    if Format.GITHUB.value in [fmt] + [f for f, _ in files]:
        _append_step_summary(render(Format.MARKDOWN.value, color=False, width=None))
    color = use_color()
    text = render(fmt, color=color, width=terminal_width())
    echo(text, nl=not text.endswith("\n"), color=color)


def _append_step_summary(markdown: str) -> None:
    from ..formats.github import append_step_summary

    try:
        append_step_summary(markdown)
    except OSError as exc:
        talk(f"warning: could not append the summary to $GITHUB_STEP_SUMMARY ({exc.strerror or exc})")


# Terminals and CI runners whose encoding lacks these (Windows cp1252) get ASCII instead.
_ASCII = {"✓": "OK", "≈": "~", "✗": "X", "Δ": "d", "≤": "<=", "≥": ">=", "·": "-", "–": "-", "—": "--",
          "×": "x", "°": " deg", "…": "...", "✅": "[pass]", "⚠": "[warn]", "❌": "[FAIL]",
          "💥": "[error]", "\ufe0f": "", "→": "->", "⋆": "*", "γ": "gamma", "²": "^2", "⁻": "^-"}


def ascii_fallback(text: str, encoding: Optional[str]) -> str:
    """`text` unchanged when `encoding` can carry it, else with convcheck's symbols spelt in ASCII
    (box-drawing lines as - | +) and anything else that is left as '?'."""
    encoding = encoding or "utf-8"
    try:
        text.encode(encoding)
        return text
    except (UnicodeEncodeError, LookupError):
        pass
    out = []
    for char in text:
        if ord(char) < 128:
            out.append(char)
        elif char in _ASCII:
            out.append(_ASCII[char])
        elif 0x2500 <= ord(char) <= 0x257F:  # box drawing
            import unicodedata
            name = unicodedata.name(char, "")
            out.append("-" if "HORIZONTAL" in name and "VERTICAL" not in name else
                       "|" if "VERTICAL" in name and "HORIZONTAL" not in name else "+")
        else:
            out.append(char)
    text = "".join(out)
    try:
        return text.encode(encoding, errors="replace").decode(encoding)
    except LookupError:
        return text.encode("ascii", errors="replace").decode("ascii")


def echo(text: str, *, err: bool = False, nl: bool = True, color: Optional[bool] = None) -> None:
    """click.echo that never fails on a stream that cannot encode Unicode (see `ascii_fallback`)."""
    stream = sys.stderr if err else sys.stdout
    text = ascii_fallback(text, getattr(stream, "encoding", None))
    click.echo(text, err=err, nl=nl, color=color)


@contextlib.contextmanager
def stdout_to_stderr():
    """Send anything Python code prints to stdout (framework chatter) to stderr instead.

    stdout carries only the report, so `--format json | jq` always parses.
    """
    with contextlib.redirect_stdout(sys.stderr):
        yield


def talk(message: str) -> None:
    """Progress and other talk: stderr, never stdout."""
    echo(message, err=True)
