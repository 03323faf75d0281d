"""Load and validate the image, kernel and output before anything else runs.

Bad input never produces a traceback: every problem raises `InputError` with one line
that names the file (or, for in-memory arrays, the argument), what is wrong and what to
do. Only numpy is imported here, so a bad file is refused in milliseconds, long before a
backend imports TensorFlow. `.npy` files are always read with `allow_pickle=False`, and
their header is checked (dtype, element count, file size) before any data is read.
"""

from __future__ import annotations

import errno
import math
import os
import stat
import tokenize
from dataclasses import dataclass, field, replace

import numpy as np

from .choices import KERNEL_AXIS_ORDERS
from .errors import InputError
from .vocabulary import KERNEL_LAYOUTS, LAYOUTS, PADDINGS

DEFAULT_MAX_ELEMENTS = 2**28

_ROLES = ("image", "kernel", "output")
_MAX_DIMENSION = 2**62  # numpy sizes are C ssize_t: a bigger dimension is a crafted header
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"

# What each role accepts, said the same way in every shape message.
_ACCEPTED = {
    "image": "give a 2-D (H, W) or 3-D (H, W, C) image, or a 4-D (N, H, W, C) batch (with --layout nchw: "
             "(C, H, W) or (N, C, H, W))",
    "kernel": "give a 2-D (kh, kw) kernel or a 4-D HWIO (kh, kw, C_in, C_out) kernel",
    "output": "give a 2-D (Ho, Wo) or 3-D (Ho, Wo, C_out) output, or a 4-D (N, Ho, Wo, C_out) batch",
}


# ----------------------------------------------------------------------------- reading


def read_npy(path, role: str, max_elements: int = DEFAULT_MAX_ELEMENTS) -> np.ndarray:
    """Read one array from a `.npy` file, refusing anything unsafe or unusable.

    `role` is 'image', 'kernel' or 'output' (used in messages: "image file 'x.npy': ...").
    The header is read and checked first (dtype, `max_elements`, file size), so a huge
    or truncated file is refused without allocating; data is loaded with
    `allow_pickle=False`, so a pickled object array is never unpickled. The array keeps
    its dtype (a non-native byte order is made native); its shape is not checked here
    (see `as_image`, `as_kernel`, `as_output`).
    """
    if role not in _ROLES:
        raise ValueError(f"role must be one of {', '.join(_ROLES)}, not {role!r}")
    try:
        name = os.fspath(path)
    except TypeError:
        raise InputError(f"{role} file: expected a path to a .npy file, got {type(path).__name__}; "
                         "pass the path of a file saved with np.save") from None
    label = f"{role} file '{name}'"
    if isinstance(max_elements, bool) or not isinstance(max_elements, (int, np.integer)) or max_elements < 1:
        raise InputError(f"--max-elements must be a positive integer, not {max_elements!r}; "
                         f"the default is {DEFAULT_MAX_ELEMENTS}")

    check_regular_file(name, label, "a .npy file", "give the path of a file saved with np.save")
    try:
        with open(name, "rb") as fp:
            file_size = os.fstat(fp.fileno()).st_size
            if file_size == 0:
                raise InputError(f"{label}: is empty (0 bytes); save the array again with np.save(path, array)")
            dtype, shape, fortran_order, data_offset = _read_header(fp, label, file_size)
    except OSError as exc:
        raise InputError(f"{label}: cannot be read ({exc.strerror or exc}); check that it exists and is readable") from None

    _check_dtype(dtype, label, from_file=True)
    count = math.prod(shape)
    if count > max_elements:
        raise InputError(f"{label}: its header says it holds {count} elements (shape {shape}), more than the "
                         f"limit of {max_elements}; crop it, or raise the limit with --max-elements "
                         "(max_elements= in Python) if you really mean to compare an array this large")
    expected = data_offset + count * dtype.itemsize
    if file_size < expected:
        raise InputError(f"{label}: is truncated: its header promises {expected} bytes (shape {shape}, "
                         f"dtype {dtype}) but the file holds {file_size}; copy or save it again")

    try:
        array = np.load(name, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{label}: could not be loaded as a .npy file ({_one_line(exc)}); "
                         "save it again with np.save(path, array)") from None
    if not isinstance(array, np.ndarray):  # np.load returns an NpzFile for a zip archive
        raise InputError(f"{label}: is not a .npy file; save a single array with np.save(path, array)")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


_NOT_REGULAR = ((stat.S_ISDIR, "is a directory"),
                (stat.S_ISFIFO, "is a named pipe (FIFO), which would block forever"),
                (stat.S_ISCHR, "is a character device (like /dev/zero or /dev/urandom)"),
                (stat.S_ISBLK, "is a block device"),
                (stat.S_ISSOCK, "is a socket"))


