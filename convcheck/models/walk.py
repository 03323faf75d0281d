"""The model walk (CONTRACT section 6): load, capture, match, judge, report.

`walk(original, port)` checks both model files (no framework imported yet), reads what each
declares, makes one input (the user's, in the original's layout, or a seeded random one),
runs both models on it (the port's copy transposed to its layout and cast to its dtype),
pairs their conv layers (`matching`), judges each pair with the engine (`judge`) and returns
a `ModelReport`. `walk_captured` does the last three steps on models already captured, for
callers that run the models themselves. With one model, each of its layers is judged
against its own declared computation.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import InputError
from . import judge as judging
from .formats import check_model_file
from .layers import CapturedModel, ConvLayer, ModelInfo, regroup_to_match
from .matching import match_layers, producers
from .report import AllowSet, LayerResult, ModelReport, parse_model_allow
from .spill import Spill

SEED = 0


def walk(original, port=None, *, input=None, layout: Optional[str] = None, allow=(),
         match: Sequence[tuple[str, str]] = (), as_run: bool = False,
         progress: Optional[Callable[[str], None]] = None) -> ModelReport:
    """Walk `original` and its `port` (model paths, or `package.module:attr` for PyTorch) conv
    layer by conv layer; with `port` None, judge each layer of `original` against its own
    declared computation.

    `input`: an array (or a `.npy` path) in the original's layout (`layout` 'nchw'/'nhwc' says
    it is in the other one), else a seeded random input of the original's declared shape and
    dtype. `allow`: `--allow` entries ('precision=float16', 'unmatched', ...); `match`:
    (original name, port name) pairs that override the matching; `as_run`: capture what the
    runtimes really run (see each loader). `progress` gets one line per step. Raises
    `InputError` for bad input (files, names, an input of the wrong shape, models with nothing
    in common) and `MissingDependency` when a format's extra is missing."""
    say = progress or (lambda message: None)
    rules = allow if isinstance(allow, AllowSet) else parse_model_allow(allow)
    original_loader = check_model_file(original, "original model")
    port_loader = check_model_file(port, "port") if port is not None else None
    given, source = _given_input(input)
    say(f"reading {original}")
    original_info = original_loader.inspect(str(original))
    port_info = port_loader.inspect(str(port)) if port_loader is not None else None
    x, input_info = model_input(original_info, given, source, layout)
    # Each captured tensor goes to disk as it is captured (or when its run ends), and each pair's
    # pages are given back once it is judged: memory follows the largest layer (see `spill`).
    with Spill() as spill:
        say(f"running {original} ({original_info.format})")
        captured_original = _capture(original_loader, original, x, as_run, spill)
        captured_port = None
        if port_loader is not None:
            say(f"running {port} ({port_info.format})")
            captured_port = _capture(port_loader, port, port_input(x, original_info, port_info), as_run, spill)
        say("judging each layer")
        report = walk_captured(captured_original, captured_port, input_info=input_info, allow=rules, match=match,
                               release=spill.release)
        if spill.note:
            report.notes.setdefault("walk", []).append(spill.note)
        return report


def _capture(loader, path, x: np.ndarray, as_run: bool, spill: Spill) -> CapturedModel:
    """One model captured, its tensors on disk (`spill`)."""
    return loader.capture(str(path), x, as_run=as_run, keep=spill.keep)


def _given_input(value):
    """(the user's input array or None, how the report names it)."""
    if value is None:
        return None, f"random, seed {SEED}"
    if isinstance(value, np.ndarray):
        return value, "array"
    from ..inputs import read_npy
    from ..inputs.arrays import check_finite
    try:
        array = read_npy(value, "image")
        check_finite(array, f"'{value}'")   # NaN or Inf would leave every layer not judged: bad input
        return array, f"file '{value}'"
    except InputError as exc:
        raise InputError(f"--input: {exc}") from None


