"""The exact float64 reference (CONTRACT section 1) and the geometry every candidate shares.

Written with numpy only, never another library's convolution, so that it stays an
independent witness for every backend convcheck compares (scipy included).

Layouts here: image (H, W, C), kernel (kh, kw, C_in, C_out), output (Ho, Wo, C_out).
"""

from __future__ import annotations

import numpy as np

from .vocabulary import KERNEL_TRANSFORMS

# numpy.pad mode for each `boundary` value (CONTRACT section 2 names them after numpy.pad).
_PAD_MODE = {"zero": "constant", "constant": "constant", "reflect": "reflect", "symmetric": "symmetric",
             "wrap": "wrap", "edge": "edge"}


def axis_boundaries(boundary) -> tuple[str, str]:
    """(rows, columns) of a `boundary`: one name for both axes, or a [rows, columns] pair."""
    if isinstance(boundary, str):
        return boundary, boundary
    rows, cols = boundary
    return rows, cols

# Above this many multiply-adds per output pixel, an im2col matrix product beats the
# shifted-slice accumulation (measured on 2048x2048 images; see benchmarks/).
_MATMUL_TAPS = 256
_BLOCK_BYTES = 1 << 20  # ~1 MiB of padded rows per block keeps each pass in cache


def axis_layout(padding: str, size: int, k: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """(output size, padding before) along one axis, CONTRACT section 1.

    The dilated kernel spans e = (k - 1) * dilation + 1. 'same' is TensorFlow's SAME at
    every stride and dilation: ceil(size / stride) outputs, total padding
    max((out - 1) * stride + e - size, 0), of which total // 2 before (an uneven total's
    extra row at the bottom). 'valid' pads nothing; 'full' pads e - 1 on both sides.
    """
    span = (k - 1) * dilation + 1
    if padding == "same":
        out = -(-size // stride)
        return out, max((out - 1) * stride + span - size, 0) // 2
    if padding == "valid":
        return (max(size - span, -1) // stride + 1 if size >= span else 0), 0
    if padding == "full":
        return (size + span - 2) // stride + 1, span - 1
    raise ValueError(f"unknown padding {padding!r}")


def padding_amounts(padding: str, height: int, width: int, kh: int, kw: int, stride=(1, 1),
                    dilation=(1, 1)) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero padding of CONTRACT section 1 at a stride and dilation
    (what a library needs to be given explicitly to compute the reference's windows)."""
    amounts = []
    for size, k, s, d in ((height, kh, stride[0], dilation[0]), (width, kw, stride[1], dilation[1])):
        out, before = axis_layout(padding, size, k, s, d)
        amounts += [before, max((out - 1) * s + (k - 1) * d + 1 - size - before, 0)]
    return amounts[0], amounts[1], amounts[2], amounts[3]


def geometry_pair(value, label: str) -> tuple[int, int]:
    """A stride or dilation as a (rows, columns) pair of positive ints (one int means both);
    anything else is an `InputError` naming `label`."""
    from .errors import InputError
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    try:
        pair = tuple(value)
    except TypeError:
        raise InputError(f"{label} must be a positive integer or a pair of them, e.g. {label}=2 or "
                         f"{label}=(2, 1); got {value!r}") from None
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in pair):
        raise InputError(f"{label} must be a positive integer or a pair of them, e.g. {label}=2 or "
                         f"{label}=(2, 1); got {value!r}")
    return int(pair[0]), int(pair[1])


def pad_before(padding: str, kh: int, kw: int, height: int = 0, width: int = 0,
               stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """(top, left) padding of a convention: TF 'SAME' puts an uneven total's extra row/column last.

    At stride 1 the image size does not matter; at other strides SAME's padding depends on it.
    """
    return (axis_layout(padding, height, kh, stride[0], dilation[0])[1],
            axis_layout(padding, width, kw, stride[1], dilation[1])[1])


def output_size(padding: str, height: int, width: int, kh: int, kw: int,
                stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """The (Ho, Wo) of a padding convention at a stride and dilation."""
    return (axis_layout(padding, height, kh, stride[0], dilation[0])[0],
            axis_layout(padding, width, kw, stride[1], dilation[1])[0])


def dilate_kernel(kernel: np.ndarray, dilation: tuple[int, int]) -> np.ndarray:
    """An HWIO kernel with dilation - 1 zero rows/columns between taps (exact: the zeros add nothing)."""
    dy, dx = dilation
    if (dy, dx) == (1, 1):
        return kernel
    kh, kw = kernel.shape[:2]
    out = np.zeros(((kh - 1) * dy + 1, (kw - 1) * dx + 1) + kernel.shape[2:], dtype=kernel.dtype)
    out[::dy, ::dx] = kernel
    return out


def dense_kernel(kernel: np.ndarray, groups: int) -> np.ndarray:
    """A grouped HWIO kernel (kh, kw, C_in / G, C_out) as the dense (kh, kw, C_in, C_out) one:
    output channel o sees only its group's input channels, zeros elsewhere (exact)."""
    if groups == 1:
        return kernel
    kh, kw, per_group, outs = kernel.shape
    per_out = outs // groups
    dense = np.zeros((kh, kw, per_group * groups, outs), dtype=kernel.dtype)
    for g in range(groups):
        dense[:, :, g * per_group:(g + 1) * per_group, g * per_out:(g + 1) * per_out] = \
            kernel[:, :, :, g * per_out:(g + 1) * per_out]
    return dense


def transform_kernel(kernel: np.ndarray, name: str) -> np.ndarray:
    """`T(kernel)` on the (kh, kw) axes of an HWIO kernel, as CONTRACT section 2 defines T."""
    if name == "identity":
        return kernel
    if name == "rot180":
        return kernel[::-1, ::-1]
    if name == "transpose":
        return kernel.swapaxes(0, 1)
    if name == "anti_transpose":
        return kernel[::-1, ::-1].swapaxes(0, 1)
    if name == "flip_ud":
        return kernel[::-1, :]
    if name == "flip_lr":
        return kernel[:, ::-1]
    if name == "rot90":
        return np.rot90(kernel, 1, axes=(0, 1))
    if name == "rot270":
        return np.rot90(kernel, -1, axes=(0, 1))
    raise ValueError(f"unknown kernel transform {name!r}; expected one of {KERNEL_TRANSFORMS}")


def pad_image(image: np.ndarray, boundary, before: tuple[int, int], after: tuple[int, int],
              cval: float = 0.0) -> np.ndarray:
    """The (H, W, C) image extended by `before`/`after` rows and columns per `boundary`
    (one name, or a [rows, columns] pair; 'constant' fills with `cval`).

    numpy.pad repeats reflect/symmetric/wrap as often as needed, so margins larger than
    the image are well defined. A pair pads the rows, then the columns: the corners are
    what each axis's rule gives independently (as scipy.ndimage's per-axis modes do).
    """
    padded = image
    for axis, mode in enumerate(axis_boundaries(boundary)):
        widths = [(0, 0)] * image.ndim
        widths[axis] = (before[axis], after[axis])
        extra = {"constant_values": cval if mode == "constant" else 0.0} if _PAD_MODE[mode] == "constant" else {}
        padded = np.pad(padded, widths, mode=_PAD_MODE[mode], **extra)
    return padded


def boundary_index(index: np.ndarray, size: int, boundary: str) -> tuple[np.ndarray, np.ndarray]:
    """Map image coordinates (any integers) to in-image ones per `boundary`, as numpy.pad does.

    Returns (index, valid): `valid` is False where a 'zero' boundary reads padding.
    Periodic formulas, so margins larger than the image repeat the rule like numpy.pad.
    """
    index = np.asarray(index)
    valid = np.ones(index.shape, dtype=bool)
    if boundary in ("zero", "constant"):
        valid = (index >= 0) & (index < size)
        return np.clip(index, 0, size - 1), valid
    if boundary == "edge":
        return np.clip(index, 0, size - 1), valid
    if boundary == "wrap":
        return np.mod(index, size), valid
    if boundary == "symmetric":
        m = np.mod(index, 2 * size)
        return np.where(m < size, m, 2 * size - 1 - m), valid
    if boundary == "reflect":
        if size == 1:
            return np.zeros_like(index), valid
        m = np.mod(index, 2 * size - 2)
        return np.where(m < size, m, 2 * size - 2 - m), valid
    raise ValueError(f"unknown boundary {boundary!r}")


def gather_windows(image: np.ndarray, boundary, rows: np.ndarray, cols: np.ndarray,
                   height: int, width: int, samples: np.ndarray | None = None, cval: float = 0.0) -> np.ndarray:
    """The (n, height, width, C) blocks of the extended image whose top-left corners are (rows, cols).

    `image` is (H, W, C), or (N, H, W, C) with `samples` naming each block's sample. Only
    the requested blocks are read: no padded copy of the whole image.
    """
    batched = image.ndim == 4
    size_h, size_w = image.shape[batched:batched + 2]
    row_rule, col_rule = axis_boundaries(boundary)
    r_idx, r_ok = boundary_index(rows[:, None] + np.arange(height), size_h, row_rule)
    c_idx, c_ok = boundary_index(cols[:, None] + np.arange(width), size_w, col_rule)
    if batched:
        which = np.zeros(rows.shape, dtype=int) if samples is None else samples
        blocks = image[which[:, None, None], r_idx[:, :, None], c_idx[:, None, :]]
    else:
        blocks = image[r_idx[:, :, None], c_idx[:, None, :]]
    if row_rule in ("zero", "constant") or col_rule in ("zero", "constant"):
        inside = (r_ok[:, :, None] & c_ok[:, None, :])[..., None]
        blocks = blocks * inside
        if cval:
            blocks = blocks + cval * ~inside
    return blocks


def window_origin(padding: str, kernel_hw: tuple[int, int], offset: tuple[int, int], image_hw=(0, 0),
                  stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Where output[0, 0]'s window starts in image coordinates: output[i, j] reads rows from
    i * stride + origin (CONTRACT section 2's offset is in input pixels)."""
    top, left = pad_before(padding, *kernel_hw, *image_hw, stride, dilation)
    return offset[0] - top, offset[1] - left


def extended_image(image: np.ndarray, boundary, origin: tuple[int, int],
                   out_hw: tuple[int, int], kernel_hw: tuple[int, int], cval: float = 0.0) -> np.ndarray:
    """The image region (padded per `boundary`) that an output of `out_hw` at `origin` reads."""
    height, width = image.shape[:2]
    before = (max(0, -origin[0]), max(0, -origin[1]))
    after = (max(0, origin[0] + out_hw[0] + kernel_hw[0] - 1 - height),
             max(0, origin[1] + out_hw[1] + kernel_hw[1] - 1 - width))
    padded = pad_image(image, boundary, before, after, cval)
    r0, c0 = origin[0] + before[0], origin[1] + before[1]
    return padded[r0:r0 + out_hw[0] + kernel_hw[0] - 1, c0:c0 + out_hw[1] + kernel_hw[1] - 1]


def correlate_valid(region: np.ndarray, kernel: np.ndarray, *, magnitude: bool = False,
                    stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1)):
    """'valid' cross-correlation of an (Hr, Wr, C) region with an HWIO kernel, in float64.

    Returns (values, magnitudes): values[i, j, o] = sum_{u, v, c} region[i*sy + u*dy,
    j*sx + v*dx, c] * kernel[u, v, c, o], and when `magnitude` the same sum of |region| *
    |kernel| (what the error bound needs), else None. Only the strided positions and the
    real taps are computed. Works in row blocks that stay in cache; small kernels use
    shifted-slice accumulation, large ones an im2col matrix product.
    """
    region = np.asarray(region, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    kh, kw, channels, outs = kernel.shape
    (sy, sx), (dy, dx) = stride, dilation
    span_h, span_w = (kh - 1) * dy + 1, (kw - 1) * dx + 1
    out_h, out_w = (region.shape[0] - span_h) // sy + 1, (region.shape[1] - span_w) // sx + 1
    values = np.empty((out_h, out_w, outs))
    mags = np.empty((out_h, out_w, outs)) if magnitude else None
    planes = np.ascontiguousarray(np.moveaxis(region, 2, 0))  # (C, Hr, Wr): contiguous slices
    abs_kernel = np.abs(kernel)
    taps = kh * kw * channels
    block = max(1, min(out_h, _BLOCK_BYTES // max(1, 8 * region.shape[1] * channels * sy)))
    use_matmul = taps * outs > _MATMUL_TAPS
    flat_kernel = kernel.reshape(taps, outs) if use_matmul else None
    flat_abs = abs_kernel.reshape(taps, outs) if use_matmul else None
    for r0 in range(0, out_h, block):
        rows = min(block, out_h - r0)
        top = r0 * sy
        if use_matmul:
            windows = np.lib.stride_tricks.sliding_window_view(
                planes[:, top:top + (rows - 1) * sy + span_h], (span_h, span_w), axis=(1, 2)
            )[:, ::sy, ::sx, ::dy, ::dx]  # (C, rows, Wo, kh, kw)
            cols = windows.transpose(1, 2, 3, 4, 0).reshape(rows * out_w, taps)
            values[r0:r0 + rows] = (cols @ flat_kernel).reshape(rows, out_w, outs)
            if magnitude:
                mags[r0:r0 + rows] = (np.abs(cols) @ flat_abs).reshape(rows, out_w, outs)
            continue
        tmp = np.empty((rows, out_w))
        # |x| of this block only: no image-sized copy for the magnitudes.
        abs_block = np.abs(planes[:, top:top + (rows - 1) * sy + span_h]) if magnitude else None
        row_end, col_end = (rows - 1) * sy + 1, (out_w - 1) * sx + 1
        for o in range(outs):
            acc = np.zeros((rows, out_w))
            acc_abs = np.zeros((rows, out_w)) if magnitude else None
            for c in range(channels):
                for u in range(kh):
                    for v in range(kw):
                        w = kernel[u, v, c, o]
                        if w == 0.0:
                            continue
                        r, q = u * dy, v * dx
                        np.multiply(planes[c, top + r:top + r + row_end:sy, q:q + col_end:sx], w, out=tmp)
                        acc += tmp
                        if magnitude:
                            np.multiply(abs_block[c, r:r + row_end:sy, q:q + col_end:sx], abs(w), out=tmp)
                            acc_abs += tmp
            values[r0:r0 + rows, :, o] = acc
            if magnitude:
                mags[r0:r0 + rows, :, o] = acc_abs
    return values, mags


def correlate(image: np.ndarray, kernel: np.ndarray, *, padding: str = "same", boundary="zero",
              offset: tuple[int, int] = (0, 0), magnitude: bool = False, stride: tuple[int, int] = (1, 1),
              dilation: tuple[int, int] = (1, 1), groups: int = 1, cval: float = 0.0):
    """Cross-correlate an (H, W, C) image, or an (N, H, W, C) batch, with an HWIO kernel
    (kh, kw, C / groups, C_out) in float64: (values, magnitudes).

    Output element (i, j) reads the window starting at (i * sy + dy - top, j * sx + dx - left)
    for `offset = (dy, dx)`, with the image extended by `boundary` wherever the window
    leaves it (so every element is defined).
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 4:
        pairs = [correlate(sample, kernel, padding=padding, boundary=boundary, offset=offset,
                           magnitude=magnitude, stride=stride, dilation=dilation, groups=groups, cval=cval)
                 for sample in image]
        return (np.stack([v for v, _ in pairs]),
                np.stack([m for _, m in pairs]) if magnitude else None)
    kh, kw = kernel.shape[:2]
    height, width = image.shape[:2]
    out_h, out_w = output_size(padding, height, width, kh, kw, stride, dilation)
    origin = window_origin(padding, (kh, kw), offset, (height, width), stride, dilation)
    dense = dense_kernel(np.asarray(kernel), groups)
    span = ((out_h - 1) * stride[0] + 1, (out_w - 1) * stride[1] + 1)
    wide = ((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1)
    region = extended_image(image, boundary, origin, span, wide, cval)
    return correlate_valid(region, dense, magnitude=magnitude, stride=stride, dilation=dilation)


def reference(image, kernel, padding: str = "same", *, stride=(1, 1), dilation=(1, 1), groups: int = 1) -> np.ndarray:
    """The CONTRACT section 1 reference: float64 cross-correlation with zero padding.

    Accepts the layouts of the contract: image (H, W), (H, W, C) or (N, H, W, C), kernel
    (kh, kw) or HWIO (kh, kw, C / groups, C_out). Returns (Ho, Wo) for a 2-D kernel and
    2-D image, else (Ho, Wo, C_out) (with N first for a batch).
    """
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    flat = kernel.ndim == 2 and image.ndim == 2
    if image.ndim == 2:
        image = image[:, :, None]
    if kernel.ndim == 2:
        kernel = kernel[:, :, None, None]
    values, _ = correlate(image, kernel, padding=padding, stride=tuple(stride), dilation=tuple(dilation),
                          groups=groups)
    return values[:, :, 0] if flat else values
