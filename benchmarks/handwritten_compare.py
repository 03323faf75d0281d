"""What a user would write by hand: load the arrays, make the four calls compare makes."""
import os
import sys

import numpy as np
import scipy.signal

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

image = np.load(sys.argv[1], allow_pickle=False)
kernel = np.load(sys.argv[2], allow_pickle=False)
convolved = scipy.signal.convolve2d(image, kernel, mode="same")
correlated = scipy.signal.correlate2d(image, kernel, mode="same")
tf_out = tf.nn.conv2d(image[None, :, :, None], kernel[:, :, None, None], strides=1, padding="SAME").numpy()
layer = keras.layers.Conv2D(1, kernel.shape, padding="same", use_bias=False, dtype="float32")
layer.build((None, *image.shape, 1))
layer.set_weights([kernel[:, :, None, None]])
keras_out = np.asarray(layer(image[None, :, :, None]))
reference = correlated.astype(np.float64)
for out in (convolved, correlated, tf_out[0, :, :, 0], keras_out[0, :, :, 0]):
    print(float(np.max(np.abs(out - reference))))
