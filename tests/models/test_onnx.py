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


def _leaky_zero(net):
    """A LeakyRelu with alpha 0 is a ReLU (a hunt found it named 'activation=linear')."""
    out = net.node("LeakyRelu", [net.conv("x", "c", 3, 4)], "leaky", alpha=0.0)
    return [out], [layer("c", pads=((0, 0), (0, 0)), activation="relu", absorbed=("leaky",), output="leaky_out")]


def _through_no_ops(net):
    """An Identity between the conv and its ReLU and a Dropout after it are the same values: taken in
    (a hunt found the ReLU hidden behind the Identity, named 'activation=linear')."""
    relu = net.node("Relu", [net.node("Identity", [net.conv("x", "c", 3, 4)], "same")], "relu")
    out = net.node("Dropout", [relu], "drop")
    return [out], [layer("c", pads=((0, 0), (0, 0)), activation="relu", absorbed=("same", "relu", "drop"),
                         output="drop_out")]


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
    ("leaky_relu_zero_is_relu", (1, 3, 8, 8), 17, _leaky_zero),
    ("identity_and_dropout_taken_in", (1, 3, 8, 8), 17, _through_no_ops),
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


def capture_built(loader, folder, name, net, outputs, *, as_run=False, x=None, **model_options):
    """Save the net's model under `folder`, capture it; returns (model, path, x, captured)."""
    model = net.model(outputs, **model_options)
    path = save(model, folder, name)
    x = net.input() if x is None else x
    return model, path, x, loader.capture(path, x, as_run=as_run)


def runtime_output(path, x, level="ORT_ENABLE_ALL"):
    """The model's own output from a plain ONNX Runtime session (as users run it)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_weights_from_a_constant_node_and_from_the_run(loader, tmp_path):
    from onnx import helper, numpy_helper
    net = Net((1, 3, 8, 8))
    first = np.random.default_rng(5).uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32)
    net.nodes.append(helper.make_node("Constant", [], ["w1"], name="w1", value=numpy_helper.from_array(first)))
    hidden = net.node("Identity", [net.random("c2.W", (2, 4, 1, 1))], "ident")   # weights computed at run time
    out = net.node("Conv", [net.node("Conv", ["x", "w1"], "c1", pads=[1, 1, 1, 1]), hidden], "c2")
    _, _, _, captured = capture_built(loader, tmp_path, "weights", net, [out])
    c1, c2 = captured.layers
    np.testing.assert_array_equal(c1.kernel, first.transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(c2.kernel, net.array("c2.W").transpose(2, 3, 1, 0))
    assert c1.bias is None and c2.bias is None and c2.input is c1.output
    for found in captured.layers:
        assert_computes(found)


def test_names_are_the_node_names_made_unique(loader, tmp_path):
    from onnx import helper
    net = Net((1, 2, 6, 6))
    weights = net.random("W", (2, 2, 3, 3))
    # ONNX Runtime refuses two nodes of one name, but a node may be named like another's output.
    net.nodes += [helper.make_node("Conv", ["x", weights], ["t1"], pads=[1, 1, 1, 1]),          # no name
                  helper.make_node("Conv", ["t1", weights], ["t2"], name="t1", pads=[1, 1, 1, 1]),
                  helper.make_node("Conv", ["t2", weights], ["t3"], name="head", pads=[1, 1, 1, 1])]
    _, _, _, captured = capture_built(loader, tmp_path, "names", net, ["t3"])
    assert [found.name for found in captured.layers] == ["t1", "t2", "head"]
    assert [found.followed_by for found in captured.layers] == ["Conv", "Conv", ""]


def test_float16_model(loader, tmp_path):
    net = Net((1, 3, 8, 8), dtype="float16")
    out = net.node("Relu", [net.conv("x", "c", 3, 4, pads=[1, 1, 1, 1])], "relu")
    model, path, x, captured = capture_built(loader, tmp_path, "half", net, [out])
    assert loader.inspect(path).input_dtype == "float16" and captured.input_dtype == "float16"
    [found] = captured.layers
    assert (found.dtype, found.output.dtype, found.activation) == ("float16", np.float16, "relu")
    np.testing.assert_array_equal(found.kernel, net.array("c.W").transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(found.input, x.transpose(0, 2, 3, 1))
    assert_computes(found)
    # ONNX Runtime's CPU provider computes this conv in float32 between Casts it inserts (and,
    # as run, as an NCHWc conv whose 4 output channels are padded to a block).
    assert any("float16 convolutions in float32" in note for note in captured.notes)
    as_run = loader.capture(path, x, as_run=True)
    [ran] = as_run.layers
    assert (ran.name, ran.dtype, ran.output.dtype, ran.absorbed) == ("c", "float32", np.float32, ("relu",))
    np.testing.assert_array_equal(ran.kernel, net.array("c.W").astype(np.float32).transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(ran.bias, net.array("c.B").astype(np.float32))
    assert any("in float32 where the graph says float16" in note for note in as_run.notes)
    np.testing.assert_array_equal(ran.output.astype(np.float16), runtime_output(path, x).transpose(0, 2, 3, 1))
    assert_computes(ran)


def test_fused_conv_in_the_graph(loader, tmp_path):
    """A graph that already holds ONNX Runtime's FusedConv: its activation and summed tensor Z."""
    net = Net((1, 4, 8, 8))
    residual = net.conv("x", "z", 4, 4, pads=[1, 1, 1, 1])
    inputs = ["x", net.random("f.W", (4, 4, 3, 3)), net.random("f.B", 4), residual]
    out = net.node("FusedConv", inputs, "f", domain="com.microsoft", activation="LeakyRelu",
                   activation_params=[0.2], pads=[1, 1, 1, 1])
    _, _, _, captured = capture_built(loader, tmp_path, "fused", net, [out])
    z, fused = captured.layers
    assert (fused.name, fused.op, fused.activation) == ("f", "FusedConv", "leaky_relu(alpha=0.2)")
    assert fused.addend is z.output and z.addend is None and z.followed_by == "FusedConv"
    np.testing.assert_array_equal(fused.kernel, net.array("f.W").transpose(2, 3, 1, 0))
    assert_computes(fused)


