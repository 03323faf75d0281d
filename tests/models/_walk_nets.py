"""Small real models for the model walk's tests: a ResNet-style PyTorch net, its exports, and
Keras ports of it made by hand, faithfully or with the classic porting mistakes planted.

The PyTorch net (NCHW 1x3x16x16): stem conv 3x3 (padding=1) + BatchNorm + ReLU; a block with a
stride-2 conv (padding=1) + BatchNorm + ReLU, a conv + BatchNorm, and a 1x1 stride-2 downsample
+ BatchNorm, added and ReLU'd; a head conv with a bias. Every BatchNorm has seeded statistics.

`keras_port(net, mistakes)` builds the same net in Keras (NHWC) and copies the weights over:
transposed correctly (OIHW -> HWIO) unless a mistake says otherwise. The mistakes, each on one
layer, are those of `MISTAKES`. Frameworks are imported inside the functions.
"""

from __future__ import annotations

import numpy as np

SHAPE = (1, 3, 16, 16)
# mistake -> (the layer it is planted in, what it is)
MISTAKES = {
    "bgr": ("stem", "the kernel's input channels reversed (a port meant for BGR input, fed RGB)"),
    "same_stride2": ("conv1", "padding='same' at stride 2 where PyTorch has padding=1"),
    "reshape": ("conv2", "weights reshaped into HWIO instead of transposed"),
    "swap": ("down", "input and output channels swapped (transposed to HWOI)"),
    "flip": ("head", "the kernel flipped 180 degrees"),
    "leaky": ("stem", "a LeakyReLU where the original has a ReLU"),
    "reinit": ("head", "the weights re-initialised (not copied)"),
    "epsilon": ("conv2", "Keras' default BatchNorm epsilon 1e-3 where PyTorch has 1e-5"),
}


def seeded_batchnorm(channels: int, seed: int):
    """A PyTorch BatchNorm2d with seeded statistics far from the identity (its own generator:
    the global seed is left as it is)."""
    import torch
    from torch import nn
    bn = nn.BatchNorm2d(channels)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(channels, generator=generator) * 0.3)
        bn.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
        bn.weight.copy_(torch.rand(channels, generator=generator) + 0.5)
        bn.bias.copy_(torch.randn(channels, generator=generator) * 0.2)
    return bn


def torch_net():
    """The PyTorch net in eval mode, seeded (weights and BatchNorm statistics)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    batchnorm = seeded_batchnorm

    class WalkNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.stem_bn = batchnorm(8, 1)
            self.conv1 = nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False)
            self.bn1 = batchnorm(8, 2)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
            self.bn2 = batchnorm(8, 3)
            self.down = nn.Conv2d(8, 8, 1, stride=2, bias=False)
            self.down_bn = batchnorm(8, 4)
            self.head = nn.Conv2d(8, 4, 3, padding=1)

        def forward(self, x):
            a = torch.relu(self.stem_bn(self.stem(x)))
            b = torch.relu(self.bn1(self.conv1(a)))
            b = self.bn2(self.conv2(b))
            c = torch.relu(b + self.down_bn(self.down(a)))
            return self.head(c)

    return WalkNet().eval()


def example() -> np.ndarray:
    """The seeded NCHW input the exports are traced with."""
    return np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)


def save_pt2(net, path: str, x: np.ndarray | None = None) -> str:
    """The net exported by torch.export (traced with `x`, default `example()`) and saved as .pt2."""
    import torch
    program = torch.export.export(net, (torch.from_numpy(example() if x is None else x),), strict=False)
    torch.export.save(program, path)
    return path


def save_onnx(net, path: str, x: np.ndarray | None = None) -> str:
    """The net exported by the TorchScript-based exporter (traced with `x`, default `example()`),
    which folds each BatchNorm into its conv."""
    import torch
    torch.onnx.export(net, (torch.from_numpy(example() if x is None else x),), path, dynamo=False,
                      input_names=["image"], output_names=["out"])
    return path


def _kernel(conv, mistake: str = "") -> np.ndarray:
    """A PyTorch conv's OIHW weight as the Keras kernel a port would hold."""
    weight = conv.weight.detach().numpy()
    if mistake == "reshape":
        return weight.reshape(weight.shape[2], weight.shape[3], weight.shape[1], weight.shape[0])
    if mistake == "swap":
        return weight.transpose(2, 3, 0, 1)
    kernel = weight.transpose(2, 3, 1, 0)
    if mistake == "flip":
        return np.ascontiguousarray(kernel[::-1, ::-1])
    if mistake == "bgr":
        return np.ascontiguousarray(kernel[:, :, ::-1, :])
    if mistake == "reinit":
        return np.random.default_rng(5).normal(0.0, 0.3, kernel.shape).astype(np.float32)
    return kernel


def batchnorm_weights(bn) -> list[np.ndarray]:
    return [t.detach().numpy() for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)]


def keras_port(net, mistakes=()):
    """The net ported to Keras by hand (NHWC 16x16x3), with `mistakes` (keys of MISTAKES) planted."""
    import keras
    from keras import layers

    mistakes = set(mistakes)
    unknown = mistakes - set(MISTAKES)
    assert not unknown, unknown
    planted = {MISTAKES[m][0]: m for m in mistakes if m not in ("leaky", "same_stride2", "epsilon")}

    def conv(name, filters, size, *, strides=1, padding="same", bias=False):
        return layers.Conv2D(filters, size, strides=strides, padding=padding, use_bias=bias, name=name)

    def bn(name, source):
        epsilon = 1e-3 if ("epsilon" in mistakes and name == "bn2") else 1e-5
        return layers.BatchNormalization(epsilon=epsilon, name=name)(source)

    inp = keras.Input((16, 16, 3), name="image")
    a = bn("stem_bn", conv("stem", 8, 3)(inp))
    a = layers.LeakyReLU(negative_slope=0.1, name="stem_act")(a) if "leaky" in mistakes else \
        layers.ReLU(name="stem_act")(a)
    if "same_stride2" in mistakes:
        b = conv("conv1", 8, 3, strides=2, padding="same")(a)
    else:
        b = conv("conv1", 8, 3, strides=2, padding="valid")(layers.ZeroPadding2D(1, name="conv1_pad")(a))
    b = layers.ReLU(name="act1")(bn("bn1", b))
    b = bn("bn2", conv("conv2", 8, 3)(b))
    d = bn("down_bn", conv("down", 8, 1, strides=2, padding="valid")(a))
    c = layers.ReLU(name="act2")(layers.Add(name="add")([b, d]))
    out = conv("head", 4, 3, bias=True)(c)
    model = keras.Model(inp, out, name="walk_port")
    for name, module in (("stem", net.stem), ("conv1", net.conv1), ("conv2", net.conv2), ("down", net.down),
                         ("head", net.head)):
        weights = [_kernel(module, planted.get(name, ""))]
        if module.bias is not None:
            weights.append(module.bias.detach().numpy())
        model.get_layer(name).set_weights(weights)
    for name, module in (("stem_bn", net.stem_bn), ("bn1", net.bn1), ("bn2", net.bn2), ("down_bn", net.down_bn)):
        model.get_layer(name).set_weights(batchnorm_weights(module))
    return model


__all__ = ["SHAPE", "MISTAKES", "torch_net", "example", "save_pt2", "save_onnx", "keras_port"]
