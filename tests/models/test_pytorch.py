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

pytestmark = [pytest.mark.torch,
              # Saving the test models: TorchScript is deprecated, and an even 'same' kernel copies its input.
              pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning"),
              pytest.mark.filterwarnings("ignore:`isinstance.treespec, LeafSpec.` is deprecated:FutureWarning")]
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
        absorbed = want["pad_op"] + (want["batchnorm"] is not None) + (want["activation"] != "linear")
        assert len(layer.absorbed) == absorbed
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


@pytest.mark.parametrize("source", SOURCES)
def test_tensors_kept_on_disk_are_the_tensors_captured(saved, source):
    """A walk's capture hands each tensor to its spill (convcheck.models.spill; every tensor here,
    see conftest.py): the layers then hold read-only maps of files, with every value, dtype and
    shared tensor as captured."""
    from convcheck.models import spill
    x = example("resnet")
    with spill.Spill() as kept:
        captured = loader.capture(reference_to(saved, "resnet", source), x, keep=kept.keep)
        for layer in captured.layers:
            assert isinstance(layer.input, np.memmap) and isinstance(layer.output, np.memmap)
            assert not layer.output.flags.writeable
        check_layers(captured, "resnet", nets.build("resnet"), x, source)
        kept.release(*(layer.output for layer in captured.layers))   # the values stay readable
        check_layers(captured, "resnet", nets.build("resnet"), x, source)


def test_bfloat16_tensors_kept_on_disk_keep_their_dtype(tmp_path):
    from convcheck.models import spill
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes comes with numpy-using frameworks")
    model = nets.build("resnet").to(torch.bfloat16)
    x = example("resnet").astype(ml_dtypes.bfloat16)
    image = torch.from_numpy(x.view(np.int16)).view(torch.bfloat16)
    torch.export.save(torch.export.export(model, (image,), strict=False), str(tmp_path / "bf16.pt2"))
    with spill.Spill() as kept:
        captured = loader.capture(str(tmp_path / "bf16.pt2"), x, keep=kept.keep)
        taps = model.taps(image)
        for layer in captured.layers:
            assert isinstance(layer.output, np.memmap) and layer.output.dtype == x.dtype
            np.testing.assert_array_equal(
                layer.output.view(np.int16),
                taps[layer.name][1].permute(0, 2, 3, 1).contiguous().view(torch.int16).numpy())


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


@pytest.mark.parametrize("source", ["pt2", "script", "trace"])
def test_transposed_and_1d_convolutions_are_left_out_with_a_note(tmp_path, source):
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ConvTranspose2d(4, 2, 2),
                                torch.nn.Flatten(2), torch.nn.Conv1d(2, 2, 3)).eval()
    x = np.random.default_rng(5).standard_normal((1, 3, 6, 6)).astype(np.float32)
    path = str(tmp_path / ("model.pt2" if source == "pt2" else "model.pt"))
    if source == "pt2":
        torch.export.save(torch.export.export(model, (torch.from_numpy(x),), strict=False), path)
    else:
        saved = torch.jit.script(model) if source == "script" else torch.jit.trace(model, (torch.from_numpy(x),),
                                                                                   check_trace=False)
        torch.jit.save(saved, path)
    captured = loader.capture(path, x)
    assert [layer.name for layer in captured.layers] == ["0"]
    np.testing.assert_array_equal(captured.layers[0].output, nhwc(model[0](torch.from_numpy(x))))
    assert "1 1-D convolution not captured" in " ".join(captured.notes)
    assert "1 transposed convolution not captured" in " ".join(captured.notes)


# ----------------------------------------------------------------------------- inspect


