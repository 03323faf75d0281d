"""The yardstick for a real layer: what a user writes to check one saved NCHW conv output.

Load the four arrays, the float64 reference by im2col and one BLAS matrix product (zero padding
by the layer's amounts, its stride), the same bias and activation, and an elementwise comparison
with a tolerance; print the largest difference and how many elements are off.

Usage: python benchmarks/handwritten_layer.py X.npy W.npy B.npy Y.npy STRIDE PADDING ACTIVATION
"""
import sys

import numpy as np

x, w, b, y = (np.load(path, allow_pickle=False) for path in sys.argv[1:5])
stride, padding, activation = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
c_out, c_in, kh, kw = w.shape
image = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
windows = np.lib.stride_tricks.sliding_window_view(image, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
n, _, ho, wo = windows.shape[:4]
cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c_in * kh * kw)
reference = cols @ w.astype(np.float64).reshape(c_out, -1).T + b.astype(np.float64)
if activation == "relu":
    reference = np.maximum(reference, 0.0)
reference = reference.reshape(n, ho, wo, c_out).transpose(0, 3, 1, 2)
close = np.abs(y - reference) <= 1e-5 + 1e-4 * np.abs(reference)
print(f"max |diff| {np.max(np.abs(y - reference)):.3g}, {close.size - np.count_nonzero(close)} elements off")
sys.exit(0 if close.all() else 1)
