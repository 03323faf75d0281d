"""The option groups the CLI commands share (sqlite-utils style).

`output_options(fn)` adds --format, --output, --report, --strict and --plot; `input_options(fn)`
adds --padding, --stride, --dilation, --layout, --kernel-layout and --max-elements;
`declared_options(fn)` adds --expect, --bias, --scale and --output-precision;
`backends_option` and `library_defaults_option` go on the commands that run backends.
Stacking a group on a command gives it the same spelling, help and defaults everywhere
(`compare`, `explain`, `check`).

Importing this module imports click and convcheck's pure-Python modules only: never
numpy, scipy or TensorFlow, so `convcheck --help` stays fast.
"""

from __future__ import annotations

import re
from typing import Callable, Optional

import click

from ..choices import KERNEL_AXIS_ORDERS, KERNEL_LAYOUTS, LAYOUTS, OUTPUT_PRECISIONS, PADDINGS
from ..errors import InputError
from ..formats import FORMATS, Format

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

def _padding_callback(ctx, param, value):
    from ..declared import padding_from_text
    if not isinstance(value, str):
        return value
    try:
        return padding_from_text(value, f"--padding {value!r}")
    except InputError:
        raise click.BadParameter(f"{value!r} is not one of {', '.join(PADDINGS)}, nor padding amounts P, PH,PW or "
                                 "TOP,BOTTOM,LEFT,RIGHT (non-negative integers: 1 is PyTorch's padding=1, ONNX pads "
                                 "[t, l, b, r] are t,b,l,r)", ctx=ctx, param=param) from None


def _complete_padding(ctx, param, incomplete: str):
    from click.shell_completion import CompletionItem

    return [CompletionItem(name) for name in PADDINGS if name.startswith(incomplete.lower())]


padding_option = click.option(
    "--padding", default="same", show_default=True, metavar="same|valid|full|P|PH,PW|T,B,L,R",
    callback=_padding_callback, shell_complete=_complete_padding,
    help="The padding you expect: same (TensorFlow 'SAME', extra row/column at the bottom/right), "
         "valid, or full (any case); or explicit amounts of zeros as PyTorch and ONNX declare them: "
         "P on every side (PyTorch padding=1), PH,PW (rows, columns), or TOP,BOTTOM,LEFT,RIGHT "
         "(ONNX pads [t, l, b, r] are t,b,l,r).")


class _KernelLayout(click.Choice):
    """hwio, oihw, depthwise, or any other order of the letters h, w, i, o (any case); the
    help lists the three names only."""

    def __init__(self) -> None:
        super().__init__(KERNEL_LAYOUTS, case_sensitive=False)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and (value.lower() in KERNEL_AXIS_ORDERS or value.lower() == "oihw-reshaped"):
            return value.lower()
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            self.fail(f"{value!r} is not hwio, oihw, depthwise, oihw-reshaped or another order of the letters h, "
                      "w, i, o (e.g. ohwi)", param, ctx)

    def get_metavar(self, param, *args, **kwargs) -> str:
        return "[hwio|oihw|depthwise|ORDER]"


kernel_layout_option = click.option(
    "--kernel-layout", type=_KernelLayout(), default=None,
    callback=lambda ctx, param, value: value.lower() if isinstance(value, str) else value,
    help="Layout of a 4-D kernel: hwio (TensorFlow/Keras), oihw (PyTorch), depthwise "
         "((kh, kw, C_in, multiplier), tf.nn.depthwise_conv2d / Keras DepthwiseConv2D), or any "
         "other order of its axes as the letters h, w, i, o (e.g. ohwi for TFLite, iohw for "
         "PyTorch ConvTranspose2d), or oihw-reshaped (PyTorch weights turned into the HWIO shape with "
         "reshape instead of transpose: read back). Default: oihw with --layout nchw, else hwio. Never guessed: "
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


expect_option = click.option(
    "--expect", "expect", multiple=True, metavar="FIELD=VALUE",
    help="Declare what the computation is, for any field of the vocabulary (repeatable): values as "
         "check's allow rules write them, e.g. --expect offset=-1,-1 --expect activation=relu "
         "--expect boundary=reflect --expect padding=1,1,0,2. A declared value is no difference; "
         "only fields that differ from it are named.")
bias_option = click.option(
    "--bias", default=None, metavar="FILE.npy|NUMBER",
    help="The bias the layer adds: a number, numbers per output channel (0.1,0.2,...), or a .npy "
         "(or FILE.npz:KEY) of one value per output channel. Applied as given (with its rounding), "
         "never fitted: a different bias in the output is named.")
scale_option = click.option(
    "--scale", default=None, metavar="FILE.npy|NUMBER",
    help="The scale the layer multiplies by (before the bias): as --bias.")
output_precision_option = click.option(
    "--output-precision", type=click.Choice(OUTPUT_PRECISIONS), default=None,
    help="The type you expect the result stored in (default: the precision's own; float32 for "
         "tfloat32), e.g. float32 for bfloat16 inputs summed and stored in float32, uint8 for OpenCV "
         "on uint8 images (rounded and saturated).")


def declared_options(fn: Callable) -> Callable:
    """--expect FIELD=VALUE (repeatable), --bias, --scale and --output-precision (parameters:
    expect, bias, scale, output_precision): CONTRACT section 2a's declarations."""
    return _compose(expect_option, bias_option, scale_option, output_precision_option)(fn)


def output_options(fn: Callable) -> Callable:
    """--format, --output FILE, --report FORMAT=FILE, --strict and --plot FILE.png
    (parameters: fmt, output, reports, strict, plot)."""
    return _compose(format_option, output_option, report_option, strict_option, plot_option)(fn)


def input_options(fn: Callable) -> Callable:
    """--padding, --stride, --dilation, --layout, --kernel-layout and --max-elements (parameters:
    padding, stride, dilation, layout, kernel_layout, max_elements; stride and dilation as pairs)."""
    return _compose(padding_option, stride_option, dilation_option, layout_option, kernel_layout_option,
                    max_elements_option)(fn)


def _complete_backends(ctx, param, incomplete: str):
    """Shell completion for --backends: the last comma-separated item, from names, aliases, groups."""
    from click.shell_completion import CompletionItem

    from ..backends import completion_choices

    done, _, last = incomplete.rpartition(",")
    prefix = f"{done}," if done else ""
    return [CompletionItem(prefix + choice) for choice in completion_choices()
            if choice.startswith(last)]


backends_option = click.option(
    "--backends", default=None, metavar="NAME,NAME", shell_complete=_complete_backends,
    help="Comma-separated backends to run (default: all; see `convcheck backends`): public "
         "names, aliases (tf, keras, torch, jax, cv2, ndimage, fft, ...) or groups (dl, "
         "scipy). A named backend that cannot run makes the exit code 3.")
library_defaults_option = click.option(
    "--library-defaults", is_flag=True, default=False,
    help="Call each library with its own defaults (scipy.signal mode='full', Keras "
         "padding='valid' and float32, OpenCV's reflect border and float32, ndimage's "
         "mode='reflect', PyTorch's padding=0, JAX without x64, ...) to see which default "
         "makes them disagree.")
