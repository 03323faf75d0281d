"""Issue 22's test list for the model walk, on small real models (tests/models/_coverage_nets.py):

- a MobileNet-style net (depthwise conv + BatchNorm + ReLU6, pointwise conv) and a dilated net
  in PyTorch (.pt2), exported to ONNX (BatchNorm folded) and ported by hand to Keras:
  faithful ports equal at every layer; a depthwise kernel `reshape`d instead of transposed and
  a dropped dilation each named at their layer;
- mixed precision: Keras ports under the 'mixed_float16' policy and the dilated net cast to
  bfloat16 in PyTorch, named `precision` at every layer and accepted with --allow;
- a Keras net converted by tf.lite.TFLiteConverter (ReLU and ReLU6 fused, BatchNorm folded,
  stride-2 'same'), equal at every layer as written and as XNNPACK runs it, and alone;
- in/out channels swapped and a kernel flipped in a TFLite port and in an ONNX port.

Every model is built once per module; each walk runs once (the `walked` fixtures cache them).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from convcheck.cli import main

from . import _coverage_nets as nets

quiet = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.filterwarnings("ignore::FutureWarning"),
         pytest.mark.filterwarnings("ignore::UserWarning")]


def marked(*marks):
    """The framework markers and warning filters of a test, as one decorator."""
    def decorate(fn):
        for mark in reversed(list(marks) + quiet):
            fn = mark(fn)
        return fn
    return decorate


torch_keras_onnx = marked(pytest.mark.torch, pytest.mark.tensorflow, pytest.mark.onnx)
torch_keras = marked(pytest.mark.torch, pytest.mark.tensorflow)
torch_onnx = marked(pytest.mark.torch, pytest.mark.onnx)
keras_tflite = marked(pytest.mark.tensorflow, pytest.mark.tflite)


def by_name(report) -> dict:
    return {layer.original["name"]: layer for layer in report.layers}


def causes(layer) -> dict:
    return {cause.field: cause.value for cause in layer.causes}


def weight_defects(layer) -> dict:
    return {cause.field: cause.value for cause in layer.weights.defects}


def verdicts(report) -> dict:
    return {layer.original["name"]: layer.verdict for layer in report.layers}


def why(report) -> list:
    """What to show when a verdict is not the one expected."""
    return [(layer.original["name"], layer.verdict, causes(layer), layer.reason) for layer in report.layers]


def cli(*args):
    return CliRunner().invoke(main, ["model", *args])


def walker(paths: dict):
    """walk(paths[original], paths[port] or None, ...) once per distinct call."""
    from convcheck.models.walk import walk
    cache = {}

    def get(original: str, port=None, **options):
        key = (original, port, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = walk(paths[original], paths[port] if port else None, **options)
        return cache[key]
    return get


# ----------------------------------------------------------------------------- PyTorch -> ONNX / Keras


@pytest.fixture(scope="module")
def torch_paths(tmp_path_factory):
    """The MobileNet-style and dilated nets as .pt2, and the dilated net cast to bfloat16 (.pt2);
    where ONNX Runtime is installed, their ONNX exports and an ONNX port of the dilated net with
    dil1's channels swapped and dil2's kernel flipped. `keras_paths` adds the Keras ports."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'convcheck[torch]'")
    folder = tmp_path_factory.mktemp("walk_coverage_torch")
    mobile, dilated = nets.mobile_net(), nets.dilated_net()
    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths["mobile.pt2"] = nets.save_pt2(mobile, str(folder / "mobile.pt2"))
        paths["dilated.pt2"] = nets.save_pt2(dilated, str(folder / "dilated.pt2"))
        half = nets.dilated_net().to(torch.bfloat16)
        program = torch.export.export(half, (torch.from_numpy(nets.example()).to(torch.bfloat16),), strict=False)
        paths["dilated_bf16.pt2"] = str(folder / "dilated_bf16.pt2")
        torch.export.save(program, paths["dilated_bf16.pt2"])
        if _importable("onnx", "onnxruntime"):
            paths["mobile.onnx"] = nets.save_onnx(mobile, str(folder / "mobile.onnx"))
            paths["dilated.onnx"] = nets.save_onnx(dilated, str(folder / "dilated.onnx"))
            paths["dilated_bad.onnx"] = _onnx_with_mistakes(paths["dilated.onnx"], str(folder / "dilated_bad.onnx"))
    return paths


