"""Model cases of a check suite: `[[model]]` tables (`[[tool.convcheck.model]]`), each a model and
its port walked conv layer by conv layer (`convcheck model`, CONTRACT section 6), reported like the
other cases: one result per layer.

A model case has `name`, `original`, `port` (optional: without it, each layer of `original` is
judged against its own declared computation), `input` (optional `.npy` or `FILE.npz:KEY`, in the
original's layout), `allow` (as `--allow`, 'unmatched' included; the top level's when the case has
none), `match` (a list of "ORIGINAL=PORT" names) and `as-run`. Paths are relative to the config's
folder; a name `package.module:attr` that is no file is a PyTorch module. A layer fails exactly
where `convcheck model` would exit 1 (an unexplained layer, a cause or weights change `allow` does
not list, an original layer left unmatched), so a model case fails under a suite's `strict` or
not alike; a layer that could not be judged is an error (exit 3); a format whose extra is missing
makes the case one skipped result naming the `pip install` line (exit 3, as a skipped backend).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import InputError, MissingDependency

# A PyTorch `package.module:attr` name (what the loader imports when no file has that name).
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_MODEL_KEYS = ("name", "original", "port", "input", "allow", "match", "as-run")


@dataclass(frozen=True)
class ModelCase:
    """One validated `[[model]]` table: `original` and `port` are absolute paths (or a PyTorch module
    name), `input` an absolute path or None, `allow` a `convcheck.models.report.AllowSet`, `match`
    (original, port) name pairs; `raw` keeps the values as written, for reports."""

    name: str
    original: str
    port: Optional[str]
    input: Optional[Path]
    allow: Any
    match: tuple[tuple[str, str], ...] = ()
    as_run: bool = False
    line: Optional[int] = None
    raw: dict = field(default_factory=dict, compare=False)

    @property
    def kind(self) -> str:
        return "model"

    @property
    def strict(self) -> bool:
        """A model case fails what `convcheck model` fails, strict or not."""
        return False


def read_model_case(index: int, raw: dict, where, defaults: dict, base: Path, lines: list[tuple[int, str]],
                    seen: dict[str, int]) -> ModelCase:
    """Model table number `index` of the config (cases counted first), validated (no file is read)."""
    from ..models.matching import parse_match
    from ..models.report import AllowSet, parse_model_allow
    from .config import _canonical_keys, _path, case_name

    name = raw.get("name")
    label = f"'{name}'" if isinstance(name, str) and name else f"#{index}"
    say = lambda key=None, label=label: where.case(label, key).replace(": case ", ": model ", 1)  # noqa: E731
    name = case_name(raw, index, say, seen, "model case")
    keys = _canonical_keys(raw, _MODEL_KEYS, say)
    if "original" not in keys:
        raise InputError(f"{say('original')}: missing; give the model file (.onnx, .pt2, .pt, .keras, .h5, "
                         ".tflite) or a package.module:attr name")
    allow = defaults["allow"]
    if "allow" in keys:
        entries = keys["allow"] if isinstance(keys["allow"], list) else [keys["allow"]]
        try:
            allow = parse_model_allow(entries)
        except InputError as exc:
            raise InputError(f"{say('allow')}: {str(exc).removeprefix('--allow: ')}") from None
    else:
        allow = AllowSet(tuple(allow))
    match = keys.get("match", [])
    if isinstance(match, str):
        match = [match]
    if not isinstance(match, list) or not all(isinstance(m, str) for m in match):
        raise InputError(f"{say('match')}: {match!r} is not a list of \"ORIGINAL=PORT\" layer names; write e.g. "
                         "match = [\"layer1.0.conv1=conv2d_3\"]")
    try:
        pairs = parse_match(match)
    except InputError as exc:
        raise InputError(f"{say('match')}: {str(exc).replace('--match ', '')}") from None
    if pairs and "port" not in keys:
        raise InputError(f"{say('match')}: pairs layers of the original and the port; give port too, or leave "
                         "match out")
    as_run = keys.get("as-run", False)
    if not isinstance(as_run, bool):
        raise InputError(f"{say('as-run')}: {as_run!r} is not a boolean; write true or false (no quotes)")
    case_lines = [number for number, named in lines if named == name]
    return ModelCase(
        name=name, original=_model_path(keys["original"], base, say("original")),
        port=_model_path(keys["port"], base, say("port")) if "port" in keys else None,
        input=_path(keys["input"], base, say("input"), "input") if "input" in keys else None,
        allow=allow, match=pairs, as_run=as_run, line=case_lines[0] if len(case_lines) == 1 else None,
        raw={key: keys[key] for key in ("original", "port", "input") if key in keys})


def _model_path(value: Any, base: Path, say: str) -> str:
    """A model file relative to the config's folder, or a PyTorch `package.module:attr` name."""
    if not isinstance(value, str) or not value:
        raise InputError(f"{say}: {value!r} is not a path; write the model file's path as a string, relative to "
                         "the config file, or a PyTorch package.module:attr name")
    path = Path(value) if os.path.isabs(value) else base / value
    if os.path.lexists(path):
        return os.fspath(path)
    if _MODULE_NAME.fullmatch(value):
        return value
    raise InputError(f"{say}: '{value}' does not exist (looked for {path}); paths are relative to the config "
                     "file's folder (a PyTorch module is written package.module:attr)")


