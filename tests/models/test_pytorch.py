"""The PyTorch model loader (convcheck.models.pytorch) on small real nets.

Each net of tests/models/_pytorch_nets.py is saved four ways (torch.export .pt2,
TorchScript scripted and traced, and a package.module:attr name) and captured; every
layer's declared fields are checked against what the net declares, its kernel against
the module's own weights (exactly), its input and output against the tensors the net's
eager `taps` produce (exactly), and its output against a float64 recomputation here.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from convcheck.errors import InputError, MissingDependency

pytestmark = [pytest.mark.torch]
torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'convcheck[torch]'")

from convcheck.models import pytorch as loader  # noqa: E402
from convcheck.models.layers import CapturedModel, ConvLayer  # noqa: E402

from . import _pytorch_nets as nets  # noqa: E402

SOURCES = ("pt2", "script", "trace", "module")
# Pairs of consecutive layers: the second reads exactly what the first wrote.
SEQUENCES = {"resnet": [("conv1", "conv2")], "mobilenet": [("depthwise", "pointwise"), ("pointwise", "grouped")],
             "pad": [("conv_reflect", "conv_zero"), ("conv_zero", "conv_constant"), ("conv_constant", "conv_edge"),
                     ("conv_edge", "conv_wrap")],
             "dilated": [("same_even", "same_dilated")]}


def example(name: str, dtype=np.float32) -> np.ndarray:
    """The seeded NCHW input each net is saved and run with."""
    return np.random.default_rng(7).standard_normal(nets.NETS[name][1]).astype(dtype)


def nhwc(tensor) -> np.ndarray:
    return tensor.detach().permute(0, 2, 3, 1).numpy()


def reference(layer: ConvLayer) -> np.ndarray:
    """The layer's output recomputed in float64 from its captured input: np.pad with its
    boundary, explicit sums over taps and channels per group, bias, BatchNorm, activation."""
    image = np.asarray(layer.input, np.float64)
    (top, bottom), (left, right) = layer.pads
    mode = {"zero": "constant", "constant": "constant"}.get(layer.boundary, layer.boundary)
    extra = {"constant_values": layer.cval} if mode == "constant" else {}
    padded = np.pad(image, ((0, 0), (top, bottom), (left, right), (0, 0)), mode=mode, **extra)
    kernel = np.asarray(layer.kernel, np.float64)
    kh, kw, per_group, c_out = kernel.shape
    (sy, sx), (dy, dx) = layer.stride, layer.dilation
    rows = (padded.shape[1] - (kh - 1) * dy - 1) // sy + 1
    cols = (padded.shape[2] - (kw - 1) * dx - 1) // sx + 1
    out = np.zeros((image.shape[0], rows, cols, c_out))
    outs_per_group = c_out // layer.groups
    for u in range(kh):
        for v in range(kw):
            window = padded[:, u * dy: u * dy + (rows - 1) * sy + 1: sy, v * dx: v * dx + (cols - 1) * sx + 1: sx]
            for g in range(layer.groups):
                ins = window[..., g * per_group:(g + 1) * per_group]
                outs = slice(g * outs_per_group, (g + 1) * outs_per_group)
                out[..., outs] += np.einsum("nhwc,co->nhwo", ins, kernel[u, v, :, outs])
    if layer.bias is not None:
        out += np.asarray(layer.bias, np.float64)
    if layer.batchnorm is not None:
        out = out * layer.batchnorm.scale() + layer.batchnorm.shift()
    if layer.activation in ("relu", "relu6"):
        out = np.maximum(out, 0.0)
    if layer.activation == "relu6":
        out = np.minimum(out, 6.0)
    return out


def assert_recomputed(layer: ConvLayer, rtol: float = 1e-5) -> None:
    expected = reference(layer)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(np.asarray(layer.output, np.float64), expected, rtol=rtol, atol=rtol * scale,
                               err_msg=f"layer {layer.name}")


def expected_ops(source: str, string_padding: bool) -> str:
    if source == "trace":
        return "aten._convolution_mode" if string_padding else "aten._convolution"
    return "aten.conv2d.padding" if string_padding else "aten.conv2d"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Every net saved every way; the module files' folder is on sys.path meanwhile."""
    folder = tmp_path_factory.mktemp("pytorch_models")
    for name in nets.NETS:
        model, x = nets.build(name), torch.from_numpy(example(name))
        torch.export.save(torch.export.export(model, (x,), strict=False), str(folder / f"{name}.pt2"))
        torch.jit.save(torch.jit.script(model), str(folder / f"{name}_script.pt"))
        torch.jit.save(torch.jit.trace(model, (x,), check_trace=False), str(folder / f"{name}_trace.pt"))
        (folder / f"ccnets_{name}.py").write_text(
            f"from tests.models._pytorch_nets import build\nmodel = build({name!r})\n")
    patch = pytest.MonkeyPatch()
    patch.syspath_prepend(str(folder))
    yield folder
    patch.undo()