def check_regular_file(name: str, label: str, what: str = "a .npy file",
                       todo: str = "give the path of a file saved with np.save") -> None:
    """Refuse, before opening it, anything at `name` that is not a regular file, saying what it is.

    A FIFO or a device would block or never end when read, so nothing but a regular file
    (or a symbolic link to one) is ever opened. `label` starts the message ("image file
    'x.npy'"); `what` is what was expected and `todo` what to do instead.
    """
    try:
        info = os.stat(name)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{label}: is a symbolic link loop (the links point at each other, never at a file); "
                             f"fix the links and {todo}") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise InputError(f"{label}: cannot be reached: permission denied on the file or a folder on its "
                             "path; make it readable (chmod) or copy the file somewhere readable") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise InputError(f"{label}: the path is too long for this system; give a shorter path") from None
        if exc.errno == errno.ENOTDIR:
            raise InputError(f"{label}: no such file (a part of the path is a file, not a folder); "
                             "check the path") from None
        if os.path.islink(name):
            raise InputError(f"{label}: is a broken symbolic link (it points at "
                             f"'{os.readlink(name)}', which does not exist); fix the link or {todo}") from None
        raise InputError(f"{label}: no such file; check the path") from None
    for test, description in _NOT_REGULAR:
        if test(info.st_mode):
            raise InputError(f"{label}: {description}, not {what}; {todo}")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{label}: is not a regular file, so not {what}; {todo}")


def _read_header(fp, label: str, file_size: int):
    """Parse the .npy magic and header; return (dtype, shape, fortran_order, data offset)."""
    start = fp.read(len(_NPY_MAGIC))
    fp.seek(0)
    if start[:4] == _ZIP_MAGIC:
        raise InputError(f"{label}: is not a .npy file (it is a zip archive, e.g. a .npz from np.savez); "
                         "save the single array with np.save(path, array)")
    if start != _NPY_MAGIC:
        if len(start) < len(_NPY_MAGIC) and _NPY_MAGIC.startswith(start):
            raise InputError(f"{label}: is truncated ({file_size} bytes, shorter than a .npy header); "
                             "copy or save it again")
        raise InputError(f"{label}: is not a .npy file (it does not start with the .npy magic string); "
                         "save the array with np.save(path, array)")
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, fortran_order, dtype = fmt.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran_order, dtype = fmt.read_array_header_2_0(fp)
        elif version == (3, 0):
            # Version 3.0 is 2.0 with a UTF-8 header instead of Latin-1; numpy has no public
            # reader for it. The header of every dtype convcheck accepts is ASCII, which both
            # encodings read alike (a non-ASCII structured dtype is refused afterwards anyway).
            shape, fortran_order, dtype = fmt.read_array_header_2_0(fp)
        else:
            raise InputError(f"{label}: uses .npy format version {version[0]}.{version[1]}, which this numpy "
                             "cannot read; save it again with np.save(path, array)")
    except InputError:
        raise
    except Exception as exc:  # a crafted header can make numpy's parser raise almost anything
        if isinstance(exc, (SyntaxError, tokenize.TokenError)):
            raise InputError(f"{label}: has a corrupt .npy header (its header-length field does not match "
                             "the header that follows); save it again with np.save(path, array)") from None
        message = _one_line(exc)
        if "EOF" in message:
            raise InputError(f"{label}: is truncated (the file ends inside its .npy header); "
                             "copy or save it again") from None
        raise InputError(f"{label}: has a corrupt .npy header ({message}); "
                         "save it again with np.save(path, array)") from None
    if not isinstance(shape, tuple) or any(type(dim) is not int for dim in shape):
        raise InputError(f"{label}: has a corrupt .npy header (its shape {shape!r} is not a tuple of "
                         "integers); save it again with np.save(path, array)")
    if any(dim < 0 for dim in shape):
        raise InputError(f"{label}: has a corrupt .npy header (negative dimension in shape {shape}); "
                         "save it again with np.save(path, array)")
    if any(dim > _MAX_DIMENSION for dim in shape):
        raise InputError(f"{label}: has a corrupt .npy header (a dimension in shape {shape} is larger "
                         "than any array can be); save it again with np.save(path, array)")
    return dtype, tuple(int(d) for d in shape), fortran_order, fp.tell()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# ----------------------------------------------------------------------------- dtypes


def _from_ml_dtypes(dtype: np.dtype) -> bool:
    # ml_dtypes registers its types as kind 'V' dtypes; recognise them without importing it.
    return getattr(dtype.type, "__module__", "").split(".")[0] == "ml_dtypes"


def _is_bfloat16(dtype: np.dtype) -> bool:
    return dtype.name == "bfloat16" and _from_ml_dtypes(dtype)


def _check_dtype(dtype: np.dtype, label: str, from_file: bool) -> None:
    """Refuse every dtype the reference cannot compute with; accept floats <= 64 bits and ints."""
    if _is_bfloat16(dtype):
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


