"""The TFLite loader of `convcheck model` on real .tflite files run by LiteRT.

Two kinds of model: ones written op by op with LiteRT's schema module (`_tflite_nets`:
no TensorFlow, ops a converter rarely emits) and a Keras model converted by
`tf.lite.TFLiteConverter` (float32 and float16-quantized). Each captured layer is checked
against what the model declares, against the runtime's own tensors read independently
(a direct LiteRT run, Keras's intermediate outputs), and against a float64 recomputation
written here (a sanity check of the capture, not a verdict).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from convcheck.errors import InputError, MissingDependency
from convcheck.models import tflite

from . import _tflite_nets as nets

SEED = 20240611
LITERT_MODULES = ("ai_edge_litert", "ai_edge_litert.interpreter", "ai_edge_litert.schema_py_generated")


# ----------------------------------------------------------------------------- helpers


def recompute(layer):
    """Float64 reference of a captured layer from its own captured input (np.pad + explicit
    sums + bias + activation) and an error bound for a float32 run of it."""
    (top, bottom), (left, right) = layer.pads
    mode = {"zero": "constant", "constant": "constant"}.get(layer.boundary, layer.boundary)
    extra = {"constant_values": layer.cval} if mode == "constant" else {}
    image = np.pad(np.asarray(layer.input, np.float64), ((0, 0), (top, bottom), (left, right), (0, 0)),
                   mode=mode, **extra)
    kernel = np.asarray(layer.kernel, np.float64)
    kh, kw, per_group, out_channels = kernel.shape
    (sy, sx), (dy, dx) = layer.stride, layer.dilation
    rows = (image.shape[1] - (kh - 1) * dy - 1) // sy + 1
    cols = (image.shape[2] - (kw - 1) * dx - 1) // sx + 1
    out_per_group = out_channels // layer.groups
    total = np.zeros(image.shape[:1] + (rows, cols, out_channels))
    magnitude = np.zeros_like(total)
    for u in range(kh):
        for v in range(kw):
            patch = image[:, u * dy:u * dy + (rows - 1) * sy + 1:sy, v * dx:v * dx + (cols - 1) * sx + 1:sx, :]
            for g in range(layer.groups):
                ins = slice(g * per_group, (g + 1) * per_group)
                outs = slice(g * out_per_group, (g + 1) * out_per_group)
                total[..., outs] += patch[..., ins] @ kernel[u, v, :, outs]
                magnitude[..., outs] += np.abs(patch[..., ins]) @ np.abs(kernel[u, v, :, outs])
    if layer.bias is not None:
        total += np.asarray(layer.bias, np.float64)
        magnitude += np.abs(np.asarray(layer.bias, np.float64))
    activations = {"linear": lambda t: t, "relu": lambda t: np.maximum(t, 0), "relu6": lambda t: np.clip(t, 0, 6),
                   "relu_n1_to_1": lambda t: np.clip(t, -1, 1)}
    bound = 2 * (kh * kw * per_group + 2) * 2.0**-24 * magnitude + 1e-6  # + an elementwise op's own rounding
    return activations[layer.activation](total), bound


def assert_recomputed(layer):
    reference, bound = recompute(layer)
    assert layer.output.shape == reference.shape, layer.name
    excess = np.abs(np.asarray(layer.output, np.float64) - reference) - bound
    assert excess.max() <= 0, f"{layer.name}: off the float64 recomputation by {excess.max()} beyond the bound"


def litert_tensors(path, x):
    """Every named tensor of a direct LiteRT run (built-in kernels, all tensors kept): the
    independent way to read the runtime's intermediate tensors."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=path, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    return {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_tensor_details() if d["name"]}