def model_input(info: ModelInfo, given: Optional[np.ndarray], source: str,
                layout: Optional[str] = None) -> tuple[np.ndarray, dict]:
    """The original's input and its report entry {shape, dtype, source}: the user's array (moved
    from `layout` to the model's when they differ), or standard normal values from
    numpy.random.default_rng(SEED) of the model's declared shape and dtype (a shape the model
    leaves open is an `InputError` asking for --input)."""
    from ..backends.base import numpy_dtype
    if given is not None:
        x = given
        if layout is not None and layout != info.layout:
            x = _relayout(x, layout, info.layout, f"--input ({source})")
    else:
        if info.input_shape is None:
            raise InputError(f"original model '{info.path}': leaves its input's shape open, so convcheck cannot make "
                             f"a random input; pass --input X.npy with an input in its layout "
                             f"({info.layout.upper()}, dtype {info.input_dtype})")
        rng = np.random.default_rng(SEED)
        dtype = numpy_dtype(info.input_dtype)
        if dtype.kind in "iu":
            info_range = np.iinfo(dtype)
            x = rng.integers(max(info_range.min, 0), min(info_range.max, 255) + 1, info.input_shape).astype(dtype)
        else:
            x = rng.standard_normal(info.input_shape).astype(dtype)
    return x, {"shape": [int(n) for n in x.shape], "dtype": x.dtype.name, "layout": info.layout, "source": source}


def _relayout(x: np.ndarray, have: str, want: str, label: str) -> np.ndarray:
    """An NCHW array as NHWC or the reverse (4-D only)."""
    if x.ndim != 4:
        raise InputError(f"{label}: has shape {tuple(x.shape)}, not a 4-D image batch, so it cannot be moved from "
                         f"{have.upper()} to {want.upper()}; give a 4-D input")
    order = (0, 2, 3, 1) if have == "nchw" else (0, 3, 1, 2)
    return np.ascontiguousarray(x.transpose(order))


def port_input(x: np.ndarray, original: ModelInfo, port: ModelInfo) -> np.ndarray:
    """The original's input as the port takes it: transposed to the port's layout when the two
    differ (NCHW <-> NHWC), cast to the port's declared dtype. A port whose declared shape is
    another is an `InputError`: the two models do not take the same input."""
    from ..backends.base import numpy_dtype
    moved = x if port.layout == original.layout else _relayout(x, original.layout, port.layout, "the input")
    wanted = numpy_dtype(port.input_dtype)
    if moved.dtype != wanted:
        moved = moved.astype(wanted)
    declared = port.input_shape
    if declared is not None and (len(declared) != moved.ndim or tuple(declared[1:]) != tuple(moved.shape[1:])):
        raise InputError(f"port '{port.path}': takes inputs of shape {tuple(declared)} ({port.layout.upper()}), but "
                         f"the original's input {tuple(x.shape)} ({original.layout.upper()}) is "
                         f"{tuple(moved.shape)} in the port's layout: the two models do not take the same input; "
                         "check that PORT is a port of ORIGINAL")
    return np.ascontiguousarray(moved)


# ----------------------------------------------------------------------------- the walk on captured models


def walk_captured(original: CapturedModel, port: Optional[CapturedModel], *, input_info: dict,
                  allow=AllowSet(), match: Sequence[tuple[str, str]] = (),
                  release: Optional[Callable] = None) -> ModelReport:
    """Match and judge two captured models (or one, with `port` None) and report. `release`
    (`Spill.release`) gets each pair's tensors once the pair is judged.

    Raises `InputError` when two models with conv layers have no layer in common (and no
    `match` pairs were given) or a `match` name is not a layer."""
    rules = allow if isinstance(allow, AllowSet) else parse_model_allow(allow)
    models = {"original": _model_entry(original), "port": _model_entry(port) if port is not None else None}
    notes = {"original": list(original.notes)}
    if port is None:
        layers = tuple(_judge_single(i, layer, release) for i, layer in enumerate(original.layers))
        return ModelReport(models, input_info, layers, allow=rules, notes=notes)
    notes["port"] = list(port.notes)
    original, port = (replace(original, layers=regroup_to_match(original.layers, port.layers)),
                      replace(port, layers=regroup_to_match(port.layers, original.layers)))
    matching = match_layers(original.layers, port.layers, match)
    if not matching.pairs:
        raise InputError(f"original model '{original.path}' and port '{port.path}' have no conv layer in common: "
                         f"none of the port's {len(port.layers)} kernels relates to any of the original's "
                         f"{len(original.layers)} (shapes, weights); check that PORT is a port of ORIGINAL, or pair "
                         "layers by name with --match ORIGINAL_NAME=PORT_NAME")
    # The layers whose output another conv reads as it is (matching.producers).
    feeding = (set(producers(original.layers).values()), set(producers(port.layers).values()))
    scales: dict[int, float] = {}

    def judged(pair) -> LayerResult:
        scales[pair.original] = _largest(original.layers[pair.original].input)   # before its release
        return _judge_pair(original.layers[pair.original], port.layers[pair.port], pair, port.format, release,
                           (pair.original in feeding[0], pair.port in feeding[1]))

    layers = _drift_jumps(tuple(judged(pair) for pair in matching.pairs), scales)
    if matching.unmatched_original and port.uncaptured:
        # "No counterpart" would be false if the counterparts are convs the port's loader skipped.
        notes.setdefault("walk", []).append(
            f"{len(matching.unmatched_original)} layer(s) of the original matched no captured layer of the port, "
            f"and the port has {port.uncaptured} conv op(s) convcheck did not capture (see the port's notes: "
            "quantized, transposed or not 2-D): those may be their counterparts, computed otherwise")
    return ModelReport(models, input_info, layers, _names(original.layers, matching.unmatched_original),
                       _names(port.layers, matching.unmatched_port), rules, notes, uncaptured_port=port.uncaptured)