def test_inspect_reads_what_each_source_declares(saved, tmp_path, monkeypatch):
    assert loader.inspect(reference_to(saved, "resnet", "pt2")) == loader.ModelInfo(
        path=reference_to(saved, "resnet", "pt2"), format="pytorch", layout="nchw", input_shape=(1, 4, 10, 10),
        input_dtype="float32")
    for source in ("script", "trace", "module"):
        info = loader.inspect(reference_to(saved, "resnet", source))
        assert (info.format, info.layout, info.input_shape, info.input_dtype) == ("pytorch", "nchw", None, "float32")

    model, batch_of_two = nets.build("resnet"), torch.zeros(2, 4, 10, 10)
    dynamic = torch.export.Dim.DYNAMIC
    for name, dims in (("open_batch", {0: dynamic}), ("open_size", {2: dynamic, 3: dynamic})):
        program = torch.export.export(model, (batch_of_two,), dynamic_shapes={"x": dims}, strict=False)
        torch.export.save(program, str(tmp_path / f"{name}.pt2"))
    assert loader.inspect(str(tmp_path / "open_batch.pt2")).input_shape == (1, 4, 10, 10)
    assert loader.inspect(str(tmp_path / "open_size.pt2")).input_shape is None
    captured = loader.capture(str(tmp_path / "open_size.pt2"), np.zeros((2, 4, 12, 14), np.float32))
    assert captured.input_shape == (2, 4, 12, 14)
    assert [layer.output.shape for layer in captured.layers] == [(2, 6, 7, 8)] * 3

    (tmp_path / "ccnets_examples.py").write_text(
        "import torch\nfrom tests.models._pytorch_nets import build\n"
        "model = build('resnet')\nexample_input = torch.zeros(2, 4, 16, 16)\n"
        "def shaped():\n    m = build('resnet')\n    m.example_input = (1, 4, 12, 12)\n    return m\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert loader.inspect("ccnets_examples:model").input_shape == (2, 4, 16, 16)
    assert loader.inspect("ccnets_examples:shaped").input_shape == (1, 4, 12, 12)


# ----------------------------------------------------------------------------- bad input


def assert_one_line(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.fixture(scope="module")
def bad_files(saved, tmp_path_factory):
    """Broken and foreign files next to the good ones."""
    folder = tmp_path_factory.mktemp("pytorch_bad")
    good_pt2 = (saved / "resnet.pt2").read_bytes()
    good_script = (saved / "resnet_script.pt").read_bytes()
    (folder / "empty.pt").write_bytes(b"")
    (folder / "truncated.pt2").write_bytes(good_pt2[: len(good_pt2) // 2])
    (folder / "truncated.pt").write_bytes(good_script[:-64])
    (folder / "random.pt").write_bytes(np.random.default_rng(3).bytes(2000))
    np.save(folder / "array.npy", np.zeros(3))
    (folder / "array.npy").rename(folder / "array.pt")
    (folder / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    (folder / "model.onnx").write_bytes(b"\x08\x08\x12\x07pytorch\x1a\x052.3.0" + bytes(100))
    (folder / "model.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(100))
    with zipfile.ZipFile(folder / "keras.pt", "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", "not weights")
    torch.save(nets.build("resnet").state_dict(), str(folder / "state_dict.pth"))
    # One byte of a weight flipped: the zip's CRC no longer matches.
    with zipfile.ZipFile(saved / "resnet.pt2") as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("data/weights/weight_0"))
    header = good_pt2[info.header_offset: info.header_offset + 30]
    start = info.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
    flipped = bytearray(good_pt2)
    flipped[start + 3] ^= 0xFF
    (folder / "flipped.pt2").write_bytes(bytes(flipped))
    no_conv = nets.NoConv().eval()
    torch.export.save(torch.export.export(no_conv, (torch.zeros(1, 8),), strict=False), str(folder / "linear.pt2"))
    torch.jit.save(torch.jit.script(no_conv), str(folder / "linear.pt"))
    return folder


@pytest.mark.parametrize("name, fragments", [
    ("missing.pt2", ["no such file"]),
    ("empty.pt", ["is empty (0 bytes)"]),
    ("truncated.pt2", ["truncated or corrupt"]),
    ("truncated.pt", ["truncated or corrupt"]),
    ("random.pt", ["not a zip archive"]),
    ("array.pt", ["not a zip archive"]),
    ("model.h5", ["HDF5"]),
    ("model.onnx", ["ONNX"]),
    ("model.tflite", ["TFLite"]),
    ("keras.pt", ["zip archive but not one torch.export.save or torch.jit.save writes", "config.json"]),
    ("state_dict.pth", ["torch.save checkpoint", "never unpickles"]),
    ("flipped.pt2", ["corrupt", "CRC"]),
    (".", ["is a directory"]),
])
def test_bad_files_are_refused_in_one_line(bad_files, name, fragments):
    path = str(bad_files / name)
    for call in (lambda: loader.inspect(path), lambda: loader.capture(path, example("resnet"))):
        with pytest.raises(InputError) as error:
            call()
        assert_one_line(error, f"'{path}'", *fragments)


def test_models_without_a_conv_have_nothing_to_walk(bad_files, tmp_path, monkeypatch):
    (tmp_path / "ccnets_linear.py").write_text("from tests.models._pytorch_nets import NoConv\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for path in (str(bad_files / "linear.pt2"), str(bad_files / "linear.pt"), "ccnets_linear:NoConv"):
        with pytest.raises(InputError) as error:
            loader.capture(path, np.zeros((1, 8), np.float32))
        assert_one_line(error, path, "has no 2-D convolution layer: nothing to walk")


def test_inputs_the_model_cannot_take_are_refused(saved):
    pt2, script = reference_to(saved, "resnet", "pt2"), reference_to(saved, "resnet", "script")
    with pytest.raises(InputError) as error:
        loader.capture(pt2, np.zeros((1, 4, 9, 10), np.float32))
    assert_one_line(error, pt2, "(1, 4, 9, 10) float32", "expects (1, 4, 10, 10) float32")
    with pytest.raises(InputError) as error:
        loader.capture(pt2, np.zeros((1, 4, 10, 10), np.float64))
    assert_one_line(error, pt2, "float64", "expects (1, 4, 10, 10) float32")
    with pytest.raises(InputError) as error:   # TorchScript declares no shape: the run itself fails
        loader.capture(script, np.zeros((1, 3, 10, 10), np.float32))
    assert_one_line(error, script, "(1, 3, 10, 10) float32", "expected input[1, 3, 10, 10] to have 4 channels")
    with pytest.raises(InputError) as error:
        loader.capture(script, np.zeros((1, 4, 10, 10), np.int32))
    assert_one_line(error, script, "int32")


@pytest.mark.parametrize("spec, fragments", [
    ("ccnets_nowhere:model", ["cannot import module 'ccnets_nowhere'"]),
    ("ccnets_bad:missing", ["has no attribute 'missing'"]),
    ("ccnets_bad:Needs", ["calling the class 'Needs' with no arguments raised TypeError"]),
    ("ccnets_bad:number", ["is an object of type int, not a torch.nn.Module"]),
    ("ccnets_bad:not_a_module", ["returned a str, not a torch.nn.Module"]),
    ("ccnets_raises:model", ["importing 'ccnets_raises' raised ZeroDivisionError"]),
    ("no/such:thing", ["no such file, and not a package.module:attr name"]),
])
def test_bad_module_names_are_refused_in_one_line(tmp_path, monkeypatch, spec, fragments):
    (tmp_path / "ccnets_bad.py").write_text(
        "import torch\nnumber = 3\n"
        "class Needs(torch.nn.Module):\n    def __init__(self, width):\n        super().__init__()\n"
        "def not_a_module():\n    return 'conv'\n")
    (tmp_path / "ccnets_raises.py").write_text("model = 1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InputError) as error:
        loader.inspect(spec)
    assert_one_line(error, spec, *fragments)


class _Payload:
    """Unpickling this writes a file: what a hostile model file would do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('unpickled')",))


def _rewrite(source, target, replace: dict) -> None:
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copy:
        for info in original.infolist():
            copy.writestr(info.filename, replace.get(info.filename, original.read(info.filename)))


@pytest.mark.parametrize("member", ["weights", "sample_inputs"])
def test_a_pt2_that_would_unpickle_code_is_refused_before_loading(saved, tmp_path, member):
    """torch.export.load unpickles with weights_only=False a weight marked use_pickle, and
    falls back to it for sample inputs that fail weights_only=True: such files are refused
    before torch.export.load sees them, and nothing in them runs."""
    marker = tmp_path / "ran.txt"
    source = saved / "resnet.pt2"
    with zipfile.ZipFile(source) as archive:
        names = archive.namelist()
        config_name = next(n for n in names if n.endswith("data/weights/model_weights_config.json"))
        config = json.loads(archive.read(config_name))
    payload = pickle.dumps(_Payload(str(marker)))
    if member == "weights":
        entry = next(iter(config["config"]))
        config["config"][entry]["use_pickle"] = True
        weight = config_name.rsplit("/", 1)[0] + "/" + config["config"][entry]["path_name"]
        replace = {config_name: json.dumps(config).encode(), weight: payload}
    else:
        replace = {next(n for n in names if n.endswith("data/sample_inputs/model.pt")): payload}
    hostile = tmp_path / "hostile.pt2"
    _rewrite(source, hostile, replace)
    with pytest.raises(InputError) as error:
        loader.inspect(str(hostile))
    assert_one_line(error, str(hostile), "is not plain tensors", "never unpickles")
    assert not marker.exists()


# ----------------------------------------------------------------------------- torch missing


def test_importing_the_loader_imports_no_framework():
    code = ("import sys, convcheck.models.pytorch as m; "
            "print(sorted(n for n in ('torch', 'tensorflow', 'onnx', 'jax') if n in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.stdout.strip() == "[]"


def test_without_torch_a_good_file_needs_the_extra_and_a_bad_one_is_still_bad(saved, bad_files, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)   # `import torch` now raises ImportError
    for path in (reference_to(saved, "resnet", "pt2"), reference_to(saved, "resnet", "script"),
                 reference_to(saved, "resnet", "module")):
        for call in (lambda: loader.inspect(path), lambda: loader.capture(path, example("resnet"))):
            with pytest.raises(MissingDependency) as error:
                call()
            assert error.value.extra == "torch"
            assert str(error.value).endswith("pip install 'convcheck[torch]'")
    with pytest.raises(InputError):   # checked before torch is needed
        loader.inspect(str(bad_files / "state_dict.pth"))


def test_nothing_torch_prints_or_logs_reaches_the_terminal(saved, tmp_path, monkeypatch, capfd):
    """A failed export logs guards and whole graphs, a bad archive logs a traceback: none of
    it may reach stdout (JSON only) or stderr (one InputError line)."""
    (tmp_path / "ccnets_loud.py").write_text(
        "from tests.models import _pytorch_nets as nets\nprint('model module printing')\n"
        "def make():\n    return nets.Dynamic().eval()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    loader.capture("ccnets_loud:make", example("resnet"))
    with zipfile.ZipFile(saved / "resnet.pt2") as archive:
        program = next(n for n in archive.namelist() if n.endswith("models/model.json"))
    _rewrite(saved / "resnet.pt2", tmp_path / "not_a_program.pt2", {program: b'{"not": "a program"}'})
    with pytest.raises(InputError) as error:
        loader.inspect(str(tmp_path / "not_a_program.pt2"))
    assert_one_line(error, "torch.export.load cannot read it")
    assert capfd.readouterr() == ("", "")


def test_a_leaky_relu_of_slope_zero_is_taken_in_as_a_relu(tmp_path):
    """F.leaky_relu(x, 0) computes ReLU itself: taken into the layer as 'relu' (a second hunt for
    false causes found a faithful port named 'activation=linear')."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.LeakyReLU(0.0)).eval()
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    torch.export.save(torch.export.export(model, (torch.from_numpy(x),), strict=False), str(tmp_path / "l.pt2"))
    (layer,) = loader.capture(str(tmp_path / "l.pt2"), x).layers
    assert layer.activation == "relu" and len(layer.absorbed) == 1
