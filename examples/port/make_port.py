"""Make examples/port/: a small PyTorch model, its exports and a Keras port with one planted
defect, every file made by the libraries' own calls. Run: python examples/port/make_port.py
(needs torch, onnx and TensorFlow/Keras).

The PyTorch net (NCHW, 1x3x32x32, seeded weights and BatchNorm statistics), ResNet-style:

    stem        Conv2d(3, 8, 3, padding=1, bias=False) + BatchNorm + ReLU          32x32
    block.conv1 Conv2d(8, 16, 3, stride=2, padding=1, bias=False) + BatchNorm + ReLU 16x16
    block.conv2 Conv2d(16, 16, 3, padding=1, bias=False) + BatchNorm
    block.down  Conv2d(8, 16, 1, stride=2, bias=False) + BatchNorm  (added, then ReLU)
    dw          Conv2d(16, 16, 3, padding=1, groups=16) + ReLU6     (depthwise, with bias)
    head        Conv2d(16, 10, 1), global average pooling -> (1, 10)

Files:
    net.pt2          torch.export.save of the net (no source needed to load it)
    net.onnx         torch.onnx.export of the net (BatchNorm folded into the convs by the exporter)
    net_keras.keras  the net ported to Keras by hand (NHWC), weights copied from PyTorch,
                     with the defect of `DEFECT` planted
    input.npy        the seeded NCHW input the exports were traced with

`DEFECT` says which layer carries the planted defect and what `convcheck model` must find
there; tests/test_examples.py walks the committed files and checks it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHAPE = (1, 3, 32, 32)

# The porter wrote Keras' padding='same' at stride 2 where PyTorch has padding=1: on an even
# size TensorFlow pads 0 rows above and 1 below, PyTorch 1 and 1, so every window of the
# port's layer starts one pixel later (keras-team/keras#16363). The names are the PyTorch
# module and the Keras layer; the fields are what the walk must name at that layer.
DEFECT = {"original": "block.conv1", "port": "block_conv1", "fields": {"offset": (1, 1)},
          "what": "Conv2D(16, 3, strides=2, padding='same') where PyTorch has Conv2d(8, 16, 3, stride=2, padding=1)"}


def torch_net():
    """The PyTorch net in eval mode, its weights and BatchNorm statistics seeded."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    def batchnorm(channels: int, seed: int) -> nn.BatchNorm2d:
        # A fresh BatchNorm is the identity: give it statistics a trained net would have.
        bn = nn.BatchNorm2d(channels)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            bn.running_mean.copy_(torch.randn(channels, generator=generator) * 0.3)
            bn.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
            bn.weight.copy_(torch.rand(channels, generator=generator) + 0.5)
            bn.bias.copy_(torch.randn(channels, generator=generator) * 0.2)
        return bn

    class Block(nn.Module):
        """torchvision's BasicBlock with a stride-2 conv and a 1x1 downsample."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
            self.bn1 = batchnorm(16, 2)
            self.conv2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
            self.bn2 = batchnorm(16, 3)
            self.down = nn.Conv2d(8, 16, 1, stride=2, bias=False)
            self.down_bn = batchnorm(16, 4)

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return torch.relu(out + self.down_bn(self.down(x)))

    class PortNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.stem_bn = batchnorm(8, 1)
            self.block = Block()
            self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
            self.act = nn.ReLU6()
            self.head = nn.Conv2d(16, 10, 1)

        def forward(self, x):
            x = torch.relu(self.stem_bn(self.stem(x)))
            x = self.act(self.dw(self.block(x)))
            return self.head(x).mean(dim=(2, 3))

    return PortNet().eval()


def example() -> np.ndarray:
    """The seeded NCHW input (standard normal, float32)."""
    return np.random.default_rng(32).standard_normal(SHAPE).astype(np.float32)


def save_pt2(net, path: Path) -> None:
    import torch
    program = torch.export.export(net, (torch.from_numpy(example()),), strict=False)
    torch.export.save(program, str(path))


def save_onnx(net, path: Path) -> None:
    """The TorchScript-based exporter, as most ONNX files in the wild were made: it folds each
    BatchNorm into its conv, so the ONNX convs carry the folded weights and a bias."""
    import torch
    torch.onnx.export(net, (torch.from_numpy(example()),), str(path), dynamo=False, input_names=["image"],
                      output_names=["logits"])


def keras_port(net):
    """The net ported to Keras (NHWC) by hand: the same layers, the weights transposed from OIHW
    to HWIO, the BatchNorm statistics copied; `DEFECT` planted in block_conv1."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    from keras import layers

    def conv(name, filters, size, strides=1, padding="same", bias=False):
        return layers.Conv2D(filters, size, strides=strides, padding=padding, use_bias=bias, name=name)

    def bn(name):
        return layers.BatchNormalization(epsilon=1e-5, name=name)  # PyTorch's epsilon, not Keras' 1e-3

    inp = keras.Input((32, 32, 3), name="image")
    x = layers.ReLU(name="stem_relu")(bn("stem_bn")(conv("stem", 8, 3)(inp)))
    # The planted defect: a faithful port writes ZeroPadding2D(1) and then padding='valid'.
    y = layers.ReLU(name="block_relu1")(bn("block_bn1")(conv("block_conv1", 16, 3, strides=2, padding="same")(x)))
    y = bn("block_bn2")(conv("block_conv2", 16, 3)(y))
    d = bn("block_down_bn")(conv("block_down", 16, 1, strides=2, padding="valid")(x))
    x = layers.ReLU(name="block_relu2")(layers.Add(name="block_add")([y, d]))
    x = layers.ReLU(6.0, name="dw_relu6")(layers.DepthwiseConv2D(3, padding="same", name="dw")(x))
    x = layers.GlobalAveragePooling2D(name="pool")(conv("head", 10, 1, bias=True)(x))
    model = keras.Model(inp, x, name="port_net")

    def oihw_to_hwio(weight):
        return weight.detach().numpy().transpose(2, 3, 1, 0)

    convs = {"stem": net.stem, "block_conv1": net.block.conv1, "block_conv2": net.block.conv2,
             "block_down": net.block.down, "head": net.head}
    for name, module in convs.items():
        weights = [oihw_to_hwio(module.weight)] + ([module.bias.detach().numpy()] if module.bias is not None else [])
        model.get_layer(name).set_weights(weights)
    # A depthwise (C, 1, kh, kw) weight is Keras' (kh, kw, C, 1).
    model.get_layer("dw").set_weights([net.dw.weight.detach().numpy().transpose(2, 3, 0, 1),
                                       net.dw.bias.detach().numpy()])
    norms = {"stem_bn": net.stem_bn, "block_bn1": net.block.bn1, "block_bn2": net.block.bn2,
             "block_down_bn": net.block.down_bn}
    for name, module in norms.items():
        model.get_layer(name).set_weights([t.detach().numpy() for t in
                                           (module.weight, module.bias, module.running_mean, module.running_var)])
    return model


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    net = torch_net()
    np.save(HERE / "input.npy", example())
    save_pt2(net, HERE / "net.pt2")
    save_onnx(net, HERE / "net.onnx")
    keras_port(net).save(HERE / "net_keras.keras")
    for name in ("input.npy", "net.pt2", "net.onnx", "net_keras.keras"):
        print(f"{name:16s} {(HERE / name).stat().st_size / 1024:6.1f} KiB")
    print(f"planted in {DEFECT['port']}: {DEFECT['what']}")


if __name__ == "__main__":
    main()
