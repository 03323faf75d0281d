"""Small real PyTorch nets for tests/models/test_pytorch.py, each with what the loader must find.

Each net's `taps(x)` runs the same submodules step by step in eager PyTorch and returns,
per layer name, the (input, output) tensors that layer must capture: an independent way
of getting the intermediates (no graph, no hooks). `LAYERS[name]` lists what each layer
declares, in execution order. Imports torch: import only after importorskip("torch").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _seeded_batchnorm(bn: nn.BatchNorm2d, seed: int) -> nn.BatchNorm2d:
    """Non-trivial running statistics and affine values (a fresh BatchNorm is the identity)."""
    generator = torch.Generator().manual_seed(seed)
    n = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
        bn.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
        bn.weight.copy_(torch.rand(n, generator=generator) + 0.5)
        bn.bias.copy_(torch.randn(n, generator=generator) * 0.2)
    return bn


class ResNetBlock(nn.Module):
    """torchvision's BasicBlock with a stride-2 conv (padding=1) and a 1x1 downsample."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = _seeded_batchnorm(nn.BatchNorm2d(8), 1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = _seeded_batchnorm(nn.BatchNorm2d(8), 2)
        self.downsample = nn.Sequential(nn.Conv2d(4, 8, 1, stride=2, bias=False),
                                        _seeded_batchnorm(nn.BatchNorm2d(8), 3))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = self.downsample(x)
        out += identity
        return self.relu(out)

    def taps(self, x):
        first = torch.relu(self.bn1(self.conv1(x)))
        second = self.bn2(self.conv2(first))
        down = self.downsample[1](self.downsample[0](x))
        return {"conv1": (x, first), "conv2": (first, second), "downsample.0": (x, down)}


class MobileNetBlock(nn.Module):
    """A depthwise 3x3 stride-2 conv (bias, ReLU6 module), a pointwise 1x1 (BatchNorm,
    functional relu6), then a grouped conv (groups=2, 'valid') followed by a LeakyReLU."""

    def __init__(self):
        super().__init__()
        self.depthwise = nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=6)
        self.act = nn.ReLU6()
        self.pointwise = nn.Conv2d(6, 8, 1, bias=False)
        self.bn = _seeded_batchnorm(nn.BatchNorm2d(8), 4)
        self.grouped = nn.Conv2d(8, 4, 3, padding="valid", groups=2)
        self.leaky = nn.LeakyReLU(0.1)

    def forward(self, x):
        x = self.act(self.depthwise(x))
        x = F.relu6(self.bn(self.pointwise(x)))
        return self.leaky(self.grouped(x))

    def taps(self, x):
        dw = self.act(self.depthwise(x))
        pw = F.relu6(self.bn(self.pointwise(dw)))
        return {"depthwise": (x, dw), "pointwise": (dw, pw), "grouped": (pw, self.grouped(pw))}


class PadNet(nn.Module):
    """Pad ops before convs: reflect, zero (uneven, joined to the conv's own padding=1 at
    stride 2), constant 0.5, replicate, and a conv with padding_mode='circular'."""

    def __init__(self):
        super().__init__()
        self.reflect = nn.ReflectionPad2d(1)
        self.conv_reflect = nn.Conv2d(3, 4, 3)
        self.zero = nn.ZeroPad2d((1, 2, 0, 1))
        self.conv_zero = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.constant = nn.ConstantPad2d(1, 0.5)
        self.conv_constant = nn.Conv2d(4, 4, 3, bias=False)
        self.replicate = nn.ReplicationPad2d((0, 1, 1, 0))
        self.conv_edge = nn.Conv2d(4, 4, 2)
        self.conv_wrap = nn.Conv2d(4, 3, 3, padding=1, padding_mode="circular")

    def forward(self, x):
        x = self.conv_reflect(self.reflect(x))
        x = self.conv_zero(self.zero(x))
        x = self.conv_constant(self.constant(x))
        x = self.conv_edge(self.replicate(x))
        return torch.sigmoid(self.conv_wrap(x))

    def taps(self, x):
        a = self.conv_reflect(self.reflect(x))
        b = self.conv_zero(self.zero(a))
        c = self.conv_constant(self.constant(b))
        d = self.conv_edge(self.replicate(c))
        return {"conv_reflect": (x, a), "conv_zero": (a, b), "conv_constant": (b, c), "conv_edge": (c, d),
                "conv_wrap": (d, self.conv_wrap(d))}


