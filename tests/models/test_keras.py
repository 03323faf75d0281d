"""The Keras model loader (`convcheck.models.keras`) on small real Keras 3 models.

Each model is built and saved once per module. A captured layer is checked field by field
against the model's own layers, its input and output against the same tensors got an
independent way (a sub-model of the original in-memory graph, or the Sequential's layers
called one by one), and its output against a float64 recomputation of what it declares.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest

from convcheck.errors import InputError, MissingDependency
from convcheck.models import keras as loader
from convcheck.models.layers import ModelInfo

from . import _keras_nets as nets

tensorflow = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def keras():
    for module in ("tensorflow", "keras"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: the Keras loader needs the 'tensorflow' extra")
    return loader._import_keras()


@pytest.fixture(scope="module")
def saved(keras, tmp_path_factory):
    """Every test model saved once, with the tensors the tests expect, got independently."""
    with warnings.catch_warnings():
        # Keras's own saving calls np.array on its variables, which numpy 2 warns about.
        warnings.simplefilter("ignore", DeprecationWarning)
        return _save_models(keras, tmp_path_factory)


def _save_models(keras, tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_models")
    rng = np.random.default_rng(0)
    out = {"dir": folder}

    chain, taps = nets.functional_chain()
    x = rng.standard_normal((1, 9, 9, 3)).astype("float32")
    chain.save(folder / "chain.keras")
    names = list(taps)
    values = keras.Model(chain.inputs[0], [taps[n] for n in names])(x, training=False)
    out["chain"] = (chain, x, {n: keras.ops.convert_to_numpy(v) for n, v in zip(names, values)},
                    taps["reflect_valid"]._keras_history.operation._inbound_nodes[0].input_tensors[0]
                    ._keras_history.operation.name)

    stack = nets.sequential_stack()
    x = rng.standard_normal((1, 12, 12, 4)).astype("float32")
    stack.save(folder / "stack.keras")
    stack.save(folder / "stack.h5")
    h, chain_values = x, {}
    for layer in stack.layers:  # the Sequential's layers one by one, eagerly
        h = layer(h, training=False)
        chain_values[layer.name] = keras.ops.convert_to_numpy(h)
    out["stack"] = (stack, x, chain_values)

    nested, taps = nets.nested_model()
    x = rng.standard_normal((2, 8, 10, 3)).astype("float32")
    nested.save(folder / "nested.keras")
    nested.save(folder / "nested.h5")
    names = list(taps)
    values = keras.Model(nested.inputs[0], [taps[n] for n in names])(x, training=False)
    out["nested"] = (nested, x, {n: keras.ops.convert_to_numpy(v) for n, v in zip(names, values)})

    nchw, taps = nets.channels_first_model()
    x = rng.standard_normal((1, 3, 8, 8)).astype("float32")
    nchw.save(folder / "nchw.keras")
    out["nchw"] = (nchw, x, keras.ops.convert_to_numpy(nchw(x, training=False)))

    mixed, taps = nets.mixed_and_opaque_model()
    x = rng.standard_normal((1, 8, 8, 3)).astype("float32")
    mixed.save(folder / "mixed.keras")
    out["mixed"] = (mixed, x, keras.ops.convert_to_numpy(keras.Model(mixed.inputs[0], taps["half"])(x)))
    _save_refused_models(keras, folder)
    return out


def _save_refused_models(keras, folder) -> None:
    """Models the loader must refuse: no conv, two inputs, subclassed, an unregistered custom layer."""
    from keras import layers
    keras.Sequential([keras.Input((8, 8, 3)), layers.Flatten(), layers.Dense(2)]).save(folder / "noconv.keras")
    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    keras.Model([a, b], layers.Conv2D(2, 3)(layers.Add()([a, b]))).save(folder / "twoin.keras")

    @keras.saving.register_keras_serializable(package="convcheck_tests")
    class TinyNet(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = layers.Conv2D(2, 3)

        def call(self, x):
            return self.conv(x)

    net = TinyNet()
    net(np.zeros((1, 8, 8, 3), "float32"))
    net.save(folder / "subclassed.keras")

    class Unregistered(layers.Layer):
        def call(self, x):
            return x * 2.0

    inp = keras.Input((8, 8, 3))
    custom = keras.Model(inp, layers.Conv2D(2, 3)(Unregistered(name="doubler")(inp)))
    custom.save(folder / "custom.keras")
    custom.save(folder / "custom.h5")
    custom.save_weights(folder / "only.weights.h5")
    lambdas = keras.Sequential([keras.Input((8, 8, 3)), layers.Lambda(lambda t: t + 1.0), layers.Conv2D(2, 3)])
    lambdas.save(folder / "lambda.keras")


def _check_layer(layer, *, name, op, kernel, bias, stride=(1, 1), dilation=(1, 1), groups=1, pads=((0, 0), (0, 0)),
                 padding="valid", boundary="zero", batchnorm=None, activation="linear", absorbed=(), followed_by="",
                 dtype="float32", source_input, source_output):
    """Every field of a captured layer, exactly; input and output equal to the independent tensors."""
    assert layer.name == name
    assert layer.op == op
    assert layer.kernel.dtype == kernel.dtype and np.array_equal(layer.kernel, kernel), name
    if bias is None:
        assert layer.bias is None, name
    else:
        assert np.array_equal(layer.bias, bias), name
    assert (layer.stride, layer.dilation, layer.groups) == (stride, dilation, groups), name
    assert (layer.pads, layer.padding, layer.boundary) == (pads, padding, boundary), name
    if batchnorm is None:
        assert layer.batchnorm is None, name
    else:
        mean, var, weight, beta, eps = batchnorm
        got = layer.batchnorm
        assert np.array_equal(got.mean, mean) and np.array_equal(got.var, var), name
        assert np.array_equal(got.weight, weight) and np.array_equal(got.bias, beta) and got.eps == eps, name
    assert (layer.activation, layer.absorbed, layer.followed_by, layer.dtype) == (
        activation, absorbed, followed_by, dtype), name
    assert np.array_equal(layer.input, source_input), name
    assert np.array_equal(layer.output, source_output), name
    nets.assert_matches_reference(layer)


def _weights(model, name):
    """The layer's own kernel and bias (None without one), as `_check_layer` takes them."""
    layer = model.get_layer(name)
    return {"kernel": layer.kernel.numpy(), "bias": layer.bias.numpy() if layer.use_bias else None}


