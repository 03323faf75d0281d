"""Every committed example under examples/ is diagnosed as the call that made it says."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import convcheck

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
_spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
make_examples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_examples)


@pytest.mark.parametrize("name", list(make_examples.PITFALLS))
def test_example_is_diagnosed_as_made(name):
    made_by, fields, verdict = make_examples.PITFALLS[name]
    image, kernel, output = (np.load(EXAMPLES / name / f"{part}.npy", allow_pickle=False)
                             for part in ("image", "kernel", "output"))
    d = convcheck.explain(image, kernel, output, **make_examples.EXPLAIN_OPTIONS.get(name, {}))
    assert d.verdict.value == verdict, made_by
    if verdict == "unexplained":
        return
    changed = {f: getattr(d.explanation, f) for f in d.explanation.changed_fields(d.baseline)}
    assert set(changed) == set(fields), made_by
    for field, value in fields.items():
        if isinstance(value, float):
            assert changed[field] == pytest.approx(value, rel=1e-9)
        elif value is not None:
            assert changed[field] == value
