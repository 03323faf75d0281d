"""`convcheck explain`: which computation produced a saved output, judged against the reference."""

from __future__ import annotations

import click

from ..choices import ALGORITHMS, PRECISIONS
from ..formats import render_explain
from .exits import finish, reports_input_errors
from .options import declared_options, groups_option, input_options, output_options
from .output import check_outputs, emit, save_plot

# The options that declare a field of their own (CONTRACT section 2a), as the field is named.
_DEDICATED = (("padding", "padding"), ("stride", "stride"), ("dilation", "dilation"), ("groups", "groups"),
              ("precision", "precision"), ("output_precision", "output_precision"), ("algorithm", "algorithm"),
              ("kernel_layout", "kernel_layout"))
_DEFAULTS = {"padding": "same", "stride": (1, 1), "dilation": (1, 1), "groups": None, "precision": None,
             "output_precision": None, "algorithm": "direct", "kernel_layout": None}


@click.command(epilog="\b\nExample:\n  convcheck explain image.npy kernel.npy output.npy --padding valid "
                      "--precision float32\n"
                      "  convcheck explain x_nchw.npy w_oihw.npy y_nchw.npy --layout nchw --stride 2 --groups 1\n"
                      "  convcheck explain layer.npz:x layer.npz:weight layer.npz:y --layout nchw --padding 1 "
                      "--stride 2 --bias layer.npz:bias --expect activation=relu")
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
@declared_options
@output_options
@reports_input_errors
def explain(image, kernel, output_path, precision, algorithm, padding, stride, dilation, layout, kernel_layout,
            max_elements, groups, expect, bias, scale, output_precision, fmt, output, reports, strict, plot):
    """Explain why OUTPUT differs from the cross-correlation of IMAGE with KERNEL (.npy files,
    or FILE.npz:KEY).

    Pure numpy: never imports TensorFlow. IMAGE and KERNEL as for compare; OUTPUT is in
    the image's layout with its own sizes: (Ho, Wo), (Ho, Wo, C_out) or (N, Ho, Wo, C_out)
    ((C_out, Ho, Wo) / (N, C_out, Ho, Wo) with --layout nchw). What you declare (--padding,
    --stride, --dilation, --groups, --precision, --output-precision, --algorithm, --bias,
    --scale, --expect FIELD=VALUE) is the computation you expect: a difference from it is
    reported as a cause. Each field is declared once.
    """
    check_outputs(output=output, reports=reports, plot=plot,
                  protected=[("image file", image), ("kernel file", kernel), ("output file", output_path),
                             ("--bias file", bias), ("--scale file", scale)])
    given = dict(padding=padding, stride=stride, dilation=dilation, groups=groups, precision=precision,
                 output_precision=output_precision, algorithm=algorithm, kernel_layout=kernel_layout)
    declarations = _declarations(given, expect, bias, scale)
    options = dict(_DEFAULTS, **declarations.options())
    from ..engine import diagnose
    from ..inputs import check_channel_count, load_inputs, read_channel_values

    files = declarations.files()
    channels = {field: read_channel_values(file.path, field, max_elements) for field, file in files.items()}
    inputs = load_inputs(image, kernel, output_path, kernel_layout=options.pop("kernel_layout"),
                         padding=options["padding"], max_elements=max_elements, layout=layout)
    for field, values in channels.items():
        check_channel_count(values, files[field].label, int(inputs.output.shape[-1]))
    diagnosis = diagnose(inputs, keep_arrays=plot is not None, expected={**declarations.expected(), **channels},
                         **options)
    save_plot([(inputs.output_name, diagnosis)], plot)
    names = {"image": inputs.image_name, "kernel": inputs.kernel_name, "output": inputs.output_name}
    emit(lambda f, color, width: render_explain(diagnosis, f, names=names, color=color, width=width),
         fmt, output, reports)
    from ..results import exit_code_for

    finish(exit_code_for([diagnosis.verdict], strict=strict))


def _declarations(given: dict, expect, bias, scale):
    """Every declaration of the command line, each field once (`convcheck.check.expect.Declarations`):
    the dedicated options given on it (not their defaults), --bias and --scale, then --expect."""
    from click.core import ParameterSource

    from ..check.expect import Declarations, channel_value, parse_expect_entry
    from ..geometry import padding_text

    context = click.get_current_context()
    declarations = Declarations()
    for option, field in _DEDICATED:
        if context.get_parameter_source(option) not in (None, ParameterSource.DEFAULT):
            value = given[option]
            shown = padding_text(value) if option == "padding" else (
                ",".join(str(v) for v in value) if isinstance(value, tuple) else value)
            declarations.add(field, value, f"--{option.replace('_', '-')} {shown}")
    for field, value in (("bias", bias), ("scale", scale)):
        if value is not None:
            declarations.add(field, channel_value(value, field, f"--{field} {value!r}"), f"--{field} {value}")
    for entry in expect:
        field, value = parse_expect_entry(entry, "--expect")
        declarations.add(field, value, f"--expect {entry.strip()}")
    return declarations
