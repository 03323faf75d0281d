"""The model walk (`convcheck model`, convcheck.models.walk): matching, judging, drift, the report
and its JSON, exit codes and bad input.

Three layers of tests:
- numpy only: captured models built here from a float64 reference (`synthetic`), walked with
  `walk_captured`; the judge's helpers; drift;
- ONNX only (fast): tiny graphs built with onnx.helper, walked from the command line;
- PyTorch + Keras + ONNX: a ResNet-style PyTorch net saved as .pt2, exported to ONNX (BatchNorm
  folded), and ported to Keras by hand, faithfully and with the classic mistakes planted
  (tests/models/_walk_nets.py). Each walk is run once per module.
Tests whose layers declare a BatchNorm, a ReLU, a bias or explicit padding amounts need the
engine's declared computations (`explain(..., expected=, declared_uncertainty=)`, CONTRACT 2a).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from convcheck.cli import main
from convcheck.errors import InputError
from convcheck.models.judge import (BATCHNORM_ROUNDINGS, declared_computation, drift, is_folded_batchnorm,
                                    own_layout, padding_argument, per_channel)
from convcheck.models.layers import BatchNorm, CapturedModel, ConvLayer
from convcheck.models.report import parse_model_allow
from convcheck.models.walk import walk_captured

INPUT_INFO = {"shape": [1, 10, 10, 3], "dtype": "float32", "layout": "nhwc", "source": "random, seed 0"}


# ----------------------------------------------------------------------------- numpy-only models


def correlate(x: np.ndarray, kernel: np.ndarray, pads, stride=(1, 1)) -> np.ndarray:
    """Float64 cross-correlation of an NHWC batch with a dense HWIO kernel, zero padded."""
    (top, bottom), (left, right) = pads
    padded = np.pad(np.asarray(x, np.float64), ((0, 0), (top, bottom), (left, right), (0, 0)))
    kh, kw, _, c_out = kernel.shape
    rows = (padded.shape[1] - kh) // stride[0] + 1
    cols = (padded.shape[2] - kw) // stride[1] + 1
    out = np.zeros((x.shape[0], rows, cols, c_out))
    for u in range(kh):
        for v in range(kw):
            window = padded[:, u:u + (rows - 1) * stride[0] + 1:stride[0], v:v + (cols - 1) * stride[1] + 1:stride[1]]
            out += np.einsum("nhwc,co->nhwo", window, np.asarray(kernel[u, v], np.float64))
    return out


def conv_layer(name: str, x: np.ndarray, kernel: np.ndarray, pads, **fields) -> ConvLayer:
    """A layer whose output is its declared computation, exactly rounded to float32."""
    output = correlate(x, kernel, pads).astype(np.float32)
    if "addend" in fields:
        output = output + fields["addend"]
    return ConvLayer(name=name, op="Conv", kernel=kernel, bias=None, stride=(1, 1), dilation=(1, 1), groups=1,
                     pads=pads, padding="explicit", input=x, output=output, **fields)


def synthetic(*, flip: bool = False, drop_last: bool = False, addend: bool = False, path: str = "net") -> CapturedModel:
    """Three convs (3x3 'same', 3x3 'same', 1x1 'valid'), seeded; the port variants change one thing."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 10, 10, 3)).astype(np.float32)
    k1, k2, k3 = (rng.normal(0, 0.5, shape).astype(np.float32) for shape in ((3, 3, 3, 4), (3, 3, 4, 4), (1, 1, 4, 2)))
    same, valid = ((1, 1), (1, 1)), ((0, 0), (0, 0))
    first = conv_layer("first", x, k1, same)
    second = conv_layer("second", first.output, np.ascontiguousarray(k2[::-1, ::-1]) if flip else k2, same)
    extra = {"addend": np.full((1, 10, 10, 2), 0.5, np.float32)} if addend else {}
    third = conv_layer("third", second.output, k3, valid, **extra)
    layers = [first, second] + ([] if drop_last else [third])
    return CapturedModel(path=path, format="onnx", layout="nhwc", input_shape=x.shape, input_dtype="float32",
                         layers=layers)


def with_allow(report, *entries):
    """The same report judged with other --allow entries."""
    return replace(report, allow=parse_model_allow(list(entries)))


@pytest.fixture(scope="module")
def original() -> CapturedModel:
    return synthetic(path="original.onnx")


def test_a_faithful_port_is_equal_at_every_layer(original):
    report = walk_captured(original, synthetic(path="port.onnx"), input_info=INPUT_INFO)
    assert [layer.verdict for layer in report.layers] == ["equal"] * 3
    assert [layer.weights.verdict for layer in report.layers] == ["equal"] * 3
    assert report.first_divergence() is None and report.exit_code() == 0
    assert all(layer.input_drift == {"max_abs_diff": 0.0, "max_rel_diff": 0.0} for layer in report.layers)


def test_a_flipped_kernel_is_named_by_the_layer_and_its_weights(original):
    report = walk_captured(original, synthetic(flip=True), input_info=INPUT_INFO)
    first, second, third = report.layers
    assert first.verdict == "equal" and third.verdict == "equal"   # the third judged on its own input
    assert second.verdict == "explained" and [(c.field, c.value) for c in second.causes] == [
        ("kernel_transform", "rot180")]
    assert [(c.field, c.value) for c in second.weights.defects] == [("kernel_transform", "rot180")]
    assert second.match["reading"] == "flipped 180 degrees"
    assert report.first_divergence() is second and report.exit_code() == 1
    assert third.input_drift["max_abs_diff"] > 0.1 and second.input_drift["max_abs_diff"] == 0.0
    allowed = walk_captured(original, synthetic(flip=True), input_info=INPUT_INFO,
                            allow=["kernel_transform=rot180"])
    assert allowed.exit_code() == 0 and allowed.first_divergence() is not None
    # An allow rule for another value does not cover it.
    assert with_allow(report, "kernel_transform=transpose").exit_code() == 1


def test_a_port_meant_for_bgr_input_is_named_from_the_first_layer(original):
    """The port's first kernel has its input channels reversed (made for BGR, fed RGB): matched by
    its values, the weights related by nothing, the layer explained by the image's channel order."""
    first = original.layers[0]
    bgr = conv_layer("first", first.input, np.ascontiguousarray(first.kernel[:, :, ::-1, :]), first.pads)
    port = CapturedModel(**{**original.__dict__, "layers": [bgr] + list(original.layers[1:])})
    report = walk_captured(original, port, input_info=INPUT_INFO)
    layer = report.layers[0]
    assert layer.match["reading"] == "the same values in another order"
    assert layer.weights.unrelated and not layer.weights.defects
    assert [(c.field, c.value) for c in layer.causes] == [("channel_order", "reversed")]
    assert [item.verdict for item in report.layers[1:]] == ["equal", "equal"] and report.exit_code() == 1
    # Allowing the channel order does not excuse weights that nothing relates.
    assert with_allow(report, "channel_order").exit_code() == 1


