"""The yardstick for check: one process, TF/Keras imported once, the same calls by hand."""
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

folder, cases = Path(sys.argv[1]), int(sys.argv[2])
for i in range(cases):
    image = np.load(folder / f"x{i}.npy", allow_pickle=False)
    kernel = np.load(folder / f"k{i}.npy", allow_pickle=False)
    tf_out = tf.nn.conv2d(image[None, :, :, None], kernel[:, :, None, None], strides=1, padding="SAME").numpy()
    layer = keras.layers.Conv2D(1, kernel.shape, padding="same", use_bias=False, dtype="float32")
    layer.build((None, *image.shape, 1))
    layer.set_weights([kernel[:, :, None, None]])
    keras_out = np.asarray(layer(image[None, :, :, None]))
    print(i, float(np.max(np.abs(tf_out[0, :, :, 0] - keras_out[0, :, :, 0]))))
