"""Real inputs and saved outputs for the `check` tests, made with numpy and scipy (no TensorFlow).

`write_data(folder)` writes, next to a config:
- image.npy (10x10 float64), kernel.npy (asymmetric 3x3 float64);
- correlated.npy: scipy.signal.correlate2d 'same' (equal to the reference);
- ported.npy: scipy.signal.convolve2d on float32 copies (kernel rot180 + precision float32);
- mirrored.npy: scipy.ndimage.correlate with its default boundary (boundary symmetric);
- buggy.npy: the reference with one element changed (unexplained);
- rgb.npy: a 3-channel output the 2-D kernel cannot have produced (an input error).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import scipy.ndimage
import scipy.signal

KERNEL = np.array([[1.0, 2.0, 0.0], [-1.0, 0.5, 3.0], [0.25, -2.0, 1.0]])


def write_data(folder: Path) -> Path:
    """Write the arrays into `folder` and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(7).standard_normal((10, 10))
    kernel = KERNEL
    correlated = scipy.signal.correlate2d(image, kernel, mode="same")
    buggy = correlated.copy()
    buggy[4, 6] += 0.75
    arrays = {
        "image": image,
        "kernel": kernel,
        "correlated": correlated,
        "ported": scipy.signal.convolve2d(image.astype(np.float32), kernel.astype(np.float32), mode="same"),
        "mirrored": scipy.ndimage.correlate(image, kernel),
        "buggy": buggy,
        "rgb": np.zeros((10, 10, 3)),  # three channels: no 3x3 single-channel kernel makes this
    }
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    return folder


def case(name: str, output: str | None = None, *, backends=None, allow=None, extra: str = "",
         table: str = "[[case]]") -> str:
    """One case table in TOML."""
    lines = [table, f'name = "{name}"', 'image = "image.npy"', 'kernel = "kernel.npy"']
    if output is not None:
        lines.append(f'output = "{output}.npy"')
    if backends is not None:
        lines.append("backends = [" + ", ".join(f'"{b}"' for b in backends) + "]")
    if allow is not None:
        lines.append("allow = [" + ", ".join(f'"{a}"' for a in allow) + "]")
    if extra:
        lines.append(textwrap.dedent(extra).strip())
    return "\n".join(lines) + "\n"


def write_config(folder: Path, *cases: str, top: str = "", name: str = "convcheck.toml") -> Path:
    """Write a config of `cases` (TOML text) with top-level `top` into `folder`."""
    path = folder / name
    path.write_text(textwrap.dedent(top).strip() + "\n\n" + "\n".join(cases), encoding="utf-8")
    return path