def _to_array(array, label: str) -> np.ndarray:
    try:
        result = np.asarray(array)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"{label}: cannot be turned into a numeric array ({_one_line(exc)}); "
                         "pass a numpy array of one shape") from None
    return result


def _check_common(array: np.ndarray, label: str, role: str, from_file: bool) -> None:
    """Checks that hold for every role: dtype, 2 <= ndim <= 4, non-empty, finite."""
    _check_dtype(array.dtype, label, from_file)
    if array.ndim < 2 or array.ndim > 4:
        what = "a single number" if array.ndim == 0 else f"{array.ndim}-D (shape {array.shape})"
        raise InputError(f"{label}: is {what}; {_ACCEPTED[role]}")
    if array.size == 0:
        raise InputError(f"{label}: has no elements (shape {array.shape}); give a non-empty array")
    _check_finite(array, label)


def _check_finite(array: np.ndarray, label: str) -> None:
    """Refuse NaN and Inf, naming how many and where the first one is in the caller's shape."""
    if array.dtype.kind in "iu":
        return
    values = array.astype(np.float32) if _is_bfloat16(array.dtype) else array
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


def _image(array, label: str, from_file: bool = False, layout: str = "nhwc") -> np.ndarray:
    """The image as an (N, H, W, C) batch: (H, W) is one channel, a 3-D array one image
    ((H, W, C), or (C, H, W) with layout 'nchw'), a 4-D array a batch."""
    array = _to_array(array, label)
    _check_common(array, label, "image", from_file)
    if array.ndim == 2:
        return array[np.newaxis, :, :, np.newaxis]
    if array.ndim == 3:
        return (np.moveaxis(array, 0, -1) if layout == "nchw" else array)[np.newaxis]
    if array.ndim == 4:
        return np.moveaxis(array, 1, -1) if layout == "nchw" else array
    raise InputError(f"{label}: has {array.ndim} dimensions (shape {array.shape}); {_ACCEPTED['image']}")


def _output(array, label: str, from_file: bool = False) -> np.ndarray:
    array = _to_array(array, label)
    _check_common(array, label, "output", from_file)
    if array.ndim not in (2, 3, 4):
        raise InputError(f"{label}: has {array.ndim} dimensions (shape {array.shape}); {_ACCEPTED['output']}")
    return array


# How an output array's axes may be read, per declared layout: the declared layout first,
# then the other one (an output_layout cause). n/c may be dropped for a batch of one or a
# single channel (CONTRACT section 1).
_READINGS = {
    "nhwc": ("nhwc", "hwc", "nhw", "hw", "nchw", "chw"),
    "nchw": ("nchw", "chw", "nhw", "hw", "nhwc", "hwc"),
}


def read_output(output: np.ndarray, label: str, layout: str, batch: int, channels: tuple[int, ...]):
    """(canonical (N, Ho, Wo, C_out) output, reading, channels) for an output array.

    `channels` are the output channel counts the kernel allows (more than one when the
    kernel may be read as depthwise). The first reading of `_READINGS[layout]` whose batch
    and channel sizes fit wins; none fitting is an `InputError` naming the readings tried.
    """
    for reading in _READINGS[layout]:
        if len(reading) != output.ndim:
            continue
        size = dict(zip(reading, output.shape))
        if size.get("n", 1) != batch:
            continue
        for count in channels:
            if size.get("c", 1) == count:
                order = [reading.index(axis) for axis in "nhwc" if axis in reading]
                canonical = np.transpose(output, order)
                if "n" not in reading:
                    canonical = canonical[np.newaxis]
                if "c" not in reading:
                    canonical = canonical[..., np.newaxis]
                return canonical, reading, count
    tried = ", ".join(f"({', '.join(r.upper())})" for r in _READINGS[layout] if len(r) == output.ndim)
    raise InputError(f"{label}: shape {output.shape} fits no reading with a batch of {batch} and "
                     f"{' or '.join(str(c) for c in channels)} output channel{'s' if channels != (1,) else ''} "
                     f"(tried {tried or 'none: it needs 2 to 4 dimensions'}); give the output this image and "
                     "kernel produced, or check --layout and --kernel-layout")


def _option(option: str, value: str) -> str:
    """How the user sets an option: '--kernel-layout oihw' on the CLI, "kernel_layout='oihw'" in Python."""
    return f"{option} {value}" if option.startswith("--") else f"{option}'{value}'"