def test_an_unmatched_original_layer_fails_unless_allowed(original):
    port = synthetic(drop_last=True)
    report = walk_captured(original, port, input_info=INPUT_INFO)
    assert report.unmatched_original == ("third",) and report.unmatched_port == ()
    assert [layer.verdict for layer in report.layers] == ["equal", "equal"] and report.exit_code() == 1
    assert with_allow(report, "unmatched").exit_code() == 0
    # A port layer the original lacks is listed, and is no mismatch by itself.
    reverse = walk_captured(port, original, input_info=INPUT_INFO)
    assert reverse.unmatched_port == ("third",) and reverse.exit_code() == 0


def test_a_fused_residual_input_cannot_be_judged(original):
    report = walk_captured(original, synthetic(addend=True), input_info=INPUT_INFO)
    third = report.layers[2]
    assert third.verdict == "not_judged" and third.diagnosis is None
    assert "added another tensor into this conv's sum" in third.reason
    assert report.first_divergence() is None and report.exit_code() == 3   # a check that could not run


def test_an_activation_outside_the_vocabulary_cannot_be_judged(original):
    layers = list(original.layers)
    layers[1] = ConvLayer(**{**layers[1].__dict__, "activation": "leaky_relu(alpha=0.1)"})
    fused = CapturedModel(**{**original.__dict__, "layers": layers})
    report = walk_captured(fused, original, input_info=INPUT_INFO)
    assert report.layers[1].verdict == "not_judged" and "leaky_relu(alpha=0.1)" in report.layers[1].reason


def test_the_single_model_form_judges_each_layer_against_itself(original):
    report = walk_captured(original, None, input_info=INPUT_INFO)
    assert report.single and [layer.verdict for layer in report.layers] == ["equal"] * 3
    document = report.to_json_dict()
    assert document["models"]["port"] is None and all(layer["port"] is None for layer in document["layers"])


def test_models_with_nothing_in_common_are_bad_input(original):
    rng = np.random.default_rng(99)
    x = original.layers[0].input
    other = CapturedModel(path="other.onnx", format="onnx", layout="nhwc", input_shape=x.shape,
                          input_dtype="float32",
                          layers=[conv_layer("unrelated", x, rng.normal(0, 1, (5, 5, 3, 7)).astype(np.float32),
                                             ((2, 2), (2, 2)))])
    with pytest.raises(InputError, match="have no conv layer in common.*--match"):
        walk_captured(original, other, input_info=INPUT_INFO)
    forced = walk_captured(original, other, input_info=INPUT_INFO, match=[("first", "unrelated")])
    assert forced.layers[0].match["by"] == "name" and forced.layers[0].verdict == "not_judged"
    assert "engine refused" in forced.layers[0].reason   # a 5x5x3x7 port output for a 3x3x3x4 kernel


# Every key CONTRACT section 6 names, at every level.
LAYER_KEYS = {"index", "original", "port", "match", "weights", "verdict", "explanation", "causes", "alternatives",
              "stats", "input_drift", "output_drift"}


def test_json_has_every_key_of_the_contract(original):
    report = walk_captured(original, synthetic(flip=True, path="port.onnx"), input_info=INPUT_INFO)
    document = json.loads(json.dumps(report.to_json_dict(), allow_nan=False))
    assert document["schema"] == "convcheck/model/1"
    assert {"schema", "models", "input", "layers", "unmatched", "first_divergence"} <= set(document)
    assert document["models"]["original"] == {"path": "original.onnx", "format": "onnx", "convs": 3,
                                              "layout": "nhwc"}
    assert {"path", "format", "convs"} <= set(document["models"]["port"])
    assert {"shape", "dtype", "source"} <= set(document["input"])
    assert document["unmatched"] == {"original": [], "port": []}
    for layer in document["layers"]:
        assert LAYER_KEYS <= set(layer)
        assert {"name", "kernel", "stride", "dilation", "groups", "padding"} <= set(layer["original"])
        assert {"name"} <= set(layer["port"]) and {"by", "similarity"} <= set(layer["match"])
        assert {"verdict", "causes"} <= set(layer["weights"])
        assert set(layer["input_drift"]) == set(layer["output_drift"]) == {"max_abs_diff", "max_rel_diff"}
    second = document["layers"][1]
    assert second["original"] == {**second["original"], "name": "second", "kernel": [3, 3, 4, 4], "stride": [1, 1],
                                  "dilation": [1, 1], "groups": 1, "padding": [[1, 1], [1, 1]]}
    assert second["verdict"] == "explained" and second["explanation"]["kernel_transform"] == "rot180"
    assert second["causes"][0]["field"] == "kernel_transform" and {"summary", "fix"} <= set(second["causes"][0])
    assert {"max_abs_diff", "mismatched", "total", "error_bound"} <= set(second["stats"])
    assert document["first_divergence"] == {"index": 1, "original": "second", "port": "second",
                                            "fields": ["kernel_transform"], "verdict": "explained"}
    assert document["summary"]["exit_code"] == 1


def test_table_marks_the_first_divergence_and_lists_unmatched(original):
    from convcheck.formats.table import render_model
    report = walk_captured(original, synthetic(flip=True, drop_last=True), input_info=INPUT_INFO)
    text = render_model(report, color=False, width=160)
    row = next(line for line in text.splitlines() if "second" in line and "explained" in line)
    assert row.lstrip().startswith("▶ 1") and "kernel flipped 180°" in row
    assert "Unmatched: original layers with no counterpart in the port: third" in text
    assert "First divergence: layer 1, second → second (kernel_transform)" in text
    assert text.rstrip().splitlines()[-1].startswith("Summary: 2 layers: 1 equal, 1 explained")
    assert "\x1b[" not in text
    narrow = render_model(report, color=True, width=90)
    assert "\x1b[" in narrow and "fix:" in narrow   # the fix moves under the cause


# ----------------------------------------------------------------------------- the judge's parts