def one_line_error(call, *words):
    """Run `call`, expect `InputError` with a one-line message containing each of `words`."""
    with pytest.raises(InputError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and len(message) < 600, message
    for word in words:
        assert word in message, message
    return message


def block_litert(monkeypatch):
    """Make `import ai_edge_litert...` fail as it does where LiteRT is not installed."""
    for name in LITERT_MODULES:
        monkeypatch.setitem(sys.modules, name, None)


# ----------------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def schema():
    return pytest.importorskip("ai_edge_litert.schema_py_generated", reason="LiteRT (ai-edge-litert) not installed")


@pytest.fixture(scope="module")
def hand(schema, tmp_path_factory):
    """The hand-written models (paths) and one seeded input for `layers_net`."""
    folder = tmp_path_factory.mktemp("tflite_hand")
    rng = np.random.default_rng(SEED)
    paths = {"layers": nets.layers_net(schema, folder / "layers.tflite", rng),
             "quantized": nets.quantized_net(schema, folder / "quantized.tflite", rng),
             "quantized_only": nets.quantized_net(schema, folder / "quantized_only.tflite", rng, float_tail=False),
             "open_batch": nets.open_net(schema, folder / "open_batch.tflite", rng, (-1, 8, 8, 2)),
             "open_size": nets.open_net(schema, folder / "open_size.tflite", rng, (1, -1, -1, 2)),
             "tanh": nets.tanh_net(schema, folder / "tanh.tflite", rng),
             "split": nets.split_dilation_net(schema, folder / "split.tflite", rng),
             "relu": nets.relu_net(schema, folder / "relu.tflite"),
             "two_inputs": nets.two_input_net(schema, folder / "two_inputs.tflite"),
             "custom": nets.custom_op_net(schema, folder / "custom.tflite", rng)}
    x = rng.standard_normal((1, 8, 8, 2)).astype(np.float32)
    return paths, x


@pytest.fixture(scope="module")
def hand_capture(hand):
    paths, x = hand
    return tflite.capture(paths["layers"], x)


@pytest.fixture(scope="module")
def keras_models(schema, tmp_path_factory):
    """The Keras model, its float32 and float16 TFLite conversions, an input and Keras's own
    intermediate outputs for it."""
    tf = pytest.importorskip("tensorflow", reason="TensorFlow not installed (needed to convert a Keras model)")
    keras = pytest.importorskip("keras", reason="Keras not installed")
    folder = tmp_path_factory.mktemp("tflite_keras")
    rng = np.random.default_rng(SEED)
    model = nets.keras_net(tf, keras, rng)
    paths = {}
    for kind, float16 in (("float32", False), ("float16", True)):
        paths[kind] = str(folder / f"{kind}.tflite")
        with open(paths[kind], "wb") as fp:
            fp.write(nets.convert(tf, model, float16=float16))
    x = rng.standard_normal((1, 16, 15, 3)).astype(np.float32)
    names = ("r1", "c2", "lr", "dw", "g3", "c5")
    probe = keras.Model(model.input, [model.get_layer(name).output for name in names])
    inner = dict(zip(names, (np.asarray(t) for t in probe(x))))
    inner["image"] = x
    return model, paths, x, inner


# ----------------------------------------------------------------------------- hand-written models

# name, op, stride, dilation, groups, pads, padding, boundary, cval, activation, absorbed, followed_by
HAND_DECLARED = [
    ("a/conv", "CONV_2D", (2, 2), (1, 1), 1, ((0, 1), (0, 1)), "same", "zero", 0.0, "relu6", ("a/relu6",),
     "MIRROR_PAD"),
    ("b/conv", "CONV_2D", (1, 1), (1, 1), 1, ((1, 1), (2, 2)), "explicit", "symmetric", 0.0, "relu_n1_to_1",
     ("b/mirror",), "PADV2"),
    ("c/depthwise", "DEPTHWISE_CONV_2D", (1, 1), (1, 1), 4, ((1, 0), (0, 1)), "explicit", "constant", 0.5,
     "linear", ("c/padv2",), "LOGISTIC"),
    ("d/conv", "CONV_2D", (1, 1), (1, 1), 1, ((1, 1), (1, 1)), "same", "zero", 0.0, "linear", (), ""),
    ("e/conv", "CONV_2D", (1, 1), (1, 1), 1, ((0, 0), (0, 0)), "valid", "zero", 0.0, "relu", ("e/relu",), ""),
]
# name: (the tensor that is the layer's input, the one that is its output) in the model.
HAND_TENSORS = {"a/conv": ("image", "a/relu6"), "b/conv": ("a/relu6", "b/conv"),
                "c/depthwise": ("b/conv", "c/depthwise"), "d/conv": ("d/mirror", "d/conv"),
                "e/conv": ("d/add", "e/relu")}


@pytest.mark.tflite
def test_hand_layers_declared(hand_capture):
    captured = hand_capture
    assert (captured.format, captured.layout, captured.input_shape, captured.input_dtype) == \
        ("tflite", "nhwc", (1, 8, 8, 2), "float32")
    assert len(captured.layers) == len(HAND_DECLARED)
    for layer, expected in zip(captured.layers, HAND_DECLARED):
        got = (layer.name, layer.op, layer.stride, layer.dilation, layer.groups, layer.pads, layer.padding,
               layer.boundary, layer.cval, layer.activation, layer.absorbed, layer.followed_by)
        assert got == expected
        assert layer.batchnorm is None and layer.dtype == "float32"
    # The REFLECT pad before d/conv stays outside it (the conv pads again with zeros): said so.
    assert any(note.startswith("d/conv: the MIRROR_PAD before it is not absorbed") for note in captured.notes)


@pytest.mark.tflite
def test_hand_weights_are_the_models_own(hand, hand_capture):
    paths, x = hand
    direct = litert_tensors(paths["layers"], x)
    for layer in hand_capture.layers:
        stored = direct[layer.name + "/weights"]
        if layer.op == "CONV_2D":
            assert np.array_equal(layer.kernel, stored.transpose(1, 2, 3, 0))
        else:  # (1, kh, kw, C * m) -> (kh, kw, 1, C * m), output channel c * m + j
            assert layer.kernel.shape == (2, 2, 1, 8)
            assert np.array_equal(layer.kernel[:, :, 0, :], stored[0])
        assert layer.kernel.dtype == np.float32
        assert np.array_equal(layer.bias, direct[layer.name + "/bias"])
    assert not hand_capture.layers[0].bias.any()  # a conv without bias: LiteRT needs zeros there


@pytest.mark.tflite
def test_hand_tensors_are_litert_own(hand, hand_capture):
    paths, x = hand
    direct = litert_tensors(paths["layers"], x)
    for layer in hand_capture.layers:
        image, output = HAND_TENSORS[layer.name]
        assert layer.input.dtype == np.float32 and layer.output.dtype == np.float32
        assert np.array_equal(layer.input, direct[image]), layer.name
        assert np.array_equal(layer.output, direct[output]), layer.name
        assert_recomputed(layer)
    first, second = hand_capture.layers[:2]
    # In sequence: the second layer reads the first's output after its absorbed RELU6, and
    # the loader keeps one array for that tensor, not two copies.
    assert second.input is first.output
    assert first.output.min() >= 0 and first.output.max() <= 6


@pytest.mark.tflite
def test_hand_as_run_uses_xnnpack(hand, hand_capture):
    paths, x = hand
    as_run = tflite.capture(paths["layers"], x, as_run=True)
    assert "XNNPACK delegate (as_run)" in as_run.notes[0]
    assert "XNNPACK delegate off" in hand_capture.notes[0]
    for layer, plain in zip(as_run.layers, hand_capture.layers):
        assert (layer.name, layer.pads, layer.boundary, layer.activation) == \
            (plain.name, plain.pads, plain.boundary, plain.activation)
        assert np.array_equal(layer.kernel, plain.kernel)
        assert_recomputed(layer)


@pytest.mark.tflite
def test_hand_as_run_falls_back_when_delegation_unknown(hand, hand_capture, monkeypatch):
    from ai_edge_litert.interpreter import Interpreter

    def unknown(self):
        raise RuntimeError("no ops details here")

    monkeypatch.setattr(Interpreter, "_get_ops_details", unknown)
    paths, x = hand
    captured = tflite.capture(paths["layers"], x, as_run=True)
    assert "built-in kernels instead" in captured.notes[0]
    for layer, plain in zip(captured.layers, hand_capture.layers):  # the same kernels ran
        assert np.array_equal(layer.output, plain.output)


@pytest.mark.tflite
def test_split_dilation_is_one_layer(hand):
    paths, _ = hand
    x = np.random.default_rng(SEED + 5).standard_normal((1, 7, 9, 2)).astype(np.float32)
    captured = tflite.capture(paths["split"], x)
    (layer,) = captured.layers
    got = (layer.name, layer.op, layer.stride, layer.dilation, layer.groups, layer.pads, layer.padding,
           layer.boundary, layer.activation, layer.absorbed, layer.followed_by)
    assert got == ("conv", "CONV_2D", (1, 1), (2, 2), 1, ((3, 3), (1, 3)), "explicit", "zero", "relu",
                   ("space_to_batch", "batch_to_space", "bias"), "")
    direct = litert_tensors(paths["split"], x)
    assert np.array_equal(layer.bias, direct["bias/value"])  # the ADD's constant is the conv's bias
    assert np.array_equal(layer.kernel, direct["conv/weights"].transpose(1, 2, 3, 0))
    assert np.array_equal(layer.input, direct["image"]) and np.array_equal(layer.output, direct["bias"])
    assert any("SPACE_TO_BATCH_ND" in note for note in captured.notes)
    assert_recomputed(layer)


@pytest.mark.tflite
def test_fused_tanh_named_and_noted(hand):
    paths, _ = hand
    x = np.random.default_rng(SEED + 4).standard_normal((1, 6, 6, 2)).astype(np.float32)
    captured = tflite.capture(paths["tanh"], x)
    (layer,) = captured.layers
    assert layer.activation == "tanh"  # declared in the op, inseparable from it
    assert any(note.startswith("conv: declares a fused TANH, which TFLite's conv kernels do not apply")
               for note in captured.notes)
    # What the note says: LiteRT's conv leaves the TANH out.
    assert np.abs(layer.output).max() > 1
    assert_recomputed(dataclasses.replace(layer, activation="linear"))


@pytest.mark.tflite
def test_quantized_conv_skipped_with_a_note(hand):
    paths, _ = hand
    x = np.random.default_rng(SEED + 1).standard_normal((1, 6, 6, 2)).astype(np.float32)
    captured = tflite.capture(paths["quantized"], x)
    assert [layer.name for layer in captured.layers] == ["f/conv"]
    (layer,) = captured.layers
    assert (layer.activation, layer.pads, layer.followed_by) == ("relu", ((0, 0), (0, 0)), "")
    assert any(note.startswith("q/conv: CONV_2D skipped: it is quantized (int8") for note in captured.notes)
    direct = litert_tensors(paths["quantized"], x)
    assert np.array_equal(layer.input, direct["q/float"])
    assert np.array_equal(layer.output, direct["f/conv"])
    assert_recomputed(layer)
    one_line_error(lambda: tflite.capture(paths["quantized_only"], x), paths["quantized_only"],
                   "no 2-D convolution layer convcheck can capture", "quantized", "nothing to walk")


@pytest.mark.tflite
def test_open_dimensions(hand):
    paths, _ = hand
    rng = np.random.default_rng(SEED + 2)
    info = tflite.inspect(paths["open_batch"])
    assert (info.format, info.layout, info.input_shape, info.input_dtype) == ("tflite", "nhwc", (1, 8, 8, 2), "float32")
    batch = rng.standard_normal((2, 8, 8, 2)).astype(np.float32)
    captured = tflite.capture(paths["open_batch"], batch)
    assert captured.input_shape == (2, 8, 8, 2)
    assert captured.layers[0].input.shape == (2, 8, 8, 2) and captured.layers[0].output.shape == (2, 8, 8, 3)
    assert_recomputed(captured.layers[0])
    assert tflite.inspect(paths["open_size"]).input_shape is None  # the user must give --input
    odd = rng.standard_normal((1, 5, 7, 2)).astype(np.float32)
    (layer,) = tflite.capture(paths["open_size"], odd).layers
    assert layer.pads == ((1, 1), (1, 1)) and layer.output.shape == (1, 5, 7, 3)
    assert_recomputed(layer)


# ----------------------------------------------------------------------------- a converted Keras model

# Keras conv (its input, its output as Keras layers), op, stride, dilation, groups, pads, padding,
# boundary, activation, followed_by
KERAS_DECLARED = [
    ("c1", "image", "r1", "CONV_2D", (2, 2), (1, 1), 1, ((0, 1), (1, 1)), "same", "zero", "relu", "PAD"),
    ("c2", "r1", "c2", "CONV_2D", (1, 1), (2, 2), 1, ((1, 2), (0, 1)), "explicit", "zero", "linear", "LEAKY_RELU"),
    ("dw", "lr", "dw", "DEPTHWISE_CONV_2D", (1, 1), (1, 1), 6, ((1, 1), (1, 1)), "same", "zero", "relu6", "CONV_2D"),
    ("g3", "dw", "g3", "CONV_2D", (1, 1), (1, 1), 3, ((0, 0), (0, 0)), "valid", "zero", "linear", "MIRROR_PAD"),
    ("c5", "g3", "c5", "CONV_2D", (2, 1), (1, 1), 1, ((1, 1), (2, 2)), "explicit", "reflect", "relu", ""),
]


@pytest.mark.tflite
@pytest.mark.tensorflow
def test_keras_inspect(keras_models):
    _, paths, _, _ = keras_models
    info = tflite.inspect(paths["float32"])
    # Keras leaves the batch open: reported as 1.
    assert (info.format, info.layout, info.input_shape, info.input_dtype) == \
        ("tflite", "nhwc", (1, 16, 15, 3), "float32")


@pytest.mark.tflite
@pytest.mark.tensorflow
def test_keras_layers_declared_and_computed(keras_models):
    _, paths, x, inner = keras_models
    captured = tflite.capture(paths["float32"], x)
    direct = list(litert_tensors(paths["float32"], x).values())
    assert len(captured.layers) == len(KERAS_DECLARED)
    assert len({layer.name for layer in captured.layers}) == len(captured.layers)
    for layer, (conv, source, result, *declared) in zip(captured.layers, KERAS_DECLARED):
        got = (layer.op, layer.stride, layer.dilation, layer.groups, layer.pads, layer.padding, layer.boundary,
               layer.activation, layer.followed_by)
        assert got == tuple(declared), conv
        assert layer.batchnorm is None and layer.dtype == "float32" and layer.name
        # The runtime's own tensors (verbatim), and the ones Keras computes for these layers.
        assert any(t.shape == layer.output.shape and np.array_equal(t, layer.output) for t in direct), conv
        assert any(t.shape == layer.input.shape and np.array_equal(t, layer.input) for t in direct), conv
        np.testing.assert_allclose(layer.input, inner[source], rtol=1e-4, atol=1e-5, err_msg=conv)
        np.testing.assert_allclose(layer.output, inner[result], rtol=1e-4, atol=1e-5, err_msg=conv)
        assert_recomputed(layer)
    assert captured.layers[1].input is captured.layers[0].output
    assert np.array_equal(captured.layers[0].input, x)


@pytest.mark.tflite
@pytest.mark.tensorflow
def test_keras_weights(keras_models):
    model, paths, x, _ = keras_models
    layers = {name: layer for name, layer in zip(("c1", "c2", "dw", "g3", "c5"),
                                                 tflite.capture(paths["float32"], x).layers)}
    for name in ("c2", "c5"):  # as Keras stores them (HWIO), exactly
        kernel, bias = model.get_layer(name).get_weights()
        assert np.array_equal(layers[name].kernel, kernel) and np.array_equal(layers[name].bias, bias)
    depthwise, bias = model.get_layer("dw").get_weights()  # (kh, kw, C, m) -> (kh, kw, 1, C * m)
    assert np.array_equal(layers["dw"].kernel, depthwise.reshape(3, 3, 1, 12))
    assert np.array_equal(layers["dw"].bias, bias)
    (grouped,) = model.get_layer("g3").get_weights()
    assert np.array_equal(layers["g3"].kernel, grouped)
    assert layers["g3"].bias is None or not layers["g3"].bias.any()
    # The converter folds the BatchNorm into c1: kernel * scale, (bias - mean) * scale + beta.
    kernel, bias = (np.asarray(w, np.float64) for w in model.get_layer("c1").get_weights())
    gamma, beta, mean, var = (np.asarray(w, np.float64) for w in model.get_layer("bn1").get_weights())
    scale = gamma / np.sqrt(var + 1e-3)
    np.testing.assert_allclose(layers["c1"].kernel, kernel * scale, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(layers["c1"].bias, (bias - mean) * scale + beta, rtol=1e-6, atol=1e-6)
    assert layers["c1"].batchnorm is None and layers["c1"].activation == "relu"


@pytest.mark.tflite
@pytest.mark.tensorflow
def test_keras_float16_weights(keras_models):
    _, paths, x, _ = keras_models
    plain = tflite.capture(paths["float32"], x)
    half = tflite.capture(paths["float16"], x)
    assert any(note.startswith("float16 weights (a float16-quantized model)") for note in half.notes)
    assert len(half.layers) == len(plain.layers)
    for layer, reference in zip(half.layers, plain.layers):
        assert layer.kernel.dtype == np.float16 and layer.bias.dtype == np.float16
        assert np.array_equal(layer.kernel, reference.kernel.astype(np.float16))
        assert np.array_equal(layer.bias, reference.bias.astype(np.float16))
        assert (layer.pads, layer.dilation, layer.groups, layer.dtype) == \
            (reference.pads, reference.dilation, reference.groups, "float32")
        assert_recomputed(layer)


# ----------------------------------------------------------------------------- bad input


def test_import_needs_no_framework():
    code = ("import sys, convcheck.models.tflite; "
            "print(sorted(m for m in ('ai_edge_litert', 'tensorflow', 'flatbuffers', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("content, words", [
    (None, ["no such file"]),
    (b"", ["is empty"]),
    (b"\x93NUMPY\x01\x00" + b" " * 60, ["is not a TFLite model", ".npy array"]),
    (b"PK\x03\x04" + b"\x00" * 60, ["is not a TFLite model", "zip archive"]),
    (b"\x89HDF\r\n\x1a\n" + b"\x00" * 60, ["is not a TFLite model", "HDF5"]),
    (np.random.default_rng(SEED).integers(0, 256, 4096, dtype=np.uint8).tobytes(), ["lacks the TFLite identifier"]),
    (b"\x00\x00", ["is truncated"]),
    (b"\xff\xff\x00\x00TFL3" + b"\x00" * 32, ["truncated or corrupt"]),
], ids=["missing", "empty", "npy", "zip", "hdf5", "random", "two-bytes", "root-outside"])
def test_bad_files_refused_before_litert(tmp_path, monkeypatch, content, words):
    path = str(tmp_path / "model.tflite")
    if content is not None:
        with open(path, "wb") as fp:
            fp.write(content)
    block_litert(monkeypatch)  # refused on its bytes alone: LiteRT is never needed
    x = np.zeros((1, 4, 4, 1), np.float32)
    one_line_error(lambda: tflite.inspect(path), path, *words)
    one_line_error(lambda: tflite.capture(path, x), path, *words)


def test_folder_refused(tmp_path):
    one_line_error(lambda: tflite.inspect(str(tmp_path)), str(tmp_path), "not a .tflite model")


@pytest.mark.tflite
@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.6, 0.95, 0.999])
def test_truncated_model(hand, tmp_path, fraction):
    paths, x = hand
    with open(paths["layers"], "rb") as fp:
        data = fp.read()
    path = str(tmp_path / "cut.tflite")
    with open(path, "wb") as fp:
        fp.write(data[:max(int(len(data) * fraction), 9)])
    one_line_error(lambda: tflite.inspect(path), path, "truncated")
    one_line_error(lambda: tflite.capture(path, x), path, "truncated")


