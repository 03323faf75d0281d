"""--format json: exactly the CONTRACT section 5 documents, strict JSON."""

from __future__ import annotations

import json
import math

import numpy as np

from convcheck.formats import render_compare, render_explain
from convcheck.formats.json import dumps
from convcheck.results import Stats

from .conftest import NAMES

EXPLAIN_KEYS = {"schema", "verdict", "explanation", "causes", "stats"}
# CONTRACT version 2, section 2: every field, at its default where nothing changed.
EXPLANATION_KEYS = {"kernel_transform", "padding", "stride", "dilation", "offset", "boundary", "cval", "groups",
                    "kernel_axis", "output_layout", "output_transform", "kernel_layout", "channel_order",
                    "precision", "output_precision", "bias", "scale", "activation", "algorithm"}
CAUSE_KEYS = {"field", "value", "summary", "fix", "why"}
STATS_KEYS = {"max_abs_diff", "max_rel_diff", "mismatched", "total", "worst_index", "residual_after",
              "error_bound"}


def test_explain_document_has_the_contract_shape(diagnoses):
    document = json.loads(render_explain(diagnoses["explained"], "json", names=NAMES, color=False))
    assert EXPLAIN_KEYS <= set(document)
    assert document["schema"] == "convcheck/explain/2"
    assert document["verdict"] == "explained"
    assert set(document["explanation"]) == EXPLANATION_KEYS
    assert document["explanation"]["kernel_transform"] == "rot180"
    assert document["explanation"]["offset"] == [0, 0]
    assert [set(c) for c in document["causes"]] == [CAUSE_KEYS]
    assert document["causes"][0]["field"] == "kernel_transform"
    assert STATS_KEYS <= set(document["stats"])
    assert document["stats"]["total"] == 64
    assert document == json.loads(json.dumps(diagnoses["explained"].to_json_dict()))


def test_explain_document_for_equal_and_unexplained(diagnoses):
    equal = json.loads(render_explain(diagnoses["equal"], "json", names=NAMES, color=False))
    assert equal["verdict"] == "equal" and equal["causes"] == []
    unexplained = json.loads(render_explain(diagnoses["unexplained"], "json", names=NAMES, color=False))
    assert unexplained["verdict"] == "unexplained"
    assert unexplained["explanation"] is None
    assert "closest_candidate" in unexplained


def test_compare_document_has_the_contract_shape(report):
    document = json.loads(render_compare(report, "json", color=False))
    assert document["schema"] == "convcheck/compare/2"
    assert {"inputs", "settings", "results"} <= set(document)
    rows = {row["backend"]: row for row in document["results"]}
    assert rows["tf.nn.conv2d"] == {"backend": "tf.nn.conv2d", "status": "skipped",
                                    "reason": "tensorflow is not installed: pip install tensorflow"}
    ok = rows["scipy.signal.convolve2d"]
    assert {"backend", "status", "version", "compute_dtype", "shape", "seconds", "verdict",
            "explanation", "causes", "stats"} <= set(ok)
    assert STATS_KEYS <= set(ok["stats"])
    assert document["notes"] == list(report.notes)


def test_output_is_strict_json_and_indented(diagnoses):
    text = render_explain(diagnoses["equal"], "json", names=NAMES, color=False)
    assert text.startswith("{\n  \"schema\"")
    for bad in ("NaN", "Infinity"):
        assert bad not in text


def test_non_finite_numbers_become_null_and_numpy_values_plain():
    stats = Stats(math.nan, math.inf, 3, 9, (1, 2), None, 1e-7)
    document = json.loads(dumps({"stats": stats.to_dict(), "shape": np.array([8, 8]),
                                 "seconds": np.float32(0.5)}))
    assert document["stats"]["max_abs_diff"] is None and document["stats"]["max_rel_diff"] is None
    assert document["shape"] == [8, 8] and document["seconds"] == 0.5