def test_drift():
    a = np.array([[1.0, 2.0], [0.0, -4.0]], np.float32)
    b = np.array([[1.0, 1.0], [0.5, -4.0]], np.float32)
    assert drift(a, b) == {"max_abs_diff": 1.0, "max_rel_diff": 1.0}    # |2 - 1| / 1; |0 - 0.5| / 0.5
    assert drift(a, a) == {"max_abs_diff": 0.0, "max_rel_diff": 0.0}
    assert drift(a, b[:1]) is None                                      # shapes differ
    zeros = np.zeros(3)
    assert drift(np.array([0.0, 1.0, 0.0]), zeros) == {"max_abs_diff": 1.0, "max_rel_diff": 0.0}
    assert drift(np.array([np.nan, 0.0, 0.0]), zeros) == {"max_abs_diff": None, "max_rel_diff": 0.0}


def dilated_correlate(x: np.ndarray, kernel: np.ndarray, pads, stride, dilation) -> np.ndarray:
    """`correlate` with a dilated kernel (zeros between the taps)."""
    kh, kw = kernel.shape[:2]
    wide = np.zeros(((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1) + kernel.shape[2:], np.float64)
    wide[::dilation[0], ::dilation[1]] = kernel
    return correlate(x, wide, pads, stride)


@pytest.mark.parametrize("stride, dilation, named", [((2, 2), (1, 1), {"stride": (2, 2)}),
                                                     ((1, 1), (2, 2), {"dilation": (2, 2)})])
def test_a_port_that_keeps_the_explicit_pads_changes_only_its_stride_or_dilation(stride, dilation, named):
    """PyTorch's padding=1 (3x3, stride 1) is the 'same' windows at stride 1 only: a port that
    runs the same pads at stride 2 (or dilation 2) changed its stride (dilation), not its
    padding (helper-16's hunt: it was 'stride 2 + offset [-1, -1]', the offset from 'same'
    re-read at stride 2)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 12, 12, 3)).astype(np.float32)
    kernel = rng.normal(0, 0.5, (3, 3, 3, 4)).astype(np.float32)
    pads = ((1, 1), (1, 1))
    original = conv_layer("c0", x, kernel, pads)
    port = ConvLayer(**{**original.__dict__, "name": "c0_port", "stride": stride, "dilation": dilation,
                        "output": dilated_correlate(x, kernel, pads, stride, dilation).astype(np.float32)})
    model = CapturedModel(path="net", format="onnx", layout="nhwc", input_shape=x.shape, input_dtype="float32",
                          layers=[original])
    ported = CapturedModel(path="port", format="onnx", layout="nhwc", input_shape=x.shape, input_dtype="float32",
                           layers=[port])
    layer = walk_captured(model, ported, input_info=INPUT_INFO).layers[0]
    assert layer.verdict == "explained"
    assert {cause.field: cause.value for cause in layer.diagnosis.causes} == named


def test_padding_argument_names_a_declared_rule_and_keeps_explicit_amounts():
    explicit = synthetic().layers[0]                                      # pads (1, 1): PyTorch padding=1
    assert padding_argument(explicit, 10, 10) == ((1, 1), (1, 1))          # 'same' windows, but amounts
    same = ConvLayer(**{**explicit.__dict__, "padding": "same"})
    assert padding_argument(same, 10, 10) == "same"
    stride2 = ConvLayer(**{**same.__dict__, "stride": (2, 2)})
    assert padding_argument(stride2, 10, 10) == ((1, 1), (1, 1))          # not what 'same' gives at stride 2
    assert padding_argument(ConvLayer(**{**stride2.__dict__, "pads": ((0, 1), (0, 1))}), 10, 10) == "same"
    valid = ConvLayer(**{**explicit.__dict__, "pads": ((0, 0), (0, 0)), "padding": "valid"})
    assert padding_argument(valid, 10, 10) == "valid"
    assert padding_argument(ConvLayer(**{**explicit.__dict__, "pads": ((0, 0), (0, 0))}), 10, 10) == ((0, 0), (0, 0))
    assert padding_argument(ConvLayer(**{**explicit.__dict__, "pads": ((2, 2), (2, 2))}), 10, 10) == ((2, 2), (2, 2))
    assert padding_argument(ConvLayer(**{**explicit.__dict__, "pads": ((2, 0), (1, 1))}), 10, 10) == ((2, 0), (1, 1))


def batchnormed(layer: ConvLayer, bias=None, dtype: str = "float32") -> ConvLayer:
    channels = layer.kernel.shape[-1]
    rng = np.random.default_rng(3)
    bn = BatchNorm(mean=rng.normal(0, 0.3, channels), var=rng.uniform(0.5, 1.5, channels),
                   weight=rng.uniform(0.5, 1.5, channels), bias=rng.normal(0, 0.2, channels), eps=1e-5)
    return ConvLayer(**{**layer.__dict__, "batchnorm": bn, "bias": bias, "activation": "relu", "dtype": dtype})


def test_declared_computation_combines_bias_and_batchnorm():
    layer = synthetic().layers[0]
    assert declared_computation(layer) == ({}, {})
    conv_bias = np.array([0.5, -1.0, 0.25, 2.0])
    bn_layer = batchnormed(layer, conv_bias)
    expected, uncertainty = declared_computation(bn_layer)
    s, t = bn_layer.batchnorm.scale(), bn_layer.batchnorm.shift()
    assert set(expected) == {"scale", "bias", "activation"} and expected["activation"] == "relu"
    np.testing.assert_array_equal(expected["scale"], s)
    np.testing.assert_allclose(expected["bias"], s * conv_bias + t, rtol=1e-15)
    u = 2.0 ** -24
    assert uncertainty["scale"] == BATCHNORM_ROUNDINGS * u
    bn = bn_layer.batchnorm
    np.testing.assert_allclose(uncertainty["bias"], BATCHNORM_ROUNDINGS * u * (
        np.abs(bn.bias) + np.abs(bn.mean * s) + np.abs(s * conv_bias)), rtol=1e-15)
    assert declared_computation(batchnormed(layer, dtype="float16"))[1]["scale"] == BATCHNORM_ROUNDINGS * 2.0 ** -11
    padded = ConvLayer(**{**layer.__dict__, "boundary": "constant", "cval": 2.5})
    assert declared_computation(padded)[0] == {"boundary": "constant", "cval": 2.5}


def test_per_channel_values_are_held_as_the_vocabulary_holds_them():
    assert per_channel(np.array([0.5, 0.5, 0.5])) == 0.5
    assert per_channel(np.array([0.5, 0.25], np.float32)) == (0.5, 0.25)
    assert all(type(v) is float for v in per_channel(np.array([1.0, 2.0])))


def test_folded_batchnorm_factor_is_no_defect_within_its_rounding():
    layer = synthetic().layers[1]
    with_bn = batchnormed(layer)
    s = with_bn.batchnorm.scale()
    rounded = s.astype(np.float32).astype(np.float64)
    assert is_folded_batchnorm(rounded, with_bn, layer)               # the port folded the original's BatchNorm
    assert is_folded_batchnorm(1 / rounded, layer, with_bn)           # the original folded, the port did not
    assert not is_folded_batchnorm(s * (1 + 1e-4), with_bn, layer)    # e.g. another epsilon
    assert not is_folded_batchnorm(rounded, layer, layer)             # no BatchNorm on either side


def test_own_layout_gives_each_framework_its_kernel_order():
    layer = synthetic().layers[1]
    kernel, name = own_layout(layer, "pytorch")
    assert name == "oihw" and kernel.shape == (4, 4, 3, 3)
    depthwise = ConvLayer(**{**layer.__dict__, "op": "DepthwiseConv2D", "groups": 4,
                             "kernel": np.zeros((3, 3, 1, 8), np.float32)})
    kernel, name = own_layout(depthwise, "keras")
    assert name == "depthwise" and kernel.shape == (3, 3, 4, 2)
    assert own_layout(layer, "tflite")[1] == "hwio" and own_layout(layer, "keras")[1] == "hwio"


def test_allow_parsing():
    rules = parse_model_allow(["precision=float16", "unmatched", "offset=[1, 1]"])
    assert rules.unmatched and rules.texts() == ["precision=float16", "offset=[1, 1]", "unmatched"]
    with pytest.raises(InputError, match="--allow: 'precison=float16' names no field.*did you mean 'precision'"):
        parse_model_allow(["precison=float16"])


# ----------------------------------------------------------------------------- ONNX only, from the command line


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    """chain.onnx (three convs, no bias), a port with the middle kernel flipped, an unrelated net
    of the same shapes, a net without a conv, a truncated file and an input of the wrong shape."""
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed: pip install 'convcheck[onnx]'")
    from onnx import numpy_helper

    from . import _onnx_nets as nets
    folder = tmp_path_factory.mktemp("walk_onnx")

    def chain(seed: int, flip: bool = False):
        net = nets.Net((1, 3, 12, 12), seed=seed)
        a = net.conv("x", "a", 3, 4, bias=False, pads=[1, 1, 1, 1])
        b = net.conv(a, "b", 4, 4, bias=False, pads=[1, 1, 1, 1])
        c = net.conv(b, "c", 4, 2, (1, 1), bias=False)
        if flip:
            index = next(i for i, t in enumerate(net.initializers) if t.name == "b.W")
            flipped = np.ascontiguousarray(net.array("b.W")[:, :, ::-1, ::-1])
            net.initializers[index] = numpy_helper.from_array(flipped, "b.W")
        return net.model([c])

    paths = {"chain": nets.save(chain(0), folder, "chain"), "flipped": nets.save(chain(0, True), folder, "flipped"),
             "other": nets.save(chain(7), folder, "other")}
    relu = nets.Net((1, 3, 12, 12))
    paths["noconv"] = nets.save(relu.model([relu.node("Relu", ["x"], "relu")]), folder, "noconv")
    data = open(paths["chain"], "rb").read()
    paths["truncated"] = str(folder / "truncated.onnx")
    open(paths["truncated"], "wb").write(data[: len(data) // 2])
    paths["small"] = str(folder / "small.npy")
    np.save(paths["small"], np.zeros((1, 3, 10, 10), np.float32))
    paths["good"] = str(folder / "good.npy")
    np.save(paths["good"], np.random.default_rng(4).standard_normal((1, 3, 12, 12)).astype(np.float32))
    paths["nan"] = str(folder / "nan.npy")
    np.save(paths["nan"], np.full((1, 3, 12, 12), np.nan, np.float32))
    paths["folder"] = str(folder)
    return paths


def run(*args):
    return CliRunner().invoke(main, ["model", *args])


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.onnx
def test_cli_equal_port_exits_0_with_json(onnx_models):
    result = run(onnx_models["chain"], onnx_models["chain"], "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema"] == "convcheck/model/1"
    assert [layer["verdict"] for layer in document["layers"]] == ["equal"] * 3
    assert [layer["original"]["name"] for layer in document["layers"]] == ["a", "b", "c"]
    assert document["input"]["source"] == "random, seed 0" and document["input"]["shape"] == [1, 3, 12, 12]
    assert "running" in result.stderr   # progress goes to stderr, never into the JSON


@pytest.mark.onnx
def test_cli_flipped_port_exits_1_unless_allowed(onnx_models):
    result = run(onnx_models["chain"], onnx_models["flipped"], "--input", onnx_models["good"])
    assert result.exit_code == 1, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("▶"))
    assert " b " in row and "kernel flipped 180°" in row
    assert "input (1, 3, 12, 12) float32, file '" in " ".join(result.stdout.split())   # the title may wrap
    allowed = run(onnx_models["chain"], onnx_models["flipped"], "--allow", "kernel_transform=rot180")
    assert allowed.exit_code == 0, allowed.stdout


@pytest.mark.onnx
def test_cli_single_model_and_output_file(onnx_models, tmp_path):
    report = tmp_path / "report.json"
    result = run(onnx_models["chain"], "--format", "json", "--output", str(report))
    assert result.exit_code == 0, result.stderr
    assert "each layer against its own declared computation" in " ".join(result.stdout.split())   # the table on stdout
    document = json.loads(report.read_text())
    assert document["models"]["port"] is None and [l["verdict"] for l in document["layers"]] == ["equal"] * 3


@pytest.mark.onnx
@pytest.mark.parametrize("case, args, message", [
    ("unknown suffix", ["{folder}/net.xyz", "{chain}"], "cannot tell its format|no such file"),
    ("missing file", ["{folder}/missing.onnx", "{chain}"], "does not exist"),
    ("truncated", ["{chain}", "{truncated}"], "truncated"),
    ("no conv", ["{noconv}", "{chain}"], "no 2-D convolution"),
    ("wrong input shape", ["{chain}", "{chain}", "--input", "{small}"], "shape"),
    ("NaN input", ["{chain}", "{chain}", "--input", "{nan}"], "--input: .*contains 432 NaN values"),
    ("nothing in common", ["{chain}", "{other}"], "no conv layer in common"),
    ("bad allow", ["{chain}", "{chain}", "--allow", "kernel=rot180"], "names no field"),
    ("bad match", ["{chain}", "{chain}", "--match", "a=zz"], "'zz' is not a conv layer of the port"),
    ("match without port", ["{chain}", "--match", "a=a"], "give PORT too"),
])
def test_cli_bad_input_is_one_line_and_exit_2(onnx_models, case, args, message):
    import re
    result = run(*[arg.format(**onnx_models) for arg in args])
    assert result.exit_code == 2, (case, result.stdout, result.stderr)
    assert re.search(message, one_error_line(result)), result.stderr
    assert result.stdout == ""


@pytest.mark.onnx
def test_cli_unknown_suffix_lists_the_formats(onnx_models, tmp_path):
    odd = tmp_path / "net.xyz"
    odd.write_bytes(b"something")
    line = one_error_line(run(str(odd), onnx_models["chain"]))
    assert "cannot tell its format" in line and ".onnx" in line and ".tflite" in line and ".keras" in line


@pytest.mark.onnx
def test_cli_missing_extra_exits_3(onnx_models, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)   # as if ONNX Runtime were not installed
    result = run(onnx_models["chain"], onnx_models["chain"])
    assert result.exit_code == 3
    assert "pip install 'convcheck[onnx]'" in one_error_line(result)


# ----------------------------------------------------------------------------- PyTorch -> Keras / ONNX


@pytest.fixture(scope="module")
def ports(tmp_path_factory):
    """The PyTorch net as .pt2 and ONNX (BatchNorm folded), and its Keras ports."""
    pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'convcheck[torch]'")
    pytest.importorskip("keras", reason="Keras is not installed: pip install 'convcheck[tensorflow]'")
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed: pip install 'convcheck[onnx]'")
    import warnings

    from . import _walk_nets as nets
    folder = tmp_path_factory.mktemp("walk_ports")
    net = nets.torch_net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = {"pt2": nets.save_pt2(net, str(folder / "net.pt2")),
                 "onnx": nets.save_onnx(net, str(folder / "net.onnx"))}
    for name, mistakes in (("faithful", ()), ("defects", ("same_stride2", "reshape", "swap", "flip")),
                           ("defects2", ("leaky", "reinit", "epsilon"))):
        path = str(folder / f"{name}.keras")
        nets.keras_port(net, mistakes).save(path)
        paths[name] = path
    return paths


@pytest.fixture(scope="module")
def walked(ports):
    """Each walk once: {port name: ModelReport} (the original is the .pt2), lazily."""
    from convcheck.models.walk import walk
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = walk(ports["pt2"], ports[name] if name != "self" else None)
        return cache[name]
    return get


def by_name(report) -> dict:
    return {layer.original["name"]: layer for layer in report.layers}


frameworks = [pytest.mark.torch, pytest.mark.tensorflow, pytest.mark.onnx,
              pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning"), pytest.mark.filterwarnings("ignore::UserWarning")]


def apply(marks):
    def decorate(fn):
        for mark in reversed(marks):
            fn = mark(fn)
        return fn
    return decorate


@apply(frameworks)
def test_faithful_keras_port_is_equal_at_every_layer(walked):
    report = walked("faithful")
    assert [l.original["name"] for l in report.layers] == ["stem", "conv1", "conv2", "down", "head"]
    assert [l.port["name"] for l in report.layers] == ["stem", "conv1", "conv2", "down", "head"]
    assert {l.original["name"]: l.verdict for l in report.layers} == dict.fromkeys(
        ["stem", "conv1", "conv2", "down", "head"], "equal"), [l.reason or l.causes for l in report.layers]
    assert all(l.weights.verdict == "equal" for l in report.layers)
    assert report.first_divergence() is None and report.exit_code() == 0
    assert report.layers[1].original["padding"] == [[1, 1], [1, 1]] and report.layers[1].original["stride"] == [2, 2]


@apply(frameworks)
def test_onnx_export_with_folded_batchnorm_is_equal_at_every_layer(walked):
    report = walked("onnx")
    assert len(report.layers) == 5 and report.unmatched_original == () and report.unmatched_port == ()
    layers = by_name(report)
    for name in ("stem", "conv1", "conv2", "down"):
        assert layers[name].weights.folded_batchnorm and not layers[name].weights.defects, name
    assert layers["head"].weights.verdict == "equal"
    assert [l.verdict for l in report.layers] == ["equal"] * 5, [l.reason or l.causes for l in report.layers]
    assert report.exit_code() == 0


@apply(frameworks)
def test_the_pytorch_runtime_computes_its_own_graph(walked):
    report = walked("self")
    assert [l.verdict for l in report.layers] == ["equal"] * 5, [l.reason or l.causes for l in report.layers]


@apply(frameworks)
def test_planted_mistakes_are_each_named_at_their_layer(walked):
    report = walked("defects")
    layers = by_name(report)
    assert report.unmatched_original == () and report.unmatched_port == ()

    def named(layer):
        return {c.field: c.value for c in layer.causes}

    # The mistakes are found from the weights alone, in microseconds...
    assert {c.field: c.value for c in layers["conv2"].weights.defects} == {"kernel_layout": "oihw-reshaped"}
    assert {c.field: c.value for c in layers["down"].weights.defects} == {"kernel_layout": "hwoi"}
    assert {c.field: c.value for c in layers["head"].weights.defects} == {"kernel_transform": "rot180"}
    assert layers["conv1"].weights.verdict == "equal" and layers["stem"].weights.verdict == "equal"
    # ...and each layer's computation against the original's declared one, on the port's own input.
    assert layers["stem"].verdict == "equal"
    assert named(layers["conv1"]) == {"offset": (1, 1)}          # TF SAME at stride 2 vs PyTorch padding=1
    assert named(layers["down"]) == {"kernel_layout": "hwoi"}
    assert named(layers["head"]) == {"kernel_transform": "rot180"}
    # The engine reads a reshaped kernel only as the scrambled one given (CONTRACT kernel_layout):
    # given the true weights, the port's output is no reading of them. Never a wrong explanation.
    assert layers["conv2"].verdict == "unexplained" or named(layers["conv2"]) == {"kernel_layout": "oihw-reshaped"}
    assert report.first_divergence() is layers["conv1"] and report.exit_code() == 1
    failures = [why for _, why in report.failures()]
    assert "weights: kernel_layout=oihw-reshaped is not allowed" in failures


@apply(frameworks)
def test_leaky_relu_epsilon_and_reinitialised_weights(walked):
    report = walked("defects2")
    layers = by_name(report)
    assert report.unmatched_original == ("head",) and report.unmatched_port == ("head",)
    assert {c.field: c.value for c in layers["stem"].causes} == {"activation": "linear"}
    assert any("LeakyReLU" in note for note in layers["stem"].notes)
    # BatchNorm epsilon 1e-3, not 1e-5: a scale per channel and the bias it moves. Channel 4's
    # bias moves by 4e-6, a quarter of what a bias summed first may round by (bounds.error_bound,
    # `bias_first`): the data cannot tell that channel's change, so not a cause but "cannot decide".
    conv2 = layers["conv2"].diagnosis
    assert layers["conv2"].verdict == "unexplained" and conv2.cannot_decide
    assert "bias per channel" in conv2.reason and "scale per channel" in conv2.reason
    assert layers["conv1"].verdict == "equal" and layers["down"].verdict == "equal"
    assert report.first_divergence() is layers["stem"] and report.exit_code() == 1


@apply(frameworks)
def test_walk_from_the_command_line(ports):
    result = run(ports["pt2"], ports["defects2"], "--format", "json", "--allow", "activation=linear",
                 "--allow", "unmatched", "--match", "head=head")
    document = json.loads(result.stdout)
    head = document["layers"][-1]
    assert head["original"]["name"] == "head" and head["match"]["by"] == "name" and head["weights"]["defect"]
    assert document["unmatched"] == {"original": [], "port": []}
    assert result.exit_code == 1   # the re-initialised head's weights, and conv2's BatchNorm, are still wrong


@apply(frameworks)
def test_assert_model_matches(ports):
    from convcheck.testing import assert_model_matches
    with pytest.raises(AssertionError) as failure:
        assert_model_matches(ports["pt2"], ports["defects2"], msg="keras port")
    message = str(failure.value)
    assert message.startswith("keras port: the port diverges from the original: first divergence at layer 0, stem")
    assert "no activation applied" in message and "Summary:" in message and "Unmatched:" in message
    report = assert_model_matches(ports["pt2"], ports["faithful"])
    assert report.exit_code() == 0


# ----------------------------------------------------------------------------- epilogues outside the layer


def _epilogue_pair(*, port_bias: float = 0.0, port_follower="", original_bias=True, original_follower="",
                   original_activation="linear", feeds_next=False):
    """An original 3x3 conv (with a bias, or none; an activation) and its port's conv op as a
    separate op would leave it: `port_bias` times the bias (0: none), no activation, and
    `port_follower` the op after it; with `feeds_next`, the next port layer reads its output as
    it is. Returns the walk's layer result for the pair."""
    rng = np.random.default_rng(31)
    x = rng.standard_normal((1, 12, 12, 3)).astype(np.float32)
    kernel = rng.normal(0, 0.5, (3, 3, 3, 4)).astype(np.float32)
    bias = rng.normal(0, 0.5, 4).astype(np.float32)
    pads = ((1, 1), (1, 1))
    sums = correlate(x, kernel, pads)
    declared = sums + (bias if original_bias else 0.0)
    if original_activation == "relu":
        declared = np.maximum(declared, 0.0)
    original = ConvLayer(name="c", op="Conv", kernel=kernel, bias=bias if original_bias else None, stride=(1, 1),
                         dilation=(1, 1), groups=1, pads=pads, padding="explicit", input=x,
                         output=declared.astype(np.float32), activation=original_activation,
                         followed_by=original_follower)
    port = ConvLayer(**{**original.__dict__, "name": "c_port", "bias": bias * port_bias if port_bias else None,
                        "activation": "linear", "output": (sums + bias * port_bias).astype(np.float32),
                        "followed_by": port_follower})
    port_layers = [port]
    if feeds_next:
        next_kernel = rng.normal(0, 0.5, (1, 1, 4, 2)).astype(np.float32)
        port_layers.append(conv_layer("next", port.output, next_kernel, ((0, 0), (0, 0))))

    def model(layers, path):
        return CapturedModel(path=path, format="onnx", layout="nhwc", input_shape=x.shape, input_dtype="float32",
                             layers=layers)

    report = walk_captured(model([original], "net"), model(port_layers, "port"), input_info=INPUT_INFO,
                           match=[("c", "c_port")])
    return report.layers[0]


def test_a_bias_a_separate_op_may_add_is_not_taken_as_left_out():
    """helper-16's hunt: a port adding the original's bias in a separate Add after a bias-less
    conv, and one adding 1.5 times it, were both 'bias left out'. The conv alone cannot tell."""
    for follower in ("Add", "aten.add", "MaxPool"):
        layer = _epilogue_pair(port_follower=follower)
        assert layer.verdict == "not_judged" and layer.diagnosis is None
        assert "computes no bias" in layer.reason and follower in layer.reason
    # Read by the next conv as it is (directly, or through a pad that conv absorbed), nothing
    # can add it: the bias is left out.
    for follower in ("Conv2D", "ZeroPadding2D"):
        layer = _epilogue_pair(port_follower=follower, feeds_next=True)
        assert layer.verdict == "explained" and {c.field for c in layer.causes} == {"bias"}
    # With no single op after it (a graph output, several readers), the layer is all there is.
    layer = _epilogue_pair()
    assert layer.verdict == "explained" and {c.field for c in layer.causes} == {"bias"}
    # A port whose own conv has a bias, a wrong one: a real difference, whatever follows.
    layer = _epilogue_pair(port_bias=1.5, port_follower="Add")
    assert layer.verdict == "explained" and {c.field for c in layer.causes} == {"bias"}


def test_an_original_that_adds_its_bias_in_a_separate_op_is_not_contradicted_by_a_fused_port():
    layer = _epilogue_pair(original_bias=False, original_follower="Add", port_bias=1.0)
    assert layer.verdict == "not_judged" and "original's conv op computes no bias" in layer.reason


def test_an_activation_op_after_the_conv_is_a_real_difference():
    """A LeakyReLU as its own op where the original fuses a ReLU: nothing can come between the
    conv and it, so the missing ReLU is named (the LeakyReLU in a note); an Add there could be
    anything, a ReLU after it included."""
    layer = _epilogue_pair(port_bias=1.0, port_follower="LeakyRelu", original_activation="relu")
    assert layer.verdict == "explained" and {c.field: c.value for c in layer.causes} == {"activation": "linear"}
    assert layer.notes == ("the port applies LeakyRelu right after this layer (not part of it), where the original "
                           "applies relu",)
    layer = _epilogue_pair(port_bias=1.0, port_follower="Add", original_activation="relu")
    assert layer.verdict == "not_judged" and "computes no activation" in layer.reason


def test_a_fused_activation_outside_the_vocabulary_is_not_judged():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 8, 8, 2)).astype(np.float32)
    kernel = rng.normal(0, 0.5, (3, 3, 2, 3)).astype(np.float32)
    original = conv_layer("c", x, kernel, ((1, 1), (1, 1)))
    sums = correlate(x, kernel, ((1, 1), (1, 1)))
    port = ConvLayer(**{**original.__dict__, "name": "c_port", "activation": "leaky_relu(alpha=0.1)",
                        "output": np.where(sums > 0, sums, 0.1 * sums).astype(np.float32)})
    models = [CapturedModel(path=path, format="onnx", layout="nhwc", input_shape=x.shape, input_dtype="float32",
                            layers=[layer]) for path, layer in (("net", original), ("port", port))]
    result = walk_captured(*models, input_info=INPUT_INFO).layers[0]
    assert result.verdict == "not_judged" and "leaky_relu(alpha=0.1)" in result.reason