def _bn(model, name, center=True):
    """The BatchNormalization's (mean, var, gamma, beta, eps); beta 0 when it has none."""
    bn = model.get_layer(name)
    beta = bn.beta.numpy() if center else np.zeros(bn.moving_mean.shape, "float32")
    return bn.moving_mean.numpy(), bn.moving_variance.numpy(), bn.gamma.numpy(), beta, bn.epsilon


@tensorflow
def test_functional_chain_every_field_and_tensor(saved):
    chain, x, taps, pad_name = saved["chain"]
    path = str(saved["dir"] / "chain.keras")
    assert loader.inspect(path) == ModelInfo(path, "keras", "nhwc", (1, 9, 9, 3), "float32")
    captured = loader.capture(path, x)
    assert (captured.format, captured.layout, captured.input_shape, captured.input_dtype) == (
        "keras", "nhwc", (1, 9, 9, 3), "float32")
    assert [layer.name for layer in captured.layers] == ["pad_s2", "same_s2", "dil_grp", "reflect_valid"]
    first, second, third, fourth = captured.layers
    # Odd size 9, explicit symmetric zero pad, stride 2; BatchNorm without beta, then a ReLU layer.
    _check_layer(first, name="pad_s2", op="Conv2D", **_weights(chain, "pad_s2"), stride=(2, 2),
                 pads=((1, 1), (1, 1)), padding="explicit", batchnorm=_bn(chain, "bn", center=False),
                 activation="relu", absorbed=("zpad", "bn", "relu"), followed_by="Conv2D",
                 source_input=x, source_output=taps["relu"])
    # 'same' at stride 2 on the odd size 5: one row each side; fused relu6; no bias.
    _check_layer(second, name="same_s2", op="Conv2D", **_weights(chain, "same_s2"), stride=(2, 2),
                 pads=((1, 1), (1, 1)), padding="same", activation="relu6", followed_by="Conv2D",
                 source_input=taps["relu"], source_output=taps["same_s2"])
    # Grouped, dilated 'same': the dilated 3x3 spans 5, so 2 each side; the LeakyReLU is not absorbed.
    _check_layer(third, name="dil_grp", op="Conv2D", **_weights(chain, "dil_grp"), dilation=(2, 2),
                 groups=2, pads=((2, 2), (2, 2)), padding="same", followed_by="LeakyReLU(negative_slope=0.1)",
                 source_input=taps["same_s2"], source_output=taps["dil_grp"])
    # A reflect keras.ops.pad then 'valid': the layer reads the LeakyReLU's output; sigmoid fused.
    _check_layer(fourth, name="reflect_valid", op="Conv2D", **_weights(chain, "reflect_valid"),
                 pads=((1, 1), (2, 2)), padding="explicit", boundary="reflect", activation="sigmoid",
                 absorbed=(pad_name,), source_input=taps["leaky"], source_output=taps["reflect_valid"])
    assert first.output is second.input and second.output is third.input  # one array, not two copies
    assert np.array_equal(fourth.output, np.asarray(chain(x, training=False)))


