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


# ----------------------------------------------------------------------------- examples/port/

PORT = EXAMPLES / "port"
_port_spec = importlib.util.spec_from_file_location("make_port", PORT / "make_port.py")
make_port = importlib.util.module_from_spec(_port_spec)
_port_spec.loader.exec_module(make_port)

_frameworks = [pytest.mark.torch, pytest.mark.tensorflow, pytest.mark.onnx,
               pytest.mark.filterwarnings("ignore::DeprecationWarning"),
               pytest.mark.filterwarnings("ignore::FutureWarning"), pytest.mark.filterwarnings("ignore::UserWarning")]


def _with(marks):
    def decorate(fn):
        for mark in reversed(marks):
            fn = mark(fn)
        return fn
    return decorate


def _walk(*args: str) -> tuple[int, dict]:
    """`convcheck model ... --format json` exactly as README.md runs it: (exit code, document)."""
    import json

    from click.testing import CliRunner

    from convcheck.cli import main
    for module, extra in (("torch", "torch"), ("keras", "tensorflow"), ("onnxruntime", "onnx")):
        pytest.importorskip(module, reason=f"{module} is not installed: pip install 'convcheck[{extra}]'")
    result = CliRunner().invoke(main, ["model", *args, "--format", "json"])
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, json.loads(result.stdout)


@_with(_frameworks)
def test_port_example_walk_names_the_planted_defect_and_nothing_else():
    code, document = _walk(str(PORT / "net.pt2"), str(PORT / "net_keras.keras"))
    defect = make_port.DEFECT
    layers = {layer["original"]["name"]: layer for layer in document["layers"]}
    assert len(layers) == document["models"]["original"]["convs"] == 6
    assert document["unmatched"] == {"original": [], "port": []}
    planted = layers.pop(defect["original"])
    assert planted["port"]["name"] == defect["port"] and planted["verdict"] == "explained"
    assert {c["field"]: tuple(c["value"]) for c in planted["causes"]} == defect["fields"]
    assert planted["weights"]["verdict"] == "equal"   # the weights were copied right: the padding is wrong
    assert {name: layer["verdict"] for name, layer in layers.items()} == dict.fromkeys(layers, "equal")
    assert document["first_divergence"]["original"] == defect["original"]
    assert document["first_divergence"]["fields"] == list(defect["fields"])
    # The layers after it inherit the difference (their inputs drift) and are still `equal`.
    assert layers["block.conv2"]["input_drift"]["max_abs_diff"] > 0.1
    assert code == 1


@_with(_frameworks)
def test_port_example_onnx_export_is_equal_at_every_layer():
    code, document = _walk(str(PORT / "net.pt2"), str(PORT / "net.onnx"))
    assert [layer["verdict"] for layer in document["layers"]] == ["equal"] * 6
    assert document["first_divergence"] is None and code == 0


@_with(_frameworks)
def test_port_example_files_are_what_make_port_makes():
    """The committed .pt2 holds make_port's seeded weights, and input.npy its seeded input: the
    README's tables are reproducible from make_port.py."""
    import torch
    program = torch.export.load(str(PORT / "net.pt2"))
    expected = make_port.torch_net().state_dict()
    assert set(program.state_dict) <= set(expected)
    for name, value in program.state_dict.items():
        assert torch.equal(value, expected[name]), name
    np.testing.assert_array_equal(np.load(PORT / "input.npy", allow_pickle=False), make_port.example())


@_with(_frameworks)
def test_port_example_with_its_input_in_pytest():
    """convcheck.testing on the example, on its own input: the ONNX export passes, and the Keras
    port passes only once its offset is allowed (as `--allow offset=1,1` would)."""
    for module in ("torch", "keras", "onnxruntime"):
        pytest.importorskip(module, reason=f"{module} is not installed")
    from convcheck.testing import assert_model_matches
    image = str(PORT / "input.npy")
    report = assert_model_matches(str(PORT / "net.pt2"), str(PORT / "net.onnx"), input=image)
    assert "input.npy" in report.input["source"]
    report = assert_model_matches(str(PORT / "net.pt2"), str(PORT / "net_keras.keras"), input=image,
                                  allow=["offset=1,1"])
    assert [layer.verdict for layer in report.layers].count("explained") == 1
