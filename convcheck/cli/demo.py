"""`convcheck demo`: compare the backends on a packaged example and say what the table shows."""

from __future__ import annotations

import click

from ..formats import Format
from .compare import compare_exit_code, compare_renderer, parse_backends, plot_items, run_compare
from .exits import finish, reports_input_errors
from .options import backends_option, library_defaults_option, output_options
from .output import check_outputs, echo, emit, save_plot

@click.command(epilog="Example: convcheck demo --backends scipy.signal.convolve2d,scipy.signal.correlate2d")
@backends_option
@library_defaults_option
@output_options
@reports_input_errors
def demo(backends, library_defaults, fmt, output, reports, strict, plot):
    """Compare the backends on a packaged example and say what the table shows.

    The example is the 8x8 image and 3x3 kernel of the well-known question "Different 2D
    convolution results between keras and scipy".
    """
    check_outputs(output=output, reports=reports, plot=plot)
    names = parse_backends(backends)
    from ..comparison import demo_paths
    from ..formats._text import story
    from ..inputs import load_inputs

    image, kernel = demo_paths()
    inputs = load_inputs(image, kernel)
    report = run_compare(inputs, padding="same", dtype=None, backends=names,
                          library_defaults=library_defaults, keep_arrays=plot is not None)
    save_plot(plot_items(report), plot)
    emit(compare_renderer(report), fmt, output, reports)
    # The story is for people: beside the table on stdout, on stderr when stdout is data.
    to_stdout = fmt == Format.TABLE.value or output is not None
    echo("", err=not to_stdout)
    for line in story(report):
        echo(line, err=not to_stdout)
    finish(compare_exit_code(report, strict))
