"""`convcheck check [FILE]`: run the suite in convcheck.toml / [tool.convcheck], for CI.

Thin by design: find and load the config (`convcheck.check`), run it, render the report
in the chosen format, and map the outcome to CONTRACT section 4's exit codes. Problems in
the config or its files are one `error: ...` line on stderr and exit 2, before any case
runs and before anything is written.
"""

from __future__ import annotations

from typing import Optional

import click

from .exits import reports_input_errors
from .options import format_option, output_option, plot_option, report_option
from .output import check_outputs, emit, stdout_to_stderr, talk

strict_option = click.option(
    "--strict", is_flag=True, default=False,
    help="Fail (exit 1) a result explained by a cause its case does not list in `allow` "
         "(without --strict it is a warning). Same as strict = true in the config.")


def render_check(report, fmt: str, *, color: bool = False, width: Optional[int] = None) -> str:
    """The check report as text in `fmt` (table, json, markdown, junit or github)."""
    fmt = str(getattr(fmt, "value", fmt))
    if fmt == "json":
        from ..formats.json import dumps
        return dumps(report.to_json_dict())
    if fmt == "junit":
        from ..formats.junit import render_check as render
        return render(report)
    if fmt == "github":
        from ..formats.github import render_check as render
        return render(report)
    from ..formats.check_text import render_check_markdown, render_check_table
    if fmt == "markdown":
        return render_check_markdown(report)
    return render_check_table(report, color=color, width=width)


class _Progress:
    """A rich progress bar on stderr, shown only for suites of more than one case."""

    def __init__(self, total: int):
        self.bar = None
        if total <= 1:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        self.bar = Progress(TextColumn("convcheck check"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.description}"), TimeElapsedColumn(),
                            console=Console(stderr=True), transient=True)
        self.task = self.bar.add_task("", total=total)

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, done: int, total: int, name: Optional[str]) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, description=name or "done")


_EPILOG = """\b
Config keys (convcheck.toml; in pyproject.toml under [tool.convcheck]):
  top level, inherited by every case:
    padding = "same"            same | valid | full, or amounts: 1 (PyTorch padding=1),
                                [PH, PW], [T, B, L, R] or [[T, B], [L, R]]
    stride = 2                  an integer for both axes, or [SY, SX]
    dilation = [1, 2]           an integer for both axes, or [DY, DX]
    groups = 3                  the groups you expect (cases with an output; backends
                                run with the groups the kernel's shape implies)
    layout = "nhwc"             nhwc | nchw (image and output channels first)
    dtype = "float32"           float16 | bfloat16 | float32 | float64 (cases with backends)
    backends = ["tf.nn.conv2d"] backends to compare (see convcheck backends)
    kernel-layout = "hwio"      hwio | oihw | depthwise | another order of h, w, i, o
                                (default oihw with layout = "nchw", else hwio)
    library-defaults = false    call each library with its own defaults
    strict = false              a cause not in allow fails instead of warning
    allow = ["precision=float32", "kernel_transform=rot180", "boundary"]
  each [[case]] ([[tool.convcheck.case]]): name, image, kernel, and either
    output = "saved.npy" (explain a saved output) or backends = [...],
    plus any key above for this case alone. kernel_layout spellings work too.
    Arrays may be FILE.npz:KEY members of an np.savez archive.
    expect = {activation = "relu", bias = "bias.npy", offset = "-1,-1"}
                                what a saved output was computed as (any field of
                                the vocabulary, values as --expect takes them)
  each [[model]] ([[tool.convcheck.model]]): name, original (a model file or
    package.module:attr), and optionally port, input = "x.npy", allow = [...]
    (as --allow, "unmatched" included), match = ["ORIG=PORT"], as-run = true:
    walked layer by layer as convcheck model does, one result per layer.

\b
Example:
  convcheck check --format github --report junit=convcheck.xml --plot convcheck.png
"""


@click.command("check", epilog=_EPILOG)
@click.argument("file", required=False, type=click.Path())
@format_option
@output_option
@report_option
@strict_option
@plot_option
@reports_input_errors
def check(file: Optional[str], fmt: str, strict: bool, plot: Optional[str], reports=(), **output) -> None:
    """Run the cases of a convcheck config and report, for CI.

    FILE is the config: a convcheck.toml with [[case]] tables, or a pyproject.toml with
    [tool.convcheck] and [[tool.convcheck.case]]. Without FILE, the nearest one in this
    folder or above is used (convcheck.toml first). Every case's files are checked before
    the first case runs.

    Exit 0 when every result is equal or explained by causes its case allows (a cause
    not allowed is a warning), 1 when one is unexplained or, with --strict, explained by
    a cause not allowed, 2 for a bad config or input file, 3 when a backend could not run.
    """
    from ..check import find_config, load_suite, run_suite

    # --output's parameter is named by options.output_option ('output'; once 'output_file').
    output_file = output.get("output", output.get("output_file"))
    config = find_config(file)
    check_outputs(output=output_file, reports=reports, plot=plot, protected=[("check config", config)])
    suite = load_suite(config)
    protected = [(f"{role} file of case '{case.name}'", path) for case in suite.cases
                 for role, path in (("image", case.image), ("kernel", case.kernel), ("output", case.output))]
    protected += [(f"{role} file of case '{case.name}'", getattr(value, "path", value)) for case in suite.cases
                  for role, value in case.expect if role in ("bias", "scale")]
    protected += [(f"{role} of model case '{case.name}'", path) for case in suite.models
                  for role, path in (("original model", case.original), ("port", case.port), ("input file", case.input))]
    check_outputs(output=output_file, reports=reports, plot=plot, protected=protected)
    with _Progress(len(suite.cases)) as progress, stdout_to_stderr():
        report = run_suite(suite, strict=strict, progress=progress, keep_arrays=plot is not None)

    if plot is not None:
        from ..plot import save_plot
        save_plot(report, plot)
        talk(f"wrote plot to {plot}")
    emit(lambda f, color, width: render_check(report, f, color=color, width=width), fmt, output_file, reports)

    fmt = str(getattr(fmt, "value", fmt))
    if fmt not in ("table", "github") and output_file is None:  # those end with the summary already
        from ..formats.check_text import summary_sentence
        talk(f"convcheck check: {summary_sentence(report)}")
    click.get_current_context().exit(report.exit_code())
