"""What the human-readable formats say about a model walk (`convcheck model`), decided once.

Pure Python (no rich, no numpy): each function turns a `convcheck.models.report.ModelReport`
or one of its `LayerResult`s into plain strings; the table only lays them out.
"""

from __future__ import annotations

from typing import Optional

from ..vocabulary import Verdict, describe_plain, plain_label
from ._text import NONE, left_out_text, num, verdict_label

MODEL_COLUMNS = ("#", "original", "port", "kernel", "verdict", "cause", "fix", "in drift", "out drift")
NUMERIC_COLUMNS = ("in drift", "out drift")
DIVERGENCE_MARK = "▶"
NOT_JUDGED = "– not judged"


def _model_text(entry: Optional[dict]) -> str:
    if entry is None:
        return ""
    return f"{entry['path']} ({entry['format']}, {entry['convs']} conv{'s' if entry['convs'] != 1 else ''})"


def model_title(report) -> str:
    """'net.pt2 (pytorch, 5 convs) → net.keras (keras, 5 convs); input (1, 3, 16, 16) float32, random, seed 0'."""
    models = report.models
    shown = _model_text(models["original"])
    if models.get("port") is not None:
        shown += f" → {_model_text(models['port'])}"
    else:
        shown += ": each layer against its own declared computation"
    entry = report.input
    shape = "(" + ", ".join(str(n) for n in entry["shape"]) + ")"
    return f"{shown}; input {shape} {entry['dtype']}, {entry['source']}"


def kernel_text(layer) -> str:
    """'3×3 8→8 s2' (kernel size, input → output channels, stride, dilation, groups when not 1)."""
    original = layer.original
    kh, kw, per_group, c_out = original["kernel"]
    groups = original["groups"]
    text = f"{kh}×{kw} {per_group * groups}→{c_out}"
    if original["stride"] != [1, 1]:
        text += f" s{_pair(original['stride'])}"
    if original["dilation"] != [1, 1]:
        text += f" d{_pair(original['dilation'])}"
    if groups != 1:
        text += f" g{groups}"
    return text


def _pair(pair) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]},{pair[1]}"


def verdict_text(layer) -> str:
    """'✓ equal', '≈ explained', '✗ unexplained' or '– not judged'."""
    if layer.verdict == "not_judged":
        return NOT_JUDGED
    return verdict_label(Verdict(layer.verdict))


def cause_text(layer) -> str:
    """The layer's cause in plain words, then what its weights say when that is a defect."""
    diagnosis = layer.diagnosis
    if layer.verdict == "not_judged":
        parts = [f"not judged: {layer.reason}"]
    elif layer.verdict == "equal":
        parts = []
    elif layer.verdict == "explained":
        parts = [describe_plain(diagnosis.explanation, diagnosis.baseline)]
        if left_out_text(diagnosis, short=True) is not None:
            parts.append(left_out_text(diagnosis, short=True))
    elif diagnosis.cannot_decide:
        # Reasons start "cannot decide: ..." (engine/evidence.py): said once.
        reason = (diagnosis.reason or "").removeprefix("cannot decide: ")
        parts = [f"the data cannot decide: {reason}" if reason else "the data cannot decide"]
    else:
        parts = ["no known cause reproduces it" + (f" ({diagnosis.where})" if diagnosis.where else "")]
    weights = layer.weights
    if weights is not None and weights.defects:
        parts.append("weights: " + " + ".join(plain_label(c.field, _plain_value(c.value)) for c in weights.defects))
    elif weights is not None and weights.unrelated:
        parts.append("weights: no layout, reshape, flip, factor or rounding relates them to the original's")
    return "; ".join(parts) or NONE


def _plain_value(value):
    return tuple(value) if isinstance(value, list) else value


def fix_text(layer) -> str:
    """The fixes of the layer's causes (then of its weights' defects), '–' when none."""
    fixes = [cause.fix for cause in layer.causes]
    if not fixes and layer.weights is not None:
        fixes = [cause.fix for cause in layer.weights.defects]
    unique = list(dict.fromkeys(fix for fix in fixes if fix))
    return "; ".join(unique) or NONE


def drift_text(drift: Optional[dict]) -> str:
    """The greatest |port - original| of a captured tensor, '–' when the shapes differ (or one model)."""
    return NONE if drift is None else num(drift["max_abs_diff"]) if drift["max_abs_diff"] is not None else "nan"


def layer_cells(layer, first) -> dict[str, str]:
    """The table's cells for one layer; `first` is the first divergence (or None)."""
    mark = f"{DIVERGENCE_MARK} " if first is not None and layer is first else ""
    return {"#": f"{mark}{layer.index}", "original": layer.original["name"],
            "port": layer.port["name"] if layer.port is not None else NONE, "kernel": kernel_text(layer),
            "verdict": verdict_text(layer), "cause": cause_text(layer), "fix": fix_text(layer),
            "in drift": drift_text(layer.input_drift), "out drift": drift_text(layer.output_drift)}


def divergence_line(report) -> str:
    """Where the port first computes something other than the original (or that it never does)."""
    first = report.first_divergence()
    if first is None:
        judged = [layer for layer in report.layers if layer.verdict != "not_judged"]
        if not judged:
            return "no layer could be judged"
        return "none: every judged layer computes what the original's declares"
    port = f" → {first.port['name']}" if first.port is not None else ""
    what = ", ".join(first.fields) if first.fields else "unexplained"
    return f"layer {first.index}, {first.original['name']}{port} ({what})"