@tensorflow
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_sequential_depthwise_separable_every_field(saved, keras, suffix):
    stack, x, values = saved["stack"]
    path = str(saved["dir"] / f"stack{suffix}")
    assert loader.inspect(path).input_shape == (1, 12, 12, 4)
    captured = loader.capture(path, x)
    assert [layer.name for layer in captured.layers] == ["pad_s2", "dw", "sep/depthwise", "sep/pointwise", "pw"]
    conv, dw, half, point, pw = captured.layers
    # Even size 12, explicit symmetric pad, stride 2; a separate Activation('relu') absorbed.
    _check_layer(conv, name="pad_s2", op="Conv2D", **_weights(stack, "pad_s2"), stride=(2, 2), pads=((1, 1), (1, 1)),
                 padding="explicit", activation="relu", absorbed=("zpad", "act_relu"), followed_by="DepthwiseConv2D",
                 source_input=x, source_output=values["act_relu"])
    # Depthwise multiplier 2 as grouped HWIO (output channel c * 2 + j); 'same' stride 2 on the
    # even size 6: the uneven total 1 at the bottom; BatchNorm then ReLU(6) absorbed.
    weights = _weights(stack, "dw")
    _check_layer(dw, name="dw", op="DepthwiseConv2D", kernel=weights["kernel"].reshape(3, 3, 1, 8),
                 bias=weights["bias"], stride=(2, 2),
                 groups=4, pads=((0, 1), (0, 1)), padding="same", batchnorm=_bn(stack, "bn"), activation="relu6",
                 absorbed=("bn", "relu6"), followed_by="SeparableConv2D",
                 source_input=values["act_relu"], source_output=values["relu6"])
    sep = stack.get_layer("sep")
    _check_layer(half, name="sep/depthwise", op="SeparableConv2D/depthwise",
                 kernel=sep.depthwise_kernel.numpy().reshape(3, 3, 1, 8), bias=None, groups=8,
                 pads=((1, 1), (1, 1)), padding="same", followed_by="SeparableConv2D/pointwise",
                 source_input=values["relu6"], source_output=half.output)
    _check_layer(point, name="sep/pointwise", op="SeparableConv2D/pointwise", kernel=sep.pointwise_kernel.numpy(),
                 bias=sep.bias.numpy(), activation="relu", followed_by="Conv2D",
                 source_input=half.output, source_output=values["sep"])
    # The depthwise half's output is what the layer computed inside: the layer's own pointwise
    # step on it gives the layer's real output bit for bit.
    import tensorflow as tf
    inside = tf.nn.relu(tf.nn.conv2d(half.output, sep.pointwise_kernel, 1, "VALID") + sep.bias).numpy()
    assert np.array_equal(inside, values["sep"])
    _check_layer(pw, name="pw", op="Conv2D", **_weights(stack, "pw"), followed_by="Activation(sigmoid)",
                 source_input=values["sep"], source_output=values["pw"])
    for before, after in zip(captured.layers, captured.layers[1:]):
        assert before.output is after.input
    assert any("SeparableConv2D sep" in note for note in captured.notes)