def _check_layout(layout, option: str) -> str:
    if layout in KERNEL_LAYOUTS or layout in KERNEL_AXIS_ORDERS:
        return layout
    suggestion = ""
    if isinstance(layout, str) and (layout.lower() in KERNEL_LAYOUTS or layout.lower() in KERNEL_AXIS_ORDERS):
        suggestion = f" (write it in lower case: '{layout.lower()}')"
    raise InputError(f"kernel layout {layout!r} is not one of {', '.join(KERNEL_LAYOUTS)} or another order of "
                     f"the letters h, w, i, o{suggestion}; pass {_option(option, 'hwio')} (TensorFlow/Keras), "
                     f"{_option(option, 'oihw')} (PyTorch), {_option(option, 'depthwise')} "
                     "(tf.nn.depthwise_conv2d, Keras DepthwiseConv2D), or the order of your kernel's axes "
                     f"(e.g. {_option(option, 'ohwi')})")


def read_kernel_as(array: np.ndarray, layout: str) -> np.ndarray:
    """A 4-D kernel array whose axes are in `layout` (an order of the letters h, w, i, o), as
    HWIO; 'oihw-reshaped' undoes PyTorch OIHW weights turned into this HWIO shape with
    `reshape` instead of `transpose` (CONTRACT section 2, kernel_layout). A view where it can be."""
    if layout == "oihw-reshaped":
        kh, kw, c_in, c_out = array.shape
        return np.reshape(array, (c_out, c_in, kh, kw)).transpose(2, 3, 1, 0)
    return array.transpose([layout.index(axis) for axis in "hwio"])


def _check_image_layout(layout, option: str) -> str:
    if layout in LAYOUTS:
        return layout
    raise InputError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}; pass {_option(option, 'nhwc')} "
                     f"(TensorFlow, channels last) or {_option(option, 'nchw')} (PyTorch, channels first)")


def _kernel(array, label: str, layout: str, layout_option: str, from_file: bool = False) -> np.ndarray:
    layout = _check_layout(layout, layout_option)
    array = _to_array(array, label)
    _check_common(array, label, "kernel", from_file)
    if array.ndim == 2:
        return array[:, :, np.newaxis, np.newaxis]
    if array.ndim == 3:
        raise InputError(f"{label}: a 3-D array of shape {array.shape} is ambiguous; {_ACCEPTED['kernel']} "
                         f"(or OIHW with {_option(layout_option, 'oihw')})")
    if layout in KERNEL_AXIS_ORDERS:
        return read_kernel_as(array, layout)
    return array  # a depthwise (kh, kw, C, multiplier) kernel is regrouped in `resolve_kernel`