def test_an_equal_layer_whose_declared_activations_differ_says_so():
    """A ReLU6 port of a ReLU layer is `equal` on an input whose outputs stay below 6 (the same
    values); a note says the declarations differ (helper-16's hunt: nothing said so)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 8, 8, 2)).astype(np.float32)
    kernel = rng.normal(0, 0.3, (3, 3, 2, 3)).astype(np.float32)
    relu = np.maximum(correlate(x, kernel, ((1, 1), (1, 1))), 0.0).astype(np.float32)
    assert relu.max() < 6
    original = ConvLayer(**{**conv_layer("c", x, kernel, ((1, 1), (1, 1))).__dict__, "activation": "relu",
                            "output": relu})
    port = ConvLayer(**{**original.__dict__, "name": "c_port", "activation": "relu6"})
    models = [CapturedModel(path=path, format="onnx", layout="nhwc", input_shape=x.shape, input_dtype="float32",
                            layers=[layer]) for path, layer in (("net", original), ("port", port))]
    result = walk_captured(*models, input_info=INPUT_INFO).layers[0]
    assert result.verdict == "equal"
    assert any(note.startswith("the port's layer applies relu6 where the original's applies relu") for note in
               result.notes)


def test_padding_made_before_the_conv_on_a_larger_input_is_not_a_cause():
    """A port whose pad op is not part of its layer (its output read elsewhere too) convolves an
    already padded, larger input without padding: 'padding=valid' whether it padded with zeros
    (faithful) or by reflection (not), so neither is named (a hunt for false causes)."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 10, 10, 3)).astype(np.float32)
    kernel = rng.normal(0, 0.5, (3, 3, 3, 4)).astype(np.float32)
    original = conv_layer("c", x, kernel, ((1, 1), (1, 1)))
    for mode in ("constant", "reflect"):
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=mode)
        port = ConvLayer(**{**conv_layer("c_port", padded, kernel, ((0, 0), (0, 0))).__dict__, "padding": "valid"})
        models = [CapturedModel(path=path, format="onnx", layout="nhwc", input_shape=x.shape, input_dtype="float32",
                                layers=[layer]) for path, layer in (("net", original), ("port", port))]
        result = walk_captured(*models, input_info=INPUT_INFO).layers[0]
        assert result.verdict == "not_judged", (mode, result.verdict, result.causes)
        assert "reads a 12x12 input where the original's reads 10x10" in result.reason


