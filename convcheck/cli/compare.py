"""`convcheck compare`: run an image and a kernel through every backend and explain each output."""

from __future__ import annotations

import sys
from typing import Optional

import click

from ..choices import DTYPES
from ..errors import InputError
from ..formats import render_compare
from .exits import finish, reports_input_errors
from .options import backends_option, input_options, library_defaults_option, output_options
from .output import check_outputs, emit, save_plot, stdout_to_stderr, talk

def parse_backends(text: Optional[str]) -> Optional[list[str]]:
    """'a,b' -> public names (None for all backends): names, aliases (torch, tf, cv2, ...)
    and groups (dl, scipy); unknown names are an InputError listing the valid ones."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise InputError("--backends: name at least one backend, e.g. --backends "
                         "scipy.signal.correlate2d,tf.nn.conv2d or --backends dl "
                         "(see convcheck backends)")
    from ..backends import resolve_backends
    return resolve_backends(names)


# The framework each non-scipy backend imports, as people call it (for the progress line).
_FRAMEWORK_NAMES = {"tensorflow": "TensorFlow", "keras": "Keras", "torch": "PyTorch",
                    "jax": "JAX", "cv2": "OpenCV"}


def run_compare(inputs, *, padding: str, dtype: Optional[str], backends: Optional[list[str]],
                 library_defaults: bool, keep_arrays: bool, stride=(1, 1), dilation=(1, 1)):
    """compare_inputs, saying on stderr which frameworks are about to be imported."""
    from ..backends import BACKENDS
    from ..comparison import compare_inputs

    names = backends if backends is not None else list(BACKENDS)
    heavy = [name for name in names
             if BACKENDS[name].module != "scipy" and BACKENDS[name].availability()[0]]
    frameworks = list(dict.fromkeys(_FRAMEWORK_NAMES.get(BACKENDS[name].module, BACKENDS[name].module)
                                    for name in heavy if BACKENDS[name].module not in sys.modules))
    if frameworks:
        talk(f"importing {', '.join(frameworks)} for {len(heavy)} backend"
             f"{'s' if len(heavy) != 1 else ''} (this takes a few seconds)...")
    with stdout_to_stderr():  # framework chatter must never reach the report on stdout
        return compare_inputs(inputs, padding=padding, dtype=dtype, backends=backends,
                              library_defaults=library_defaults, keep_arrays=keep_arrays,
                              stride=stride, dilation=dilation)


def compare_exit_code(report, strict: bool = False) -> int:
    """CONTRACT section 4 for a compare: 1 for a mismatch, else 3 for a requested backend
    that did not run or any backend that failed outright, else 0."""
    return report.exit_code(strict)


def plot_items(report) -> list:
    """(title, diagnosis) for every row that ran, for --plot."""
    return [(r.backend, r.diagnosis) for r in report.results if r.diagnosis is not None]


def compare_renderer(report):
    return lambda fmt, color, width: render_compare(report, fmt, color=color, width=width)


@click.command(epilog="\b\nExample:\n  convcheck compare image.npy kernel.npy --padding same --format github "
                     "--report junit=report.xml\n"
                     "  convcheck compare batch_nchw.npy weight_oihw.npy --layout nchw --stride 2 --dilation 1")
@click.argument("image", type=click.Path())
@click.argument("kernel", type=click.Path())
@click.option("--dtype", type=click.Choice(DTYPES), default=None,
              help="Precision every backend computes in (default: the wider of the inputs' float "
                   "dtypes; float32 for integer inputs).")
@backends_option
@library_defaults_option
@input_options
@output_options
@reports_input_errors
def compare(image, kernel, dtype, backends, library_defaults, padding, stride, dilation, layout,
            kernel_layout, max_elements, fmt, output, reports, strict, plot):
    """Run IMAGE and KERNEL (.npy files) through every backend and explain each output.

    IMAGE is (H, W), (H, W, C) or a batch (N, H, W, C) ((C, H, W) / (N, C, H, W) with
    --layout nchw); KERNEL is (kh, kw), 4-D HWIO (kh, kw, C_in / G, C_out), OIHW with
    --kernel-layout oihw (the default with --layout nchw) or depthwise with
    --kernel-layout depthwise. Every backend runs at --stride and --dilation, with the
    groups the kernel's shape implies.
    """
    check_outputs(output=output, reports=reports, plot=plot,
                  protected=[("image file", image), ("kernel file", kernel)])
    names = parse_backends(backends)
    from ..inputs import load_inputs

    inputs = load_inputs(image, kernel, kernel_layout=kernel_layout, padding=padding,
                         max_elements=max_elements, layout=layout)
    report = run_compare(inputs, padding=padding, dtype=dtype, backends=names,
                          library_defaults=library_defaults, keep_arrays=plot is not None,
                          stride=stride, dilation=dilation)
    save_plot(plot_items(report), plot)
    emit(compare_renderer(report), fmt, output, reports)
    finish(compare_exit_code(report, strict))
