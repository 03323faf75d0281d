"""Check suites with declared computations (CONTRACT section 2a) and model cases (section 6):
`expect` tables, padding amounts, `.npz` members, `[[model]]` tables reported in every format,
and the bad suites among them as one line and exit 2 before any case runs.

Layers are made by the float64 reference with numpy; the model is a small ONNX graph built with
onnx.helper (marked onnx). No framework runs in the other tests.
"""

from __future__ import annotations

import json
import os
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from convcheck.check import load_suite, run_suite
from convcheck.cli.check import check as check_command
from convcheck.errors import InputError

from .test_cli_declared import layer


def run_cli(args, cwd: Path):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(check_command, [str(a) for a in args], catch_exceptions=False)
    finally:
        os.chdir(old)


@pytest.fixture
def repo(tmp_path):
    """A folder with layer.npz (x, weight, bias, y: padding 1, stride 2, ReLU), bias.npy and a bias
    off by 0.25 in channel 2, as a model repository keeps its layers."""
    folder = tmp_path / "repo"
    (folder / "data").mkdir(parents=True)
    x, weight, bias, y = layer()
    np.savez(folder / "data" / "layer.npz", x=x, weight=weight, bias=bias, y=y)
    np.save(folder / "data" / "bias.npy", bias)
    off = bias.copy()
    off[2] += 0.25
    np.save(folder / "data" / "bias_off.npy", off)
    np.save(folder / "data" / "bias_short.npy", bias[:3])
    return folder