def test_open_dimensions(loader, tmp_path):
    net = Net((1, 3, 8, 8))
    out = net.conv("x", "c", 3, 2, strides=[2, 2], auto_pad="SAME_UPPER")
    path = save(net.model([out], input_shape=["N", 3, 8, 8]), tmp_path, "batch")
    assert loader.inspect(path).input_shape == (1, 3, 8, 8)
    captured = loader.capture(path, np.ones((2, 3, 8, 8), np.float32))
    assert captured.input_shape == (2, 3, 8, 8) and captured.layers[0].output.shape == (2, 4, 4, 2)
    path = save(net.model([out], input_shape=["N", 3, "H", "W"]), tmp_path, "spatial")
    assert loader.inspect(path).input_shape is None
    [found] = loader.capture(path, net.input().repeat(2, axis=2)[:, :, :, :7]).layers   # 16 x 7
    assert found.pads == ((0, 1), (1, 1)) and found.output.shape == (1, 8, 4, 2)
    assert_computes(found)


def test_channels_last_input(loader, tmp_path):
    """tf2onnx's models take NHWC and transpose to NCHW first: the layout says so."""
    net = Net((1, 8, 8, 3))
    out = net.conv(net.node("Transpose", ["x"], "to_nchw", perm=[0, 3, 1, 2]), "c", 3, 2, pads=[1, 1, 1, 1])
    model, path, x, captured = capture_built(loader, tmp_path, "nhwc", net, [out])
    assert loader.inspect(path).layout == "nhwc" and captured.layout == "nhwc"
    np.testing.assert_array_equal(captured.layers[0].input, x)
    assert_computes(captured.layers[0])


def test_other_convolutions_are_noted_not_captured(loader, tmp_path):
    net = Net((1, 3, 8, 8))
    flat = net.node("Reshape", [net.conv("x", "c", 3, 4, pads=[1, 1, 1, 1]),
                                net.constant("shape", [1, 4, 64], np.int64)], "flat")
    out = net.node("Conv", [flat, net.random("c1d.W", (4, 4, 3))], "c1d")
    _, _, _, captured = capture_built(loader, tmp_path, "conv1d", net, [out])
    assert [found.name for found in captured.layers] == ["c"]
    assert any(note.startswith("1 Conv (not 2-D) node not captured") for note in captured.notes)


@pytest.fixture(scope="module")
def small_model(loader, tmp_path_factory):
    net = Net((1, 3, 8, 8))
    model = net.model([net.conv("x", "c", 3, 2, pads=[1, 1, 1, 1])])
    return save(model, tmp_path_factory.mktemp("small"), "small"), model.SerializeToString()


def _write(content):
    def write(folder, good):
        path = folder / "net.onnx"
        path.write_bytes(content(good) if callable(content) else content)
        return path
    return write


