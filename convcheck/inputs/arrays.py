"""One array at a time: its dtype, its number of dimensions, finite values, and the canonical
layout it is read into (image (N, H, W, C), kernel HWIO, output (N, Ho, Wo, C_out)).
"""

from __future__ import annotations

import numpy as np

from ..choices import KERNEL_AXIS_ORDERS
from ..errors import InputError
from ..vocabulary import KERNEL_LAYOUTS, LAYOUTS

# What each role accepts, said the same way in every shape message.
_ACCEPTED = {
    "image": "give a 2-D (H, W) or 3-D (H, W, C) image, or a 4-D (N, H, W, C) batch (with --layout nchw: "
             "(C, H, W) or (N, C, H, W))",
    "kernel": "give a 2-D (kh, kw) kernel or a 4-D HWIO (kh, kw, C_in, C_out) kernel",
    "output": "give a 2-D (Ho, Wo) or 3-D (Ho, Wo, C_out) output, or a 4-D (N, Ho, Wo, C_out) batch",
}


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# ----------------------------------------------------------------------------- dtypes


def _from_ml_dtypes(dtype: np.dtype) -> bool:
    # ml_dtypes registers its types as kind 'V' dtypes; recognise them without importing it.
    return getattr(dtype.type, "__module__", "").split(".")[0] == "ml_dtypes"


def is_bfloat16(dtype: np.dtype) -> bool:
    return dtype.name == "bfloat16" and _from_ml_dtypes(dtype)


def check_dtype(dtype: np.dtype, label: str, from_file: bool) -> None:
    """Refuse every dtype the reference cannot compute with; accept floats <= 64 bits and ints."""
    if is_bfloat16(dtype):
        return
    kind = dtype.kind
    if kind in "iu" or (kind == "f" and dtype.itemsize <= 8):
        return
    if kind == "O":
        if from_file:
            raise InputError(f"{label}: is a pickled object array (dtype object), which convcheck never loads "
                             "(allow_pickle=False: unpickling can run arbitrary code); save a numeric array, "
                             "e.g. np.save(path, np.asarray(x, dtype=np.float64))")
        raise InputError(f"{label}: is an object array (dtype object), not numbers; pass a numeric array, "
                         "e.g. np.asarray(x, dtype=np.float64)")
    if kind in "US":
        raise InputError(f"{label}: holds text (dtype {dtype}), not numbers; "
                         "convert it to a float array, e.g. x.astype(np.float64)")
    if kind == "c":
        raise InputError(f"{label}: is complex (dtype {dtype}); convcheck compares real convolutions: "
                         "pass the real and imaginary parts separately (x.real, x.imag)")
    if _from_ml_dtypes(dtype):
        raise InputError(f"{label}: is {dtype.name}, which convcheck does not support (of the ml_dtypes "
                         "types only bfloat16 is); cast it to float32 first, e.g. x.astype(np.float32)")
    if kind == "V":
        hint = ""
        if dtype.names is None and dtype.itemsize == 2:
            hint = (" (it may be bfloat16: np.save writes ml_dtypes arrays as raw 2-byte records that "
                    "lose their type (.npy cannot record ml_dtypes' bfloat16); cast it to float32 before "
                    "np.save, e.g. np.save(path, x.astype(np.float32)))")
        what = "a structured array" if dtype.names is not None else "raw bytes"
        raise InputError(f"{label}: is {what} (dtype {dtype}), not plain numbers{hint}; "
                         "pass a float or integer array")
    if kind == "b":
        raise InputError(f"{label}: is boolean (dtype bool); cast it to uint8 or float, e.g. x.astype(np.uint8)")
    if kind == "f":
        raise InputError(f"{label}: is {dtype.name} (extended precision), which the float64 reference "
                         "cannot represent; cast it to float64, e.g. x.astype(np.float64)")
    if kind in "mM":
        raise InputError(f"{label}: holds dates or time spans (dtype {dtype}), not numbers; "
                         "convert it to float64")
    raise InputError(f"{label}: has unsupported dtype {dtype}; pass a float16/32/64 or integer array")


