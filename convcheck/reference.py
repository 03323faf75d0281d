"""The exact float64 reference (CONTRACT section 1) and the geometry every candidate shares.

Written with numpy only, never another library's convolution, so that it stays an
independent witness for every backend convcheck compares (scipy included).

Layouts here: image (H, W, C), kernel (kh, kw, C_in, C_out), output (Ho, Wo, C_out).
"""

from __future__ import annotations

import numpy as np

from .vocabulary import KERNEL_TRANSFORMS

# numpy.pad mode for each `boundary` value (CONTRACT section 2 names them after numpy.pad).
_PAD_MODE = {"zero": "constant", "reflect": "reflect", "symmetric": "symmetric",
             "wrap": "wrap", "edge": "edge"}

# Above this many multiply-adds per output pixel, an im2col matrix product beats the
# shifted-slice accumulation (measured on 2048x2048 images; see benchmarks/).
_MATMUL_TAPS = 256
_BLOCK_BYTES = 1 << 20  # ~1 MiB of padded rows per block keeps each pass in cache


def pad_before(padding: str, kh: int, kw: int) -> tuple[int, int]:
    """(top, left) padding of a convention: TF 'SAME' puts an even kernel's extra row/column last."""
    if padding == "same":
        return (kh - 1) // 2, (kw - 1) // 2
    if padding == "valid":
        return 0, 0
    if padding == "full":
        return kh - 1, kw - 1
    raise ValueError(f"unknown padding {padding!r}")


def output_size(padding: str, height: int, width: int, kh: int, kw: int) -> tuple[int, int]:
    """The (Ho, Wo) of a padding convention."""
    if padding == "same":
        return height, width
    if padding == "valid":
        return height - kh + 1, width - kw + 1
    if padding == "full":
        return height + kh - 1, width + kw - 1
    raise ValueError(f"unknown padding {padding!r}")


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


def pad_image(image: np.ndarray, boundary: str, before: tuple[int, int], after: tuple[int, int]) -> np.ndarray:
    """The (H, W, C) image extended by `before`/`after` rows and columns per `boundary`.

    numpy.pad repeats reflect/symmetric/wrap as often as needed, so margins larger than
    the image are well defined.
    """
    widths = ((before[0], after[0]), (before[1], after[1]), (0, 0))
    return np.pad(image, widths, mode=_PAD_MODE[boundary])


def boundary_index(index: np.ndarray, size: int, boundary: str) -> tuple[np.ndarray, np.ndarray]:
    """Map image coordinates (any integers) to in-image ones per `boundary`, as numpy.pad does.

    Returns (index, valid): `valid` is False where a 'zero' boundary reads padding.
    Periodic formulas, so margins larger than the image repeat the rule like numpy.pad.
    """
    index = np.asarray(index)
    valid = np.ones(index.shape, dtype=bool)
    if boundary == "zero":
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


def gather_windows(image: np.ndarray, boundary: str, rows: np.ndarray, cols: np.ndarray,
                   height: int, width: int) -> np.ndarray:
    """The (n, height, width, C) blocks of the extended image whose top-left corners are (rows, cols).

    Only the requested blocks are read: no padded copy of the whole image.
    """
    r_idx, r_ok = boundary_index(rows[:, None] + np.arange(height), image.shape[0], boundary)
    c_idx, c_ok = boundary_index(cols[:, None] + np.arange(width), image.shape[1], boundary)
    blocks = image[r_idx[:, :, None], c_idx[:, None, :]]
    if boundary == "zero":
        blocks = blocks * (r_ok[:, :, None] & c_ok[:, None, :])[..., None]
    return blocks


def window_origin(padding: str, kernel_hw: tuple[int, int], offset: tuple[int, int]) -> tuple[int, int]:
    """Where output[0, 0]'s window starts in image coordinates: output[i, j] reads rows from i + origin."""
    top, left = pad_before(padding, *kernel_hw)
    return offset[0] - top, offset[1] - left


def extended_image(image: np.ndarray, boundary: str, origin: tuple[int, int],
                   out_hw: tuple[int, int], kernel_hw: tuple[int, int]) -> np.ndarray:
    """The image region (padded per `boundary`) that an output of `out_hw` at `origin` reads."""
    height, width = image.shape[:2]
    before = (max(0, -origin[0]), max(0, -origin[1]))
    after = (max(0, origin[0] + out_hw[0] + kernel_hw[0] - 1 - height),
             max(0, origin[1] + out_hw[1] + kernel_hw[1] - 1 - width))
    padded = pad_image(image, boundary, before, after)
    r0, c0 = origin[0] + before[0], origin[1] + before[1]
    return padded[r0:r0 + out_hw[0] + kernel_hw[0] - 1, c0:c0 + out_hw[1] + kernel_hw[1] - 1]


