"""`convcheck explain`: which computation produced a saved output, judged against the reference."""

from __future__ import annotations

import click

from ..choices import ALGORITHMS, PRECISIONS
from ..formats import render_explain
from .exits import finish, reports_input_errors
from .options import groups_option, input_options, output_options
from .output import check_outputs, emit, save_plot

@click.command(epilog="\b\nExample:\n  convcheck explain image.npy kernel.npy output.npy --padding valid "
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
    from ..engine import diagnose
    from ..inputs import load_inputs

    inputs = load_inputs(image, kernel, output_path, kernel_layout=kernel_layout, padding=padding,
                         max_elements=max_elements, layout=layout)
    diagnosis = diagnose(inputs, padding=padding, precision=precision, stride=stride, dilation=dilation,
                         groups=groups, algorithm=algorithm, keep_arrays=plot is not None)
    save_plot([(inputs.output_name, diagnosis)], plot)
    names = {"image": inputs.image_name, "kernel": inputs.kernel_name, "output": inputs.output_name}
    emit(lambda f, color, width: render_explain(diagnosis, f, names=names, color=color, width=width),
         fmt, output, reports)
    from ..results import exit_code_for

    finish(exit_code_for([diagnosis.verdict], strict=strict))