def unmatched_lines(report) -> list[str]:
    """The layers left unmatched on each side (none are ever dropped silently)."""
    lines = []
    if report.unmatched_original:
        allowed = " (allowed)" if report.allow.unmatched else ""
        names = ", ".join(report.unmatched_original)
        if getattr(report, "uncaptured_port", 0):
            lines.append(f"original layers with no captured counterpart in the port{allowed}: {names} (the port has "
                         f"{report.uncaptured_port} conv op(s) convcheck does not capture, quantized, transposed or "
                         "not 2-D, which may be their counterparts: --format json lists them in notes.port)")
        else:
            lines.append(f"original layers with no counterpart in the port{allowed}: {names}")
    if report.unmatched_port:
        lines.append(f"port layers with no counterpart in the original: {', '.join(report.unmatched_port)}")
    return lines


def failure_lines(report, most: int = 10) -> list[str]:
    """Why the walk is a mismatch, one line per reason (at most `most`)."""
    lines = []
    for layer, why in report.failures():
        lines.append(f"{layer.original['name']}: {why}" if layer is not None else why)
    if len(lines) > most:
        lines = lines[:most] + [f"and {len(lines) - most} more"]
    return lines


_EXIT_MEANING = {0: "no mismatch", 1: "mismatch", 3: "some layers could not be judged"}


def summary_line(report) -> str:
    """'5 layers: 1 equal, 3 explained, 1 unexplained; 1 original layer unmatched; exit 1 (mismatch)'."""
    counts = report.counts()
    parts = [f"{n} {verdict.replace('_', ' ')}" for verdict, n in counts.items() if n]
    text = f"{len(report.layers)} layer{'s' if len(report.layers) != 1 else ''}" + (
        f": {', '.join(parts)}" if parts else "")
    if report.unmatched_original:
        text += f"; {len(report.unmatched_original)} original layer(s) unmatched"
    if report.unmatched_port:
        text += f"; {len(report.unmatched_port)} port layer(s) unmatched"
    if report.allow.texts():
        text += f"; allowed: {', '.join(report.allow.texts())}"
    code = report.exit_code()
    return f"{text}; exit {code} ({_EXIT_MEANING.get(code, '')})"


def layer_notes(report) -> list[str]:
    """'name: note' for each layer's notes."""
    return [f"{layer.original['name']}: {note}" for layer in report.layers for note in layer.notes]


def layer_name(layer) -> str:
    """'stem.conv → stem_conv' (the layer's names in both models), or the original's alone."""
    if layer.port is None:
        return layer.original["name"]
    return f"{layer.original['name']} → {layer.port['name']}"


def models_name(report) -> str:
    """'net.pt2 → net.keras', or 'net.onnx' for a single model (paths as given)."""
    port = report.models.get("port")
    return report.models["original"]["path"] + (f" → {port['path']}" if port is not None else "")


def disallowed_causes(layer, allow) -> list:
    """The layer's causes that `allow` does not accept (only an explained layer has any)."""
    if layer.verdict != "explained":
        return []
    return [cause for cause in layer.causes if not allow.permits(cause)]


def weights_line(layer) -> Optional[str]:
    """What the port's weights are, against the original's, in one line (None for a single model)."""
    weights = layer.weights
    if weights is None:
        return None
    if weights.verdict == "not_judged":
        return f"weights: not compared ({weights.reason})" if weights.reason else "weights: not compared"
    if weights.unrelated:
        return "weights: no layout, reshape, flip, factor or rounding relates them to the original's" + (
            f" ({weights.reason})" if weights.reason else "")
    parts = [f"{cause.field}: {cause.summary}" for cause in weights.defects]
    if weights.folded_batchnorm:
        parts.append("a factor per output channel that is the BatchNorm one side folded (no defect)")
    if weights.undecided and weights.reason:
        parts.append(weights.reason)
    return "weights: " + ("; ".join(parts) if parts else "equal to the original's")


def drift_line(layer) -> Optional[str]:
    """'input drift 0 (max rel 0), output drift 0.41 (max rel 0.9)' against the original's
    captured tensors (None for a single model)."""
    if layer.port is None:
        return None
    parts = []
    for what, entry in (("input", layer.input_drift), ("output", layer.output_drift)):
        if entry is None:
            parts.append(f"{what} drift {NONE} (the shapes differ)")
        else:
            parts.append(f"{what} drift {drift_text(entry)} (max rel {num(entry['max_rel_diff'])})")
    return ", ".join(parts) + " from the original's"


def layer_lines(layer, allow) -> list[str]:
    """The layer as plain lines (JUnit bodies, annotations' details): names and kernel, the
    verdict with each cause, fix and why (causes `allow` refuses marked), what the walk fails it
    for, its weights, drift and notes."""
    from .check_text import diagnosis_lines

    lines = [f"layer {layer.index}: {layer_name(layer)} ({kernel_text(layer)})"]
    if layer.diagnosis is None:
        lines.append(f"verdict: not judged: {layer.reason}" if layer.reason else "verdict: not judged")
    else:
        lines += diagnosis_lines(layer.diagnosis, disallowed_causes(layer, allow))
    lines += [f"fails: {why}" for why in layer.failures(allow)]
    lines += [line for line in (weights_line(layer), drift_line(layer)) if line is not None]
    lines += [f"note: {note}" for note in layer.notes]
    return lines


__all__ = ["MODEL_COLUMNS", "NUMERIC_COLUMNS", "DIVERGENCE_MARK", "model_title", "kernel_text", "verdict_text",
           "cause_text", "fix_text", "drift_text", "layer_cells", "divergence_line", "unmatched_lines",
           "failure_lines", "summary_line", "layer_notes", "layer_name", "models_name", "disallowed_causes",
           "weights_line", "drift_line", "layer_lines"]
