"""Small real models for issue 22's test list that `_walk_nets` does not hold: a MobileNet-style
and a dilated PyTorch net with hand-made Keras ports, and a Keras net for the TFLite converter.

MobileNet-style (NCHW 1x3x16x16): stem conv 3x3 stride 2 (padding=1) + BatchNorm + ReLU6; a
depthwise conv 3x3 (groups=8, padding=1) + BatchNorm + ReLU6; a pointwise 1x1 conv 8->16 +
BatchNorm; a head 1x1 conv 16->4 with a bias. Dilated (NCHW 1x3x16x16): a 3x3 conv + ReLU, two
3x3 convs with dilation 2 (padding=2, the second with a bias) + ReLU, a 1x1 head.

`keras_mobile(net, mistakes, policy)` and `keras_dilated(net, mistakes)` port them to Keras
(NHWC) by hand, copying the weights: transposed correctly unless a mistake says otherwise;
`policy` is a Keras dtype policy ('mixed_float16' for a mixed-precision port).
`keras_for_tflite(mistakes)` is a seeded Keras net the TFLite converter fuses activations into.
Frameworks are imported inside the functions.
"""

from __future__ import annotations

import numpy as np

from . import _walk_nets as walk_nets
from ._walk_nets import batchnorm_weights, seeded_batchnorm

SHAPE = (1, 3, 16, 16)
# mistake -> (the layer it is planted in, what it is)
MOBILE_MISTAKES = {
    "dw_reshape": ("dw", "the depthwise kernel (C, 1, kh, kw) reshaped to (kh, kw, C, 1) instead of transposed"),
}
DILATED_MISTAKES = {
    "no_dilation": ("dil1", "dilation_rate left at 1 where PyTorch has dilation=2 (padding='same')"),
}
TFLITE_MISTAKES = {
    "swap": ("mid", "input and output channels swapped (an 8->8 kernel transposed to HWOI)"),
    "flip": ("last", "the kernel flipped 180 degrees"),
}


def mobile_net():
    """The MobileNet-style PyTorch net in eval mode, seeded."""
    import torch
    from torch import nn

    torch.manual_seed(10)

    class MobileNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
            self.stem_bn = seeded_batchnorm(8, 11)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
            self.dw_bn = seeded_batchnorm(8, 12)
            self.pw = nn.Conv2d(8, 16, 1, bias=False)
            self.pw_bn = seeded_batchnorm(16, 13)
            self.head = nn.Conv2d(16, 4, 1)

        def forward(self, x):
            a = nn.functional.relu6(self.stem_bn(self.stem(x)))
            b = nn.functional.relu6(self.dw_bn(self.dw(a)))
            return self.head(self.pw_bn(self.pw(b)))

    return MobileNet().eval()


def dilated_net():
    """The dilated PyTorch net in eval mode, seeded."""
    import torch
    from torch import nn

    torch.manual_seed(20)

    class DilatedNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.dil1 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, bias=False)
            self.dil2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
            self.head = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            a = torch.relu(self.conv(x))
            b = torch.relu(self.dil1(a))
            return self.head(torch.relu(self.dil2(b)))

    return DilatedNet().eval()


def example() -> np.ndarray:
    """The seeded NCHW input the exports are traced with."""
    return np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)


def save_pt2(net, path: str) -> str:
    """The net exported by torch.export (traced with `example()`) and saved as .pt2."""
    return walk_nets.save_pt2(net, path, example())


def save_onnx(net, path: str) -> str:
    """The net exported by the TorchScript-based exporter, which folds each BatchNorm into its conv."""
    return walk_nets.save_onnx(net, path, example())