@tensorflow
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_nested_model_flattened_shared_layer_and_consumers(saved, suffix):
    nested, x, taps = saved["nested"]
    path = str(saved["dir"] / f"nested{suffix}")
    info = loader.inspect(path)
    assert (info.layout, info.input_shape, info.input_dtype) == ("nhwc", None, "float32")  # open H, W
    captured = loader.capture(path, x)
    assert captured.input_shape == (2, 8, 10, 3)
    assert [layer.name for layer in captured.layers] == ["backbone/stem", "shared", "shared@1", "head"]
    stem, once, twice, head = captured.layers
    backbone = nested.get_layer("backbone")
    # The BatchNorm inside the backbone and the ReLU outside it are both the stem's; the ReLU's
    # output feeds the shared conv and the Add: no single op follows.
    _check_layer(stem, name="backbone/stem", op="Conv2D", **_weights(backbone, "stem"), pads=((1, 1), (1, 1)),
                 padding="same", batchnorm=_bn(backbone, "stem_bn"), activation="relu",
                 absorbed=("backbone/stem_bn", "relu"), followed_by="", source_input=x,
                 source_output=taps["features"])
    _check_layer(once, name="shared", op="Conv2D", **_weights(nested, "shared"), pads=((1, 1), (1, 1)),
                 padding="same", followed_by="Conv2D", source_input=taps["features"], source_output=taps["once"])
    _check_layer(twice, name="shared@1", op="Conv2D", **_weights(nested, "shared"), pads=((1, 1), (1, 1)),
                 padding="same", followed_by="Add", source_input=taps["once"], source_output=taps["twice"])
    _check_layer(head, name="head", op="Conv2D", **_weights(nested, "head"), followed_by="Conv2DTranspose",
                 source_input=taps["added"], source_output=taps["head"])
    assert once.output is twice.input
    assert any("backbone" in note for note in captured.notes)
    assert any("up (Conv2DTranspose)" in note for note in captured.notes)


@tensorflow
def test_channels_first_model_is_transposed_to_nhwc(saved):
    nchw, x, output = saved["nchw"]
    path = str(saved["dir"] / "nchw.keras")
    assert loader.inspect(path) == ModelInfo(path, "keras", "nchw", (1, 3, 8, 8), "float32")
    captured = loader.capture(path, x)
    assert captured.layout == "nchw" and captured.input_shape == (1, 3, 8, 8)
    (layer,) = captured.layers
    _check_layer(layer, name="cf_conv", op="Conv2D", **_weights(nchw, "cf_conv"), stride=(2, 2), pads=((1, 1), (1, 1)),
                 padding="explicit", batchnorm=_bn(nchw, "cf_bn"), absorbed=("zpad", "cf_bn"),
                 source_input=x.transpose(0, 2, 3, 1), source_output=output.transpose(0, 2, 3, 1))
    assert any("channels_first" in note for note in captured.notes)


@tensorflow
def test_mixed_precision_conv_and_opaque_subclassed_block(saved):
    mixed, x, half = saved["mixed"]
    captured = loader.capture(str(saved["dir"] / "mixed.keras"), x)
    (layer,) = captured.layers  # the conv inside the subclassed block is not in any graph
    _check_layer(layer, name="half", op="Conv2D", **_weights(mixed, "half"), followed_by="Activation(linear)",
                 dtype="float16", source_input=x, source_output=half)
    assert layer.kernel.dtype == np.float32 and layer.output.dtype == np.float16
    assert any("half (float32 -> float16)" in note for note in captured.notes)
    assert any("'block' is a subclassed model (Block)" in note for note in captured.notes)


@tensorflow
@pytest.mark.parametrize("x, expected", [
    (np.zeros((1, 8, 8, 3), "float32"), "expects an input of shape (any, 9, 9, 3), got (1, 8, 8, 3)"),
    (np.zeros((9, 9, 3), "float32"), "expects an input of shape (any, 9, 9, 3), got (9, 9, 3)"),
    (np.zeros((1, 9, 9, 3), "float64"), "expects a float32 input of shape (any, 9, 9, 3), got float64"),
    ([[0.0]], "must be a numpy array"),
])
def test_wrong_input_is_one_line(saved, x, expected):
    path = str(saved["dir"] / "chain.keras")
    with pytest.raises(InputError) as caught:
        loader.capture(path, x)
    assert expected in str(caught.value) and path in str(caught.value) and "\n" not in str(caught.value)


@tensorflow
@pytest.mark.parametrize("name, expected", [
    ("noconv.keras", "has no 2-D convolution layer: nothing to walk"),
    ("twoin.keras", "has 2 inputs"),
    ("subclassed.keras", "is a subclassed Keras model (TinyNet)"),
    ("custom.keras", "uses 'Unregistered', which is not a built-in Keras object and is not registered"),
    ("custom.h5", "uses 'Unregistered', which is not a built-in Keras object and is not registered"),
    ("only.weights.h5", "Keras cannot load it (No model config found"),
    ("lambda.keras", "has a Lambda layer (Python code), which Keras refuses to load in safe mode"),
])
def test_models_the_loader_refuses(saved, name, expected):
    path = str(saved["dir"] / name)
    with pytest.raises(InputError) as caught:
        loader.capture(path, np.zeros((1, 8, 8, 3), "float32"))
    message = str(caught.value)
    assert expected in message and path in message and "\n" not in message
    if name.startswith("custom"):
        assert "register_keras_serializable" in message
    if name == "subclassed.keras":
        assert "save it as a functional model" in message


