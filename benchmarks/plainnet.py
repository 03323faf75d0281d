"""A plain deep PyTorch model for `make bench`'s memory row: 16 convs 3x3 (32 channels, bias,
padding=1) each followed by a ReLU, on a 1x3x384x384 NCHW input. Its conv tensors add up to
far more than its largest layer (each activation 18 MiB, about 300 MiB captured per model),
which is what the walk's memory is measured against (issue 22 item 7).

Run: python benchmarks/plainnet.py FOLDER -> FOLDER/plain.pt2 (torch.export.save),
FOLDER/plain.onnx (torch.onnx.export) and FOLDER/input.npy, the seeded input both were traced
with. The hand-written walk (handwritten_model.py) imports `plainnet()` to rebuild the eager
model around the .pt2's weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

SHAPE = (1, 3, 384, 384)
DEPTH, WIDTH = 16, 32


def plainnet() -> nn.Sequential:
    """The model in eval mode: PyTorch's default initialisation, seeded."""
    torch.manual_seed(16)
    layers: list[nn.Module] = []
    for i in range(DEPTH):
        layers += [nn.Conv2d(SHAPE[1] if i == 0 else WIDTH, WIDTH, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers).eval()


def example() -> np.ndarray:
    """The seeded NCHW input (standard normal, float32)."""
    return np.random.default_rng(384).standard_normal(SHAPE).astype(np.float32)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from resnet18 import save
    save(Path(sys.argv[1]), "plain", plainnet(), example())
