"""Regenerate tests/data/*.npy: the inputs and saved outputs convcheck checks in CI.

    python make_data.py

Everything is made with numpy and scipy from a fixed seed, so the files are reproducible:
- image.npy, kernel.npy: a 16x16 float64 image and an asymmetric 3x3 float64 kernel
  (asymmetric, so a flipped or transposed kernel changes the result);
- ported_output.npy: what a layer "ported" from scipy computes: scipy.signal.convolve2d
  (a true convolution: the kernel flipped 180 degrees) on float32 copies of the inputs.
  convcheck explains it as kernel_transform=rot180 + precision=float32, and the config
  allows exactly that;
- smoothed_output.npy: scipy.ndimage.correlate with its default boundary (mode='reflect',
  which repeats the edge: convcheck's boundary=symmetric).
"""

from pathlib import Path

import numpy as np
import scipy.ndimage
import scipy.signal

DATA = Path(__file__).resolve().parent / "tests" / "data"


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240607)
    image = rng.standard_normal((16, 16))
    kernel = np.array([[1.0, 2.0, 0.0],
                       [-1.0, 0.5, 3.0],
                       [0.25, -2.0, 1.0]])
    ported = scipy.signal.convolve2d(image.astype(np.float32), kernel.astype(np.float32), mode="same")
    smoothed = scipy.ndimage.correlate(image, kernel)
    np.save(DATA / "image.npy", image)
    np.save(DATA / "kernel.npy", kernel)
    np.save(DATA / "ported_output.npy", ported.astype(np.float32))
    np.save(DATA / "smoothed_output.npy", smoothed)
    print(f"wrote 4 files to {DATA}")


if __name__ == "__main__":
    main()