class DilatedNet(nn.Module):
    """A dilated conv (padding=2) then a Sigmoid, an even kernel with padding='same' then
    clamp(0, 6), and a dilated 'same' conv."""

    def __init__(self):
        super().__init__()
        self.dilated = nn.Conv2d(3, 4, 3, dilation=2, padding=2)
        self.same_even = nn.Conv2d(4, 6, (2, 4), padding="same")
        self.same_dilated = nn.Conv2d(6, 4, 3, padding="same", dilation=2, bias=False)

    def forward(self, x):
        x = torch.sigmoid(self.dilated(x))
        x = torch.clamp(self.same_even(x), 0.0, 6.0)
        return self.same_dilated(x)

    def taps(self, x):
        a = self.dilated(x)
        b = torch.clamp(self.same_even(torch.sigmoid(a)), 0.0, 6.0)
        return {"dilated": (x, a), "same_even": (torch.sigmoid(a), b), "same_dilated": (b, self.same_dilated(b))}


class NoConv(nn.Module):
    """A model without any 2-D convolution."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 4)

    def forward(self, x):
        return torch.relu(self.linear(x))


class Dynamic(ResNetBlock):
    """ResNetBlock whose forward branches on a tensor's value: torch.export cannot export it."""

    def forward(self, x):
        if float(x.abs().sum()) >= 0.0:
            return super().forward(x)
        return x


def _layer(name, *, stride=(1, 1), dilation=(1, 1), groups=1, pads=((0, 0), (0, 0)), padding="explicit",
           boundary="zero", cval=0.0, batchnorm=None, activation="linear", followed_by="", bias=True,
           string_padding=False, pad_op=False):
    return dict(name=name, stride=stride, dilation=dilation, groups=groups, pads=pads, padding=padding,
                boundary=boundary, cval=cval, batchnorm=batchnorm, activation=activation, followed_by=followed_by,
                bias=bias, string_padding=string_padding, pad_op=pad_op)


# What each layer declares, in execution order: `batchnorm` names the BatchNorm module.
LAYERS = {
    "resnet": [
        _layer("conv1", stride=(2, 2), pads=((1, 1), (1, 1)), batchnorm="bn1", activation="relu", bias=False),
        _layer("conv2", pads=((1, 1), (1, 1)), batchnorm="bn2", followed_by="Add", bias=False),
        _layer("downsample.0", stride=(2, 2), batchnorm="downsample.1", followed_by="Add", bias=False),
    ],
    "mobilenet": [
        _layer("depthwise", stride=(2, 2), pads=((1, 1), (1, 1)), groups=6, activation="relu6"),
        _layer("pointwise", batchnorm="bn", activation="relu6", bias=False),
        _layer("grouped", groups=2, padding="valid", followed_by="LeakyRelu", string_padding=True),
    ],
    "pad": [
        _layer("conv_reflect", pad_op=True, pads=((1, 1), (1, 1)), boundary="reflect"),
        _layer("conv_zero", pad_op=True, stride=(2, 2), pads=((1, 2), (2, 3))),
        _layer("conv_constant", pad_op=True, pads=((1, 1), (1, 1)), boundary="constant", cval=0.5, bias=False),
        _layer("conv_edge", pad_op=True, pads=((1, 0), (0, 1)), boundary="edge"),
        _layer("conv_wrap", pad_op=True, pads=((1, 1), (1, 1)), boundary="wrap", followed_by="Sigmoid"),
    ],
    "dilated": [
        _layer("dilated", dilation=(2, 2), pads=((2, 2), (2, 2)), followed_by="Sigmoid"),
        _layer("same_even", pads=((0, 1), (1, 2)), padding="same", activation="relu6", string_padding=True),
        _layer("same_dilated", dilation=(2, 2), pads=((2, 2), (2, 2)), padding="same", bias=False,
               string_padding=True),
    ],
}

NETS = {"resnet": (ResNetBlock, (1, 4, 10, 10)), "mobilenet": (MobileNetBlock, (1, 6, 9, 9)),
        "pad": (PadNet, (1, 3, 9, 8)), "dilated": (DilatedNet, (1, 3, 8, 8))}


def build(name: str) -> nn.Module:
    """A net of NETS in eval mode, its weights drawn from a fixed seed."""
    torch.manual_seed(sum(map(ord, name)))
    return NETS[name][0]().eval()
