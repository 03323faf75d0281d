"""A ResNet-18-shaped PyTorch model for `make bench`, written out (torchvision does not install
with this CPU torch): the same layers and names as torchvision.models.resnet18, 20 convs,
random weights and seeded BatchNorm statistics, eval mode, 1x3x224x224 NCHW input.

Run: python benchmarks/resnet18.py FOLDER -> FOLDER/resnet18.pt2 (torch.export.save) and
FOLDER/resnet18.onnx (torch.onnx.export, BatchNorm folded into the convs by the exporter), and
FOLDER/input.npy, the seeded input both were traced with. The hand-written walk
(handwritten_model.py) imports `resnet18()` to rebuild the eager model around the .pt2's weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

SHAPE = (1, 3, 224, 224)


def _batchnorm(channels: int, generator: torch.Generator) -> nn.BatchNorm2d:
    # A fresh BatchNorm is the identity: statistics a trained net would have make the walk's
    # BatchNorm handling (folded by the ONNX exporter) part of what is measured.
    bn = nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(channels, generator=generator) * 0.1)
        bn.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
        bn.weight.copy_(torch.rand(channels, generator=generator) + 0.5)
        bn.bias.copy_(torch.randn(channels, generator=generator) * 0.1)
    return bn


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: two 3x3 convs (the first may have stride 2, padding=1) with
    BatchNorm, and a 1x1 stride-2 downsample where the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, generator: torch.Generator):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _batchnorm(c_out, generator)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = _batchnorm(c_out, generator)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                            _batchnorm(c_out, generator))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet18(nn.Module):
    def __init__(self, generator: torch.Generator):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = _batchnorm(64, generator)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        stages, c_in = [], 64
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(c_in, width, stride, generator),
                                        BasicBlock(width, width, 1, generator)))
            c_in = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, 1000)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18() -> ResNet18:
    """The model in eval mode: PyTorch's default (Kaiming-uniform) initialisation, seeded."""
    torch.manual_seed(18)
    return ResNet18(torch.Generator().manual_seed(18)).eval()


def example() -> np.ndarray:
    """The seeded NCHW input (standard normal, float32)."""
    return np.random.default_rng(224).standard_normal(SHAPE).astype(np.float32)


def save(folder: Path, name: str, model: nn.Module, x: np.ndarray) -> None:
    """FOLDER/NAME.pt2 (torch.export.save), FOLDER/NAME.onnx and FOLDER/input.npy, both traced with `x`."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "input.npy", x)
    image = torch.from_numpy(x)
    torch.export.save(torch.export.export(model, (image,), strict=False), str(folder / f"{name}.pt2"))
    # The TorchScript-based exporter, as most ONNX files in the wild were made (BatchNorm folded).
    torch.onnx.export(model, (image,), str(folder / f"{name}.onnx"), dynamo=False, input_names=["image"],
                      output_names=["output"])


if __name__ == "__main__":
    save(Path(sys.argv[1]), "resnet18", resnet18(), example())