@pytest.mark.tflite
def test_corrupt_body(tmp_path):
    rng = np.random.default_rng(SEED + 3)
    body = bytearray(rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())
    body[0:4] = (64).to_bytes(4, "little")
    body[4:8] = b"TFL3"
    path = str(tmp_path / "noise.tflite")
    with open(path, "wb") as fp:
        fp.write(bytes(body))
    one_line_error(lambda: tflite.capture(path, np.zeros((1, 4, 4, 1), np.float32)), path)


@pytest.mark.tflite
def test_wrong_input(hand):
    paths, x = hand
    path = paths["layers"]
    for wrong in (x[0], x.transpose(0, 3, 1, 2), x.astype(np.float64), np.zeros((1, 8, 9, 2), np.float32),
                  x.tolist()):
        one_line_error(lambda: tflite.capture(path, wrong), path, "takes an input of shape (1, 8, 8, 2) and dtype "
                       "float32", "the input given has")
    one_line_error(lambda: tflite.capture(paths["open_size"], np.zeros((1, 5, 7, 3), np.float32)),
                   "shape (1, ?, ?, 2)", "shape (1, 5, 7, 3)")


@pytest.mark.tflite
def test_models_without_a_conv_or_with_two_inputs(hand):
    paths, _ = hand
    x = np.zeros((1, 4, 4, 1), np.float32)
    one_line_error(lambda: tflite.capture(paths["relu"], x), paths["relu"],
                   "has no 2-D convolution layer: nothing to walk")
    one_line_error(lambda: tflite.inspect(paths["two_inputs"]), paths["two_inputs"], "takes 2 inputs")


@pytest.mark.tflite
def test_litert_refusal_is_one_line(hand):
    paths, _ = hand
    one_line_error(lambda: tflite.capture(paths["custom"], np.zeros((1, 4, 4, 1), np.float32)),
                   paths["custom"], "LiteRT cannot run it", "ConvcheckMystery")


@pytest.mark.tflite
def test_litert_missing(hand, monkeypatch):
    paths, x = hand
    block_litert(monkeypatch)
    for call in (lambda: tflite.inspect(paths["layers"]), lambda: tflite.capture(paths["layers"], x)):
        with pytest.raises(MissingDependency) as caught:
            call()
        assert caught.value.extra == "tflite"
        assert str(caught.value).endswith("pip install 'convcheck[tflite]'")