# ----------------------------------------------------------------------------- crossed matches (hunt 4)


def _chain(swap: bool, path: str) -> CapturedModel:
    """Four 3x3 'same' convs of 4 channels in a chain, seeded; with `swap` the second and third
    layers hold each other's weights (a port that loaded them into the wrong places)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 10, 10, 4)).astype(np.float32)
    kernels = [rng.normal(0, 0.4, (3, 3, 4, 4)).astype(np.float32) for _ in range(4)]
    if swap:
        kernels[1], kernels[2] = kernels[2], kernels[1]
    same, layers = ((1, 1), (1, 1)), []
    for i, kernel in enumerate(kernels):
        layers.append(conv_layer(f"c{i}", x if not layers else layers[-1].output, kernel, same))
    return CapturedModel(path=path, format="onnx", layout="nhwc", input_shape=x.shape, input_dtype="float32",
                         layers=layers)


def test_two_layers_with_each_others_weights_are_not_equal():
    """A hunt: matched by weights alone, the port's c2 (c1's weights) was judged against c1 on
    its own input, `equal`, and so was every layer: exit 0 for a port computing something else."""
    report = walk_captured(_chain(False, "net.onnx"), _chain(True, "port.onnx"), input_info=INPUT_INFO)
    assert [layer.verdict for layer in report.layers] == ["equal", "unexplained", "unexplained", "equal"]
    assert [(layer.match["by"], layer.port["name"]) for layer in report.layers[1:3]] == [("data flow", "c1"),
                                                                                          ("data flow", "c2")]
    assert any("holds this layer's weights" in note for note in report.layers[1].notes)
    assert report.exit_code() == 1


def test_parallel_branches_run_in_another_order_stay_matched_by_weights():
    """The control: two same-shaped branches reading the same input, run b then a by the port."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 10, 10, 4)).astype(np.float32)
    ka, kb = (rng.normal(0, 0.4, (3, 3, 4, 4)).astype(np.float32) for _ in range(2))
    same = ((1, 1), (1, 1))
    a, b = conv_layer("a", x, ka, same), conv_layer("b", x, kb, same)

    def model(layers, path):
        return CapturedModel(path=path, format="onnx", layout="nhwc", input_shape=x.shape, input_dtype="float32",
                             layers=layers)

    report = walk_captured(model([a, b], "net.onnx"), model([b, a], "port.onnx"), input_info=INPUT_INFO)
    assert [layer.verdict for layer in report.layers] == ["equal", "equal"]
    assert [(layer.match["by"], layer.port["name"]) for layer in report.layers] == [("weights", "a"),
                                                                                     ("weights", "b")]
    assert report.exit_code() == 0