def resolve_kernel(image: np.ndarray, kernel: np.ndarray, raw_ndim: int, layout: str, output_channels,
                   image_label: str, kernel_label: str):
    """(grouped HWIO kernel, groups from the shapes, groups the layout declares, allowed output channels).

    `image` is (N, H, W, C) and `kernel` HWIO as `_kernel` returns it. A 2-D kernel with a
    C-channel image is the same filter on each channel (groups = C, CONTRACT section 1); a
    depthwise (kh, kw, C, M) kernel becomes (kh, kw, 1, C * M) with groups = C (declared with
    layout 'depthwise', or recognised when the output has C * M channels); an HWIO kernel
    with C_in dividing C is grouped with groups = C / C_in. `output_channels` is the
    output's possible channel counts (None when there is no output).
    """
    channels = image.shape[-1]
    kh, kw, c_in, c_out = kernel.shape
    if raw_ndim == 2 and channels > 1:
        return np.broadcast_to(kernel, (kh, kw, 1, channels)), channels, channels, (channels,)
    if layout == "depthwise":
        if c_in != channels:
            raise InputError(f"{kernel_label}: a depthwise kernel (kh, kw, C, multiplier) needs C = {channels} "
                             f"(the image's channels), got {c_in}")
        return kernel.reshape(kh, kw, 1, c_in * c_out), channels, channels, (c_in * c_out,)
    if c_in == channels:
        depthwise = c_in * c_out
        if output_channels is not None and depthwise in output_channels and c_out not in output_channels \
                and channels > 1:
            # Only a depthwise reading gives the output's channels: the shapes declare it
            # (CONTRACT section 2a).
            return kernel.reshape(kh, kw, 1, depthwise), channels, channels, (depthwise,)
        return kernel, 1, 1, (c_out,)
    if c_in and channels % c_in == 0 and c_out % (channels // c_in) == 0:
        # C_in / groups dividing the image's channels admits one grouping only: the shapes
        # declare it (CONTRACT section 2a: a PyTorch depthwise (C, 1, kh, kw) kernel is
        # groups = C, exactly as compare runs it).
        groups = channels // c_in
        return kernel, groups, groups, (c_out,)
    raise InputError(f"{kernel_label} has {c_in} input channel{'s' if c_in != 1 else ''} but "
                     f"{image_label} has {channels}; give a kernel of shape (kh, kw, {channels}, C_out) "
                     "(or C_in dividing the image's channels, for a grouped convolution), or an image with "
                     "as many channels as the kernel's C_in (a PyTorch-layout (C_out, C_in, kh, kw) kernel "
                     "needs --kernel-layout oihw, a depthwise one --kernel-layout depthwise)")


def as_image(array, name: str = "image", layout: str = "nhwc") -> np.ndarray:
    """Check an image and return it as an (N, H, W, C) batch, keeping its dtype.

    Accepts anything `np.asarray` accepts: (H, W) becomes (1, H, W, 1), (H, W, C) becomes
    (1, H, W, C), an (N, H, W, C) batch is kept; with `layout='nchw'`, (C, H, W) and
    (N, C, H, W) are read channels-first. `name` starts every error message. The result
    may be a view of the caller's array; it is never copied or cast.
    """
    return _image(array, name, layout=_check_image_layout(layout, "layout="))


def as_kernel(array, name: str = "kernel", layout: str = "hwio") -> np.ndarray:
    """Check a kernel and return it as HWIO (kh, kw, C_in, C_out), keeping its dtype.

    (kh, kw) becomes (kh, kw, 1, 1) whatever the layout; a 4-D kernel is taken as HWIO,
    or as PyTorch's (C_out, C_in, kh, kw) with `layout='oihw'` and transposed. A 3-D
    kernel is refused as ambiguous: convcheck never guesses a layout.
    """
    return _kernel(array, name, layout, "layout=")


def as_output(array, name: str = "output") -> np.ndarray:
    """Check an output and return it channels-last as (N, Ho, Wo, C_out), keeping its dtype.

    (Ho, Wo) becomes (1, Ho, Wo, 1), (Ho, Wo, C) becomes (1, Ho, Wo, C), a 4-D batch is
    kept. Its size is not checked against a padding: an output no padding explains is a
    verdict, not an error. (`explain` reads other layouts too, knowing the image and kernel.)
    """
    array = _output(array, name)
    if array.ndim == 2:
        return array[np.newaxis, :, :, np.newaxis]
    return array[np.newaxis] if array.ndim == 3 else array


# ----------------------------------------------------------------------------- pairs


def _check_padding(padding):
    if padding in PADDINGS:
        return padding
    if not isinstance(padding, str):
        from .geometry import normalize_padding   # explicit amounts (CONTRACT section 1, version 3)
        return normalize_padding(padding)
    suggestion = ""
    if isinstance(padding, str) and padding.lower() in PADDINGS:
        suggestion = f" (write it in lower case: '{padding.lower()}')"
    raise InputError(f"padding {padding!r} is not one of {', '.join(PADDINGS)}{suggestion}; "
                     "pass one of them")


def _pair_label(role: str, name: str) -> str:
    return role if name == role else f"{role} '{name}'"


def check_pair(image, kernel, padding: str, image_name="image", kernel_name="kernel") -> None:
    """Check that an image and a kernel can be convolved with `padding`.

    Takes the arrays as `as_image` / `as_kernel` return them ((N, H, W, C) or (H, W, C),
    and HWIO; 2-D ones are read as single-channel). Refuses an unknown padding, a kernel
    whose C_in fits the image's channels in no grouping, and with 'valid' a kernel larger
    than the image. Names are file paths (or argument names) for the messages.
    """
    padding = _check_padding(padding)
    image_label = _pair_label("image", image_name)
    kernel_label = _pair_label("kernel", kernel_name)
    image_shape = tuple(np.shape(image))
    kernel_shape = tuple(np.shape(kernel))
    if len(image_shape) == 2:
        image_shape += (1,)
    if len(image_shape) == 3:
        image_shape = (1,) + image_shape
    if len(kernel_shape) == 2:
        kernel_shape += (1, 1)
    if len(image_shape) != 4 or len(kernel_shape) != 4:
        raise InputError(f"{image_label} (shape {tuple(np.shape(image))}) and {kernel_label} "
                         f"(shape {tuple(np.shape(kernel))}) are not (N, H, W, C) and (kh, kw, C_in, C_out); "
                         "pass them through as_image and as_kernel first")
    _, height, width, channels = image_shape
    kh, kw, c_in, _ = kernel_shape
    if c_in == 0 or (channels % c_in and not (c_in == 1 and len(np.shape(kernel)) == 2)):
        raise InputError(f"{kernel_label} has {c_in} input channel{'s' if c_in != 1 else ''} but "
                         f"{image_label} has {channels}; give a kernel of shape (kh, kw, {channels}, C_out) "
                         "or an image with as many channels as the kernel's C_in (a PyTorch-layout "
                         "(C_out, C_in, kh, kw) kernel needs --kernel-layout oihw / kernel_layout='oihw')")
    if padding == "valid" and (kh > height or kw > width):
        raise InputError(f"{kernel_label} ({kh}x{kw}) is larger than {image_label} ({height}x{width}), "
                         "so padding 'valid' has no output position; use padding 'same' or 'full', "
                         "or a larger image")


# ----------------------------------------------------------------------------- bundles


@dataclass(frozen=True, eq=False)
class Inputs:
    """The validated image, kernel and optional output that `compare` and `explain` work on.

    Canonical layouts: `image` (N, H, W, C); `kernel` grouped HWIO (kh, kw, C / groups,
    C_out); `output` (N, Ho, Wo, C_out). Arrays keep the dtype they were given (never
    converted) and may be views of the caller's arrays. The `*_shape` fields are the
    shapes as the user gave them; `output_reading` names the user's output axes ('hwc',
    'nchw', ...), for indexing back. `groups` is what the shapes say; `expected_groups`
    what the layout declares (a depthwise or 2-D-per-channel kernel), else 1.
    `declared_output_layout` is what --layout implies, `output_layout` how the output
    was actually laid out. `*_name` fields are the file paths, or 'image' / 'kernel' /
    'output' for in-memory arrays.
    """

    image: np.ndarray = field(repr=False)
    kernel: np.ndarray = field(repr=False)
    output: np.ndarray | None = field(repr=False)
    image_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...]
    output_shape: tuple[int, ...] | None
    image_name: str
    kernel_name: str
    output_name: str | None
    groups: int = 1
    expected_groups: int = 1
    layout: str = "nhwc"
    kernel_layout: str = "hwio"
    output_reading: str | None = None
    declared_output_layout: str = "hwc"
    output_layout: str = "hwc"
    kernel_axis: str | None = None   # a 1-D kernel read as a (1, k) row ('rows') or (k, 1) column
    # How the kernel's axes and the image's channels were read when not as declared (see
    # `other_readings`): `kernel_reading` None means in `kernel_layout`. `raw_kernel` is the
    # kernel as given (a view), for reading it otherwise.
    kernel_reading: str | None = None
    channel_order: str = "as_given"
    raw_kernel: np.ndarray | None = field(default=None, repr=False)