@pytest.fixture(scope="module")
def keras_paths(torch_paths, tmp_path_factory):
    """`torch_paths` with the Keras ports of the same (seeded) nets added: faithful, with the
    depthwise kernel reshaped, without dil1's dilation, and under the 'mixed_float16' policy."""
    pytest.importorskip("keras", reason="Keras is not installed: pip install 'convcheck[tensorflow]'")
    folder = tmp_path_factory.mktemp("walk_coverage_keras")
    mobile, dilated = nets.mobile_net(), nets.dilated_net()
    for name, model in (("mobile.keras", nets.keras_mobile(mobile)),
                        ("mobile_reshaped.keras", nets.keras_mobile(mobile, ["dw_reshape"])),
                        ("mobile_f16.keras", nets.keras_mobile(mobile, policy="mixed_float16")),
                        ("dilated.keras", nets.keras_dilated(dilated)),
                        ("dilated_undilated.keras", nets.keras_dilated(dilated, ["no_dilation"])),
                        ("dilated_f16.keras", nets.keras_dilated(dilated, policy="mixed_float16"))):
        torch_paths[name] = str(folder / name)   # the same dict: `walked` finds them there
        model.save(torch_paths[name])
    return torch_paths


def _importable(*modules: str) -> bool:
    import importlib
    try:
        for module in modules:
            importlib.import_module(module)
    except ImportError:
        return False
    return True


def need_onnx(paths: dict) -> None:
    """Skip the test where ONNX Runtime did not make its models."""
    if "dilated.onnx" not in paths:
        pytest.skip("ONNX Runtime is not installed: pip install 'convcheck[onnx]'")