@tensorflow
def test_truncated_h5_is_refused_by_keras_in_one_line(saved, tmp_path):
    data = (saved["dir"] / "stack.h5").read_bytes()
    path = tmp_path / "cut.h5"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as caught:
        loader.inspect(str(path))
    assert "Keras cannot load it" in str(caught.value) and "\n" not in str(caught.value)


@tensorflow
def test_missing_keras_is_missing_dependency(saved, monkeypatch):
    monkeypatch.setitem(sys.modules, "keras", None)
    with pytest.raises(MissingDependency) as caught:
        loader.capture(str(saved["dir"] / "chain.keras"), np.zeros((1, 9, 9, 3), "float32"))
    assert caught.value.extra == "tensorflow"
    assert str(caught.value).endswith("pip install 'convcheck[tensorflow]'")


def _zip_without_config(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a model")


@pytest.mark.parametrize("name, make, expected", [
    ("missing.keras", None, "no such file"),
    ("empty.keras", lambda p: p.write_bytes(b""), "is empty"),
    ("empty.h5", lambda p: p.write_bytes(b""), "is empty"),
    ("random.keras", lambda p: p.write_bytes(np.random.default_rng(5).bytes(256)),
     "neither a zip archive nor an HDF5 file"),
    ("random.h5", lambda p: p.write_bytes(np.random.default_rng(6).bytes(4096)),
     "neither a zip archive nor an HDF5 file"),
    ("array.keras", lambda p: np.save(open(p, "wb"), np.zeros(3)), "neither a zip archive nor an HDF5 file"),
    ("hdf5.keras", lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100)), "is an HDF5 file (a .h5 model?)"),
    ("zip.h5", _zip_without_config, "is a zip archive (a .keras file?), not the HDF5 file"),
    ("noconfig.keras", _zip_without_config, "a zip archive without config.json"),
    ("cut.keras", lambda p: p.write_bytes(b"PK\x03\x04" + bytes(60)), "is not a complete zip archive"),
    ("net.onnx", lambda p: p.write_bytes(b"\x08\x07"), "not a Keras model file name"),
    ("folder.keras", lambda p: p.mkdir(), "is not a regular file"),
])
def test_bad_files_are_refused_before_keras_runs(tmp_path, name, make, expected):
    path = tmp_path / name
    if make is not None:
        make(path)
    for call in (lambda: loader.inspect(str(path)), lambda: loader.capture(str(path), np.zeros((1, 8, 8, 3)))):
        with pytest.raises(InputError) as caught:
            call()
        message = str(caught.value)
        assert expected in message and str(path) in message and "\n" not in message


def test_truncated_keras_archive_is_refused_before_keras(tmp_path):
    source = tmp_path / "whole.keras"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("config.json", "{}" * 200)
        archive.writestr("model.weights.h5", bytes(2000))
    data = source.read_bytes()
    path = tmp_path / "cut.keras"
    path.write_bytes(data[: len(data) - 40])  # the central directory is at the end
    with pytest.raises(InputError, match="is not a complete zip archive"):
        loader.inspect(str(path))


def test_importing_the_loader_imports_no_framework():
    code = ("import sys, convcheck.models.keras, convcheck.models._keras_graph, convcheck.models._keras_layers; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@tensorflow
def test_a_leaky_relu_of_slope_zero_is_taken_in_as_a_relu(tmp_path):
    """LeakyReLU(negative_slope=0) computes ReLU itself: taken into the layer as 'relu' (a second
    hunt for false causes found a faithful port named 'activation=linear')."""
    import keras
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.LeakyReLU(negative_slope=0.0, name="act")(keras.layers.Conv2D(4, 3, name="c")(inputs))
    path = str(tmp_path / "leaky0.keras")
    keras.Model(inputs, outputs).save(path)
    (layer,) = loader.capture(path, np.random.default_rng(0).standard_normal((1, 8, 8, 3)).astype(np.float32)).layers
    assert (layer.activation, layer.absorbed) == ("relu", ("act",))
