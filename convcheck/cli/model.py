"""`convcheck model ORIGINAL [PORT]`: walk a model and its port conv layer by conv layer.

Thin by design (CONTRACT section 6): parse the options (`--allow` and `--match` checked
before anything is loaded), check the output paths, call `convcheck.models.walk.walk`
(which checks both model files before importing any framework), render the report and exit
with its code (0 no mismatch, 1 a mismatch, 2 bad input, 3 a missing extra or a layer that
could not be judged, 4 a bug). numpy and the frameworks are imported inside the command
only, so `convcheck --help` stays fast.
"""

from __future__ import annotations

import click

from ..choices import LAYOUTS
from .exits import fail, reports_input_errors
from ..errors import MissingDependency
from .options import format_option, output_option, report_option
from .output import check_outputs, emit, stdout_to_stderr, talk

_EPILOG = ("\b\nExamples:\n"
           "  convcheck model net.pt2 net.keras\n"
           "  convcheck model net.pt2 net.onnx --input image.npy --format json\n"
           "  convcheck model net.pt2 net.keras --format github --report junit=model.xml --plot drift.png\n"
           "  convcheck model net.onnx --as-run")


def render_model(report, fmt: str, color: bool = False, width=None) -> str:
    """The report as text in `fmt`: table, json (the convcheck/model/1 document), markdown,
    junit or github (see `convcheck.formats.render_model`)."""
    from ..formats import render_model as render
    return render(report, fmt, color=color, width=width)


def model_plot_option(fn):
    """--plot FILE.png for a walk: its help says what the figure shows."""
    return click.option(
        "--plot", type=click.Path(dir_okay=False), default=None, metavar="FILE.png",
        help="Save a figure of each matched layer's input and output drift (max |port - original|, log scale) "
             "in the original's order, the first divergence marked and the layers that are not equal "
             "distinguished (needs matplotlib: pip install 'convcheck[plot]').")(fn)


@click.command("model", epilog=_EPILOG)
@click.argument("original")
@click.argument("port", required=False)
@click.option("--input", "input_path", type=click.Path(dir_okay=False), default=None, metavar="X.npy",
              help="The input both models run on, a .npy file in ORIGINAL's layout (PORT gets it transposed "
                   "and cast to its own). Default: a seeded random input (numpy default_rng(0), standard normal) of "
                   "ORIGINAL's declared shape and dtype.")
@click.option("--layout", type=click.Choice(LAYOUTS, case_sensitive=False), default=None,
              callback=lambda ctx, param, value: value.lower() if isinstance(value, str) else value,
              help="Layout of --input when it is not ORIGINAL's own: nchw (PyTorch) or nhwc (TensorFlow).")
@click.option("--allow", multiple=True, metavar="FIELD[=VALUE]",
              help="A difference the port may have (repeatable), as in check suites: e.g. precision=float16 for "
                   "a mixed-precision port, or 'unmatched' to accept original layers the port lacks.")
@click.option("--match", "matches", multiple=True, metavar="ORIGINAL=PORT",
              help="Pair these two layers (names as the table shows them), whatever their weights (repeatable).")
@click.option("--as-run", is_flag=True, default=False,
              help="Judge what the runtimes really run (ONNX Runtime's optimised graph, TFLite's XNNPACK) "
                   "instead of the graph as written.")
@format_option
@output_option
@report_option
@model_plot_option
@reports_input_errors
def model(original, port, input_path, layout, allow, matches, as_run, fmt, output, reports, plot):
    """Walk ORIGINAL and its PORT conv layer by conv layer, and say where and why they differ.

    ORIGINAL and PORT are ONNX (.onnx), PyTorch (.pt2, TorchScript .pt, or package.module:attr),
    Keras (.keras, .h5) or TFLite (.tflite) models. Both run on one input; their conv layers
    are matched by weights and order, and each port layer is judged on its own input against
    the original layer's declared computation (padding, stride, groups, bias, BatchNorm, ReLU,
    dtype). With ORIGINAL alone, each layer is judged against its own declared computation.
    Captured tensors wait on disk (under TMPDIR, removed at the end): memory follows the
    largest layer, not the model.

    Exit 0 when every layer is equal (or explained only by --allow'ed fields), 1 for a
    mismatch (or an original layer left unmatched), 2 bad input, 3 a missing extra or a layer
    that could not be judged.
    """
    from ..models.matching import parse_match
    from ..models.report import parse_model_allow

    check_outputs(output=output, reports=reports, plot=plot,
                  protected=[("original model", original), ("port", port), ("--input file", input_path)])
    rules = parse_model_allow(allow)
    overrides = parse_match(matches)
    if overrides and port is None:
        fail("--match pairs layers of ORIGINAL and PORT; give PORT too, or leave --match out")
    from ..models.walk import walk
    try:
        with stdout_to_stderr():  # framework chatter must never reach the report on stdout
            report = walk(original, port, input=input_path, layout=layout, allow=rules, match=overrides,
                          as_run=as_run, progress=lambda message: talk(f"{message}..."))
    except MissingDependency as exc:
        fail(str(exc), code=3)
    if plot is not None:
        from ..plot import save_model_plot
        save_model_plot(report, plot)
        talk(f"wrote plot to {plot}")
    emit(lambda f, color, width: render_model(report, f, color, width), fmt, output, reports)
    click.get_current_context().exit(report.exit_code())


__all__ = ["model", "render_model"]