def _bundle(raw_image, raw_kernel, raw_output, *, image_label, kernel_label, output_label, names,
            kernel_layout, layout, padding, from_file) -> Inputs:
    """Validate and bring the three arrays to the canonical layouts (see `Inputs`).

    A 1-D kernel (k,) is read as a (1, k) row first (`kernel_axis` 'rows'); `explain`
    tries it as a (k, 1) column too (CONTRACT section 1). A 4-D kernel whose shape fits
    the image and output only with its axes in another order than `kernel_layout` is read
    in the first order that fits (`kernel_reading`; `explain` reports it as a
    `kernel_layout` cause and tries the others); without an output that is an error
    naming the order that fits.
    """
    options = dict(image_label=image_label, kernel_label=kernel_label, output_label=output_label, names=names,
                   kernel_layout=kernel_layout, layout=layout, padding=padding, from_file=from_file)
    try:
        return _bundle_as(raw_image, raw_kernel, raw_output, reading=None, **options)
    except InputError as exc:
        if np.ndim(raw_kernel) != 4 or kernel_layout not in KERNEL_AXIS_ORDERS:
            raise
        error = exc
    for reading in _alternative_layouts(kernel_layout):
        if reading == "oihw-reshaped":
            continue  # the declared shape itself: it fits exactly where the declared reading does
        try:
            inputs = _bundle_as(raw_image, raw_kernel, raw_output, reading=reading, **options)
        except InputError:
            continue
        if raw_output is not None:
            return inputs
        option = _option("--kernel-layout" if from_file else "kernel_layout=", reading)
        raise InputError(f"{error}; read as {reading.upper()} ({axis_names(reading)}) its shape fits: "
                         f"pass {option} if that is the order of its axes") from None
    raise error


