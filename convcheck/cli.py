"""The `convcheck` command line: thin click commands over the library (sqlite-utils style).

Each command parses options, calls the library, hands the result to a format (which
returns a string) and maps the outcome to an exit code (CONTRACT section 4). numpy,
scipy and TensorFlow are imported inside the commands, never at module level, so
`convcheck --help` starts instantly; input files are validated before any backend
(and so TensorFlow) is imported.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import click

from . import __version__
from .cli_options import (Group, check_outputs, echo, emit, groups_option, input_options, output_options,
                          reports_input_errors, save_plot, stdout_to_stderr, talk, terminal_width,
                          use_color)
from .errors import InputError
from .formats import Format, render_compare, render_explain
from .choices import ALGORITHMS, DTYPES, PRECISIONS


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Example: convcheck explain image.npy kernel.npy output.npy --padding same")
@click.version_option(__version__, prog_name="convcheck")
@click.option("--debug", is_flag=True, default=False, expose_value=False,
              help="On an internal error, print the traceback (also CONVCHECK_DEBUG=1).")
def main():
    """Explain why convolution outputs disagree.

    The reference is the float64 cross-correlation (what deep-learning frameworks call
    convolution) with zero padding. Every difference is explained, if it can be, by a
    kernel flip, padding, boundary, offset, precision, bias or scale, judged against a
    rigorous floating-point error bound.

    Exit codes: 0 no mismatch, 1 an unexplained mismatch (with --strict: any
    difference), 2 bad usage or input, 3 a requested backend could not run, 4 an
    internal error (a bug in convcheck: please report it).
    """


# Frameworks whose interpreter teardown takes a second or more (measured: TensorFlow 0.9 s,
# with PyTorch and JAX 1.5 s) though nothing of theirs needs saving at exit.
_SLOW_TEARDOWN = ("tensorflow", "torch", "jax")


def entry() -> None:
    """The `convcheck` command itself (the console script, `python -m convcheck`).

    The same as `main`, except that a process which imported a framework leaves as soon
    as its output is flushed (os._exit), skipping the framework's teardown: everything
    convcheck writes (stdout, stderr, --output and --report files, written atomically and
    closed; plots) is complete by then, and the Keras worker processes leave on their
    own when their input closes. Only here, never in `main`, which tests and other Python
    code call in their own process.

    Before numpy is loaded, its OpenBLAS is asked for one thread (OPENBLAS_NUM_THREADS,
    unless the environment already names a number): convcheck runs its products on one
    BLAS thread each, two at a time on threads of its own (reference.single_threaded_blas,
    map_blocks), so OpenBLAS's own pool would only be started for nothing, and its threads,
    spinning for work the first ~0.1 s, would take a core from them (measured: an explain
    of an (8, 56, 56, 64) batch 0.26 s -> 0.24 s). Child processes inherit it; the
    frameworks' convolutions do not use numpy's BLAS.
    """
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        main(prog_name="convcheck")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not any(name in sys.modules for name in _SLOW_TEARDOWN):
            raise
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _finish(code: int) -> None:
    click.get_current_context().exit(code)


# ----------------------------------------------------------------------------- compare


def _parse_backends(text: Optional[str]) -> Optional[list[str]]:
    """'a,b' -> public names (None for all backends): names, aliases (torch, tf, cv2, ...)
    and groups (dl, scipy); unknown names are an InputError listing the valid ones."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise InputError("--backends: name at least one backend, e.g. --backends "
                         "scipy.signal.correlate2d,tf.nn.conv2d or --backends dl "
                         "(see convcheck backends)")
    from .backends import resolve_backends
    return resolve_backends(names)


# The framework each non-scipy backend imports, as people call it (for the progress line).
_FRAMEWORK_NAMES = {"tensorflow": "TensorFlow", "keras": "Keras", "torch": "PyTorch",
                    "jax": "JAX", "cv2": "OpenCV"}


def _run_compare(inputs, *, padding: str, dtype: Optional[str], backends: Optional[list[str]],
                 library_defaults: bool, keep_arrays: bool, stride=(1, 1), dilation=(1, 1)):
    """compare_inputs, saying on stderr which frameworks are about to be imported."""
    from .backends import BACKENDS
    from .comparison import compare_inputs

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


def _plot_items(report) -> list:
    """(title, diagnosis) for every row that ran, for --plot."""
    return [(r.backend, r.diagnosis) for r in report.results if r.diagnosis is not None]


def _compare_renderer(report):
    return lambda fmt, color, width: render_compare(report, fmt, color=color, width=width)


def _complete_backends(ctx, param, incomplete: str):
    """Shell completion for --backends: the last comma-separated item, from names, aliases, groups."""
    from click.shell_completion import CompletionItem

    from .backends import completion_choices

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