def config(folder: Path, text: str, name: str = "convcheck.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


LAYER_CASE = """
[[case]]
name = "{name}"
image = "data/layer.npz:x"
kernel = "data/layer.npz:weight"
output = "data/layer.npz:y"
layout = "nchw"
"""


def layer_case(name: str, extra: str = "") -> str:
    return LAYER_CASE.format(name=name) + textwrap.dedent(extra)


# ----------------------------------------------------------------------------- expect tables


def test_expect_tables_declare_the_layer(repo):
    path = config(repo, layer_case("inline", """
        padding = 1
        stride = 2
        expect = {bias = "data/bias.npy", activation = "relu"}
        """) + layer_case("table", """
        stride = [2, 2]
        [case.expect]
        padding = "1,1,1,1"
        bias = "data/layer.npz:bias"
        activation = "relu"
        """) + layer_case("numbers", """
        padding = [[1, 1], [1, 1]]
        stride = 2
        expect = {{bias = {bias}, activation = "relu"}}
        """.format(bias=json.dumps([float(b) for b in layer()[2]]))))
    report = run_suite(load_suite(path))
    assert [(c.name, c.status) for c in report.cases] == [("inline", "pass"), ("table", "pass"), ("numbers", "pass")]
    assert all(c.results[0].verdict.value == "equal" for c in report.cases)
    document = report.to_json_dict()
    assert document["cases"][0]["expect"] == {"bias": "data/bias.npy", "activation": "relu"}
    assert document["cases"][0]["results"][0]["explanation"]["padding"] == [[1, 1], [1, 1]]


def test_expect_names_what_differs_from_the_declaration(repo):
    path = config(repo, layer_case("bias-off", """
        padding = 1
        stride = 2
        allow = ["bias"]
        expect = {bias = "data/bias_off.npy", activation = "relu"}
        """) + layer_case("no-relu", """
        padding = 1
        stride = 2
        strict = true
        expect = {bias = "data/bias.npy"}
        """) + layer_case("pads-off", """
        padding = [0, 1, 0, 1]
        stride = 2
        strict = true
        expect = {bias = "data/bias.npy", activation = "relu"}
        """))
    report = run_suite(load_suite(path))
    by_name = {c.name: c for c in report.cases}
    assert by_name["bias-off"].status == "pass"   # explained by the bias, which allow lists
    assert [c.field for c in by_name["bias-off"].results[0].diagnosis.causes] == ["bias"]
    assert by_name["no-relu"].status == "fail"
    assert [(c.field, c.value) for c in by_name["no-relu"].results[0].disallowed] == [("activation", "relu")]
    assert [(c.field, c.value) for c in by_name["pads-off"].results[0].disallowed] == [("offset", (-1, -1))]
    assert report.exit_code() == 1


def test_allow_takes_padding_amounts(repo):
    # The layer padded 1 on top and left, declared as TF SAME: allowed by its pads.
    path = config(repo, layer_case("same", """
        stride = 2
        allow = ["offset=[-1, -1]"]
        expect = {bias = "data/bias.npy", activation = "relu"}
        """))
    assert run_suite(load_suite(path)).cases[0].status == "pass"
    from convcheck.check import parse_allow
    rule, = parse_allow(["padding=0,1,0,1"])
    assert rule.value == ((0, 1), (0, 1)) and str(rule) == "padding=[[0, 1], [0, 1]]"


# ----------------------------------------------------------------------------- bad suites: exit 2, one line, nothing run

BAD = {
    "unknown expect field": (layer_case("a", "expect = {activaton = 'relu'}"),
                             ["case 'a'", "key 'expect'", "did you mean 'activation'"]),
    "bad expect value": (layer_case("a", "expect = {activation = 'gelu'}"), ["case 'a'", "'gelu' is not one of"]),
    "expect not a table": (layer_case("a", "expect = 'relu'"), ["key 'expect'", "is not a table"]),
    "declared twice": (layer_case("a", "padding = 1\nexpect = {padding = 'same'}"),
                       ["padding is declared twice", "key 'padding'", "expect.padding"]),
    "bias file missing": (layer_case("a", "expect = {bias = 'data/nope.npy'}"),
                          ["case 'a'", "'data/nope.npy' does not exist"]),
    "bias of the wrong length": (layer_case("a", "padding = 1\nstride = 2\nexpect = {bias = 'data/bias_short.npy'}"),
                                 ["case 'a'", "bias file 'data/bias_short.npy'", "holds 3 values",
                                  "output has 4 channels"]),
    "bias list of the wrong length": (layer_case("a", "padding = 1\nstride = 2\nexpect = {bias = [0.1, 0.2]}"),
                                      ["case 'a'", "declared bias has 2 values, but the output has 4 channels"]),
    "npz key missing": (layer_case("a").replace("layer.npz:y", "layer.npz:out"),
                        ["case 'a'", "no array 'out'", "bias, weight, x, y"]),
    "expect on a compare case": ("""
        [[case]]
        name = "a"
        image = "data/bias.npy"
        kernel = "data/bias.npy"
        backends = ["scipy.signal.correlate2d"]
        expect = {activation = "relu"}
        """, ["case 'a'", "key 'expect'", "only applies to cases with a saved 'output'"]),
    "bad padding amounts": (layer_case("a", "padding = [1, 2, 3]"), ["case 'a'", "key 'padding'", "got [1, 2, 3]"]),
    "model file missing": ("""
        [[model]]
        name = "m"
        original = "nets/missing.onnx"
        """, ["model 'm'", "key 'original'", "'nets/missing.onnx' does not exist"]),
    "model without original": ("[[model]]\nname = 'm'\nport = 'x.onnx'\n", ["model 'm'", "key 'original'", "missing"]),
    "model unknown key": ("[[model]]\nname = 'm'\noriginal = 'data/bias.npy'\nallow_unmatched = true\n",
                          ["model 'm'", "unknown key"]),
    "model bad allow": ("[[model]]\nname = 'm'\noriginal = 'data/bias.npy'\nallow = ['precison=float16']\n",
                        ["model 'm'", "key 'allow'", "did you mean 'precision'"]),
    "model bad match": ("[[model]]\nname = 'm'\noriginal = 'a.onnx'\nport = 'b.onnx'\nmatch = ['conv1']\n",
                        ["model 'm'", "is not ORIGINAL_NAME=PORT_NAME"]),
    "model of an unknown format": ("[[model]]\nname = 'm'\noriginal = 'data/bias.npy'\n",
                                   ["model 'm'", "cannot tell its format"]),
    "model name taken": (layer_case("a") + "[[model]]\nname = 'a'\noriginal = 'data/bias.npy'\n",
                         ["model 'a'", "duplicate name"]),
}


@pytest.mark.parametrize("text, mentions", list(BAD.values()), ids=list(BAD))
def test_bad_suites_are_one_line_and_exit_2(repo, text, mentions):
    (repo / "a.onnx").write_bytes(b"")
    (repo / "b.onnx").write_bytes(b"")
    config(repo, text)
    result = run_cli([], repo)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for mention in mentions:
        assert mention in lines[0], lines[0]


def test_a_suite_needs_a_case_or_a_model(repo):
    config(repo, "strict = true\n")
    with pytest.raises(InputError, match=r"defines no cases; add a \[\[case\]\] table .* \[\[model\]\] table"):
        load_suite(repo / "convcheck.toml")


# ----------------------------------------------------------------------------- model cases

def onnx_net(folder: Path, *, shift_port: bool = False) -> tuple[Path, Path]:
    """net.onnx: conv (pads 1, stride 2) + ReLU, conv (pads 1); port.onnx: the same weights with
    the first conv's pads as TF SAME's (0, 1) when `shift_port` (an offset), else identical."""
    import onnx

    from .models._onnx_nets import Net

    paths = []
    for name, pads in (("net", [1, 1, 1, 1]), ("port", [0, 0, 1, 1] if shift_port else [1, 1, 1, 1])):
        net = Net((1, 3, 12, 12), seed=0)
        hidden = net.node("Relu", [net.conv("x", "conv1", 3, 4, pads=pads, strides=[2, 2])], "relu1")
        out = net.conv(hidden, "conv2", 4, 4, pads=[1, 1, 1, 1])
        onnx.save(net.model([out]), folder / f"{name}.onnx")
        paths.append(folder / f"{name}.onnx")
    return paths[0], paths[1]


MODEL_CASES = """
[[model]]
name = "runtime"
original = "net.onnx"

[[model]]
name = "port"
original = "net.onnx"
port = "port.onnx"
input = "data/x.npy"
"""


@pytest.mark.onnx
def test_model_cases_are_walked_and_reported_in_every_format(repo):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: an ONNX model case cannot run")
    onnx_net(repo, shift_port=True)
    np.save(repo / "data" / "x.npy", np.random.default_rng(1).standard_normal((1, 3, 12, 12)).astype(np.float32))
    config(repo, layer_case("layer", "padding = 1\nstride = 2\nexpect = {bias = 'data/bias.npy', activation = 'relu'}")
           + MODEL_CASES)
    result = run_cli(["--format", "json", "--report", "junit=report.xml", "--report", "markdown=summary.md",
                      "--report", "github=annotations.txt"], repo)
    assert result.exit_code == 1, result.stderr   # the port's first conv is one pixel off
    document = json.loads(result.stdout)
    cases = {case["name"]: case for case in document["cases"]}
    assert cases["layer"]["status"] == "pass"
    runtime, port = cases["runtime"], cases["port"]
    assert runtime["kind"] == "model" and runtime["status"] == "pass"
    assert [r["layer"] for r in runtime["results"]] == ["0 conv1", "1 conv2"]
    assert all(r["verdict"] == "equal" and r["outcome"] == "pass" for r in runtime["results"])
    assert runtime["model"]["schema"] == "convcheck/model/1" and runtime["model"]["first_divergence"] is None
    assert port["status"] == "fail"
    first = port["results"][0]
    assert first["layer"] == "0 conv1 → conv1" and first["outcome"] == "fail"
    assert [(c["field"], c["value"]) for c in first["causes"]] == [("offset", [1, 1])]
    assert "offset=[1, 1] is not allowed" in first["message"]
    assert port["model"]["first_divergence"]["original"] == "conv1"
    assert port["model"]["input"]["source"].startswith("file")
    assert document["summary"]["exit_code"] == 1

    suites = ET.parse(repo / "report.xml").getroot()
    testcases = [(t.get("classname"), t.get("name"), t.find("failure") is not None) for t in suites.iter("testcase")]
    assert ("runtime", "0 conv1", False) in testcases and ("runtime", "1 conv2", False) in testcases
    assert ("port", "0 conv1 → conv1", True) in testcases

    summary = (repo / "summary.md").read_text()
    assert "| port | `net.onnx → port.onnx` | ❌ fail | first divergence: layer 0, conv1 → conv1 (offset)" in summary
    assert "<b>port</b>: 2 layers" in summary
    annotations = (repo / "annotations.txt").read_text().splitlines()
    port_lines = [line for line in annotations if line.startswith("::") and "port" in line.split("::")[1]]
    assert len(port_lines) == 1 and port_lines[0].startswith("::error title=convcheck%3A port%3A first divergence")


@pytest.mark.onnx
def test_model_case_allow_and_unmatched(repo):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: an ONNX model case cannot run")
    onnx_net(repo, shift_port=True)
    config(repo, """
        [[model]]
        name = "port"
        original = "net.onnx"
        port = "port.onnx"
        allow = ["offset=[1, 1]"]
        """)
    report = run_suite(load_suite(repo / "convcheck.toml"))
    assert report.cases[0].status == "pass", [r.message for r in report.cases[0].results]
    assert report.exit_code() == 0


def test_model_case_with_a_missing_extra_is_skipped(repo, monkeypatch):
    # The loader says its extra is missing (as on a machine without onnxruntime): one skipped
    # result naming the pip extra, exit 3, never a crash.
    from convcheck.check import model_cases
    from convcheck.errors import MissingDependency

    def missing(*args, **kwargs):
        raise MissingDependency("ONNX models", "onnx", "onnxruntime")

    import convcheck.models.walk
    monkeypatch.setattr(convcheck.models.walk, "walk", missing)
    monkeypatch.setattr(model_cases, "validate_model_case", lambda case, config: None)
    (repo / "net.onnx").write_bytes(b"\x08\x07")
    config(repo, "[[model]]\nname = 'm'\noriginal = 'net.onnx'\n")
    report = run_suite(load_suite(repo / "convcheck.toml"))
    case, = report.cases
    assert case.status == "error" and report.exit_code() == 3
    result = case.to_dict()["results"][0]
    assert result["status"] == "skipped" and "pip install 'convcheck[onnx]'" in result["reason"]
    from convcheck.formats.junit import render_check
    skipped = ET.fromstring(render_check(report)).find(".//testcase/skipped")
    assert skipped is not None and "convcheck[onnx]" in skipped.get("message")


def test_readme_lists_every_model_case_key():
    from convcheck.check.model_cases import _MODEL_KEYS
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for key in _MODEL_KEYS:
        assert f"`{key}`" in text, key
