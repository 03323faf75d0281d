"""Declared computations on the command line (CONTRACT section 2a, issue 21 item 1): `--padding` amounts,
`--expect FIELD=VALUE`, `--bias` / `--scale FILE|NUMBER`, `--output-precision`, `.npz` members, and
every mistake in them as one line and exit 2, before any array is read where it can be.

The layers here are made by the float64 reference with numpy (the PyTorch one by a real
`nn.Conv2d`, marked torch), saved as `np.savez` archives the way real layers are.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from convcheck.cli import main
from convcheck.engine.reference import reference
from convcheck.geometry import normalize_padding


@pytest.fixture
def runner():
    return CliRunner(env={"NO_COLOR": None, "FORCE_COLOR": None, "COLUMNS": "160"})


def invoke(runner, *args):
    return runner.invoke(main, [str(arg) for arg in args], catch_exceptions=False)


def assert_input_error(result, *mentions: str):
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for mention in mentions:
        assert mention in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def layer(padding=1, stride=2, size=12, channels=(3, 4), seed=0, relu=True, dtype=np.float32):
    """An NCHW layer made by the reference: (x, weight OIHW, bias, y) with y = relu(conv + bias) in `dtype`."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, channels[0], size, size)).astype(dtype)
    weight = rng.standard_normal((channels[1], channels[0], 3, 3)).astype(dtype) / 3
    bias = rng.uniform(-0.5, 0.5, channels[1]).astype(dtype)
    out = reference(x.transpose(0, 2, 3, 1), weight.transpose(2, 3, 1, 0), normalize_padding(padding),
                    stride=(stride, stride)) + bias.astype(np.float64)
    out = np.maximum(out, 0.0) if relu else out
    return x, weight, bias, out.transpose(0, 3, 1, 2).astype(dtype)


@pytest.fixture
def saved(tmp_path, monkeypatch):
    """layer.npz (x, weight, bias, y) and bias.npy of the reference-made layer, in the working directory."""
    monkeypatch.chdir(tmp_path)
    x, weight, bias, y = layer()
    np.savez(tmp_path / "layer.npz", x=x, weight=weight, bias=bias, y=y)
    np.save(tmp_path / "bias.npy", bias)
    return tmp_path


LAYER = ("layer.npz:x", "layer.npz:weight", "layer.npz:y", "--layout", "nchw")


def explain_json(runner, *args):
    result = invoke(runner, "explain", *LAYER, *args, "--format", "json")
    return result, (json.loads(result.stdout) if result.stdout else None)


# ----------------------------------------------------------------------------- equal when declared


def test_declared_layer_is_equal(runner, saved):
    result, document = explain_json(runner, "--padding", "1", "--stride", "2", "--bias", "bias.npy",
                                    "--expect", "activation=relu")
    assert result.exit_code == 0, result.stderr
    assert document["verdict"] == "equal"
    assert document["explanation"]["padding"] == [[1, 1], [1, 1]]
    assert document["explanation"]["activation"] == "relu"
    assert document["causes"] == []


@pytest.mark.parametrize("spelling", [["--padding", "1,1"], ["--padding", "1,1,1,1"],
                                      ["--expect", "padding=[[1, 1], [1, 1]]"], ["--expect", "padding=1"]])
def test_every_spelling_of_the_padding_declares_it(runner, saved, spelling):
    result, document = explain_json(runner, *spelling, "--stride", "2", "--bias", "layer.npz:bias",
                                    "--expect", "activation=relu")
    assert result.exit_code == 0, result.stderr
    assert document["verdict"] == "equal"


def test_numbers_and_a_number_list_declare_a_bias(runner, saved):
    _, _, bias, _ = layer()
    listed = ",".join(repr(float(b)) for b in bias)
    result, document = explain_json(runner, "--padding", "1", "--stride", "2", "--bias", listed,
                                    "--expect", "activation=relu")
    assert document["verdict"] == "equal", result.stderr
    result, document = explain_json(runner, "--padding", "1", "--stride", "2", "--expect", f"bias=[{listed}]",
                                    "--expect", "activation=relu")
    assert document["verdict"] == "equal", result.stderr


def test_without_the_declarations_the_same_layer_is_explained(runner, saved):
    result, document = explain_json(runner, "--stride", "2")
    assert result.exit_code == 0
    fields = {cause["field"] for cause in document["causes"]}
    assert document["verdict"] == "explained"
    assert {"offset", "activation"} <= fields, fields


# ----------------------------------------------------------------------------- negatives under each declared field


def test_a_declared_bias_off_in_one_channel_is_named(runner, saved):
    _, _, bias, _ = layer()
    off = bias.copy()
    off[2] += 0.25
    np.save(saved / "bias_off.npy", off)
    result, document = explain_json(runner, "--padding", "1", "--stride", "2", "--bias", "bias_off.npy",
                                    "--expect", "activation=relu")
    assert result.exit_code == 0
    assert document["verdict"] == "explained"
    assert [cause["field"] for cause in document["causes"]] == ["bias"]
    found = document["explanation"]["bias"]
    np.testing.assert_allclose(found, bias, atol=1e-5)
    assert abs(found[2] - off[2]) > 0.2