# ----------------------------------------------------------------------------- shapes


def to_array(array, label: str) -> np.ndarray:
    try:
        result = np.asarray(array)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"{label}: cannot be turned into a numeric array ({one_line(exc)}); "
                         "pass a numpy array of one shape") from None
    return result


def _check_common(array: np.ndarray, label: str, role: str, from_file: bool) -> None:
    """Checks that hold for every role: dtype, 2 <= ndim <= 4, non-empty, finite."""
    check_dtype(array.dtype, label, from_file)
    if array.ndim < 2 or array.ndim > 4:
        what = "a single number" if array.ndim == 0 else f"{array.ndim}-D (shape {array.shape})"
        raise InputError(f"{label}: is {what}; {_ACCEPTED[role]}")
    if array.size == 0:
        raise InputError(f"{label}: has no elements (shape {array.shape}); give a non-empty array")
    check_finite(array, label)


def check_finite(array: np.ndarray, label: str) -> None:
    """Refuse NaN and Inf, naming how many and where the first one is in the caller's shape."""
    if array.dtype.kind in "iu":
        return
    values = array.astype(np.float32) if is_bfloat16(array.dtype) else array
    finite = np.isfinite(values)
    if finite.all():
        return
    nan_count = int(np.count_nonzero(np.isnan(values)))
    inf_count = int(finite.size - np.count_nonzero(finite)) - nan_count
    first = np.unravel_index(int(np.argmin(finite.reshape(-1))), array.shape)
    parts = []
    if nan_count:
        parts.append(f"{nan_count} NaN value{'s' if nan_count > 1 else ''}")
    if inf_count:
        parts.append(f"{inf_count} infinite value{'s' if inf_count > 1 else ''}")
    index = ", ".join(str(int(i)) for i in first)
    raise InputError(f"{label}: contains {' and '.join(parts)} (first at index [{index}]); "
                     "clean or mask them before comparing convolutions")


def image_array(array, label: str, from_file: bool = False, layout: str = "nhwc") -> np.ndarray:
    """The image as an (N, H, W, C) batch: (H, W) is one channel, a 3-D array one image
    ((H, W, C), or (C, H, W) with layout 'nchw'), a 4-D array a batch."""
    array = to_array(array, label)
    _check_common(array, label, "image", from_file)
    if array.ndim == 2:
        return array[np.newaxis, :, :, np.newaxis]
    if array.ndim == 3:
        return (np.moveaxis(array, 0, -1) if layout == "nchw" else array)[np.newaxis]
    if array.ndim == 4:
        return np.moveaxis(array, 1, -1) if layout == "nchw" else array
    raise InputError(f"{label}: has {array.ndim} dimensions (shape {array.shape}); {_ACCEPTED['image']}")


def output_array(array, label: str, from_file: bool = False) -> np.ndarray:
    array = to_array(array, label)
    _check_common(array, label, "output", from_file)
    if array.ndim not in (2, 3, 4):
        raise InputError(f"{label}: has {array.ndim} dimensions (shape {array.shape}); {_ACCEPTED['output']}")
    return array


def option_text(option: str, value: str) -> str:
    """How the user sets an option: '--kernel-layout oihw' on the CLI, "kernel_layout='oihw'" in Python."""
    return f"{option} {value}" if option.startswith("--") else f"{option}'{value}'"


def check_kernel_layout(layout, option: str) -> str:
    if layout in KERNEL_LAYOUTS or layout in KERNEL_AXIS_ORDERS or layout == "oihw-reshaped":
        return layout   # 'oihw-reshaped' (CONTRACT section 2): declared, the kernel is read back
    suggestion = ""
    if isinstance(layout, str) and (layout.lower() in KERNEL_LAYOUTS or layout.lower() in KERNEL_AXIS_ORDERS):
        suggestion = f" (write it in lower case: '{layout.lower()}')"
    raise InputError(f"kernel layout {layout!r} is not one of {', '.join(KERNEL_LAYOUTS)}, oihw-reshaped or another "
                     f"order of the letters h, w, i, o{suggestion}; pass {option_text(option, 'hwio')} (TensorFlow/Keras), "
                     f"{option_text(option, 'oihw')} (PyTorch), {option_text(option, 'depthwise')} "
                     "(tf.nn.depthwise_conv2d, Keras DepthwiseConv2D), or the order of your kernel's axes "
                     f"(e.g. {option_text(option, 'ohwi')})")


