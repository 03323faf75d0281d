"""Option groups and output plumbing shared by the CLI commands (sqlite-utils style).

`output_options(fn)` adds --format, --output, --strict and --plot; `input_options(fn)`
adds --padding, --stride, --dilation, --layout, --kernel-layout and --max-elements.
Stacking a group on a command gives it the same spelling, help and defaults everywhere
(`compare`, `explain`, `check`).

Importing this module imports click and convcheck's pure-Python modules only: never
numpy, scipy or TensorFlow, so `convcheck --help` stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
from typing import Any, Callable, Iterable, Optional

import click

from .errors import InputError
from .formats import FORMATS, Format
from .choices import KERNEL_AXIS_ORDERS, KERNEL_LAYOUTS, LAYOUTS, PADDINGS

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

def _parse_reports(ctx, param, values) -> tuple[tuple[str, str], ...]:
    """'--report junit=report.xml' (repeatable) -> (('junit', 'report.xml'), ...)."""
    reports = []
    for value in values or ():
        fmt, sep, path = value.partition("=")
        fmt = fmt.strip().lower()
        if not sep or not path:
            raise click.BadParameter(f"'{value}' is not FORMAT=FILE; write e.g. --report junit=report.xml",
                                     ctx=ctx, param=param)
        if fmt not in FORMATS:
            raise click.BadParameter(f"'{value}': unknown format '{fmt}'; choose from {', '.join(FORMATS)}",
                                     ctx=ctx, param=param)
        reports.append((fmt, path))
    return tuple(reports)


def _complete_reports(ctx, param, incomplete: str):
    from click.shell_completion import CompletionItem

    if "=" in incomplete:
        return [CompletionItem(incomplete.partition("=")[2], type="file")]
    return [CompletionItem(f"{fmt}=") for fmt in FORMATS if fmt.startswith(incomplete.lower())]


report_option = click.option(
    "--report", "reports", multiple=True, metavar="FORMAT=FILE", callback=_parse_reports,
    shell_complete=_complete_reports,
    help="Also write the report in FORMAT to FILE; repeat it for several reports from one run "
         "(e.g. --report junit=report.xml --report markdown=summary.md).")

padding_option = click.option(
    "--padding", type=click.Choice(PADDINGS, case_sensitive=False), default="same", show_default=True,
    callback=lambda ctx, param, value: value.lower() if isinstance(value, str) else value,
    help="The output size you expect: same (TensorFlow 'SAME', extra row/column at the "
         "bottom/right), valid, or full; any case.")
class _KernelLayout(click.Choice):
    """hwio, oihw, depthwise, or any other order of the letters h, w, i, o (any case); the
    help lists the three names only."""

    def __init__(self) -> None:
        super().__init__(KERNEL_LAYOUTS, case_sensitive=False)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.lower() in KERNEL_AXIS_ORDERS:
            return value.lower()
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            self.fail(f"{value!r} is not hwio, oihw, depthwise or another order of the letters h, w, i, o "
                      "(e.g. ohwi)", param, ctx)

    def get_metavar(self, param, *args, **kwargs) -> str:
        return "[hwio|oihw|depthwise|ORDER]"


kernel_layout_option = click.option(
    "--kernel-layout", type=_KernelLayout(), default=None,
    callback=lambda ctx, param, value: value.lower() if isinstance(value, str) else value,
    help="Layout of a 4-D kernel: hwio (TensorFlow/Keras), oihw (PyTorch), depthwise "
         "((kh, kw, C_in, multiplier), tf.nn.depthwise_conv2d / Keras DepthwiseConv2D), or any "
         "other order of its axes as the letters h, w, i, o (e.g. ohwi for TFLite, iohw for "
         "PyTorch ConvTranspose2d). Default: oihw with --layout nchw, else hwio. Never guessed: "
         "explain tries other orders only to explain a difference, and says so.")


def parse_pair(value: Optional[str], option: str) -> tuple[int, int]:
    """'2' -> (2, 2), '2,1' -> (2, 1) for --stride/--dilation; anything else is an InputError
    (one line, exit 2). Pure Python: no numpy, so `--help` stays fast."""
    if value is None:
        return (1, 1)
    text = str(value).strip()
    parts = [part.strip() for part in text.split(",")]
    if len(parts) in (1, 2) and all(re.fullmatch(r"[0-9]+", part) and int(part) >= 1 for part in parts):
        numbers = [int(part) for part in parts]
        return (numbers[0], numbers[-1])
    example = "SY,SX" if option == "--stride" else "DY,DX"
    raise InputError(f"{option} '{value}': is not a positive integer or two of them separated by a comma "
                     f"({example}); write e.g. {option} 2 or {option} 2,1")


def _pair_callback(ctx, param, value):
    return parse_pair(value, f"--{param.name}")


def _groups_callback(ctx, param, value):
    if value is None:
        return None
    text = str(value).strip()
    if re.fullmatch(r"[0-9]+", text) and int(text) >= 1:
        return int(text)
    raise InputError(f"--groups '{value}': is not a positive integer; write e.g. --groups 1 (dense) or "
                     "--groups 3 (depthwise on 3 channels)")


stride_option = click.option(
    "--stride", default=None, metavar="SY[,SX]", callback=_pair_callback,
    help="The stride you expect: every SY-th row and SX-th column of windows (one number for "
         "both axes), e.g. --stride 2 or --stride 2,1. Default 1.")
dilation_option = click.option(
    "--dilation", default=None, metavar="DY[,DX]", callback=_pair_callback,
    help="The dilation you expect: kernel taps DY rows and DX columns apart (one number for "
         "both axes), e.g. --dilation 2. Default 1.")
groups_option = click.option(
    "--groups", default=None, metavar="G", callback=_groups_callback,
    help="The groups you expect: input and output channels split into G groups (G = C_in is "
         "depthwise). Default: what the kernel layout declares (C_in for a depthwise or 2-D "
         "kernel on a multi-channel image), else 1.")
layout_option = click.option(
    "--layout", type=click.Choice(LAYOUTS, case_sensitive=False), default="nhwc", show_default=True,
    callback=lambda ctx, param, value: value.lower() if isinstance(value, str) else value,
    help="Layout of the image and output: nhwc (channels last, TensorFlow: (H, W, C) or "
         "(N, H, W, C)) or nchw (channels first, PyTorch: (C, H, W) or (N, C, H, W); the "
         "kernel then defaults to OIHW).")
max_elements_option = click.option(
    "--max-elements", type=click.IntRange(min=1), default=DEFAULT_MAX_ELEMENTS, show_default=True,
    help="Refuse arrays with more elements than this (checked from the .npy header, before "
         "reading the data).")


def output_options(fn: Callable) -> Callable:
    """--format, --output FILE, --report FORMAT=FILE, --strict and --plot FILE.png
    (parameters: fmt, output, reports, strict, plot)."""
    return _compose(format_option, output_option, report_option, strict_option, plot_option)(fn)


def input_options(fn: Callable) -> Callable:
    """--padding, --stride, --dilation, --layout, --kernel-layout and --max-elements (parameters:
    padding, stride, dilation, layout, kernel_layout, max_elements; stride and dilation as pairs)."""
    return _compose(padding_option, stride_option, dilation_option, layout_option, kernel_layout_option,
                    max_elements_option)(fn)


# ----------------------------------------------------------------------------- errors


def fail(message: str, code: int = 2) -> None:
    """Print `error: <message>` as one line on stderr and exit with `code` (CONTRACT section 4)."""
    echo(f"error: {' '.join(str(message).split())}", err=True)
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
    from .plot import plot_format

    plot_format(path)


def check_outputs(*, output: Optional[str] = None, reports: Iterable[tuple[str, str]] = (),
                  plot: Optional[str] = None, protected: Iterable[tuple[str, Any]] = ()) -> None:
    """Check every file a command will write before it does any work (CONTRACT section 4: exit 2,
    nothing written): folders exist, none is a directory, none is one of the `protected`
    (role, path) inputs or the config, no two name the same file, and --plot's format."""
    from .files import refuse_overwriting, same_file

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
    from .plot import save_plot as _save_plot

    _save_plot(list(items), path)
    talk(f"wrote plot to {path}")


