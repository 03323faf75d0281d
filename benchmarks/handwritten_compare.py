"""What a user would write by hand: load the arrays, make the calls compare makes.

All twelve rows: scipy.signal (convolve2d, correlate2d, fftconvolve), scipy.ndimage
(correlate, convolve), tf.nn.conv2d, Keras on TensorFlow, F.conv2d, lax.conv_general_dilated,
cv2.filter2D, and Keras on JAX and on PyTorch, which need processes of their own (Keras
picks its backend once per process): a careful author starts those two first, so they
run while this one works, and reads their results from .npy files.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

KERAS_CHILD = """
import sys, numpy as np, keras
image, kernel = np.load(sys.argv[1]), np.load(sys.argv[2])
layer = keras.layers.Conv2D(1, kernel.shape, padding="same", use_bias=False, dtype="float32")
layer.build((None, *image.shape, 1))
layer.set_weights([kernel[:, :, None, None]])
np.save(sys.argv[3], keras.ops.convert_to_numpy(layer(image[None, :, :, None]))[0, :, :, 0])
"""

image_path, kernel_path = sys.argv[1], sys.argv[2]
folder = tempfile.mkdtemp()
children = []
for backend in ("jax", "torch"):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    out = os.path.join(folder, f"keras_{backend}.npy")
    children.append((out, subprocess.Popen([sys.executable, "-c", KERAS_CHILD, image_path, kernel_path, out],
                                           env=env, stderr=subprocess.DEVNULL)))

import scipy.ndimage  # noqa: E402
import scipy.signal  # noqa: E402

image = np.load(image_path, allow_pickle=False)
kernel = np.load(kernel_path, allow_pickle=False)
outputs = [scipy.signal.convolve2d(image, kernel, mode="same"),
           scipy.signal.correlate2d(image, kernel, mode="same"),
           scipy.signal.fftconvolve(image, kernel[::-1, ::-1], mode="same"),
           scipy.ndimage.correlate(image, kernel, mode="constant"),
           scipy.ndimage.convolve(image, kernel[::-1, ::-1], mode="constant")]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

outputs.append(tf.nn.conv2d(image[None, :, :, None], kernel[:, :, None, None], strides=1,
                            padding="SAME").numpy()[0, :, :, 0])
layer = keras.layers.Conv2D(1, kernel.shape, padding="same", use_bias=False, dtype="float32")
layer.build((None, *image.shape, 1))
layer.set_weights([kernel[:, :, None, None]])
outputs.append(np.asarray(layer(image[None, :, :, None]))[0, :, :, 0])

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

outputs.append(F.conv2d(torch.from_numpy(image)[None, None], torch.from_numpy(kernel)[None, None],
                        padding="same")[0, 0].numpy())

import jax  # noqa: E402
from jax import lax  # noqa: E402

outputs.append(np.asarray(lax.conv_general_dilated(
    image[None, :, :, None], kernel[:, :, None, None], (1, 1), "SAME",
    dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=lax.Precision.HIGHEST))[0, :, :, 0])

import cv2  # noqa: E402

outputs.append(cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_CONSTANT))

for out, child in children:
    child.wait()
    outputs.append(np.load(out))

reference = outputs[1].astype(np.float64)
for out in outputs:
    print(float(np.max(np.abs(out - reference))))