# A layer's input drift is noted when it is more than DRIFT_JUMP times every output drift of the
# layers before it (or, with none drifting, at all) and more than DRIFT_FLOOR of its input's
# largest magnitude (rounding-level drifts, 2^-24 to 2^-20 of it in float32, never are).
DRIFT_JUMP = 64.0
DRIFT_FLOOR = 2.0 ** -14


def _largest(array: np.ndarray) -> float:
    """max |array| (0 for an empty or non-finite one)."""
    if array.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        value = max(abs(float(np.max(array))), abs(float(np.min(array))))
    return value if np.isfinite(value) else 0.0


def _drift_jumps(layers: tuple[LayerResult, ...], scales: dict[int, float]) -> tuple[LayerResult, ...]:
    """The layers, a note added to each whose input drifts from the original's far more than any
    layer before it drifted: every conv is judged on the port's own input, so a difference in an
    op between convs (a concatenation order, a pooling or upsampling mode, an activation's
    parameters, a channel order before the first conv) leaves every layer `equal` and shows only
    here. An observation, not a verdict: ops between convs that amplify differences (a
    BatchNorm left unfolded with a large factor) give it too, and the note says so."""
    noted = []
    before = 0.0   # the largest output drift of the layers so far, in the original's order
    for layer in layers:
        drift_in = (layer.input_drift or {}).get("max_abs_diff")
        scale = scales.get(layer.index, 0.0)
        if drift_in is not None and scale > 0 and drift_in > DRIFT_FLOOR * scale and drift_in > DRIFT_JUMP * before:
            if before > 0:
                note = (f"its input differs from the original's by {drift_in:.3g} ({drift_in / scale:.2g} of its "
                        f"largest value), {drift_in / before:.0f} times the largest output drift of the layers "
                        f"before it ({before:.3g}): either the ops between the convs amplify differences this "
                        "much, or one of them computes something else (a concatenation order, a pooling or "
                        "upsampling mode, an activation's parameters), which no conv's verdict shows")
            else:
                note = (f"its input differs from the original's by {drift_in:.3g} ({drift_in / scale:.2g} of its "
                        "largest value) though no layer before it drifts: an op before it computes something else "
                        "(a channel order, a normalisation, a cast to a narrower type), which no conv's verdict "
                        "shows")
            layer = replace(layer, notes=layer.notes + (note,))
        drift_out = (layer.output_drift or {}).get("max_abs_diff")
        if drift_out is not None and np.isfinite(drift_out):
            before = max(before, drift_out)
        noted.append(layer)
    return tuple(noted)


def _names(layers: Sequence[ConvLayer], indices) -> tuple[str, ...]:
    return tuple(layers[i].name for i in indices)


def _model_entry(model: CapturedModel) -> dict:
    return {"path": str(model.path), "format": model.format, "convs": len(model.layers), "layout": model.layout}


