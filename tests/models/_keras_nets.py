"""Small real Keras models for the Keras loader's tests, and an independent float64
reference of what a captured layer declares (np.pad + explicit sums, BatchNorm, activation).

Keras is imported inside the builders only: importing this module costs nothing.
Every builder returns (model, taps): `taps` names the model's own symbolic tensors that a
test reads back through `keras.Model(model.inputs, ...)` on the original graph, a way of
getting intermediate tensors independent of the loader's flattened probe.
"""

from __future__ import annotations

import numpy as np


def randomize(model, seed: int) -> None:
    """Give every weight seeded random values (BatchNorm variances and scales positive, biases
    non-zero), so that a wrong bias, BatchNorm or channel order shows in the outputs."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape, path = tuple(variable.shape), variable.path
        if "moving_variance" in path or "gamma" in path:
            values = rng.uniform(0.5, 1.5, shape)
        elif "bias" in path or "beta" in path or "moving_mean" in path:
            values = rng.normal(0.0, 0.3, shape)
        else:
            values = rng.normal(0.0, 0.5, shape)
        variable.assign(values.astype(variable.dtype))


def functional_chain():
    """Functional, 9x9 (odd) input: zero pad + stride-2 valid conv + BatchNorm(center=False) +
    ReLU; 'same' stride 2 with fused relu6 and no bias; grouped dilated 'same' + LeakyReLU;
    a reflect keras.ops.pad + 'valid' conv with a fused sigmoid (a .keras-only model)."""
    import keras
    from keras import layers
    inp = keras.Input((9, 9, 3), name="image")
    a = layers.ZeroPadding2D(1, name="zpad")(inp)
    a = layers.Conv2D(4, 3, strides=2, name="pad_s2")(a)
    bn = layers.BatchNormalization(center=False, name="bn")(a)
    a = layers.ReLU(name="relu")(bn)
    b = layers.Conv2D(6, 3, strides=2, padding="same", activation="relu6", use_bias=False, name="same_s2")(a)
    c = layers.Conv2D(6, 3, padding="same", dilation_rate=2, groups=2, name="dil_grp")(b)
    leaky = layers.LeakyReLU(negative_slope=0.1, name="leaky")(c)
    d = keras.ops.pad(leaky, [[0, 0], [1, 1], [2, 2], [0, 0]], mode="reflect")
    e = layers.Conv2D(4, 3, activation="sigmoid", name="reflect_valid")(d)
    model = keras.Model(inp, e, name="chain")
    randomize(model, 1)
    return model, {"image": inp, "relu": a, "same_s2": b, "dil_grp": c, "leaky": leaky, "reflect_valid": e}


def sequential_stack():
    """Sequential, 12x12 (even) input: zero pad + stride-2 conv + Activation('relu');
    DepthwiseConv2D(depth_multiplier=2) 'same' stride 2 + BatchNorm + ReLU(6);
    SeparableConv2D 'same' with a fused relu; 1x1 conv + Activation('sigmoid')."""
    import keras
    from keras import layers
    model = keras.Sequential([
        keras.Input((12, 12, 4)),
        layers.ZeroPadding2D(((1, 1), (1, 1)), name="zpad"),
        layers.Conv2D(4, 3, strides=2, name="pad_s2"),
        layers.Activation("relu", name="act_relu"),
        layers.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same", name="dw"),
        layers.BatchNormalization(name="bn"),
        layers.ReLU(max_value=6, name="relu6"),
        layers.SeparableConv2D(6, 3, padding="same", activation="relu", name="sep"),
        layers.Conv2D(5, 1, name="pw"),
        layers.Activation("sigmoid", name="sig"),
    ], name="stack")
    randomize(model, 2)
    return model


def nested_model():
    """Functional with open spatial dims around a nested Functional backbone (conv + BatchNorm
    inside, ReLU outside), a shared conv called twice, a residual Add, a 1x1 head and a
    Conv2DTranspose (not a 2-D convolution: skipped with a note)."""
    import keras
    from keras import layers
    inner = keras.Input((None, None, 3))
    stem = layers.Conv2D(4, 3, padding="same", name="stem")(inner)
    stem = layers.BatchNormalization(name="stem_bn")(stem)
    backbone = keras.Model(inner, stem, name="backbone")
    inp = keras.Input((None, None, 3), name="image")
    features = layers.ReLU(name="relu")(backbone(inp))
    shared = layers.Conv2D(4, 3, padding="same", name="shared")
    once = shared(features)
    twice = shared(once)
    added = layers.Add(name="add")([twice, features])
    head = layers.Conv2D(2, 1, name="head")(added)
    up = layers.Conv2DTranspose(2, 2, strides=2, name="up")(head)
    model = keras.Model(inp, up, name="nested")
    randomize(model, 3)
    return model, {"features": features, "once": once, "twice": twice, "added": added, "head": head}


def channels_first_model():
    """Functional, NCHW input (3, 8, 8): channels_first zero pad + stride-2 conv + BatchNorm(axis=1)."""
    import keras
    from keras import layers
    inp = keras.Input((3, 8, 8), name="image")
    a = layers.ZeroPadding2D(1, data_format="channels_first", name="zpad")(inp)
    a = layers.Conv2D(5, 3, strides=2, data_format="channels_first", name="cf_conv")(a)
    a = layers.BatchNormalization(axis=1, name="cf_bn")(a)
    model = keras.Model(inp, a, name="nchw")
    randomize(model, 4)
    return model, {"image": inp, "cf_bn": a}


def mixed_and_opaque_model():
    """Functional: a mixed_float16 conv (float32 input, float16 compute), then a registered
    subclassed model that runs its own conv inside (opaque to the graph)."""
    import keras
    from keras import layers

    @keras.saving.register_keras_serializable(package="convcheck_tests")
    class Block(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = layers.Conv2D(2, 3, padding="same")

        def call(self, x):
            return self.conv(x)

    inp = keras.Input((8, 8, 3), name="image")
    half = layers.Conv2D(2, 3, dtype="mixed_float16", name="half")(inp)
    block = Block(name="block")
    out = block(layers.Activation("linear", dtype="float32", name="to32")(half))
    model = keras.Model(inp, out, name="mixed")
    randomize(model, 5)
    return model, {"half": half}


def reference(layer) -> np.ndarray:
    """What a captured layer declares, in float64 from its captured input: np.pad by its pads
    and boundary, the grouped strided dilated cross-correlation as explicit sums over the
    kernel taps, bias, BatchNorm, activation."""
    x = np.asarray(layer.input, np.float64)
    (top, bottom), (left, right) = layer.pads
    mode = "constant" if layer.boundary in ("zero", "constant") else layer.boundary
    extra = {"constant_values": layer.cval} if layer.boundary == "constant" else {}
    x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), mode=mode, **extra)
    kernel = np.asarray(layer.kernel, np.float64)
    kh, kw, per_group, out_channels = kernel.shape
    (sy, sx), (dy, dx) = layer.stride, layer.dilation
    rows = (x.shape[1] - (kh - 1) * dy - 1) // sy + 1
    cols = (x.shape[2] - (kw - 1) * dx - 1) // sx + 1
    out = np.zeros((x.shape[0], rows, cols, out_channels))
    per_out = out_channels // layer.groups
    for g in range(layer.groups):
        for u in range(kh):
            for v in range(kw):
                window = x[:, u * dy: u * dy + (rows - 1) * sy + 1: sy, v * dx: v * dx + (cols - 1) * sx + 1: sx,
                           g * per_group:(g + 1) * per_group]
                for o in range(g * per_out, (g + 1) * per_out):
                    out[..., o] += np.sum(window * kernel[u, v, :, o], axis=-1)
    if layer.bias is not None:
        out += np.asarray(layer.bias, np.float64)
    if layer.batchnorm is not None:
        out = out * layer.batchnorm.scale() + layer.batchnorm.shift()
    activations = {"linear": lambda t: t, "relu": lambda t: np.maximum(t, 0.0),
                   "relu6": lambda t: np.clip(t, 0.0, 6.0), "sigmoid": lambda t: 1.0 / (1.0 + np.exp(-t))}
    return activations[layer.activation](out)


def assert_matches_reference(layer) -> None:
    """The captured output equals the float64 reference within a float32-sized tolerance
    (relative to the sum of |terms| that each output adds up)."""
    expected = reference(layer)
    assert layer.output.shape == expected.shape, (layer.name, layer.output.shape, expected.shape)
    got = np.asarray(layer.output, np.float64)
    eps = np.finfo(layer.output.dtype).eps
    tolerance = 16 * eps * (1.0 + np.abs(expected).max()) * max(1, layer.kernel[..., 0].size) ** 0.5
    assert np.abs(got - expected).max() <= tolerance, (layer.name, np.abs(got - expected).max(), tolerance)
