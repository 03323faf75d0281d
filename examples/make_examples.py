"""Make examples/<pitfall>/{image,kernel,output}.npy: one small case per pitfall, each output
made by a real library call. Run: python examples/make_examples.py (needs TensorFlow/Keras
for the Keras cases). `PITFALLS` also says what `convcheck explain` should find; the
test suite checks every committed example against it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# name -> (what made the output, the explanation's changed fields, the verdict)
PITFALLS = {
    "flipped_kernel": ("scipy.signal.convolve2d(image, kernel, mode='same')",
                       {"kernel_transform": "rot180"}, "explained"),
    "transposed_kernel": ("scipy.signal.convolve2d(image, kernel.T, mode='same'), as in the keras-vs-scipy question",
                          {"kernel_transform": "anti_transpose"}, "explained"),
    "keras_float32_policy": ("keras.layers.Conv2D(..., padding='same') on float64 data (default float32 policy)",
                             {"precision": "float32"}, "explained"),
    "keras_default_padding": ("keras.layers.Conv2D(...) with its default padding='valid', dtype='float64'",
                              {"padding": "valid"}, "explained"),
    "keras_bias": ("keras.layers.Conv2D(..., use_bias=True, dtype='float64') with bias 0.1",
                   {"bias": 0.1}, "explained"),
    "mixed_float16": ("keras.layers.Conv2D(..., dtype='mixed_float16')",
                      {"precision": "float16"}, "explained"),
    "ndimage_reflect": ("scipy.ndimage.correlate(image, kernel) (default mode='reflect')",
                        {"boundary": "symmetric"}, "explained"),
    "opencv_border_float32": ("scipy.ndimage.correlate(float32 image, float32 kernel[::-1, ::-1], mode='mirror'): "
                              "OpenCV filter2D's default border, a pre-flipped kernel, float32",
                              {"kernel_transform": "rot180", "boundary": "reflect", "precision": "float32"},
                              "explained"),
    "even_kernel_offset": ("scipy.signal.convolve2d(image, 4x4 kernel, mode='same')",
                           {"kernel_transform": "rot180", "offset": (-1, -1)}, "explained"),
    "normalised_kernel": ("scipy.signal.correlate2d(image, kernel / kernel.sum(), mode='same')",
                          {"scale": None}, "explained"),
    "corrupted_pixel": ("scipy.signal.correlate2d(image, kernel, mode='same') with one pixel off by 1e-3",
                        {}, "unexplained"),
    "pytorch_stride2": ("torch.nn.functional.conv2d(image, weight, stride=2, padding=1) on a 16x16 NCHW batch, "
                        "checked against TensorFlow's SAME at stride 2", {"offset": (-1, -1)}, "explained"),
}

# What `convcheck explain` is told besides the three files (as its options would say).
EXPLAIN_OPTIONS = {"pytorch_stride2": {"layout": "nchw", "stride": 2}}


def make(name: str, rng: np.random.Generator):
    import scipy.ndimage as ndi
    import scipy.signal as sig
    image = rng.standard_normal((16, 16))
    kernel = rng.standard_normal((3, 3))
    if name == "flipped_kernel":
        return image, kernel, sig.convolve2d(image, kernel, mode="same")
    if name == "transposed_kernel":
        return image, kernel, sig.convolve2d(image, kernel.T, mode="same")
    if name == "ndimage_reflect":
        return image, kernel, ndi.correlate(image, kernel)
    if name == "opencv_border_float32":
        kernel = rng.standard_normal((5, 5))
        return image, kernel, ndi.correlate(image.astype(np.float32), kernel[::-1, ::-1].astype(np.float32),
                                            mode="mirror")
    if name == "even_kernel_offset":
        kernel = rng.standard_normal((4, 4))
        return image, kernel, sig.convolve2d(image, kernel, mode="same")
    if name == "normalised_kernel":
        kernel = np.abs(kernel) + 0.5
        return image, kernel, sig.correlate2d(image, kernel / kernel.sum(), mode="same")
    if name == "corrupted_pixel":
        out = sig.correlate2d(image, kernel, mode="same")
        out[5, 9] += 1e-3
        return image, kernel, out
    if name == "pytorch_stride2":
        import torch
        image = torch.from_numpy(rng.standard_normal((1, 3, 16, 16)).astype(np.float32))
        weight = torch.from_numpy(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
        with torch.no_grad():
            out = torch.nn.functional.conv2d(image, weight, stride=2, padding=1)
        return image.numpy(), weight.numpy(), out.numpy()
    image = rng.standard_normal((16, 16, 3))
    kernel = rng.standard_normal((3, 3, 3, 2))
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    options = {"keras_float32_policy": {"padding": "same"},
               "keras_default_padding": {"dtype": "float64"},
               "keras_bias": {"padding": "same", "dtype": "float64", "use_bias": True},
               "mixed_float16": {"padding": "same", "dtype": "mixed_float16"}}[name]
    layer = keras.layers.Conv2D(2, (3, 3), **{"use_bias": False, **options})
    layer.build((None, 16, 16, 3))
    layer.set_weights([kernel] + ([np.full(2, 0.1)] if options.get("use_bias") else []))
    return image, kernel, np.asarray(layer(image[None]).numpy()[0])


def main():
    for i, name in enumerate(PITFALLS):
        folder = HERE / name
        folder.mkdir(exist_ok=True)
        for part, array in zip(("image", "kernel", "output"), make(name, np.random.default_rng(100 + i))):
            np.save(folder / f"{part}.npy", array)
        print(f"{name:24s} {PITFALLS[name][0]}")


if __name__ == "__main__":
    main()
