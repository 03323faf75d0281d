"""What a model walk found: `ModelReport` and its `LayerResult`s, with CONTRACT section 6's JSON.

Frozen dataclasses that hold only summaries (names, shapes, the engine's `Diagnosis`, drift
numbers), never a layer's tensors. `to_json_dict()` gives exactly the `convcheck/model/1`
document (more fields added, none renamed); `exit_code()` says what `convcheck model` exits
with (CONTRACT sections 4 and 6). Pure Python apart from what the diagnoses hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..vocabulary import Cause

SCHEMA = "convcheck/model/1"
VERDICTS = ("equal", "explained", "unexplained", "not_judged")
UNMATCHED = "unmatched"   # the `--allow` entry that accepts original layers left unmatched


@dataclass(frozen=True)
class AllowSet:
    """The `--allow` entries of a walk: the fields a layer may be explained by (CONTRACT section 2
    fields, `check`'s `AllowRule`s), and whether original layers may stay unmatched."""

    rules: tuple = ()
    unmatched: bool = False

    def permits(self, cause: Cause) -> bool:
        """True when some rule accepts this cause."""
        return any(rule.permits(cause) for rule in self.rules)

    def texts(self) -> list[str]:
        """The entries as the user would write them."""
        return [str(rule) for rule in self.rules] + ([UNMATCHED] if self.unmatched else [])


def parse_model_allow(entries) -> AllowSet:
    """`--allow FIELD[=VALUE]` entries (check's syntax, `convcheck.check.parse_allow`), plus
    'unmatched' for original layers left unmatched. Bad entries raise `InputError`."""
    from ..check import parse_allow
    if isinstance(entries, str):
        entries = [entries]
    entries = list(entries or ())
    unmatched = any(isinstance(e, str) and e.strip() == UNMATCHED for e in entries)
    rules = parse_allow([e for e in entries if not (isinstance(e, str) and e.strip() == UNMATCHED)], "--allow")
    return AllowSet(rules, unmatched)


@dataclass(frozen=True)
class LayerResult:
    """One matched pair of conv layers (or, for a single model, one layer) and its judgement.

    `index` is the layer's place in the original's execution order. `original` / `port` are
    the layers' summaries (name, kernel shape, geometry, op, dtype); `match` how they were
    paired ({'by', 'similarity', 'reading'}; None for a single model); `weights` the port's
    kernel against the original's (a `judge.WeightsJudgement`, None for a single model);
    `verdict` one of VERDICTS, with the engine's `diagnosis` (None when not judged, then
    `reason` says why); `input_drift` / `output_drift` {'max_abs_diff', 'max_rel_diff'} of the
    port's captured tensors against the original's (None when their shapes differ, or for a
    single model); `notes` what a reader should know about this layer."""

    index: int
    original: dict
    port: Optional[dict]
    match: Optional[dict]
    weights: Any
    verdict: str
    diagnosis: Any = None
    reason: str = ""
    input_drift: Optional[dict] = None
    output_drift: Optional[dict] = None
    notes: tuple[str, ...] = ()

    @property
    def causes(self) -> tuple[Cause, ...]:
        """The engine's causes (relative to the original's declared computation); () when none."""
        return tuple(self.diagnosis.causes) if self.diagnosis is not None else ()

    @property
    def fields(self) -> list[str]:
        """The fields the layer's causes change."""
        return [cause.field for cause in self.causes]

    def failures(self, allow: AllowSet) -> list[str]:
        """Why this layer makes the walk a mismatch (exit 1): an unexplained output, a cause or a
        weights change not in `allow`, weights no mapping relates; [] when it passes."""
        found = []
        if self.verdict == "unexplained":
            found.append("its output is unexplained")
        elif self.verdict == "explained":
            found += [f"{c.field}={_value_text(c.value)} is not allowed" for c in self.causes if not allow.permits(c)]
        if self.weights is not None:
            found += [f"weights: {c.field}={_value_text(c.value)} is not allowed" for c in self.weights.defects
                      if not allow.permits(c)]
            if self.weights.unrelated:
                found.append("weights: no layout, reshape, transform, factor or rounding relates them")
        return found

    def to_json_dict(self) -> dict[str, Any]:
        """One entry of `layers` in CONTRACT section 6's JSON (plus added fields)."""
        d: dict[str, Any] = {"index": self.index, "original": self.original, "port": self.port,
                             "match": self.match,
                             "weights": self.weights.to_dict() if self.weights is not None else None,
                             "verdict": self.verdict}
        if self.diagnosis is not None:
            judged = self.diagnosis.to_dict()
            judged.pop("verdict", None)
            d.update(judged)
        else:
            d.update({"explanation": None, "causes": [], "alternatives": [], "stats": None})
        if self.reason:
            d["reason"] = self.reason
        d["input_drift"] = self.input_drift
        d["output_drift"] = self.output_drift
        if self.notes:
            d["layer_notes"] = list(self.notes)
        return d


def _value_text(value) -> str:
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (int,)) for v in value):
            return "[" + ", ".join(str(v) for v in value) + "]"
        return "per channel"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class ModelReport:
    """Everything a walk found. `models` {'original': {path, format, convs}, 'port': ... or None};
    `input` {shape, dtype, source}; `layers` the matched pairs in the original's order;
    `unmatched_original` / `unmatched_port` the names left unmatched; `allow` the walk's
    `--allow`; `notes` what the loaders and the walk say ({'original': [...], 'port': [...],
    'walk': [...]}); `uncaptured_port` how many conv ops the port's loader saw but could not
    capture (quantized, transposed: the unmatched may be those)."""

    models: dict
    input: dict
    layers: tuple[LayerResult, ...]
    unmatched_original: tuple[str, ...] = ()
    unmatched_port: tuple[str, ...] = ()
    allow: AllowSet = field(default_factory=AllowSet)
    notes: dict = field(default_factory=dict)
    uncaptured_port: int = 0

    @property
    def single(self) -> bool:
        """True for the single-model form (each layer against its own declared computation)."""
        return self.models.get("port") is None

    def first_divergence(self) -> Optional[LayerResult]:
        """The first layer, in the original's order, whose own verdict is explained or unexplained
        (a layer that could not be judged is not known to diverge); None when there is none."""
        for layer in self.layers:
            if layer.verdict in ("explained", "unexplained"):
                return layer
        return None

    def failures(self) -> list[tuple[Optional[LayerResult], str]]:
        """(layer or None, why) for everything that makes the walk a mismatch (exit 1)."""
        found: list[tuple[Optional[LayerResult], str]] = [
            (layer, why) for layer in self.layers for why in layer.failures(self.allow)]
        if self.unmatched_original and not self.allow.unmatched:
            captured = " captured" if self.uncaptured_port else ""
            found.append((None, f"{len(self.unmatched_original)} layer(s) of the original have no{captured} "
                                f"counterpart in the port: {', '.join(self.unmatched_original)}"))
        return found

    def counts(self) -> dict[str, int]:
        """How many layers have each verdict."""
        return {verdict: sum(layer.verdict == verdict for layer in self.layers) for verdict in VERDICTS}

    def exit_code(self) -> int:
        """CONTRACT sections 4 and 6: 1 for a mismatch (an unexplained layer, a cause or weights change
        not in `--allow`, weights nothing relates, an original layer left unmatched without
        `--allow unmatched`); else 3 when a layer could not be judged (a check that could not
        run); else 0."""
        if self.failures():
            return 1
        if any(layer.verdict == "not_judged" for layer in self.layers):
            return 3
        return 0

    @property
    def ok(self) -> bool:
        """True when `convcheck model` would exit 0."""
        return self.exit_code() == 0

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {v}" for v, n in self.counts().items() if n)
        return f"<ModelReport exit {self.exit_code()}; {counts or 'no layers'}>"

    def to_json_dict(self) -> dict[str, Any]:
        """The whole `convcheck model --format json` document (CONTRACT section 6)."""
        first = self.first_divergence()
        divergence = None if first is None else {
            "index": first.index, "original": first.original["name"],
            "port": first.port["name"] if first.port is not None else None, "fields": first.fields,
            "verdict": first.verdict}
        return {"schema": SCHEMA, "models": self.models, "input": self.input,
                "layers": [layer.to_json_dict() for layer in self.layers],
                "unmatched": {"original": list(self.unmatched_original), "port": list(self.unmatched_port)},
                "first_divergence": divergence,
                "allow": self.allow.texts(),
                "summary": {"layers": len(self.layers), **self.counts(),
                            "unmatched_original": len(self.unmatched_original),
                            "unmatched_port": len(self.unmatched_port), "exit_code": self.exit_code()},
                "notes": {side: list(notes) for side, notes in self.notes.items()}}


__all__ = ["SCHEMA", "VERDICTS", "UNMATCHED", "AllowSet", "parse_model_allow", "LayerResult", "ModelReport"]
