"""The image extended by a boundary rule, and the windows a candidate's outputs read.

CONTRACT section 2's `boundary` values are named after numpy.pad's modes; a window is the
block of the extended image that one output element's kernel covers.
"""

from __future__ import annotations

import numpy as np

from ..geometry import pad_before


# numpy.pad mode for each `boundary` value (CONTRACT section 2 names them after numpy.pad).
PAD_MODE = {"zero": "constant", "constant": "constant", "reflect": "reflect", "symmetric": "symmetric",
             "wrap": "wrap", "edge": "edge"}


def axis_boundaries(boundary) -> tuple[str, str]:
    """(rows, columns) of a `boundary`: one name for both axes, or a [rows, columns] pair."""
    if isinstance(boundary, str):
        return boundary, boundary
    rows, cols = boundary
    return rows, cols


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
        extra = {"constant_values": cval if mode == "constant" else 0.0} if PAD_MODE[mode] == "constant" else {}
        padded = np.pad(padded, widths, mode=PAD_MODE[mode], **extra)
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
    which = np.zeros(rows.shape, dtype=np.intp) if (samples is None or not batched) else samples
    if image.flags.c_contiguous:
        # One flat index per pixel and np.take: faster than three broadcast index arrays.
        flat = (which[:, None, None] * size_h + r_idx[:, :, None]) * size_w + c_idx[:, None, :]
        blocks = np.take(image.reshape(-1, image.shape[-1]), flat, axis=0)
    elif batched:
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