def _numpy_file(folder, good):
    np.save(folder / "net.npy", np.zeros(3))
    return (folder / "net.npy").rename(folder / "net.onnx")


def _zip_file(folder, good):
    import zipfile
    with zipfile.ZipFile(folder / "net.onnx", "w") as archive:
        archive.writestr("model/data.pkl", b"not a model")
    return folder / "net.onnx"


BAD_FILES = [
    ("missing", lambda folder, good: folder / "net.onnx", "does not exist"),
    ("directory", lambda folder, good: (folder / "net.onnx").mkdir() or folder / "net.onnx", "is a directory"),
    ("empty", _write(b""), "is empty"),
    ("truncated", _write(lambda good: good[:len(good) // 2]), "is not a valid ONNX model"),
    ("numpy", _numpy_file, "a NumPy .npy array, not an ONNX model"),
    ("zip", _zip_file, "a zip archive"),
    ("tflite", _write(b"\x1c\x00\x00\x00TFL3" + bytes(64)), "a TFLite model, not an ONNX model"),
    ("random_bytes", _write(np.random.default_rng(7).bytes(512)), "is not a valid ONNX model"),
    ("text", _write(b"graph {\n  node: conv\n}\n"), "is not a valid ONNX model"),
]


@pytest.mark.parametrize("make, expected", [case[1:] for case in BAD_FILES], ids=[case[0] for case in BAD_FILES])
def test_bad_files_are_refused_in_one_line(loader, small_model, tmp_path, make, expected):
    path = str(make(tmp_path, small_model[1]))
    for call in (lambda: loader.inspect(path), lambda: loader.capture(path, np.zeros((1, 3, 8, 8), np.float32))):
        with pytest.raises(InputError) as refused:
            call()
        message = str(refused.value)
        assert expected in message and f"'{path}'" in message and "\n" not in message and len(message) < 400


@pytest.mark.parametrize("x", [np.zeros((1, 8, 8, 3), np.float32), np.zeros((3, 8, 8), np.float32),
                               np.zeros((1, 3, 8, 8), np.float64), [[0.0]]], ids=["nhwc", "rank3", "float64", "list"])
def test_wrong_input_is_refused(loader, small_model, x):
    path = small_model[0]
    expected = r"takes an input of shape \(1, 3, 8, 8\) float32 \(nchw\); the input given is"
    with pytest.raises(InputError, match=expected):
        loader.capture(path, x)


def test_models_that_cannot_be_walked(loader, tmp_path):
    net = Net((1, 3, 8, 8))
    path = save(net.model([net.node("Relu", ["x"], "relu")]), tmp_path, "noconv")
    assert loader.inspect(path).input_shape == (1, 3, 8, 8)
    with pytest.raises(InputError, match="'.*noconv.onnx' has no 2-D convolution layer: nothing to walk"):
        loader.capture(path, net.input())
    net = Net((1, 3, 8, 8))
    model = net.model([net.node("Add", [net.conv("x", "c", 3, 3, pads=[1, 1, 1, 1]), "y"], "add")], more_inputs=["y"])
    path = save(model, tmp_path, "twoinputs")
    with pytest.raises(InputError, match=r"has 2 inputs \(x, y\): convcheck model runs models with exactly one"):
        loader.inspect(path)


def test_runtime_refusals_are_one_line(loader, tmp_path):
    net = Net((1, 3, 8, 8))
    custom = net.node("Mystery", [net.conv("x", "c", 3, 2, pads=[1, 1, 1, 1])], "mystery", domain="my.ops")
    path = save(net.model([custom]), tmp_path, "custom")
    with pytest.raises(InputError, match=r"is not a valid ONNX model for ONNX Runtime .*my\.ops:Mystery") as refused:
        loader.capture(path, net.input())
    assert "\n" not in str(refused.value) and "[ONNXRuntimeError]" not in str(refused.value)
    net = Net((1, 3, 8, 8))
    conv = net.conv("x", "c", 3, 2, pads=[1, 1, 1, 1])
    flat = net.node("Reshape", [conv, net.constant("shape", [1, 2, 64], np.int64)], "flat")
    path = save(net.model([flat], input_shape=[1, 3, "H", "W"]), tmp_path, "reshape")
    with pytest.raises(InputError, match=r"ONNX Runtime could not run '.*reshape.onnx' on an input of shape "
                                         r"\(1, 3, 9, 9\) \(.*\): check that the input suits the model"):
        loader.capture(path, np.zeros((1, 3, 9, 9), np.float32))


@pytest.mark.parametrize("module, call", [("onnx", "inspect"), ("onnx", "capture"), ("onnxruntime", "capture")])
def test_missing_framework(monkeypatch, tmp_path, module, call):
    from convcheck.models import onnx as loader
    path = tmp_path / "net.onnx"
    path.write_bytes(b"\x08\x08")
    monkeypatch.setitem(sys.modules, module, None)   # `import module` now raises ImportError
    with pytest.raises(MissingDependency) as missing:
        getattr(loader, call)(str(path), *([np.zeros((1, 3, 8, 8), np.float32)] if call == "capture" else []))
    assert (missing.value.extra, missing.value.missing) == ("onnx", module)
    assert str(missing.value).endswith("pip install 'convcheck[onnx]'") and str(path) in str(missing.value)


def test_importing_the_loader_imports_no_framework():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = ("import sys, convcheck.models.onnx, convcheck.models._onnx_graph, convcheck.models._onnx_tensors; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'torch', 'tensorflow') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=root)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, check=True)
    assert result.stdout.strip() == "[]"


def test_as_run_folds_batchnorm_and_fuses_relu(loader, tmp_path):
    net = Net((1, 3, 8, 8))
    out = net.node("Relu", [net.batchnorm(net.conv("x", "c", 3, 16, pads=[1, 1, 1, 1]), "bn", 16)], "relu")
    _, path, x, captured = capture_built(loader, tmp_path, "bnrelu", net, [out], as_run=True)
    [found] = captured.layers
    assert found.name == "c" and found.op in ("NchwcConv", "FusedConv", "Conv")
    assert (found.activation, found.batchnorm, found.absorbed) == ("relu", None, ("bn", "relu"))
    np.testing.assert_array_equal(found.output, runtime_output(path, x).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(found.input, x.transpose(0, 2, 3, 1))
    scale = net.array("bn.scale").astype(np.float64) / np.sqrt(net.array("bn.var").astype(np.float64) + 1e-3)
    folded = net.array("c.W") * scale[:, None, None, None]
    np.testing.assert_allclose(found.kernel, folded.transpose(2, 3, 1, 0), rtol=1e-6, atol=1e-7)
    shift = (net.array("c.B") - net.array("bn.mean")) * scale + net.array("bn.bias")
    np.testing.assert_allclose(found.bias, shift, rtol=1e-6, atol=1e-6)
    assert_computes(found)
    assert any(note.startswith("as run: 'c' ") and "bn, relu fused into it" in note for note in captured.notes)


def test_as_run_fused_conv_keeps_its_leaky_relu(loader, tmp_path):
    # A grouped conv whose output channels are no multiple of an NCHWc block (8 or 16): ONNX
    # Runtime fuses the activation into a FusedConv rather than an NCHWc Conv.
    net = Net((1, 4, 8, 8))
    out = net.node("LeakyRelu", [net.conv("x", "c", 4, 6, groups=2, pads=[1, 1, 1, 1])], "after", alpha=0.2)
    _, path, x, captured = capture_built(loader, tmp_path, "leaky", net, [out], as_run=True)
    [found] = captured.layers
    assert (found.name, found.op, found.activation, found.absorbed) == ("c", "FusedConv", "leaky_relu(alpha=0.2)",
                                                                        ("after",))
    np.testing.assert_array_equal(found.kernel, net.array("c.W").transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(found.output, runtime_output(path, x).transpose(0, 2, 3, 1))
    assert_computes(found)


def test_as_run_unblocks_nchwc_tensors_and_keeps_the_residual_sum(loader, tmp_path):
    net = Net((1, 3, 8, 8))
    first = net.node("Relu", [net.conv("x", "c1", 3, 16, pads=[1, 1, 1, 1])], "relu")
    second = net.conv(first, "c2", 16, 16, bias=False, groups=16, pads=[1, 1, 1, 1])   # depthwise
    third = net.conv(second, "c3", 16, 16, (1, 1))
    out = net.node("Relu", [net.node("Add", [third, first], "add")], "relu2")
    _, path, x, captured = capture_built(loader, tmp_path, "nchwc", net, [out], as_run=True)
    if not any("NCHWc" in note for note in captured.notes):
        pytest.skip("ONNX Runtime uses no NCHWc kernels on this CPU")
    c1, c2, c3 = captured.layers
    assert [found.op for found in captured.layers] == ["NchwcConv"] * 3
    assert [found.name for found in captured.layers] == ["c1", "c2", "c3"]
    assert (c1.activation, c1.absorbed, c3.activation, c3.absorbed) == ("relu", ("relu",), "relu", ("add", "relu2"))
    for found in captured.layers:
        bias = net.array(f"{found.name}.B") if found.name != "c2" else None
        np.testing.assert_array_equal(found.kernel, net.array(f"{found.name}.W").transpose(2, 3, 1, 0))
        assert (found.bias is None) == (bias is None) and (bias is None or np.array_equal(found.bias, bias))
        assert_computes(found)
    assert c2.groups == 16 and c2.input is c1.output and c3.input is c2.output
    np.testing.assert_array_equal(c3.addend, c1.output)
    np.testing.assert_array_equal(c3.output, runtime_output(path, x).transpose(0, 2, 3, 1))
    assert any("residual" in note and "'c3'" in note for note in captured.notes)


def test_as_run_falls_back_when_no_optimised_graph_is_written(loader, tmp_path, monkeypatch):
    net = Net((1, 3, 8, 8))
    out = net.node("Relu", [net.batchnorm(net.conv("x", "c", 3, 16, pads=[1, 1, 1, 1]), "bn", 16)], "relu")
    session = loader._session
    # An ONNX Runtime that writes no optimised graph: the session ignores the file asked for.
    monkeypatch.setattr(loader, "_session",
                        lambda model, scratch, level, optimized_path="": session(model, scratch, level))
    _, _, _, captured = capture_built(loader, tmp_path, "fallback", net, [out], as_run=True)
    [found] = captured.layers
    assert (found.op, found.absorbed, found.batchnorm is not None) == ("Conv", ("bn", "relu"), True)
    assert any(note.startswith("as run: ONNX Runtime's optimised graph could not be saved or read") and
               note.endswith("the layers are captured as written instead") for note in captured.notes)


@pytest.mark.torch
def test_pytorch_export(loader, tmp_path):
    """A real PyTorch net exported by torch.onnx.export (the TorchScript exporter, which
    keeps BatchNorm with do_constant_folding=False and computes a reflect pad's amounts with
    shape arithmetic); tensors compared with PyTorch's own."""
    torch = pytest.importorskip("torch", reason="exporting a PyTorch net needs torch")
    import warnings
    torch.manual_seed(0)
    nn = torch.nn

    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
            self.conv3 = nn.Conv2d(8, 4, 3, padding=1, padding_mode="reflect")

        def forward(self, x):
            first = torch.relu(self.bn1(self.conv1(x)))
            return self.conv3(torch.sigmoid(self.conv2(first)))

    net = Small().eval()
    with torch.no_grad():
        net.bn1.running_mean.uniform_(-1, 1)
        net.bn1.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 3, 9, 9)
    path = str(tmp_path / "small.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter's deprecation notice
        torch.onnx.export(net, (x,), path, dynamo=False, do_constant_folding=False, input_names=["x"],
                          opset_version=17)
    captured = loader.capture(path, x.numpy())
    c1, c2, c3 = captured.layers
    assert [found.name for found in captured.layers] == ["/conv1/Conv", "/conv2/Conv", "/conv3/Conv"]
    for found, module in zip(captured.layers, (net.conv1, net.conv2, net.conv3)):
        np.testing.assert_array_equal(found.kernel, module.weight.detach().numpy().transpose(2, 3, 1, 0))
        assert (found.bias is None) == (module.bias is None)
        if module.bias is not None:
            np.testing.assert_array_equal(found.bias, module.bias.detach().numpy())
        assert_computes(found)
    assert (c1.stride, c1.pads, c1.activation, len(c1.absorbed)) == ((2, 2), ((1, 1), (1, 1)), "relu", 2)
    for mine, theirs in ((c1.batchnorm.mean, net.bn1.running_mean), (c1.batchnorm.var, net.bn1.running_var),
                         (c1.batchnorm.weight, net.bn1.weight), (c1.batchnorm.bias, net.bn1.bias)):
        np.testing.assert_array_equal(mine, theirs.detach().numpy())
    assert (c2.groups, c2.followed_by) == (8, "Sigmoid")
    assert (c3.boundary, c3.pads, c3.padding, len(c3.absorbed)) == ("reflect", ((1, 1), (1, 1)), "explicit", 1)
    with torch.no_grad():
        first = torch.relu(net.bn1(net.conv1(x)))
        second = net.conv2(first)
        third = net.conv3(torch.sigmoid(second))
    for mine, theirs in ((c1.output, first), (c2.input, first), (c2.output, second),
                         (c3.input, torch.sigmoid(second)), (c3.output, third)):
        theirs = theirs.numpy().transpose(0, 2, 3, 1)
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-4 * float(np.abs(theirs).max()))
