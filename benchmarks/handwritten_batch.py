"""The yardstick for a batch: load the three arrays, one float64 im2col + matrix product.

An (N, H, W, C) image and an HWIO kernel, 'same' padding as TensorFlow pads it (stride 1:
(k - 1) // 2 before, the rest after), every window unrolled into a row and multiplied by
the kernel in float64: what a careful author writes to check a framework's output.
"""
import sys

import numpy as np

image, kernel, output = (np.load(path, allow_pickle=False) for path in sys.argv[1:4])
kh, kw, c_in, c_out = kernel.shape
x = np.pad(image.astype(np.float64), ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # (N, H, W, C, kh, kw)
cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, kh * kw * c_in)
reference = (cols @ kernel.astype(np.float64).reshape(-1, c_out)).reshape(output.shape)
print(float(np.max(np.abs(output - reference))))