def test_a_declared_activation_the_output_does_not_have_is_named(runner, saved):
    x, weight, bias, y = layer(relu=False)
    np.savez(saved / "linear.npz", x=x, weight=weight, y=y)
    result = invoke(runner, "explain", "linear.npz:x", "linear.npz:weight", "linear.npz:y", "--layout", "nchw",
                    "--padding", "1", "--stride", "2", "--bias", "bias.npy", "--expect", "activation=relu",
                    "--format", "json")
    document = json.loads(result.stdout)
    assert document["verdict"] == "explained"
    assert [(c["field"], c["value"]) for c in document["causes"]] == [("activation", "linear")]


def test_a_declared_padding_one_pixel_off_is_an_offset(runner, saved):
    # TF SAME's amounts at stride 2 on an even size, where the layer padded 1 on every side:
    # the same output size, every window one pixel off (CONTRACT 2a: an offset, not pads).
    result, document = explain_json(runner, "--padding", "0,1,0,1", "--stride", "2", "--bias", "bias.npy",
                                    "--expect", "activation=relu")
    assert result.exit_code == 0
    assert document["verdict"] == "explained"
    assert [(c["field"], c["value"]) for c in document["causes"]] == [("offset", [-1, -1])]


def test_a_declared_value_that_differs_fails_under_strict(runner, saved):
    result = invoke(runner, "explain", *LAYER, "--padding", "1", "--stride", "2", "--bias", "bias.npy", "--strict")
    assert result.exit_code == 1   # the output has a ReLU the declaration lacks


# ----------------------------------------------------------------------------- bad declarations: exit 2, one line


@pytest.mark.parametrize("args, mentions", [
    (["--padding", "1", "--expect", "padding=same"], ["padding is declared twice", "--padding [[1, 1], [1, 1]]",
                                                      "--expect padding=same"]),
    (["--stride", "2", "--expect", "stride=2"], ["stride is declared twice"]),
    (["--bias", "0.5", "--expect", "bias=0.5"], ["bias is declared twice", "--bias 0.5"]),
    (["--expect", "activation=relu", "--expect", "activation=relu6"], ["activation is declared twice"]),
    (["--precision", "float32", "--expect", "precision=float32"], ["precision is declared twice"]),
    (["--expect", "activaton=relu"], ["--expect 'activaton=relu'", "did you mean 'activation'"]),
    (["--expect", "activation=gelu"], ["activation", "'gelu' is not one of linear, relu, relu6"]),
    (["--expect", "offset=1"], ["offset must be two integers"]),
    (["--expect", "relu"], ["--expect 'relu'", "is not FIELD=VALUE"]),
    (["--expect", "stride="], ["gives no value"]),
    (["--bias", "inf"], ["--bias 'inf'", "not finite"]),
    (["--bias", "missing.npy"], ["bias file 'missing.npy'", "no such file"]),
    (["--scale", "layer.npz:nothing"], ["scale file 'layer.npz:nothing'", "no array 'nothing'", "bias, weight, x, y"]),
])
def test_bad_declarations_are_one_line_and_exit_2(runner, saved, args, mentions):
    result = invoke(runner, "explain", *LAYER, *args)
    assert_input_error(result, *mentions)


@pytest.mark.parametrize("padding", ["1,2,3", "-1", "wide", "1.5"])
def test_a_bad_padding_is_a_usage_error(runner, saved, padding):
    result = invoke(runner, "explain", *LAYER, "--padding", padding)
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert "Invalid value for '--padding'" in lines[0] and f"'{padding}' is not one of same, valid, full" in lines[0]
    assert "TOP,BOTTOM,LEFT,RIGHT" in lines[0]
    assert lines[1].startswith("usage: ") and "explain" in lines[1]


def test_bias_file_checks_name_the_file(runner, saved):
    np.save(saved / "two_d.npy", np.ones((4, 1), np.float32))
    np.save(saved / "short.npy", np.ones(3, np.float32))
    np.save(saved / "nan.npy", np.array([0.0, np.nan, 0.0, 0.0]))
    np.save(saved / "scalar.npy", np.float32(0.5))
    for name, mention in (("two_d.npy", "is 2-D (shape (4, 1))"), ("short.npy", "holds 3 values, but the output "
                                                                                 "has 4 channels"),
                          ("nan.npy", "1 NaN value"), ("scalar.npy", "a single number (0-D)")):
        result = invoke(runner, "explain", *LAYER, "--padding", "1", "--stride", "2", "--bias", name)
        assert_input_error(result, f"bias file '{name}'", mention)


def test_a_declaration_that_cannot_apply_is_exit_2(runner, saved):
    result = invoke(runner, "explain", *LAYER, "--stride", "2", "--padding", "full", "--expect", "offset=1,1")
    assert_input_error(result, "offset cannot be declared with padding 'full'")