def _bundle_as(raw_image, raw_kernel, raw_output, *, image_label, kernel_label, output_label, names,
               kernel_layout, layout, padding, from_file, reading) -> Inputs:
    """`_bundle` with the kernel's axes read in `reading` (None: in `kernel_layout`)."""
    kernel_axis = None
    if np.ndim(raw_kernel) == 1 and np.size(raw_kernel) > 0:
        raw_kernel, kernel_axis = np.asarray(raw_kernel)[np.newaxis, :], "rows"
    image = _image(raw_image, image_label, from_file=from_file, layout=layout)
    kernel = _kernel(raw_kernel, kernel_label, reading or kernel_layout,
                     "--kernel-layout" if from_file else "kernel_layout=", from_file=from_file)
    check_pair(image, kernel if np.ndim(raw_kernel) != 2 else raw_kernel, padding,
               image_name=names[0], kernel_name=names[1])
    raw_ndim = np.ndim(raw_kernel)
    output = output_reading = None
    allowed = None
    if raw_output is not None:
        raw_output = _output(raw_output, output_label, from_file=from_file)
        channels = image.shape[-1]
        kh, kw, c_in, c_out = kernel.shape
        allowed = (channels,) if (raw_ndim == 2 and channels > 1) else \
            (c_in * c_out,) if (reading or kernel_layout) == "depthwise" else \
            tuple(dict.fromkeys((c_out, c_in * c_out) if (c_in == channels and channels > 1) else (c_out,)))
        output, output_reading, count = read_output(raw_output, output_label, layout, image.shape[0], allowed)
        allowed = (count,)
    kernel, groups, expected_groups, _ = resolve_kernel(image, kernel, raw_ndim, reading or kernel_layout, allowed,
                                                        _pair_label("image", names[0]),
                                                        _pair_label("kernel", names[1]))
    if output is not None and output.shape[-1] != kernel.shape[-1]:
        raise InputError(f"{_pair_label('output', names[2])} has {output.shape[-1]} channels but "
                         f"{_pair_label('kernel', names[1])} has {kernel.shape[-1]} output channels (C_out); "
                         "give the output this kernel produced, or check the kernel layout")
    declared = "chw" if layout == "nchw" else "hwc"
    actual = declared if output_reading is None else (
        "chw" if "c" in output_reading and output_reading.index("c") < output_reading.index("h")
        else declared if "c" not in output_reading else "hwc")
    return Inputs(image=image, kernel=kernel, output=output,
                  image_shape=tuple(np.shape(raw_image)), kernel_shape=tuple(np.shape(raw_kernel)),
                  output_shape=tuple(np.shape(raw_output)) if raw_output is not None else None,
                  image_name=names[0], kernel_name=names[1], output_name=names[2], groups=groups,
                  expected_groups=expected_groups, layout=layout, kernel_layout=kernel_layout,
                  output_reading=output_reading, declared_output_layout=declared, output_layout=actual,
                  kernel_axis=kernel_axis, kernel_reading=reading, raw_kernel=np.asarray(raw_kernel))


def load_inputs(image_path, kernel_path, output_path=None, *, kernel_layout=None, padding="same",
                max_elements=DEFAULT_MAX_ELEMENTS, layout="nhwc") -> Inputs:
    """Read and validate the image, kernel and optional output `.npy` files.

    Options are checked before any file is opened, then each file in turn (see
    `read_npy`, `as_image`, `as_kernel`, `check_pair`, `read_output`). `layout` 'nchw'
    reads images and outputs channels-first and makes OIHW the default kernel layout.
    An output's size is not checked against the padding, but its batch and channels must
    fit. Raises `InputError` with one line naming the file for every problem.
    """
    _check_padding(padding)
    layout = _check_image_layout(layout, "--layout")
    kernel_layout = _check_layout(kernel_layout or ("oihw" if layout == "nchw" else "hwio"), "--kernel-layout")
    raw_image = read_npy(image_path, "image", max_elements)
    raw_kernel = read_npy(kernel_path, "kernel", max_elements)
    raw_output = read_npy(output_path, "output", max_elements) if output_path is not None else None
    names = (os.fspath(image_path), os.fspath(kernel_path),
             os.fspath(output_path) if output_path is not None else None)
    return _bundle(raw_image, raw_kernel, raw_output, image_label=f"image file '{names[0]}'",
                   kernel_label=f"kernel file '{names[1]}'", output_label=f"output file '{names[2]}'",
                   names=names, kernel_layout=kernel_layout, layout=layout, padding=padding, from_file=True)


def prepare_inputs(image, kernel, output=None, *, kernel_layout=None, padding="same", layout="nhwc") -> Inputs:
    """Validate in-memory arrays (the Python API) exactly as `load_inputs` validates files.

    Accepts anything `np.asarray` accepts, with the same dtype rules (plus ml_dtypes
    bfloat16). Messages start with the argument name ('image', 'kernel', 'output');
    `Inputs.*_name` are those names.
    """
    _check_padding(padding)
    layout = _check_image_layout(layout, "layout=")
    kernel_layout = _check_layout(kernel_layout or ("oihw" if layout == "nchw" else "hwio"), "kernel_layout=")
    raw_image = _to_array(image, "image")
    raw_kernel = _to_array(kernel, "kernel")
    raw_output = _to_array(output, "output") if output is not None else None
    return _bundle(raw_image, raw_kernel, raw_output, image_label="image", kernel_label="kernel",
                   output_label="output", names=("image", "kernel", "output" if output is not None else None),
                   kernel_layout=kernel_layout, layout=layout, padding=padding, from_file=False)


# ----------------------------------------------------------------------------- other readings

_AXIS_NAMES = {"h": "kh", "w": "kw", "i": "C_in", "o": "C_out"}
_COLOUR_CHANNELS = 4


def axis_names(layout: str) -> str:
    """'C_out, C_in, kh, kw' for 'oihw': a kernel layout's axes in words."""
    if layout == "oihw-reshaped":
        return "OIHW weights reshaped to kh, kw, C_in, C_out"
    if layout == "depthwise-reshaped":
        return "depthwise (C, 1, kh, kw) weights reshaped to kh, kw, C, 1"
    return ", ".join(_AXIS_NAMES[axis] for axis in layout)