@main.command(epilog="\b\nExample:\n  convcheck compare image.npy kernel.npy --padding same --format github "
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
    names = _parse_backends(backends)
    from .inputs import load_inputs

    inputs = load_inputs(image, kernel, kernel_layout=kernel_layout, padding=padding,
                         max_elements=max_elements, layout=layout)
    report = _run_compare(inputs, padding=padding, dtype=dtype, backends=names,
                          library_defaults=library_defaults, keep_arrays=plot is not None,
                          stride=stride, dilation=dilation)
    save_plot(_plot_items(report), plot)
    emit(_compare_renderer(report), fmt, output, reports)
    _finish(compare_exit_code(report, strict))


# ----------------------------------------------------------------------------- explain


@main.command(epilog="\b\nExample:\n  convcheck explain image.npy kernel.npy output.npy --padding valid "
                     "--precision float32\n"
                     "  convcheck explain x_nchw.npy w_oihw.npy y_nchw.npy --layout nchw --stride 2 --groups 1")
@click.argument("image", type=click.Path())
@click.argument("kernel", type=click.Path())
@click.argument("output_path", metavar="OUTPUT", type=click.Path())
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="The precision you expected the convolution to run in (default: the inputs' own).")
@click.option("--algorithm", type=click.Choice(ALGORITHMS), default="direct", show_default=True,
              help="How you expected the sums to be computed: direct, fft (scipy.signal.fftconvolve), or "
                   "winograd (cuDNN/NNPACK for 3x3 kernels at stride 1); it decides the error bound.")
@input_options
@groups_option
@output_options
@reports_input_errors
def explain(image, kernel, output_path, precision, algorithm, padding, stride, dilation, layout, kernel_layout,
            max_elements, groups, fmt, output, reports, strict, plot):
    """Explain why OUTPUT differs from the cross-correlation of IMAGE with KERNEL (.npy files).

    Pure numpy: never imports TensorFlow. IMAGE and KERNEL as for compare; OUTPUT is in
    the image's layout with its own sizes: (Ho, Wo), (Ho, Wo, C_out) or (N, Ho, Wo, C_out)
    ((C_out, Ho, Wo) / (N, C_out, Ho, Wo) with --layout nchw). --padding, --stride,
    --dilation and --groups are what you expected; a different one is reported as a cause.
    """
    check_outputs(output=output, reports=reports, plot=plot,
                  protected=[("image file", image), ("kernel file", kernel), ("output file", output_path)])
    from .engine import diagnose
    from .inputs import load_inputs

    inputs = load_inputs(image, kernel, output_path, kernel_layout=kernel_layout, padding=padding,
                         max_elements=max_elements, layout=layout)
    diagnosis = diagnose(inputs, padding=padding, precision=precision, stride=stride, dilation=dilation,
                         groups=groups, algorithm=algorithm, keep_arrays=plot is not None)
    save_plot([(inputs.output_name, diagnosis)], plot)
    names = {"image": inputs.image_name, "kernel": inputs.kernel_name, "output": inputs.output_name}
    emit(lambda f, color, width: render_explain(diagnosis, f, names=names, color=color, width=width),
         fmt, output, reports)
    from .results import exit_code_for

    _finish(exit_code_for([diagnosis.verdict], strict=strict))


# ----------------------------------------------------------------------------- demo


@main.command(epilog="Example: convcheck demo --backends scipy.signal.convolve2d,scipy.signal.correlate2d")
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
    names = _parse_backends(backends)
    from .comparison import demo_paths
    from .formats._text import story
    from .inputs import load_inputs

    image, kernel = demo_paths()
    inputs = load_inputs(image, kernel)
    report = _run_compare(inputs, padding="same", dtype=None, backends=names,
                          library_defaults=library_defaults, keep_arrays=plot is not None)
    save_plot(_plot_items(report), plot)
    emit(_compare_renderer(report), fmt, output, reports)
    # The story is for people: beside the table on stdout, on stderr when stdout is data.
    to_stdout = fmt == Format.TABLE.value or output is not None
    echo("", err=not to_stdout)
    for line in story(report):
        echo(line, err=not to_stdout)
    _finish(compare_exit_code(report, strict))


# ----------------------------------------------------------------------------- backends


@main.command("backends", epilog="Example: convcheck backends --format json")
@click.option("--format", "fmt", type=click.Choice([Format.TABLE.value, Format.JSON.value]),
              default=Format.TABLE.value, show_default=True, help="table for people, json for scripts.")
def backends_command(fmt):
    """List the backends compare can run: available here or not, version, and why not."""
    from .comparison import backend_table

    rows = backend_table()
    if fmt == Format.JSON.value:
        from .formats.json import dumps
        echo(dumps({"backends": rows}))
        return
    from .formats.table import render_backends

    color = use_color()
    echo(render_backends(rows, color=color, width=terminal_width()), nl=False, color=color)


# ----------------------------------------------------------------------------- check


def _register_check() -> None:
    # `check` lives in its own module (convcheck/check_command.py); until it exists the
    # CLI simply has no `check` command. Any other import error is a real bug: raise it.
    try:
        from .check_command import check
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.check_command":
            raise
        return
    main.add_command(check)


_register_check()
from .weights_command import weights as _weights_command; main.add_command(_weights_command)  # noqa: E402,E702
from .model_command import model as _model_command; main.add_command(_model_command)  # noqa: E402,E702