def test_the_padding_is_checked_before_any_array_is_read(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(runner, "explain", "missing.npy", "missing.npy", "missing.npy", "--padding", "1,2,3")
    assert result.exit_code == 2 and "'1,2,3' is not one of" in result.stderr
    result = invoke(runner, "explain", "missing.npy", "missing.npy", "missing.npy", "--expect", "bogus=1")
    assert_input_error(result, "names no field")


def test_npz_archive_errors_list_the_keys(runner, saved):
    result = invoke(runner, "explain", "layer.npz", "layer.npz:weight", "layer.npz:y", "--layout", "nchw")
    assert_input_error(result, "image file 'layer.npz'", "4 arrays (bias, weight, x, y)", "layer.npz:KEY")


def test_output_over_an_archive_read_by_member_is_refused(runner, saved):
    result = invoke(runner, "explain", *LAYER, "--output", "layer.npz")
    assert_input_error(result, "--output 'layer.npz'", "which the report would overwrite")


# ----------------------------------------------------------------------------- output precision, scale, help


def test_output_precision_and_scale_are_declarations(runner, saved):
    # float64 inputs, a result scaled by 0.5 (before the bias) and stored as float32.
    x, weight, bias, y = layer(relu=False, dtype=np.float64)
    scaled = (0.5 * (y - bias[None, :, None, None]) + bias[None, :, None, None]).astype(np.float32)
    np.savez(saved / "scaled.npz", x=x, weight=weight, y=scaled, bias=bias)
    args = ["scaled.npz:x", "scaled.npz:weight", "scaled.npz:y", "--layout", "nchw", "--padding", "1",
            "--stride", "2", "--bias", "scaled.npz:bias", "--format", "json"]
    document = json.loads(invoke(runner, "explain", *args, "--scale", "0.5", "--output-precision", "float32").stdout)
    assert document["verdict"] == "equal", document["causes"]
    assert document["explanation"]["output_precision"] == "float32"
    assert document["explanation"]["scale"] == 0.5
    document = json.loads(invoke(runner, "explain", *args, "--output-precision", "float32").stdout)
    assert document["verdict"] == "explained"
    assert [c["field"] for c in document["causes"]] == ["scale"]
    result = invoke(runner, "explain", *args, "--scale", "0.5", "--expect", "output_precision=float32")
    assert json.loads(result.stdout)["verdict"] == "equal"


def test_help_shows_the_declarations_and_an_example(runner):
    text = invoke(runner, "explain", "--help").stdout
    for option in ("--expect FIELD=VALUE", "--bias FILE.npy|NUMBER", "--scale FILE.npy|NUMBER",
                   "--output-precision", "same|valid|full|P|PH,PW|T,B,L,R"):
        assert option in text, option
    assert "--expect activation=relu" in text.split("Example:")[1]
    assert "same|valid|full|P|PH,PW|T,B,L,R" in invoke(runner, "compare", "--help").stdout


# ----------------------------------------------------------------------------- compare with explicit pads


def test_compare_takes_explicit_pads(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    np.save("image.npy", rng.standard_normal((10, 10, 3)))
    np.save("kernel.npy", rng.standard_normal((3, 3, 3, 2)))
    result = invoke(runner, "compare", "image.npy", "kernel.npy", "--padding", "1", "--stride", "2",
                    "--backends", "scipy.signal.correlate2d,scipy.ndimage.correlate", "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["settings"]["padding"] == [[1, 1], [1, 1]]
    assert [row["verdict"] for row in document["results"]] == ["equal", "equal"]
    assert all(row["shape"] == [5, 5, 2] for row in document["results"])


def test_compare_refuses_pads_that_leave_no_output(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("image.npy", np.ones((2, 2)))
    np.save("kernel.npy", np.ones((5, 5)))
    result = invoke(runner, "compare", "image.npy", "kernel.npy", "--padding", "0,1,0,1", "--backends", "scipy")
    assert_input_error(result, "kernel 'kernel.npy' (5x5) is larger than image 'image.npy' (2x2) padded by")


# ----------------------------------------------------------------------------- a real PyTorch layer


@pytest.mark.torch
def test_pytorch_layer_saved_with_savez_is_equal_as_declared(runner, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch", reason="torch is not installed: the PyTorch layer cannot be made")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=True)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        y = torch.relu(conv(x))
    bias = conv.bias.detach().numpy()
    np.savez("conv.npz", x=x.numpy(), weight=conv.weight.detach().numpy(), y=y.numpy())
    np.save("bias.npy", bias)
    args = ["explain", "conv.npz:x", "conv.npz:weight", "conv.npz:y", "--layout", "nchw", "--padding", "1",
            "--stride", "2", "--expect", "activation=relu", "--format", "json"]
    result = invoke(runner, *args, "--bias", "bias.npy")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["verdict"] == "equal"
    off = bias.copy()
    off[5] -= 0.2
    np.save("bias_off.npy", off)
    document = json.loads(invoke(runner, *args, "--bias", "bias_off.npy").stdout)
    assert document["verdict"] == "explained"
    assert [c["field"] for c in document["causes"]] == ["bias"]
    assert abs(document["explanation"]["bias"][5] - bias[5]) < 1e-5
