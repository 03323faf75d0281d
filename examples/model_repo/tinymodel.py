"""The "model" of this tiny repository: one hand-written 'same' convolution layer.

Deep-learning convention (what TensorFlow and Keras compute): a cross-correlation, the
kernel NOT flipped, zero padding, the extra row/column of an even kernel at the
bottom/right.
"""

import numpy as np


def conv2d_same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Cross-correlate a 2-D image with a 2-D kernel, output the image's size (TF 'SAME')."""
    kh, kw = kernel.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2
    padded = np.pad(image, ((top, kh - 1 - top), (left, kw - 1 - left)))
    out = np.zeros(image.shape, dtype=np.result_type(image, kernel))
    for u in range(kh):
        for v in range(kw):
            out += kernel[u, v] * padded[u:u + image.shape[0], v:v + image.shape[1]]
    return out