def test_a_correct_branch_after_a_wrong_layer_keeps_its_weights_match():
    """A review: matched by how close the inputs were, a correct branch reading a flipped layer's
    output (the port running the other branch first) was re-paired with the other branch."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 10, 10, 4)).astype(np.float32)
    k0, ka, kb = (rng.normal(0, 0.4, (3, 3, 4, 4)).astype(np.float32) for _ in range(3))
    same = ((1, 1), (1, 1))
    c0 = conv_layer("c0", x, k0, same)
    original = [c0, conv_layer("a", c0.output, ka, same), conv_layer("b", x, kb, same)]
    c0_port = conv_layer("c0", x, np.ascontiguousarray(k0[::-1, ::-1]), same)
    port = [conv_layer("b", x, kb, same), c0_port, conv_layer("a", c0_port.output, ka, same)]

    def model(layers, path):
        return CapturedModel(path=path, format="onnx", layout="nhwc", input_shape=x.shape, input_dtype="float32",
                             layers=layers)

    report = walk_captured(model(original, "net.onnx"), model(port, "port.onnx"), input_info=INPUT_INFO)
    assert [(layer.original["name"], layer.port["name"], layer.match["by"], layer.verdict) for layer in report.layers] \
        == [("c0", "c0", "weights", "explained"), ("a", "a", "weights", "equal"), ("b", "b", "weights", "equal")]


def _model(layers, path: str) -> CapturedModel:
    x = layers[0].input
    return CapturedModel(path=path, format="onnx", layout="nhwc", input_shape=x.shape, input_dtype="float32",
                         layers=layers)


def test_a_faithful_port_with_an_op_on_one_branch_keeps_its_weights_matches():
    """A second review: conv A feeds B and S; the port's B reads a copy of A's output (an ONNX
    Identity), and the first data-flow rule re-paired B and S: 'weights loaded into the wrong
    layers', exit 1, for a port bit-identical to its original."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 10, 10, 4)).astype(np.float32)
    ka, kb, ks = (rng.normal(0, 0.4, (3, 3, 4, 4)).astype(np.float32) for _ in range(3))
    same = ((1, 1), (1, 1))
    a = conv_layer("A", x, ka, same)
    a_port = conv_layer("A", x, ka, same)
    original = [a, conv_layer("B", a.output, kb, same), conv_layer("S", a.output, ks, same)]
    port = [a_port, conv_layer("B", a_port.output.copy(), kb, same), conv_layer("S", a_port.output, ks, same)]
    report = walk_captured(_model(original, "net.onnx"), _model(port, "port.onnx"), input_info=INPUT_INFO)
    assert [(layer.port["name"], layer.match["by"], layer.verdict) for layer in report.layers] == [
        ("A", "weights", "equal"), ("B", "weights", "equal"), ("S", "weights", "equal")]
    assert report.exit_code() == 0


