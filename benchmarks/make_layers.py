"""Real layers for `make bench` (issue 21 item 8), each output made by a real PyTorch call.

Run: python benchmarks/make_layers.py FOLDER. For each layer, NCHW float32 and seeded:

    stem   (1, 3, 224, 224) -> 64, 7x7, stride 2, padding=3, bias           (ResNet's stem conv)
    block  (1, 256, 14, 14) -> 256, 3x3, stride 1, padding=1, bias, ReLU    (a conv + bias + ReLU)

it writes FOLDER/<layer>_{x,w,b}.npy (the input, the OIHW weight, the bias) and three outputs:
<layer>_y.npy, what the layer computes (torch.nn.functional.conv2d, then the ReLU); <layer>_pixel.npy,
the same with one output element off by 1% of the layer's largest value (one element is the
smallest thing a check must catch); <layer>_wrong.npy, the output of a
port that used other weights (a fresh nn.Conv2d's default initialisation, seeded: the weights
were never copied), with the same bias. `LAYERS` says how each layer was declared.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# layer -> (input shape, output channels, kernel size, stride, padding, activation)
LAYERS = {"stem": ((1, 3, 224, 224), 64, 7, 2, 3, "linear"),
          "block": ((1, 256, 14, 14), 256, 3, 1, 1, "relu")}
OUTPUTS = ("y", "pixel", "wrong")


def make(folder: Path, name: str, seed: int) -> None:
    import torch
    import torch.nn.functional as F

    shape, c_out, size, stride, padding, activation = LAYERS[name]
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(shape[1], c_out, size, stride=stride, padding=padding)
    wrong = torch.nn.Conv2d(shape[1], c_out, size, stride=stride, padding=padding)
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))
    with torch.no_grad():
        y = F.conv2d(x, conv.weight, conv.bias, stride=stride, padding=padding)
        y_wrong = F.conv2d(x, wrong.weight, conv.bias, stride=stride, padding=padding)
        if activation == "relu":
            y, y_wrong = torch.relu(y), torch.relu(y_wrong)
    y, y_wrong = y.numpy(), y_wrong.numpy()
    pixel = y.copy()
    # An element the ReLU kept, off by 1% of the layer's largest value. Far above float32
    # rounding (~1e-6 here), and above the rigorous worst-case bound too: at 0.1% the 3x3x256
    # layer's element is still inside that bound (2.8e-3), and `equal` would be right.
    where = np.unravel_index(int(np.argmax(y > 0.5 * y.max())), y.shape)
    pixel[where] += np.float32(1e-2 * float(np.abs(y).max()))
    arrays = {"x": x.numpy(), "w": conv.weight.detach().numpy(), "b": conv.bias.detach().numpy(),
              "y": y, "pixel": pixel, "wrong": y_wrong}
    for part, array in arrays.items():
        np.save(folder / f"{name}_{part}.npy", array)


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(LAYERS):
        make(folder, name, 21 + seed)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