def validate_model_case(case: ModelCase, config: Path) -> None:
    """Check the case's model files (readable, of a format convcheck reads; no framework imported)
    and its input file, before any case runs: an `InputError` names the config and the case."""
    from ..models.formats import check_model_file

    try:
        check_model_file(case.original, "original model")
        if case.port is not None:
            check_model_file(case.port, "port")
        if case.input is not None:
            from ..inputs import read_npy
            read_npy(case.input, "image")
    except InputError as exc:
        raise InputError(f"{config}: model '{case.name}': {exc}") from None


def run_model_case(case: ModelCase, config: Path):
    """Walk the case's models (`convcheck.models.walk.walk`) into a `CaseResult` with one result per
    layer (plus one for original layers left unmatched); a missing extra is one skipped result."""
    from ..models.walk import walk
    from .judging import case_status
    from .report import CaseResult, ResultOutcome

    started = time.perf_counter()
    try:
        report = walk(case.original, case.port, input=case.input, allow=case.allow, match=case.match,
                      as_run=case.as_run)
    except MissingDependency as exc:
        outcome = ResultOutcome("model", "error", message=f"skipped: {exc}", skipped=True)
        return CaseResult(case, "error", (outcome,), None, time.perf_counter() - started)
    except InputError as exc:
        raise InputError(f"{config}: model '{case.name}': {exc}") from None
    outcomes = layer_outcomes(report)
    return CaseResult(case, case_status(outcomes), tuple(outcomes), None, time.perf_counter() - started,
                      model=report)


def layer_outcomes(report) -> list:
    """One `ResultOutcome` per walked layer ('fail' where the walk fails it, 'error' where it could not
    be judged, else 'pass'), then one for original layers the port lacks."""
    from ..vocabulary import Verdict
    from .report import ResultOutcome

    outcomes = []
    for layer in report.layers:
        why = layer.failures(report.allow)
        status = "fail" if why else "error" if layer.verdict == "not_judged" else "pass"
        message = "; ".join(why) if why else f"not judged: {layer.reason}" if status == "error" else ""
        disallowed = ()
        if layer.diagnosis is not None and layer.diagnosis.verdict is Verdict.EXPLAINED:
            disallowed = tuple(c for c in layer.causes if not report.allow.permits(c))
        outcomes.append(ResultOutcome(layer_name(layer), status, layer.diagnosis, disallowed=disallowed,
                                      message=message, layer=layer))
    if report.unmatched_original:
        names = ", ".join(report.unmatched_original)
        status = "pass" if report.allow.unmatched else "fail"
        message = (f"{len(report.unmatched_original)} layer(s) of the original have no counterpart in the port: "
                   f"{names}" + (" (allowed)" if report.allow.unmatched else ""))
        outcomes.append(ResultOutcome("unmatched", status, message=message))
    return outcomes


def layer_name(layer) -> str:
    """'3 stem.conv → stem_conv' (the layer's index in the original, its names in both models)."""
    port = f" → {layer.port['name']}" if layer.port is not None else ""
    return f"{layer.index} {layer.original['name']}{port}"


__all__ = ["ModelCase", "layer_name", "layer_outcomes", "read_model_case", "run_model_case", "validate_model_case"]