def test_three_layers_with_rotated_weights_are_paired_by_their_places():
    """A second review: places 1, 2 and 3 of a chain hold the weights of layers 3, 1 and 2."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 10, 10, 4)).astype(np.float32)
    kernels = [rng.normal(0, 0.4, (3, 3, 4, 4)).astype(np.float32) for _ in range(4)]
    kernels.append(rng.normal(0, 0.4, (3, 3, 4, 2)).astype(np.float32))
    same = ((1, 1), (1, 1))

    def chain(ks, path):
        layers = []
        for i, kernel in enumerate(ks):
            layers.append(conv_layer(f"c{i}", x if not layers else layers[-1].output, kernel, same))
        return _model(layers, path)

    rotated = [kernels[0], kernels[3], kernels[1], kernels[2], kernels[4]]
    report = walk_captured(chain(kernels, "net.onnx"), chain(rotated, "port.onnx"), input_info=INPUT_INFO)
    assert [(layer.original["name"], layer.port["name"], layer.match["by"]) for layer in report.layers] == [
        ("c0", "c0", "weights"), ("c1", "c1", "data flow"), ("c2", "c2", "data flow"), ("c3", "c3", "data flow"),
        ("c4", "c4", "weights")]
    assert [layer.verdict for layer in report.layers][:4] == ["equal", "unexplained", "unexplained", "unexplained"]
    assert report.exit_code() == 1


def test_crossed_twins_do_not_move_their_readers():
    """A third review: a faithful port whose two identical-weights convs (one conv applied twice)
    run in the other order; the weights assignment crosses the twins (a tie), and their crossed
    places, passed down to their readers, re-paired two correct layers."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 10, 10, 4)).astype(np.float32)
    ka, kt, kb, kc, kd = (rng.normal(0, 0.4, (3, 3, 4, 4)).astype(np.float32) for _ in range(5))
    same = ((1, 1), (1, 1))

    def side(order, path):
        a = conv_layer("A", x, ka, same)
        t1, t2 = conv_layer("T1", a.output, kt, same), conv_layer("T2", x, kt, same)
        layers = dict(A=a, D=conv_layer("D", a.output, kd, same), T1=t1, B=conv_layer("B", t1.output, kb, same),
                      T2=t2, C=conv_layer("C", t2.output, kc, same))
        return _model([layers[name] for name in order], path)

    report = walk_captured(side(["A", "D", "T1", "B", "T2", "C"], "net.onnx"),
                           side(["A", "D", "T2", "C", "T1", "B"], "port.onnx"), input_info=INPUT_INFO)
    assert all(layer.verdict == "equal" for layer in report.layers)
    assert not any("wrong layers" in note for layer in report.layers for note in layer.notes)
    assert report.exit_code() == 0


