"""Option groups and output plumbing shared by the CLI commands (sqlite-utils style).

`output_options(fn)` adds --format, --output, --strict and --plot; `input_options(fn)`
adds --padding, --kernel-layout and --max-elements. Stacking a group on a command gives
it the same spelling, help and defaults everywhere (`compare`, `explain`, `check`).

Importing this module imports click and convcheck's pure-Python modules only: never
numpy, scipy or TensorFlow, so `convcheck --help` stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys
from typing import Any, Callable, Iterable, Optional

import click

from .errors import InputError
from .formats import FORMATS, Format
from .choices import KERNEL_LAYOUTS, PADDINGS

DEFAULT_MAX_ELEMENTS = 2**28  # the same limit as convcheck.inputs (which imports numpy)


def _compose(*decorators: Callable) -> Callable:
    def apply(fn: Callable) -> Callable:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn
    return apply


format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default=Format.TABLE.value, show_default=True,
    help="Report format: a table for people, json for scripts (a stable schema), markdown for "
         "a PR comment, junit for CI test reports, github for GitHub Actions annotations.")
output_option = click.option(
    "--output", "-o", "output", type=click.Path(dir_okay=False), default=None, metavar="FILE",
    help="Write the report (in --format) to FILE; the table still goes to the terminal.")
strict_option = click.option(
    "--strict", is_flag=True, default=False,
    help="Exit 1 unless every result is 'equal': an explained difference fails too.")
plot_option = click.option(
    "--plot", type=click.Path(dir_okay=False), default=None, metavar="FILE.png",
    help="Save a figure of the output, the reference and where they differ (needs matplotlib: "
         "pip install 'convcheck[plot]').")

padding_option = click.option(
    "--padding", type=click.Choice(PADDINGS), default="same", show_default=True,
    help="The output size you expect: same (TensorFlow 'SAME', extra row/column at the "
         "bottom/right), valid, or full.")
kernel_layout_option = click.option(
    "--kernel-layout", type=click.Choice(KERNEL_LAYOUTS), default="hwio", show_default=True,
    help="Layout of a 4-D kernel: hwio (TensorFlow/Keras) or oihw (PyTorch). Never guessed.")
max_elements_option = click.option(
    "--max-elements", type=click.IntRange(min=1), default=DEFAULT_MAX_ELEMENTS, show_default=True,
    help="Refuse arrays with more elements than this (checked from the .npy header, before "
         "reading the data).")


def output_options(fn: Callable) -> Callable:
    """--format, --output FILE, --strict and --plot FILE.png (parameters: fmt, output, strict, plot)."""
    return _compose(format_option, output_option, strict_option, plot_option)(fn)


def input_options(fn: Callable) -> Callable:
    """--padding, --kernel-layout and --max-elements (parameters: padding, kernel_layout, max_elements)."""
    return _compose(padding_option, kernel_layout_option, max_elements_option)(fn)


# ----------------------------------------------------------------------------- errors


def fail(message: str, code: int = 2) -> None:
    """Print `error: <message>` as one line on stderr and exit with `code` (CONTRACT section 4)."""
    click.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise click.exceptions.Exit(code)


def reports_input_errors(fn: Callable) -> Callable:
    """Decorate a command so `InputError` becomes exit 2 with one line on stderr, no traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            fail(str(exc))
    return wrapper


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
    from .plot import require_matplotlib

    require_matplotlib()


def save_plot(items: Iterable[tuple[str, Any]], path: Optional[str]) -> None:
    """Save the figure for (title, diagnosis) pairs to `path` (no-op for None); talk on stderr."""
    if path is None:
        return
    from .plot import save_plot as _save_plot

    _save_plot(list(items), path)
    click.echo(f"wrote plot to {path}", err=True)


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
    """The terminal's width (COLUMNS if set); 160 when stdout is not a terminal (files, pipes)."""
    return shutil.get_terminal_size((160, 24)).columns


def emit(render: Callable[..., str], fmt: str, output: Optional[str]) -> None:
    """Send a report where it belongs: stdout, or FILE plus the table on the terminal.

    `render(fmt, color=..., width=...)` returns the report as a string. With `output`,
    the report in `fmt` is written to the file (never coloured) and the table printed to
    stdout; the file is written first so a failure leaves stdout empty.
    """
    if output is not None:
        text = render(fmt, color=False, width=None)
        try:
            with open(output, "w", encoding="utf-8") as fp:
                fp.write(text if text.endswith("\n") else text + "\n")
        except OSError as exc:
            raise InputError(f"--output '{output}': cannot write the report "
                             f"({exc.strerror or exc}); check the path and permissions") from None
        click.echo(f"wrote {fmt} report to {output}", err=True)
        fmt = Format.TABLE.value
    color = use_color()
    text = render(fmt, color=color, width=terminal_width())
    click.echo(text, nl=not text.endswith("\n"), color=color)


@contextlib.contextmanager
def stdout_to_stderr():
    """Send anything Python code prints to stdout (framework chatter) to stderr instead.

    stdout carries only the report, so `--format json | jq` always parses.
    """
    with contextlib.redirect_stdout(sys.stderr):
        yield


def talk(message: str) -> None:
    """Progress and other talk: stderr, never stdout."""
    click.echo(message, err=True)


__all__ = ["output_options", "input_options", "format_option", "output_option", "strict_option",
           "plot_option", "padding_option", "kernel_layout_option", "max_elements_option",
           "fail", "reports_input_errors", "check_destination", "check_plot", "save_plot",
           "use_color", "terminal_width", "emit", "stdout_to_stderr", "talk"]