def reference_to(folder, name: str, source: str) -> str:
    return {"pt2": str(folder / f"{name}.pt2"), "script": str(folder / f"{name}_script.pt"),
            "trace": str(folder / f"{name}_trace.pt"), "module": f"ccnets_{name}:model"}[source]


def check_layers(captured: CapturedModel, name: str, model, x: np.ndarray, source: str) -> None:
    """Every declared field, kernel, bias, BatchNorm and tensor of every layer of a net."""
    expected = nets.LAYERS[name]
    assert [layer.name for layer in captured.layers] == [want["name"] for want in expected]
    taps = model.taps(torch.from_numpy(x))
    for layer, want in zip(captured.layers, expected):
        conv = model.get_submodule(want["name"])
        assert layer.op == expected_ops(source, want["string_padding"])
        np.testing.assert_array_equal(layer.kernel, conv.weight.detach().permute(2, 3, 1, 0).numpy())
        assert layer.kernel.dtype == conv.weight.detach().numpy().dtype
        if want["bias"]:
            np.testing.assert_array_equal(layer.bias, conv.bias.detach().numpy())
        else:
            assert layer.bias is None
        declared = (layer.stride, layer.dilation, layer.groups, layer.pads, layer.padding, layer.boundary,
                    layer.cval, layer.activation, layer.followed_by, layer.dtype)
        assert declared == (want["stride"], want["dilation"], want["groups"], want["pads"], want["padding"],
                            want["boundary"], want["cval"], want["activation"], want["followed_by"], "float32")
        assert len(layer.absorbed) == want["pad_op"] + (want["batchnorm"] is not None) + (want["activation"] != "linear")
        if want["batchnorm"] is None:
            assert layer.batchnorm is None
        else:
            bn = model.get_submodule(want["batchnorm"])
            for got, own in ((layer.batchnorm.mean, bn.running_mean), (layer.batchnorm.var, bn.running_var),
                             (layer.batchnorm.weight, bn.weight), (layer.batchnorm.bias, bn.bias)):
                np.testing.assert_array_equal(got, own.detach().numpy())
            assert layer.batchnorm.eps == bn.eps
        tap_in, tap_out = taps[want["name"]]
        np.testing.assert_array_equal(layer.input, nhwc(tap_in), err_msg=f"input of {layer.name}")
        np.testing.assert_array_equal(layer.output, nhwc(tap_out), err_msg=f"output of {layer.name}")
        assert_recomputed(layer)
    by_name = {layer.name: layer for layer in captured.layers}
    for first, second in SEQUENCES[name]:
        np.testing.assert_array_equal(by_name[second].input, by_name[first].output)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", sorted(nets.NETS))
def test_every_layer_is_captured_as_declared(saved, name, source):
    x = example(name)
    captured = loader.capture(reference_to(saved, name, source), x)
    assert (captured.format, captured.layout, captured.input_shape, captured.input_dtype) == \
        ("pytorch", "nchw", x.shape, "float32")
    check_layers(captured, name, nets.build(name), x, source)


def test_a_decomposed_program_is_read_through_its_native_batchnorm(saved, tmp_path):
    """run_decompositions() turns conv2d into aten.convolution and BatchNorm into
    _native_batch_norm_legit_no_training read through getitem 0: still one layer each."""
    model, x = nets.build("resnet"), example("resnet")
    program = torch.export.export(model, (torch.from_numpy(x),), strict=False).run_decompositions()
    torch.export.save(program, str(tmp_path / "decomposed.pt2"))
    captured = loader.capture(str(tmp_path / "decomposed.pt2"), x)
    assert [layer.op for layer in captured.layers] == ["aten.convolution"] * 3
    for layer, want in zip(captured.layers, nets.LAYERS["resnet"]):
        assert (layer.name, layer.activation, layer.followed_by) == (want["name"], want["activation"],
                                                                     want["followed_by"])
        np.testing.assert_array_equal(layer.batchnorm.mean, model.get_submodule(want["batchnorm"]).running_mean)
        np.testing.assert_array_equal(layer.output, nhwc(model.taps(torch.from_numpy(x))[layer.name][1]))
        assert_recomputed(layer)