class Group(click.Group):
    """The `convcheck` group: every outcome of a run becomes a CONTRACT section 4 exit code.

    - click's usage errors (a bad choice, a missing file argument, an unknown option) are
      one `error: ...` line plus one usage line, exit 2, like convcheck's own input errors;
    - a crash inside convcheck (a bug) is exit 4 with one line saying so and how to report
      it, never exit 1 (which means "mismatch"); `--debug` (or CONVCHECK_DEBUG=1) prints
      the traceback too.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in args or bool(os.environ.get("CONVCHECK_DEBUG"))
        args = [arg for arg in args if arg != "--debug"]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()
            code = exc.exit_code
        except click.UsageError as exc:
            echo(f"error: {' '.join(exc.format_message().split())}", err=True)
            if exc.ctx is not None:
                usage = exc.ctx.get_usage().replace("Usage:", "usage:", 1)
                echo(f"{' '.join(usage.split())}  (see '{exc.ctx.command_path} --help')", err=True)
            code = exc.exit_code
        except click.ClickException as exc:
            echo(f"error: {' '.join(exc.format_message().split())}", err=True)
            code = exc.exit_code
        except InputError as exc:
            echo(f"error: {' '.join(str(exc).split())}", err=True)
            code = 2
        except (click.exceptions.Abort, KeyboardInterrupt, EOFError):
            echo("\nerror: interrupted", err=True)
            code = 130
        except BrokenPipeError:  # `convcheck ... | head`: the reader left; say nothing more
            sys.stdout = open(os.devnull, "w")
            code = 141
        except Exception as exc:  # a bug in convcheck: exit 4, never 1 (CONTRACT section 4)
            if debug:
                import traceback
                traceback.print_exc()
            from . import __version__
            what = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            hint = ("the traceback is above" if debug else
                    "run the same command with --debug to see the traceback")
            echo(f"error: internal error in convcheck {__version__} ({what}); this is a bug in convcheck, "
                 f"not in your files: please report it with the command you ran ({hint})", err=True)
            code = 4
        sys.exit(code if isinstance(code, int) else 0)


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
            from .files import write_text_atomic
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
    from .formats.github import append_step_summary

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


__all__ = ["output_options", "input_options", "format_option", "output_option", "report_option",
           "strict_option", "plot_option", "check_outputs", "ascii_fallback", "echo", "padding_option", "kernel_layout_option", "max_elements_option",
           "stride_option", "dilation_option", "groups_option", "layout_option", "parse_pair",
           "fail", "reports_input_errors", "check_destination", "check_plot", "save_plot",
           "use_color", "terminal_width", "emit", "stdout_to_stderr", "talk"]