def read_kernel_as(array: np.ndarray, layout: str) -> np.ndarray:
    """A 4-D kernel array whose axes are in `layout` (an order of the letters h, w, i, o), as
    HWIO; 'oihw-reshaped' undoes PyTorch OIHW weights turned into this HWIO shape with
    `reshape` instead of `transpose` (CONTRACT section 2, kernel_layout). A view where it can be."""
    if layout == "oihw-reshaped":
        kh, kw, c_in, c_out = array.shape
        return np.reshape(array, (c_out, c_in, kh, kw)).transpose(2, 3, 1, 0)
    return array.transpose([layout.index(axis) for axis in "hwio"])


def check_image_layout(layout, option: str) -> str:
    if layout in LAYOUTS:
        return layout
    raise InputError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}; pass {option_text(option, 'nhwc')} "
                     f"(TensorFlow, channels last) or {option_text(option, 'nchw')} (PyTorch, channels first)")


def kernel_array(array, label: str, layout: str, layout_option: str, from_file: bool = False) -> np.ndarray:
    layout = check_kernel_layout(layout, layout_option)
    array = to_array(array, label)
    _check_common(array, label, "kernel", from_file)
    if array.ndim == 2:
        return array[:, :, np.newaxis, np.newaxis]
    if array.ndim == 3:
        raise InputError(f"{label}: a 3-D array of shape {array.shape} is ambiguous; {_ACCEPTED['kernel']} "
                         f"(or OIHW with {option_text(layout_option, 'oihw')})")
    if layout in KERNEL_AXIS_ORDERS or layout == "oihw-reshaped":
        return read_kernel_as(array, layout)
    return array  # a depthwise (kh, kw, C, multiplier) kernel is regrouped in `resolve_kernel`


def as_image(array, name: str = "image", layout: str = "nhwc") -> np.ndarray:
    """Check an image and return it as an (N, H, W, C) batch, keeping its dtype.

    Accepts anything `np.asarray` accepts: (H, W) becomes (1, H, W, 1), (H, W, C) becomes
    (1, H, W, C), an (N, H, W, C) batch is kept; with `layout='nchw'`, (C, H, W) and
    (N, C, H, W) are read channels-first. `name` starts every error message. The result
    may be a view of the caller's array; it is never copied or cast.
    """
    return image_array(array, name, layout=check_image_layout(layout, "layout="))


def as_kernel(array, name: str = "kernel", layout: str = "hwio") -> np.ndarray:
    """Check a kernel and return it as HWIO (kh, kw, C_in, C_out), keeping its dtype.

    (kh, kw) becomes (kh, kw, 1, 1) whatever the layout; a 4-D kernel is taken as HWIO,
    or as PyTorch's (C_out, C_in, kh, kw) with `layout='oihw'` and transposed. A 3-D
    kernel is refused as ambiguous: convcheck never guesses a layout.
    """
    return kernel_array(array, name, layout, "layout=")


def as_output(array, name: str = "output") -> np.ndarray:
    """Check an output and return it channels-last as (N, Ho, Wo, C_out), keeping its dtype.

    (Ho, Wo) becomes (1, Ho, Wo, 1), (Ho, Wo, C) becomes (1, Ho, Wo, C), a 4-D batch is
    kept. Its size is not checked against a padding: an output no padding explains is a
    verdict, not an error. (`explain` reads other layouts too, knowing the image and kernel.)
    """
    array = output_array(array, name)
    if array.ndim == 2:
        return array[np.newaxis, :, :, np.newaxis]
    return array[np.newaxis] if array.ndim == 3 else array