def layer_summary(layer: ConvLayer) -> dict:
    """A layer's declared computation for the report (CONTRACT section 6's `original` object)."""
    (top, bottom), (left, right) = layer.pads
    summary = {"name": layer.name, "kernel": [int(n) for n in layer.kernel.shape],
               "stride": [int(n) for n in layer.stride], "dilation": [int(n) for n in layer.dilation],
               "groups": int(layer.groups), "padding": [[int(top), int(bottom)], [int(left), int(right)]],
               "op": layer.op, "dtype": layer.dtype, "boundary": layer.boundary,
               "has_bias": layer.bias is not None, "batchnorm": layer.batchnorm is not None,
               "activation": layer.activation}
    if layer.boundary == "constant":
        summary["cval"] = float(layer.cval)
    return summary


def _port_summary(layer: ConvLayer) -> dict:
    return {"name": layer.name, "op": layer.op, "kernel": [int(n) for n in layer.kernel.shape], "dtype": layer.dtype,
            "batchnorm": layer.batchnorm is not None, "activation": layer.activation}


def _judge_pair(original: ConvLayer, port: ConvLayer, pair, port_format: str, release,
                feeds_a_conv: tuple[bool, bool]) -> LayerResult:
    try:
        return _judged_pair(original, port, pair, port_format, feeds_a_conv)
    finally:
        _release(release, original, port)


def _release(release, *layers: ConvLayer) -> None:
    """The judged layers' tensors handed to `release` (`Spill.release`: out of memory where they
    are mapped from disk), when there is one."""
    if release is not None:
        for layer in layers:
            release(layer.input, layer.output, layer.addend)


def _judged_pair(original: ConvLayer, port: ConvLayer, pair, port_format: str,
                 feeds_a_conv: tuple[bool, bool]) -> LayerResult:
    judgement = judging.judge_layer(original, port)
    elsewhere = judging.epilogue_elsewhere(original, port, judgement, feeds_a_conv) or \
        judging.border_elsewhere(original, port, judgement)
    if elsewhere:
        judgement = judging.Judgement("not_judged", reason=elsewhere)
    weights = judging.judge_weights(original, port, port_format)
    notes = [pair.note] if pair.note else []
    follows = judging.activation_name(port.followed_by)
    if follows and follows != judging.activation_name(original.followed_by):
        theirs = original.activation if original.activation != "linear" else (
            original.followed_by or "no activation")
        notes.append(f"the port applies {port.followed_by} right after this layer (not part of it), where the "
                     f"original applies {theirs}")
    if judgement.verdict == "equal" and port.activation != original.activation \
            and port.activation in judging.ACTIVATIONS:
        notes.append(f"the port's layer applies {port.activation} where the original's applies {original.activation}: "
                     "the same values on this input (no output reaches where they differ); an input with larger "
                     "values would tell them apart")
    for side, layer in (("port", port), ("original", original)):
        if layer.block_diagonal:
            notes.append(f"the {side}'s conv is dense with a block-diagonal kernel: read as the grouped conv it "
                         f"computes (groups {layer.groups}; the zero weights add exact zeros)")
    if weights.folded_batchnorm:
        folded = ("the port folded the original's BatchNorm" if original.batchnorm is not None
                  else "the original folded the port's BatchNorm")
        notes.append(f"{folded} into its weights (a factor per output channel: no defect)")
    return LayerResult(index=pair.original, original=layer_summary(original), port=_port_summary(port),
                       match={"by": pair.by, "similarity": round(float(pair.similarity), 6), "reading": pair.reading},
                       weights=weights, verdict=judgement.verdict, diagnosis=judgement.diagnosis,
                       reason=judgement.reason, input_drift=judging.drift(port.input, original.input),
                       output_drift=judging.drift(port.output, original.output), notes=tuple(notes))


def _judge_single(index: int, layer: ConvLayer, release) -> LayerResult:
    try:
        judgement = judging.judge_layer(layer, layer)
    finally:
        _release(release, layer)
    return LayerResult(index=index, original=layer_summary(layer), port=None, match=None, weights=None,
                       verdict=judgement.verdict, diagnosis=judgement.diagnosis, reason=judgement.reason)


__all__ = ["SEED", "walk", "walk_captured", "model_input", "port_input", "layer_summary"]