def _onnx_with_mistakes(source: str, path: str) -> str:
    """The ONNX export with dil1's weight in/out swapped (OIHW -> IOHW) and dil2's flipped."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(source)
    edits = {"dil1.weight": lambda w: w.transpose(1, 0, 2, 3), "dil2.weight": lambda w: w[:, :, ::-1, ::-1]}
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.name in edits:
            changed = np.ascontiguousarray(edits.pop(tensor.name)(numpy_helper.to_array(tensor)))
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(changed, tensor.name))
    assert not edits, f"the export has no initializer {sorted(edits)}"
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def walked(torch_paths):
    return walker(torch_paths)


MOBILE = ["stem", "dw", "pw", "head"]
DILATED = ["conv", "dil1", "dil2", "head"]


@torch_keras_onnx
def test_mobilenet_export_and_keras_port_are_equal_at_every_layer(walked, keras_paths):
    need_onnx(keras_paths)
    for original, port in (("mobile.pt2", "mobile.onnx"), ("mobile.pt2", "mobile.keras"),
                           ("mobile.onnx", "mobile.keras")):
        report = walked(original, port)
        assert len(report.layers) == 4 and report.unmatched_original == report.unmatched_port == ()
        assert [layer.verdict for layer in report.layers] == ["equal"] * 4, (original, port, why(report))
        assert report.first_divergence() is None and report.exit_code() == 0, (original, port)
    exported = by_name(walked("mobile.pt2", "mobile.onnx"))
    # The exporter folded each BatchNorm into its conv: a factor per output channel, no defect.
    for name in ("stem", "dw", "pw"):
        assert exported[name].weights.folded_batchnorm and not exported[name].weights.defects, name
    assert exported["head"].weights.verdict == "equal"
    ported = by_name(walked("mobile.pt2", "mobile.keras"))
    assert [ported[name].port["name"] for name in MOBILE] == MOBILE
    assert all(layer.weights.verdict == "equal" for layer in ported.values())
    dw = ported["dw"].original
    assert (dw["groups"], dw["kernel"], dw["batchnorm"], dw["activation"]) == (8, [3, 3, 1, 8], True, "relu6")
    assert ported["dw"].port["op"] == "DepthwiseConv2D" and ported["dw"].port["activation"] == "relu6"
    assert ported["stem"].original["stride"] == [2, 2] and ported["stem"].original["padding"] == [[1, 1], [1, 1]]
    # The Keras port against the ONNX export: the port has the BatchNorms the export folded.
    reverse = walked("mobile.onnx", "mobile.keras")
    assert all(layer.weights.folded_batchnorm for layer in reverse.layers[:3])


@torch_keras_onnx
def test_dilated_export_and_keras_port_are_equal_at_every_layer(walked, keras_paths):
    need_onnx(keras_paths)
    for port in ("dilated.onnx", "dilated.keras"):
        report = walked("dilated.pt2", port)
        assert [layer.original["name"] for layer in report.layers] == DILATED
        assert [layer.verdict for layer in report.layers] == ["equal"] * 4, (port, why(report))
        assert [layer.weights.verdict for layer in report.layers] == ["equal"] * 4, port
        assert report.exit_code() == 0
        for layer in report.layers[1:3]:
            assert layer.original["dilation"] == [2, 2] and layer.original["padding"] == [[2, 2], [2, 2]]


@torch_keras
def test_depthwise_kernel_reshaped_instead_of_transposed_is_named_at_its_layer(walked, keras_paths):
    report = walked("mobile.pt2", "mobile_reshaped.keras")
    layers = by_name(report)
    assert report.unmatched_original == report.unmatched_port == ()
    assert weight_defects(layers["dw"]) == {"kernel_layout": "depthwise-reshaped"}
    # The computation, judged against the original's kernel, reads the same reshape.
    assert causes(layers["dw"]) == {"kernel_layout": "depthwise-reshaped"}, why(report)
    for name in ("stem", "pw", "head"):   # each judged on its own input: the pointwise conv is right
        assert layers[name].verdict == "equal" and layers[name].weights.verdict == "equal", (name, why(report))
    # dw's input differs from the original's by the two frameworks' rounding only; pw's by dw's defect.
    assert layers["dw"].input_drift["max_abs_diff"] < 1e-5 < 0.01 < layers["pw"].input_drift["max_abs_diff"]
    assert report.first_divergence() is layers["dw"] and report.exit_code() == 1
    failures = [reason for _, reason in report.failures()]
    assert "kernel_layout=depthwise-reshaped is not allowed" in failures
    assert "weights: kernel_layout=depthwise-reshaped is not allowed" in failures


@torch_keras
def test_dropped_dilation_is_named_at_its_layer(walked, keras_paths):
    report = walked("dilated.pt2", "dilated_undilated.keras")
    layers = by_name(report)
    # The weights are the same: only the computation tells.
    assert all(layer.weights.verdict == "equal" for layer in report.layers)
    # The original declares padding=2 (amounts, which are 'same' at dilation 2 only); the port's
    # padding='same' at dilation 1 is 1: both differences are the port's, relative to the original.
    assert causes(layers["dil1"]) == {"dilation": (1, 1), "padding": "same"}, why(report)
    for name in ("conv", "dil2", "head"):
        assert layers[name].verdict == "equal", (name, why(report))
    assert layers["dil2"].input_drift["max_abs_diff"] > 0.01   # an inherited difference, not its own
    assert report.first_divergence() is layers["dil1"] and report.exit_code() == 1
    assert sorted(reason for _, reason in report.failures()) == ["dilation=[1, 1] is not allowed",
                                                                 "padding=same is not allowed"]


# ----------------------------------------------------------------------------- mixed precision


@torch_keras
def test_mixed_float16_keras_port_is_named_precision_and_accepted_with_allow(keras_paths):
    paths = keras_paths
    result = cli(paths["dilated.pt2"], paths["dilated_f16.keras"], "--format", "json")
    assert result.exit_code == 1, result.stderr
    document = json.loads(result.stdout)
    assert [layer["port"]["dtype"] for layer in document["layers"]] == ["float16"] * 4
    for layer in document["layers"]:
        assert layer["verdict"] == "explained", layer
        assert [(c["field"], c["value"]) for c in layer["causes"]] == [("precision", "float16")], layer
        assert layer["weights"]["verdict"] == "equal"   # Keras keeps float32 weights and casts them
    assert document["first_divergence"]["original"] == "conv"
    assert cli(paths["dilated.pt2"], paths["dilated_f16.keras"], "--allow", "precision=float16").exit_code == 0
    other = cli(paths["dilated.pt2"], paths["dilated_f16.keras"], "--allow", "precision=bfloat16")
    assert other.exit_code == 1 and "precision=float16 is not allowed" in other.stdout


@torch_keras
def test_mixed_float16_port_with_batchnorm_never_names_another_cause(walked, keras_paths):
    """A mixed_float16 MobileNet port: Keras computes each BatchNorm in float32 with float32
    factors on the float16 conv's stored result, which the declared values' rounding term
    covers (Problem.uncertainty_term): those layers are float16. TensorFlow's CPU float16
    depthwise conv accumulates in float16, which no precision of the vocabulary models: that
    layer may be `unexplained`, never given another cause than float16 rounding."""
    report = walked("mobile.pt2", "mobile_f16.keras")
    layers = by_name(report)
    for name in ("stem", "pw", "head"):
        assert causes(layers[name]) == {"precision": "float16"}, why(report)
    for layer in report.layers:
        assert layer.weights.verdict == "equal"
        assert layer.verdict == "unexplained" or causes(layer) == {"precision": "float16"}, why(report)
    assert report.exit_code() == 1


@torch_onnx
def test_bfloat16_pytorch_port_is_named_precision_at_every_layer(walked, torch_paths):
    need_onnx(torch_paths)
    for original in ("dilated.pt2", "dilated.onnx"):
        report = walked(original, "dilated_bf16.pt2")
        assert [causes(layer) for layer in report.layers] == [{"precision": "bfloat16"}] * 4, why(report)
        # The port's own weights are the original's rounded to bfloat16.
        assert [weight_defects(layer) for layer in report.layers] == [{"precision": "bfloat16"}] * 4
        assert report.exit_code() == 1
    allowed = walked("dilated.pt2", "dilated_bf16.pt2", allow=("precision=bfloat16",))
    assert allowed.exit_code() == 0 and allowed.first_divergence() is allowed.layers[0]


# ----------------------------------------------------------------------------- ONNX port: swapped, flipped


@torch_onnx
def test_onnx_port_with_swapped_channels_and_flipped_kernel(walked, torch_paths):
    need_onnx(torch_paths)
    report = walked("dilated.pt2", "dilated_bad.onnx")
    layers = by_name(report)
    assert report.unmatched_original == report.unmatched_port == ()
    # From the weights, in ONNX's own layout: OIHW stored as IOHW; and from the computation.
    assert weight_defects(layers["dil1"]) == {"kernel_layout": "iohw"}
    assert layers["dil1"].match["reading"] == "input and output channels swapped"
    assert causes(layers["dil1"]) == {"kernel_layout": "hwoi"}, why(report)
    assert weight_defects(layers["dil2"]) == {"kernel_transform": "rot180"}
    assert causes(layers["dil2"]) == {"kernel_transform": "rot180"}, why(report)
    assert layers["conv"].verdict == "equal" and layers["head"].verdict == "equal", why(report)
    assert report.first_divergence() is layers["dil1"] and report.exit_code() == 1


# ----------------------------------------------------------------------------- Keras -> TFLite


@pytest.fixture(scope="module")
def tflite_paths(tmp_path_factory):
    """The Keras net for the converter (.keras), its float32 TFLite conversion, and the
    conversion of a copy with mid's channels swapped and last's kernel flipped."""
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed: pip install 'convcheck[tensorflow]'")
    pytest.importorskip("ai_edge_litert.interpreter", reason="LiteRT is not installed: pip install 'convcheck[tflite]'")
    folder = tmp_path_factory.mktemp("walk_coverage_tflite")
    model = nets.keras_for_tflite()
    paths = {"net.keras": str(folder / "net.keras"), "net.tflite": str(folder / "net.tflite"),
             "bad.tflite": str(folder / "bad.tflite")}
    model.save(paths["net.keras"])
    nets.save_tflite(model, paths["net.tflite"])
    nets.save_tflite(nets.keras_for_tflite(["swap", "flip"]), paths["bad.tflite"])
    return paths


@pytest.fixture(scope="module")
def tflite_walked(tflite_paths):
    return walker(tflite_paths)


KERAS_CONVS = ["first", "dw", "mid", "last"]


@keras_tflite
@pytest.mark.parametrize("as_run", [False, True], ids=["as-written", "as-run"])
def test_tflite_conversion_is_equal_at_every_layer(tflite_walked, as_run):
    report = tflite_walked("net.keras", "net.tflite", as_run=as_run)
    assert [layer.original["name"] for layer in report.layers] == KERAS_CONVS
    assert report.unmatched_original == report.unmatched_port == ()
    assert [layer.verdict for layer in report.layers] == ["equal"] * 4, why(report)
    assert report.exit_code() == 0
    layers = by_name(report)
    # The converter fused each activation into its conv, and folded mid's BatchNorm.
    assert [(layers[n].port["op"], layers[n].port["activation"]) for n in KERAS_CONVS] == [
        ("CONV_2D", "relu"), ("DEPTHWISE_CONV_2D", "relu6"), ("CONV_2D", "relu"), ("CONV_2D", "linear")]
    assert layers["mid"].weights.folded_batchnorm and not layers["mid"].weights.defects
    assert all(layers[n].weights.verdict == "equal" for n in ("first", "dw", "last"))
    # TF's 'same' at stride 2 on an even size pads one row and column, at the bottom and right.
    for name in ("first", "last"):
        assert layers[name].original["stride"] == [2, 2] and layers[name].original["padding"] == [[0, 1], [0, 1]]
    ran = " ".join(report.notes["port"])
    assert ("with the XNNPACK delegate" in ran) == as_run and ("XNNPACK delegate off" in ran) == (not as_run)


@keras_tflite
@pytest.mark.parametrize("extra", [[], ["--as-run"]], ids=["as-written", "as-run"])
def test_tflite_model_alone_computes_its_own_graph(tflite_paths, extra):
    result = cli(tflite_paths["net.tflite"], "--format", "json", *extra)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["models"]["port"] is None and document["models"]["original"]["format"] == "tflite"
    assert [layer["verdict"] for layer in document["layers"]] == ["equal"] * 4
    assert [layer["original"]["activation"] for layer in document["layers"]] == ["relu", "relu6", "relu", "linear"]


@keras_tflite
def test_tflite_port_with_swapped_channels_and_flipped_kernel(tflite_walked):
    report = tflite_walked("net.keras", "bad.tflite")
    layers = by_name(report)
    assert report.unmatched_original == report.unmatched_port == ()
    assert layers["first"].verdict == "equal" and layers["dw"].verdict == "equal", why(report)
    # mid: swapped, then its BatchNorm folded in (a factor per *port* output channel, which is an
    # input channel of the original's kernel): no mapping of the weights relates them, but the
    # computation, judged against the original's kernel and its BatchNorm, reads it.
    assert causes(layers["mid"]) == {"kernel_layout": "hwoi"}, why(report)
    assert layers["mid"].match["reading"] == "input and output channels swapped"
    assert layers["mid"].weights.unrelated
    assert weight_defects(layers["last"]) == {"kernel_transform": "rot180"}
    assert causes(layers["last"]) == {"kernel_transform": "rot180"}, why(report)
    assert report.first_divergence() is layers["mid"] and report.exit_code() == 1
