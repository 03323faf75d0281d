"""`convcheck weights ORIGINAL PORT`: name how one conv kernel was turned into the other.

Thin by design: read the two .npy files (`convcheck.inputs.read_npy` refuses bad ones with
one line), call `convcheck.weights.relate`, render the result and map the verdict to an exit
code (CONTRACT section 4: 0 equal or explained, 1 unexplained, 2 bad input). numpy is
imported inside the command only, so `convcheck --help` stays fast.
"""

from __future__ import annotations

from typing import Optional

import click

from .exits import reports_input_errors
from .options import _KernelLayout, output_option
from .output import check_outputs, emit

_LAYOUT_HELP = ("hwio (TensorFlow/Keras), oihw (PyTorch), depthwise ((kh, kw, C, multiplier), Keras "
                "DepthwiseConv2D), or any other order of the letters h, w, i, o (e.g. ohwi for TFLite).")


def render_weights(relation, fmt: str, names: Optional[tuple[str, str]] = None) -> str:
    """The relation as text: 'json' (the convcheck/weights/1 document) or a plain-text table."""
    if fmt == "json":
        from ..formats.json import dumps
        return dumps(relation.to_json_dict(names))
    original, port = names or ("original", "port")
    verdict = relation.verdict.value
    lines = [f"convcheck weights: {port} ({relation.port_layout.upper()}) made from {original} "
             f"({relation.original_layout.upper()})"]
    if verdict == "equal":
        lines.append("equal: the port holds the original's weights, unchanged")
    elif verdict == "explained":
        fields = " + ".join(f"{name} {_value_text(value)}" for name, value in relation.mapping.items())
        lines.append(f"explained: {fields}")
        for cause in relation.causes:
            lines += [f"  - {cause.summary}", f"    fix: {cause.fix}"]
    else:
        lines.append(f"unexplained: {relation.reason}")
    for alternative in relation.alternatives:
        lines.append("  also fits (as many changes): "
                     + " + ".join(f"{name} {_value_text(value)}" for name, value in alternative.items()))
    if relation.max_abs_diff is not None and verdict != "equal":
        lines.append(f"max |port - original| read as {relation.port_layout.upper()}: {relation.max_abs_diff:.6g}")
    return "\n".join(lines) + "\n"


def _value_text(value) -> str:
    if isinstance(value, list):
        shown = ", ".join(f"{v:.6g}" for v in value[:8])
        return f"[{shown}{', ...' if len(value) > 8 else ''}] (per output channel)"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@click.command("weights", epilog="\b\nExample:\n  convcheck weights torch_weight.npy keras_kernel.npy "
                                 "--original-layout oihw --port-layout hwio")
@click.argument("original", type=click.Path())
@click.argument("port", type=click.Path())
@click.option("--original-layout", type=_KernelLayout(), default="hwio", show_default=True,
              help="Layout of ORIGINAL's axes: " + _LAYOUT_HELP)
@click.option("--port-layout", type=_KernelLayout(), default="hwio", show_default=True,
              help="Layout PORT's axes are meant to be in: " + _LAYOUT_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Report format: a table for people, json for scripts (schema convcheck/weights/1).")
@output_option
@reports_input_errors
def weights(original, port, original_layout, port_layout, fmt, output):
    """Name how PORT's conv weights were made from ORIGINAL's (.npy files).

    Finds the simplest change that maps ORIGINAL onto PORT exactly (or within the one
    rounding it names): its axes in another order, a reshape instead of a transpose (PyTorch
    OIHW into HWIO, a depthwise kernel), the kernel flipped, rotated or transposed, a factor
    per output channel (a BatchNorm folded in), or the values rounded to float16/bfloat16.
    Exit 0 when the weights are equal or the change is named, 1 when nothing explains them.
    """
    check_outputs(output=output, protected=[("original file", original), ("port file", port)])
    from ..inputs import read_npy
    from ..engine import relate_weights as relate

    original_array = read_npy(original, "original")
    port_array = read_npy(port, "port")
    names = (str(original), str(port))
    relation = relate(original_array, port_array, original_layout=original_layout, port_layout=port_layout,
                      names=names)
    emit(lambda f, color, width: render_weights(relation, f, names), fmt, output)
    click.get_current_context().exit(1 if relation.verdict.value == "unexplained" else 0)


__all__ = ["weights", "render_weights"]