def correlate_valid(region: np.ndarray, kernel: np.ndarray, *, magnitude: bool = False):
    """'valid' cross-correlation of an (Hr, Wr, C) region with an HWIO kernel, in float64.

    Returns (values, magnitudes): values[i, j, o] = sum_{u, v, c} region[i+u, j+v, c] *
    kernel[u, v, c, o], and when `magnitude` the same sum of |region| * |kernel| (what the
    error bound needs), else None. Works in row blocks that stay in cache; small kernels
    use shifted-slice accumulation, large ones an im2col matrix product.
    """
    region = np.asarray(region, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    kh, kw, channels, outs = kernel.shape
    out_h, out_w = region.shape[0] - kh + 1, region.shape[1] - kw + 1
    values = np.empty((out_h, out_w, outs))
    mags = np.empty((out_h, out_w, outs)) if magnitude else None
    planes = np.ascontiguousarray(np.moveaxis(region, 2, 0))  # (C, Hr, Wr): contiguous slices
    abs_kernel = np.abs(kernel)
    taps = kh * kw * channels
    block = max(1, min(out_h, _BLOCK_BYTES // max(1, 8 * region.shape[1] * channels)))
    use_matmul = taps * outs > _MATMUL_TAPS
    flat_kernel = kernel.reshape(taps, outs) if use_matmul else None
    flat_abs = abs_kernel.reshape(taps, outs) if use_matmul else None
    for r0 in range(0, out_h, block):
        rows = min(block, out_h - r0)
        if use_matmul:
            windows = np.lib.stride_tricks.sliding_window_view(
                planes[:, r0:r0 + rows + kh - 1], (kh, kw), axis=(1, 2))  # (C, rows, Wo, kh, kw)
            cols = windows.transpose(1, 2, 3, 4, 0).reshape(rows * out_w, taps)
            values[r0:r0 + rows] = (cols @ flat_kernel).reshape(rows, out_w, outs)
            if magnitude:
                mags[r0:r0 + rows] = (np.abs(cols) @ flat_abs).reshape(rows, out_w, outs)
            continue
        tmp = np.empty((rows, out_w))
        # |x| of this block only: no image-sized copy for the magnitudes.
        abs_block = np.abs(planes[:, r0:r0 + rows + kh - 1]) if magnitude else None
        for o in range(outs):
            acc = np.zeros((rows, out_w))
            acc_abs = np.zeros((rows, out_w)) if magnitude else None
            for c in range(channels):
                for u in range(kh):
                    for v in range(kw):
                        w = kernel[u, v, c, o]
                        if w == 0.0:
                            continue
                        np.multiply(planes[c, r0 + u:r0 + u + rows, v:v + out_w], w, out=tmp)
                        acc += tmp
                        if magnitude:
                            np.multiply(abs_block[c, u:u + rows, v:v + out_w], abs(w), out=tmp)
                            acc_abs += tmp
            values[r0:r0 + rows, :, o] = acc
            if magnitude:
                mags[r0:r0 + rows, :, o] = acc_abs
    return values, mags


def correlate(image: np.ndarray, kernel: np.ndarray, *, padding: str = "same", boundary: str = "zero",
              offset: tuple[int, int] = (0, 0), magnitude: bool = False):
    """Cross-correlate an (H, W, C) image with an HWIO kernel in float64: (values, magnitudes).

    `output[i, j] = reference[i + dy, j + dx]` for `offset = (dy, dx)`, with the image
    extended by `boundary` wherever the window leaves it (so every element is defined).
    """
    kh, kw = kernel.shape[:2]
    out_hw = output_size(padding, image.shape[0], image.shape[1], kh, kw)
    origin = window_origin(padding, (kh, kw), offset)
    region = extended_image(np.asarray(image, dtype=np.float64), boundary, origin, out_hw, (kh, kw))
    return correlate_valid(region, kernel, magnitude=magnitude)


def reference(image, kernel, padding: str = "same") -> np.ndarray:
    """The CONTRACT section 1 reference: float64 cross-correlation with zero padding.

    Accepts the layouts of the contract: image (H, W) or (H, W, C), kernel (kh, kw) or
    HWIO. Returns (Ho, Wo) for a 2-D kernel, else (Ho, Wo, C_out).
    """
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    flat = kernel.ndim == 2
    if image.ndim == 2:
        image = image[:, :, None]
    if flat:
        kernel = kernel[:, :, None, None]
    values, _ = correlate(image, kernel, padding=padding)
    return values[:, :, 0] if flat else values