def test_a_swap_after_a_pool_blames_no_correct_layer():
    """A third review: c0 reads a pool's output and holds c2's weights (and c2 c0's); c0's crossed
    place passed down made a cycle of c1 and c3, both correct, 'weights loaded into the wrong
    layers'. Undetected now (c0 and c2 are each equal on their own input), never misnamed."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 12, 12, 3)).astype(np.float32)
    stem_kernel = rng.normal(0, 0.4, (3, 3, 3, 4)).astype(np.float32)
    kernels = [rng.normal(0, 0.4, (3, 3, 4, 4)).astype(np.float32) for _ in range(4)]
    same = ((1, 1), (1, 1))

    def side(ks, path):
        stem = conv_layer("stem", x, stem_kernel, same)
        pooled = stem.output.reshape(1, 6, 2, 6, 2, 4).max(axis=(2, 4))   # a max pool: a new tensor
        layers = [stem]
        for i, kernel in enumerate(ks):
            layers.append(conv_layer(f"c{i}", pooled if i == 0 else layers[-1].output, kernel, same))
        return _model(layers, path)

    swapped = [kernels[2], kernels[1], kernels[0], kernels[3]]
    report = walk_captured(side(kernels, "net.onnx"), side(swapped, "port.onnx"), input_info=INPUT_INFO)
    named = {layer.original["name"]: (layer.port["name"], layer.match["by"]) for layer in report.layers}
    assert named["c1"] == ("c1", "weights") and named["c3"] == ("c3", "weights")
    assert not any("wrong layers" in note for layer in report.layers for note in layer.notes)