def _alternative_layouts(declared: str) -> list[str]:
    """The kernel layouts `explain` tries besides a declared axis order, likeliest first: the
    other framework's layout (HWIO <-> OIHW), the input and output axes swapped, OIHW weights
    reshaped into HWIO, then every other order. Orders that differ from one of these only by
    swapping kh and kw are left out: that is the kernel_transform 'transpose', already
    searched on every reading."""
    if declared not in KERNEL_AXIS_ORDERS:
        return []
    swapped = declared.translate(str.maketrans("io", "oi"))
    first = [{"hwio": "oihw", "oihw": "hwio"}.get(declared, "hwio"), swapped]
    if declared == "hwio":
        first.append("oihw-reshaped")
    h_first = declared.index("h") < declared.index("w")
    orders = [order for order in KERNEL_AXIS_ORDERS if (order.index("h") < order.index("w")) == h_first]
    return [name for name in dict.fromkeys(first + orders)
            if name != declared and (name == "oihw-reshaped" or (name.index("h") < name.index("w")) == h_first)]


def _reshaped(inputs: Inputs) -> list[tuple[str, np.ndarray]]:
    """The kernel as a port that reshaped weights instead of transposing them computes with
    it, both ways (CONTRACT section 2, kernel_layout; issue 21): given the original's
    weights and the port's output, or the port's weights and the original's output. As
    grouped HWIO: 'oihw-reshaped', PyTorch OIHW weights reshaped into Keras's HWIO shape (and
    the inverse, HWIO reshaped into OIHW); 'depthwise-reshaped', a PyTorch depthwise
    (C, 1, kh, kw) kernel reshaped into Keras DepthwiseConv2D's (kh, kw, C, 1) (and back)."""
    kernel = np.asarray(inputs.kernel)
    kh, kw, per_group, outs = kernel.shape
    if inputs.groups == 1:
        return [("oihw-reshaped", kernel.transpose(3, 2, 0, 1).reshape(kernel.shape)),
                ("oihw-reshaped", kernel.reshape(outs, per_group, kh, kw).transpose(2, 3, 1, 0))]
    if per_group == 1 and inputs.groups == outs:
        return [("depthwise-reshaped", kernel.transpose(3, 2, 0, 1).reshape(kernel.shape)),
                ("depthwise-reshaped", kernel.reshape(outs, 1, kh, kw).transpose(2, 3, 1, 0))]
    return []


def other_readings(inputs: Inputs) -> list[Inputs]:
    """The other ways `inputs`' kernel and image could have been read whose shapes fit its
    image and output, fewest changes first (CONTRACT section 2, Layout).

    Each differs from `inputs` in `kernel_reading` (the raw 4-D kernel's axes in another
    order, or OIHW weights reshaped into HWIO: `_alternative_layouts`), in `channel_order`
    ('reversed': the image's channels used last to first, for images of 2 to 4 channels),
    or in both. A reading whose arrays equal those of `inputs` or of an earlier reading
    computes the same thing and is left out. None for a 2-D, 1-D or depthwise kernel's
    layout. Needs an output.
    """
    current = inputs.kernel_reading or inputs.kernel_layout
    out_channels = inputs.output.shape[-1]
    kernels: list[Inputs] = []
    raw = inputs.raw_kernel
    if raw is not None and raw.ndim == 4 and inputs.kernel_axis is None:
        seen = [inputs.kernel]
        for name in _alternative_layouts(inputs.kernel_layout):
            if name == current:
                continue
            try:
                kernel = read_kernel_as(raw, name)
                kernel, groups, _, _ = resolve_kernel(inputs.image, kernel, 4, name, (out_channels,), "image", "kernel")
            except (InputError, ValueError):
                continue
            if kernel.shape[-1] != out_channels or any(
                    k.shape == kernel.shape and np.array_equal(k, kernel) for k in seen):
                continue
            seen.append(kernel)
            kernels.append(replace(inputs, kernel=kernel, groups=groups, kernel_reading=name))
        for name, kernel in _reshaped(inputs):
            if not any(k.shape == kernel.shape and np.array_equal(k, kernel) for k in seen):
                seen.append(kernel)
                kernels.append(replace(inputs, kernel=kernel, kernel_reading=name))
    image = inputs.image
    reversed_image = image[..., ::-1]
    # Colour images only (RGB/BGR, with alpha): reversing many feature channels is no known
    # mix-up, and each reading costs a whole search.
    if inputs.channel_order != "as_given" or not 1 < image.shape[-1] <= _COLOUR_CHANNELS \
            or np.array_equal(image, reversed_image):
        return kernels
    flipped = [replace(reading, image=reversed_image, channel_order="reversed") for reading in kernels]
    return kernels + [replace(inputs, image=reversed_image, channel_order="reversed")] + flipped