def _kernel(conv, mistake: str = "") -> np.ndarray:
    """A PyTorch conv's OIHW weight as the Keras kernel a port holds: HWIO for Conv2D, (kh, kw, C,
    multiplier) for DepthwiseConv2D (PyTorch's (C * m, 1, kh, kw))."""
    weight = conv.weight.detach().numpy()
    depthwise = conv.groups > 1
    if depthwise and mistake == "dw_reshape":
        return weight.reshape(weight.shape[2], weight.shape[3], conv.groups, weight.shape[0] // conv.groups)
    if depthwise:
        return weight.reshape(conv.groups, -1, weight.shape[2], weight.shape[3]).transpose(2, 3, 0, 1)
    return weight.transpose(2, 3, 1, 0)


def _weights(conv, mistake: str = "") -> list[np.ndarray]:
    weights = [_kernel(conv, mistake)]
    if conv.bias is not None:
        weights.append(conv.bias.detach().numpy())
    return weights


def _planted(mistakes, table) -> dict:
    mistakes = set(mistakes)
    unknown = mistakes - set(table)
    assert not unknown, unknown
    return {table[m][0]: m for m in mistakes}


def keras_mobile(net, mistakes=(), policy: str = "float32"):
    """The MobileNet-style net ported to Keras by hand (NHWC 16x16x3) under the dtype `policy`,
    with `mistakes` (keys of MOBILE_MISTAKES) planted."""
    import keras
    from keras import layers

    planted = _planted(mistakes, MOBILE_MISTAKES)
    dtype = keras.DTypePolicy(policy)
    inp = keras.Input((16, 16, 3), name="image")
    a = layers.ZeroPadding2D(1, name="stem_pad", dtype=dtype)(inp)
    a = layers.Conv2D(8, 3, strides=2, use_bias=False, name="stem", dtype=dtype)(a)
    a = layers.BatchNormalization(epsilon=1e-5, name="stem_bn", dtype=dtype)(a)
    a = layers.ReLU(6.0, name="stem_relu6", dtype=dtype)(a)
    b = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw", dtype=dtype)(a)
    b = layers.BatchNormalization(epsilon=1e-5, name="dw_bn", dtype=dtype)(b)
    b = layers.ReLU(6.0, name="dw_relu6", dtype=dtype)(b)
    c = layers.Conv2D(16, 1, use_bias=False, name="pw", dtype=dtype)(b)
    c = layers.BatchNormalization(epsilon=1e-5, name="pw_bn", dtype=dtype)(c)
    out = layers.Conv2D(4, 1, name="head", dtype=dtype)(c)
    model = keras.Model(inp, out, name="mobile_port")
    for name in ("stem", "dw", "pw", "head"):
        model.get_layer(name).set_weights(_weights(getattr(net, name), planted.get(name, "")))
    for name in ("stem_bn", "dw_bn", "pw_bn"):
        model.get_layer(name).set_weights(batchnorm_weights(getattr(net, name)))
    return model


def keras_dilated(net, mistakes=(), policy: str = "float32"):
    """The dilated net ported to Keras by hand (NHWC 16x16x3) under the dtype `policy`, with
    `mistakes` (keys of DILATED_MISTAKES) planted."""
    import keras
    from keras import layers

    planted = _planted(mistakes, DILATED_MISTAKES)
    dtype = keras.DTypePolicy(policy)
    rate = 1 if planted.get("dil1") == "no_dilation" else 2
    inp = keras.Input((16, 16, 3), name="image")
    a = layers.Conv2D(8, 3, padding="same", use_bias=False, activation="relu", name="conv", dtype=dtype)(inp)
    b = layers.Conv2D(8, 3, padding="same", dilation_rate=rate, use_bias=False, activation="relu", name="dil1",
                      dtype=dtype)(a)
    c = layers.Conv2D(8, 3, padding="same", dilation_rate=2, activation="relu", name="dil2", dtype=dtype)(b)
    out = layers.Conv2D(4, 1, name="head", dtype=dtype)(c)
    model = keras.Model(inp, out, name="dilated_port")
    for name in ("conv", "dil1", "dil2", "head"):
        model.get_layer(name).set_weights(_weights(getattr(net, name)))
    return model


def keras_for_tflite(mistakes=()):
    """A seeded Keras net (NHWC 16x16x3) for the TFLite converter, with `mistakes` (keys of
    TFLITE_MISTAKES) planted in its weights (the same seeded values otherwise):

    first: Conv2D 3x3 stride 2 'same' (TF's asymmetric padding at an even size), activation='relu'
    (fused by the converter); dw: DepthwiseConv2D 3x3 'same', activation='relu6' (fused);
    mid: Conv2D 3x3 8->8 'same' + BatchNormalization (folded into the conv) + ReLU (fused);
    last: Conv2D 3x3 stride 2 'same', 8->4, with a bias, no activation.
    """
    import keras
    from keras import layers

    planted = _planted(mistakes, TFLITE_MISTAKES)
    inp = keras.Input((16, 16, 3), name="image")
    a = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="first")(inp)
    b = layers.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw")(a)
    c = layers.Conv2D(8, 3, padding="same", name="mid")(b)
    c = layers.ReLU(name="mid_relu")(layers.BatchNormalization(name="mid_bn")(c))
    out = layers.Conv2D(4, 3, strides=2, padding="same", name="last")(c)
    model = keras.Model(inp, out, name="for_tflite")
    rng = np.random.default_rng(30)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if isinstance(layer, layers.BatchNormalization):
            weights = [rng.uniform(0.5, 1.5, 8), rng.normal(0, 0.2, 8), rng.normal(0, 0.3, 8), rng.uniform(0.5, 1.5, 8)]
        else:
            weights = [rng.normal(0, 0.4, w.shape) for w in weights]
        kernel = weights[0]
        if planted.get(layer.name) == "swap":
            kernel = kernel.transpose(0, 1, 3, 2)
        elif planted.get(layer.name) == "flip":
            kernel = kernel[::-1, ::-1]
        layer.set_weights([np.ascontiguousarray(w, np.float32) for w in [kernel] + weights[1:]])
    return model


def save_tflite(model, path: str) -> str:
    """The float32 TFLite flatbuffer of a Keras model, by tf.lite.TFLiteConverter."""
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    with open(path, "wb") as handle:
        handle.write(converter.convert())
    return path


__all__ = ["SHAPE", "MOBILE_MISTAKES", "DILATED_MISTAKES", "TFLITE_MISTAKES", "mobile_net", "dilated_net",
           "example", "save_pt2", "save_onnx", "keras_mobile", "keras_dilated", "keras_for_tflite",
           "save_tflite"]
