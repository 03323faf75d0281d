"""The ONNX loader (convcheck.models.onnx) on small real graphs run by ONNX Runtime.

Each graph is built with onnx.helper and captured once. Every layer is checked field by
field against what the test built; its kernel against the initializer (exactly); its input
and output against the same tensors from onnx's own reference evaluator (an independent
runtime); and its output against a float64 recomputation of its declared computation.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from convcheck.errors import InputError, MissingDependency

from ._onnx_nets import Net, assert_computes, save

pytestmark = [pytest.mark.onnx]


@pytest.fixture(scope="module")
def loader():
    pytest.importorskip("onnx", reason="the ONNX loader needs onnx (extra 'onnx')")
    pytest.importorskip("onnxruntime", reason="the ONNX loader needs onnxruntime (extra 'onnx')")
    from convcheck.models import onnx as loader
    return loader


def layer(name, **fields):
    """What the test expects of one captured layer (defaults: a plain Conv with bias)."""
    expected = dict(name=name, op="Conv", stride=(1, 1), dilation=(1, 1), groups=1, padding="explicit",
                    boundary="zero", cval=0.0, activation="linear", absorbed=(), followed_by="",
                    batchnorm=None, kernel=f"{name}.W", bias=f"{name}.B", input="x", output=f"{name}_out",
                    dtype="float32")
    expected.update(fields)
    return expected


# Each case: (id, input shape, opset, build(net) -> (graph outputs, expected layers)).
def _stride2(net):
    return [net.conv("x", "c", 3, 4, strides=[2, 2], pads=[1, 1, 1, 1])], [
        layer("c", stride=(2, 2), pads=((1, 1), (1, 1)))]


def _asymmetric(net):
    out = net.conv("x", "c", 2, 3, (3, 2), bias=False, strides=[2, 1], pads=[0, 1, 2, 1])
    return [out], [layer("c", stride=(2, 1), pads=((0, 2), (1, 1)), bias=None)]


def _auto(mode, kernel, expected_pads, padding):
    def build(net):
        out = net.conv("x", "c", 2, 3, kernel, strides=[2, 2], auto_pad=mode)
        return [out], [layer("c", stride=(2, 2), pads=expected_pads, padding=padding)]
    return build


def _dilation(net):
    out = net.conv("x", "c", 2, 3, dilations=[2, 2], pads=[2, 2, 2, 2])
    return [out], [layer("c", dilation=(2, 2), pads=((2, 2), (2, 2)))]


def _grouped(net):
    return [net.conv("x", "c", 4, 6, bias=False, groups=2, pads=[1, 1, 1, 1])], [
        layer("c", groups=2, bias=None, pads=((1, 1), (1, 1)))]


def _depthwise(net):
    return [net.conv("x", "c", 4, 8, groups=4, pads=[1, 1, 1, 1])], [layer("c", groups=4, pads=((1, 1), (1, 1)))]


GEOMETRY = [
    ("stride2_pads1_even", (1, 3, 8, 8), 17, _stride2),
    ("stride2_pads1_odd", (1, 3, 9, 9), 17, _stride2),
    ("stride2_asymmetric_pads", (1, 2, 9, 8), 17, _asymmetric),
    ("same_upper_even", (1, 2, 8, 8), 17, _auto("SAME_UPPER", (3, 3), ((0, 1), (0, 1)), "same")),
    ("same_lower_odd", (1, 2, 9, 7), 17, _auto("SAME_LOWER", (4, 4), ((2, 1), (2, 1)), "same")),
    ("valid_odd", (1, 2, 9, 9), 17, _auto("VALID", (3, 3), ((0, 0), (0, 0)), "valid")),
    ("dilation2", (1, 2, 10, 10), 17, _dilation),
    ("grouped", (1, 4, 8, 8), 17, _grouped),
    ("depthwise_multiplier2", (1, 4, 8, 8), 17, _depthwise),
]


def _bn_relu(net):
    out = net.node("Relu", [net.batchnorm(net.conv("x", "c", 3, 4, pads=[1, 1, 1, 1]), "bn", 4)], "relu")
    return [out], [layer("c", pads=((1, 1), (1, 1)), batchnorm="bn", activation="relu", absorbed=("bn", "relu"),
                         output="relu_out")]


def _clip6_inputs(net):
    clipped = net.node("Clip", ["c_out", net.constant("lo", 0.0), net.constant("hi", 6.0)], "clip")
    net.conv("x", "c", 3, 4, pads=[1, 1, 1, 1])
    net.nodes.insert(0, net.nodes.pop())   # the conv first: nodes must be in execution order
    out = net.node("Sigmoid", [clipped], "sig")
    return [out], [layer("c", pads=((1, 1), (1, 1)), activation="relu6", absorbed=("clip",), output="clip_out",
                         followed_by="Sigmoid")]


def _clip6_attributes(net):
    out = net.node("Clip", [net.conv("x", "c", 3, 4)], "clip", min=0.0, max=6.0)
    return [out], [layer("c", pads=((0, 0), (0, 0)), activation="relu6", absorbed=("clip",), output="clip_out")]


def _clip_other(net):
    out = net.node("Clip", [net.conv("x", "c", 3, 4), net.constant("lo", -1.0), net.constant("hi", 1.0)], "clip")
    return [out], [layer("c", pads=((0, 0), (0, 0)), followed_by="Clip")]


def _pad(mode, amounts, conv_pads, expected_pads, boundary, value=None, attribute=False, cval=0.0):
    def build(net):
        if attribute:   # opset < 11: amounts and mode are attributes
            padded = net.node("Pad", ["x"], "pad", mode=mode, pads=amounts)
        else:
            inputs = ["x", net.constant("amounts", amounts, np.int64)]
            if value is not None:
                inputs.append(net.constant("value", value))
            padded = net.node("Pad", inputs, "pad", mode=mode)
        out = net.conv(padded, "c", 3, 2, pads=conv_pads)
        return [out], [layer("c", pads=expected_pads, boundary=boundary, cval=cval, absorbed=("pad",))]
    return build


def _pad_not_absorbed(net):
    padded = net.node("Pad", ["x", net.constant("amounts", [0, 0, 1, 1, 0, 0, 1, 1], np.int64)], "pad", mode="reflect")
    out = net.conv(padded, "c", 3, 2, pads=[1, 1, 1, 1])
    return [out], [layer("c", pads=((1, 1), (1, 1)), input="pad_out")]


def _after(op, followed_by, **attributes):
    def build(net):
        out = net.node(op, [net.conv("x", "c", 3, 4, pads=[1, 1, 1, 1])], "after", **attributes)
        return [out], [layer("c", pads=((1, 1), (1, 1)), followed_by=followed_by)]
    return build


def _silu(net):
    conv = net.conv("x", "c", 3, 4, pads=[1, 1, 1, 1])
    out = net.node("Mul", [conv, net.node("Sigmoid", [conv], "sig")], "mul")
    return [out], [layer("c", pads=((1, 1), (1, 1)), followed_by="SiLU")]


def _bn_sigmoid(net):
    out = net.node("Sigmoid", [net.batchnorm(net.conv("x", "c", 3, 4), "bn", 4)], "sig")
    return [out], [layer("c", pads=((0, 0), (0, 0)), batchnorm="bn", absorbed=("bn",), output="bn_out",
                         followed_by="Sigmoid")]


def _two_readers(net):
    conv = net.conv("x", "c", 3, 4)
    return [net.node("Relu", [conv], "relu"), net.node("Sigmoid", [conv], "sig")], [layer("c", pads=((0, 0), (0, 0)))]


def _sequence(net):
    first = net.node("Relu", [net.batchnorm(net.conv("x", "c1", 3, 4, pads=[1, 1, 1, 1]), "bn", 4)], "relu")
    padded = net.node("Pad", [first, net.constant("amounts", [0, 0, 1, 1, 0, 0, 1, 1], np.int64)], "pad",
                      mode="reflect")
    second = net.conv(padded, "c2", 4, 4, strides=[2, 2])
    third = net.node("Clip", [net.conv(second, "c3", 4, 2, (1, 1), bias=False), net.constant("lo", 0.0)], "clip")
    return [third], [
        layer("c1", pads=((1, 1), (1, 1)), batchnorm="bn", activation="relu", absorbed=("bn", "relu"),
              output="relu_out", followed_by="Pad"),
        layer("c2", stride=(2, 2), pads=((1, 1), (1, 1)), boundary="reflect", absorbed=("pad",), input="relu_out",
              followed_by="Conv"),
        layer("c3", pads=((0, 0), (0, 0)), bias=None, activation="relu", absorbed=("clip",), input="c2_out",
              output="clip_out")]


ABSORPTION = [
    ("bn_relu", (1, 3, 8, 8), 17, _bn_relu),
    ("relu6_clip_inputs", (1, 3, 8, 8), 13, _clip6_inputs),
    ("relu6_clip_attributes", (1, 3, 8, 8), 10, _clip6_attributes),
    ("clip_not_relu", (1, 3, 8, 8), 13, _clip_other),
    ("pad_zero", (1, 3, 8, 8), 13,
     _pad("constant", [0, 0, 1, 2, 0, 0, 2, 1], [1, 1, 1, 1], ((2, 3), (3, 2)), "zero")),
    ("pad_reflect", (1, 3, 8, 8), 13,
     _pad("reflect", [0, 0, 1, 1, 0, 0, 1, 1], [0, 0, 0, 0], ((1, 1), (1, 1)), "reflect")),
    ("pad_edge_attribute", (1, 3, 8, 7), 10,
     _pad("edge", [0, 0, 2, 1, 0, 0, 0, 1], [0, 0, 0, 0], ((2, 0), (1, 1)), "edge", attribute=True)),
    ("pad_constant_value", (1, 3, 8, 8), 13,
     _pad("constant", [0, 0, 1, 1, 0, 0, 1, 1], [0, 0, 0, 0], ((1, 1), (1, 1)), "constant", value=0.5, cval=0.5)),
    ("pad_wrap", (1, 3, 8, 8), 19,
     _pad("wrap", [0, 0, 2, 1, 0, 0, 2, 1], [0, 0, 0, 0], ((2, 2), (1, 1)), "wrap")),
    ("pad_reflect_and_conv_pads", (1, 3, 8, 8), 13, _pad_not_absorbed),
    ("leaky_relu_after", (1, 3, 8, 8), 17, _after("LeakyRelu", "LeakyRelu", alpha=0.1)),
    ("sigmoid_after", (1, 3, 8, 8), 17, _after("Sigmoid", "Sigmoid")),
    ("silu_after", (1, 3, 8, 8), 17, _silu),
    ("bn_then_sigmoid", (1, 3, 8, 8), 17, _bn_sigmoid),
    ("two_readers", (1, 3, 8, 8), 17, _two_readers),
    ("sequence", (1, 3, 9, 9), 17, _sequence),
]


def check_layers(captured, net, model, x, expected) -> None:
    """Every captured layer against what the test built and against an independent runtime."""
    from onnx.reference import ReferenceEvaluator
    tensors = ReferenceEvaluator(model).run(None, {"x": x}, intermediate=True)
    assert [found.name for found in captured.layers] == [e["name"] for e in expected]
    for found, e in zip(captured.layers, expected):
        for field in ("op", "stride", "dilation", "groups", "pads", "padding", "boundary", "cval", "activation",
                      "absorbed", "followed_by", "dtype"):
            assert getattr(found, field) == e[field], (found.name, field, getattr(found, field), e[field])
        np.testing.assert_array_equal(found.kernel, net.array(e["kernel"]).transpose(2, 3, 1, 0))
        assert found.kernel.dtype == np.dtype(e["dtype"])
        if e["bias"] is None:
            assert found.bias is None
        else:
            np.testing.assert_array_equal(found.bias, net.array(e["bias"]))
        if e["batchnorm"] is None:
            assert found.batchnorm is None
        else:
            bn = found.batchnorm
            for part, value in (("scale", bn.weight), ("bias", bn.bias), ("mean", bn.mean), ("var", bn.var)):
                np.testing.assert_array_equal(value, net.array(f"{e['batchnorm']}.{part}"))
            assert bn.eps == pytest.approx(1e-3)
        if e["input"] == "x":
            np.testing.assert_array_equal(found.input, x.transpose(0, 2, 3, 1))
        for mine, theirs in ((found.input, tensors[e["input"]]), (found.output, tensors[e["output"]])):
            theirs = theirs.transpose(0, 2, 3, 1)
            assert mine.shape == theirs.shape
            np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-4 * float(np.abs(theirs).max()))
        assert_computes(found)


@pytest.mark.parametrize("case", GEOMETRY + ABSORPTION, ids=[case[0] for case in GEOMETRY + ABSORPTION])
def test_layers_captured_as_written(loader, tmp_path_factory, case):
    name, shape, opset, build = case
    net = Net(shape, opset=opset)
    outputs, expected = build(net)
    model = net.model(outputs)
    path = save(model, tmp_path_factory.mktemp("written"), name)
    x = net.input()
    info = loader.inspect(path)
    assert (info.format, info.layout, info.input_shape, info.input_dtype) == ("onnx", "nchw", shape, "float32")
    captured = loader.capture(path, x)
    assert (captured.format, captured.layout, captured.input_shape) == ("onnx", "nchw", shape)
    check_layers(captured, net, model, x, expected)
    if name == "sequence":   # one tensor is one array: the next layer reads the previous one's output
        assert captured.layers[1].input is captured.layers[0].output
        assert captured.layers[2].input is captured.layers[1].output
    if name == "pad_reflect_and_conv_pads":
        assert any("'pad'" in note and "not absorbed" in note for note in captured.notes)