def test_float64_and_bfloat16_models_keep_their_dtype(tmp_path):
    model = nets.build("dilated").double()
    x = example("dilated", np.float64)
    torch.export.save(torch.export.export(model, (torch.from_numpy(x),), strict=False), str(tmp_path / "f64.pt2"))
    assert loader.inspect(str(tmp_path / "f64.pt2")).input_dtype == "float64"
    captured = loader.capture(str(tmp_path / "f64.pt2"), x)
    assert captured.input_dtype == "float64"
    for layer in captured.layers:
        assert (layer.dtype, layer.kernel.dtype, layer.output.dtype) == ("float64", np.float64, np.float64)
        assert_recomputed(layer, rtol=1e-12)

    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes comes with numpy-using frameworks")
    model = nets.build("resnet").to(torch.bfloat16)
    x = example("resnet").astype(ml_dtypes.bfloat16)
    image = torch.from_numpy(x.view(np.int16)).view(torch.bfloat16)
    torch.export.save(torch.export.export(model, (image,), strict=False), str(tmp_path / "bf16.pt2"))
    captured = loader.capture(str(tmp_path / "bf16.pt2"), x)
    taps = model.taps(image)
    for layer in captured.layers:
        assert (layer.dtype, layer.kernel.dtype, layer.input.dtype) == ("bfloat16", x.dtype, x.dtype)
        weight = model.get_submodule(layer.name).weight.detach().permute(2, 3, 1, 0).contiguous()
        np.testing.assert_array_equal(layer.kernel.view(np.int16), weight.view(torch.int16).numpy())
        np.testing.assert_array_equal(layer.output.view(np.int16),
                                      taps[layer.name][1].permute(0, 2, 3, 1).contiguous().view(torch.int16).numpy())
        assert_recomputed(layer, rtol=2e-2)


def test_a_module_that_cannot_be_exported_is_captured_with_hooks(tmp_path, monkeypatch):
    """Dynamic's forward branches on a tensor's value: export fails, hooks on the modules
    still find each conv with its BatchNorm and ReLU modules; the functional `+=` after
    conv2 is not seen, so followed_by stays empty (the note says so)."""
    (tmp_path / "ccnets_dynamic.py").write_text(
        "from tests.models import _pytorch_nets as nets\nimport torch\n"
        "def make():\n    torch.manual_seed(sum(map(ord, 'resnet')))\n    return nets.Dynamic()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    x = example("resnet")
    captured = loader.capture("ccnets_dynamic:make", x)
    assert captured.notes[0].startswith("torch.export failed (")
    assert "forward hooks" in captured.notes[0]
    model = nets.build("resnet")
    taps = model.taps(torch.from_numpy(x))
    assert [layer.name for layer in captured.layers] == ["conv1", "conv2", "downsample.0"]
    for layer, want in zip(captured.layers, nets.LAYERS["resnet"]):
        assert (layer.op, layer.stride, layer.pads, layer.activation) == \
            ("aten.conv2d", want["stride"], want["pads"], want["activation"])
        assert layer.followed_by == ""
        np.testing.assert_array_equal(layer.kernel, model.get_submodule(layer.name).weight.detach()
                                      .permute(2, 3, 1, 0).numpy())
        np.testing.assert_array_equal(layer.input, nhwc(taps[layer.name][0]))
        np.testing.assert_array_equal(layer.output, nhwc(taps[layer.name][1]))
        assert_recomputed(layer)


def test_hooks_see_pad_modules_and_a_module_padding_mode(tmp_path, monkeypatch):
    """The hooks path absorbs pad modules and a conv's own padding_mode like the graph paths."""
    (tmp_path / "ccnets_padhooks.py").write_text(
        "from tests.models import _pytorch_nets as nets\n"
        "class Unexportable(nets.PadNet):\n"
        "    def forward(self, x):\n"
        "        return super().forward(x) if float(x.sum()) == float(x.sum()) else x\n"
        "def make():\n    import torch\n    torch.manual_seed(sum(map(ord, 'pad')))\n    return Unexportable()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    x = example("pad")
    captured = loader.capture("ccnets_padhooks:make", x)
    assert captured.notes[0].startswith("torch.export failed (")
    taps = nets.build("pad").taps(torch.from_numpy(x))
    for layer, want in zip(captured.layers, nets.LAYERS["pad"]):
        assert (layer.name, layer.pads, layer.boundary, layer.cval) == \
            (want["name"], want["pads"], want["boundary"], want["cval"])
        np.testing.assert_array_equal(layer.output, nhwc(taps[layer.name][1]))
        assert_recomputed(layer)
