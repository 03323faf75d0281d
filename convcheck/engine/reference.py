"""The exact float64 reference (CONTRACT section 1): cross-correlation in blocks of rows.

Written with numpy only, never another library's convolution, so that it stays an
independent witness for every backend convcheck compares (scipy included).

Layouts here: image (H, W, C), kernel (kh, kw, C_in, C_out), output (Ho, Wo, C_out).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..geometry import dense_kernel, output_size
from .threads import beside, cores, single_threaded_blas
from .windows import axis_boundaries, boundary_index, window_origin


# How `correlate_valid` sums (measured on 1024x1024 to 8192x8192 images; see benchmarks/):
# with few channel pairs (C_in x C_out up to BANDED_PAIRS) a banded matrix product, each
# tile of output columns one product with a banded (Toeplitz) matrix of the kernel, 2-4x
# faster than adding shifted slices; above _MATMUL_TAPS multiply-adds per output pixel an
# im2col matrix product; else shifted-slice accumulation.
BANDED_PAIRS = 16


_MATMUL_TAPS = 256


_BLOCK_BYTES = 1 << 20        # ~1 MiB of padded rows per block keeps each pass in cache


_PRODUCT_BYTES = 1 << 19      # the banded product's window matrix, per block


_COLUMNS_BYTES = 1 << 21      # the im2col matrix, per block: bounded whatever the kernel's size


_THREADED_PRODUCT = 1 << 23   # multiply-adds per im2col block from which a second thread pays (_im2col)


_THREADED_BLOCKS = 1 << 23    # multiply-adds of all blocks from which a second thread pays (map_blocks)


BLOCK_ELEMENTS = 1 << 17      # output elements per block of `correlate_blocks`


def correlate_valid(region: np.ndarray, kernel: np.ndarray, *, magnitude: bool = False,
                    stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1), out=None,
                    workspace: "Workspace | None" = None, method: str | None = None):
    """'valid' cross-correlation of an (Hr, Wr, C) region with an HWIO kernel, in float64.

    Returns (values, magnitudes): values[i, j, o] = sum_{u, v, c} region[i*sy + u*dy,
    j*sx + v*dx, c] * kernel[u, v, c, o], and when `magnitude` the same sum of |region| *
    |kernel| (what the error bound needs), else None. Only the strided positions and the
    real taps are computed, in blocks whose working set is bounded whatever the sizes.
    `out` (values, magnitudes or None) receives them when given; `workspace` lends the
    buffers of a stream of calls (see `Workspace`). `method` 'shifted' sums every element
    tap by tap in the same order (identical windows give identical values, which a matrix
    product's blocking need not guarantee); by default the fastest way is chosen.

    Every element is a float64 sum of its products (the zeros a banded or dense kernel adds
    are exact), in an order that may differ between methods: what the bound's gamma_n(2^-53)
    for our own reproduction covers (convcheck.precision).
    """
    region = np.asarray(region, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    kh, kw, channels, outs = kernel.shape
    (sy, sx), (dy, dx) = stride, dilation
    span_h, span_w = (kh - 1) * dy + 1, (kw - 1) * dx + 1
    out_h, out_w = (region.shape[0] - span_h) // sy + 1, (region.shape[1] - span_w) // sx + 1
    if out is not None:
        values, mags = out
    else:
        values = np.empty((max(out_h, 0), max(out_w, 0), outs))
        mags = np.empty(values.shape) if magnitude else None
    if out_h <= 0 or out_w <= 0:
        return values, mags
    workspace = workspace or Workspace()
    with single_threaded_blas():
        # A product multiplies by the banded matrix's zeros too: inf * 0 would be NaN.
        if method == "shifted":
            _shifted(region, kernel, values, mags, stride, dilation)
        elif channels * outs <= BANDED_PAIRS and bool(np.isfinite(region).all()):
            _banded(region, kernel, values, mags, stride, dilation, workspace)
        elif kh * kw * channels * outs > _MATMUL_TAPS:
            _im2col(region, kernel, values, mags, stride, dilation, workspace)
        else:
            _shifted(region, kernel, values, mags, stride, dilation)
    return values, mags


class Workspace:
    """Buffers lent to a stream of blocks, reused from one block to the next.

    A fresh array of a megabyte or more is new memory from the system (glibc returns
    freed blocks of that size at once): its first writes page-fault, which for a stream
    of a few hundred blocks costs as much as the arithmetic. A buffer here is allocated
    once per name and grown when a larger one is asked for.
    """

    def __init__(self, threads: bool = True):
        self._buffers: dict[str, np.ndarray] = {}
        self._helper: Optional["Workspace"] = None
        self.threads = threads   # False: the blocks are already shared between threads (map_blocks)

    def helper(self) -> "Workspace":
        """The buffers of a second thread working beside this one (kept, like the others)."""
        if self._helper is None:
            self._helper = Workspace()
        return self._helper

    def get(self, name: str, shape, dtype=np.float64) -> np.ndarray:
        """An uninitialised array of `shape` (a view of the buffer `name`)."""
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != np.dtype(dtype):
            buffer = self._buffers[name] = np.empty(max(size, 1), dtype=dtype)
        return buffer[:size].reshape(shape)


def _banded_tile(span_w: int) -> int:
    """Output columns per tile of the banded product: the kernel's span or more, so the
    band is at least half taps."""
    return next(t for t in (8, 16, 32, 64) if span_w <= t or t == 64)


def _banded(region, kernel, values, mags, stride, dilation, workspace) -> None:
    """`correlate_valid` as matrix products: output row i, columns j0..j0+T-1 (a tile) is
    the tile's window (kh rows x the tile's input columns x C) times a banded matrix that
    holds the kernel once per output column, shifted by the stride: one product per block
    of rows and tiles, its working set bounded by _PRODUCT_BYTES."""
    kh, kw, channels, outs = kernel.shape
    (sy, sx), (dy, dx) = stride, dilation
    span_w = (kw - 1) * dx + 1
    out_h, out_w = values.shape[:2]
    tile = _banded_tile(span_w)
    width = (tile - 1) * sx + span_w           # input columns one tile reads
    band = np.zeros((kh, width, channels, tile, outs))
    for j in range(tile):
        for v in range(kw):
            band[:, j * sx + v * dx, :, j, :] = kernel[:, v]
    depth = kh * width * channels
    band = band.reshape(depth, tile * outs)
    abs_band = np.abs(band) if mags is not None else None
    tiles = -(-out_w // tile)
    # Tiles reading past the region's right edge (the last, at most) go through a copy
    # padded with zeros: only its unused outputs read the padding.
    inside = min(tiles, max(0, (region.shape[1] - width) // (tile * sx) + 1))
    if inside < tiles:
        start = inside * tile * sx
        edge = workspace.get("edge", (region.shape[0], (tiles - inside - 1) * tile * sx + width, channels))
        edge[:, :region.shape[1] - start] = region[:, start:]
        edge[:, region.shape[1] - start:] = 0.0
    per_row = max(1, min(tiles, _PRODUCT_BYTES // (8 * depth)))         # tiles per product
    rows_per = max(1, min(out_h, _PRODUCT_BYTES // (8 * depth * per_row)))
    for r0 in range(0, out_h, rows_per):
        rows = min(rows_per, out_h - r0)
        for t0, t1 in _tile_ranges(inside, tiles, per_row):
            source, first = (region, t0) if t0 < inside else (edge, t0 - inside)
            count = t1 - t0
            rs, cs, chs = source.strides
            # windows[r, t, u, l, c] = source[(r0 + r) * sy + u * dy, (first + t) * tile * sx + l, c]
            windows = np.lib.stride_tricks.as_strided(
                source[r0 * sy:, first * tile * sx:], shape=(rows, count, kh, width, channels),
                strides=(sy * rs, tile * sx * cs, dy * rs, cs, chs), writeable=False)
            matrix = workspace.get("windows", (rows * count, depth))
            np.copyto(matrix.reshape(windows.shape), windows)   # the windows overlap: a copy
            product = workspace.get("product", (rows * count, tile * outs))
            c0, c1 = t0 * tile, min(out_w, t1 * tile)
            np.matmul(matrix, band, out=product)
            values[r0:r0 + rows, c0:c1] = product.reshape(rows, count * tile, outs)[:, :c1 - c0]
            if mags is not None:
                np.abs(matrix, out=matrix)
                np.matmul(matrix, abs_band, out=product)
                mags[r0:r0 + rows, c0:c1] = product.reshape(rows, count * tile, outs)[:, :c1 - c0]


def _tile_ranges(inside: int, tiles: int, per_row: int):
    """(first, end) tile ranges of at most `per_row` tiles, none straddling `inside`."""
    for lo, hi in ((0, inside), (inside, tiles)):
        for t0 in range(lo, hi, per_row):
            yield t0, min(hi, t0 + per_row)


def _im2col(region, kernel, values, mags, stride, dilation, workspace) -> None:
    """`correlate_valid` as one matrix product per block of output rows and columns, the
    window matrix bounded by _COLUMNS_BYTES (a large kernel gets few positions per block).

    When the blocks are large products (many-channel layers) and there is a second core,
    a second thread takes blocks too, each thread the next block not yet taken (numpy
    lets go of the GIL while it copies and multiplies): the blocks and their products
    are the same either way, and a core busy elsewhere only takes fewer blocks. (Inside
    `single_threaded_blas` each product runs on one BLAS thread; where it cannot limit
    the BLAS, MKL or Accelerate, two products may share the cores with the BLAS's own
    threads.)
    """
    kh, kw, channels, outs = kernel.shape
    (sy, sx), (dy, dx) = stride, dilation
    span_h, span_w = (kh - 1) * dy + 1, (kw - 1) * dx + 1
    out_h, out_w = values.shape[:2]
    taps = kh * kw * channels
    flat_kernel = kernel.reshape(taps, outs)
    flat_abs = np.abs(flat_kernel)
    planes = np.moveaxis(region, 2, 0)  # (C, Hr, Wr)
    per_row = max(1, min(out_w, _COLUMNS_BYTES // (8 * taps)))
    rows_per = max(1, min(out_h, _COLUMNS_BYTES // (8 * taps * per_row)))
    starts = [(r0, c0) for r0 in range(0, out_h, rows_per) for c0 in range(0, out_w, per_row)]

    def run(space: Workspace, taken) -> None:
        for r0, c0 in taken:
            rows, cols_here = min(rows_per, out_h - r0), min(per_row, out_w - c0)
            windows = np.lib.stride_tricks.sliding_window_view(
                planes[:, r0 * sy:r0 * sy + (rows - 1) * sy + span_h,
                       c0 * sx:c0 * sx + (cols_here - 1) * sx + span_w], (span_h, span_w), axis=(1, 2)
            )[:, ::sy, ::sx, ::dy, ::dx]  # (C, rows, cols, kh, kw)
            cols = space.get("cols", (rows * cols_here, taps))
            np.copyto(cols.reshape(rows, cols_here, kh, kw, channels), windows.transpose(1, 2, 3, 4, 0))
            _product(cols, flat_kernel, values, r0, c0, rows, cols_here, space)
            if mags is not None:
                np.abs(cols, out=cols)
                _product(cols, flat_abs, mags, r0, c0, rows, cols_here, space)

    large = len(starts) > 1 and rows_per * per_row * taps * outs >= _THREADED_PRODUCT
    if not large or not workspace.threads or cores() < 2:
        run(workspace, starts)
        return
    import threading
    lock, pending, failed = threading.Lock(), iter(starts), []

    def take():
        while not failed:
            with lock:
                start = next(pending, None)
            if start is None:
                return
            yield start

    beside(lambda: run(workspace, take()), lambda: run(workspace.helper(), take()), failed)


def _product(cols, matrix, result, r0: int, c0: int, rows: int, count: int, space: Workspace) -> None:
    """result[r0:r0 + rows, c0:c0 + count] = cols @ matrix: straight into `result` when those
    are whole rows of a C-contiguous array (no copy), else through the buffer "product"."""
    if count == result.shape[1] and result.flags.c_contiguous:
        np.matmul(cols, matrix, out=result[r0:r0 + rows].reshape(rows * count, result.shape[2]))
        return
    product = space.get("product", (rows * count, result.shape[2]))
    np.matmul(cols, matrix, out=product)
    result[r0:r0 + rows, c0:c0 + count] = product.reshape(rows, count, result.shape[2])


def _shifted(region, kernel, values, mags, stride, dilation) -> None:
    """`correlate_valid` by adding shifted slices times each tap, in row blocks that stay in cache."""
    kh, kw, channels, outs = kernel.shape
    (sy, sx), (dy, dx) = stride, dilation
    span_h = (kh - 1) * dy + 1
    out_h, out_w = values.shape[:2]
    magnitude = mags is not None
    planes = np.ascontiguousarray(np.moveaxis(region, 2, 0))  # (C, Hr, Wr): contiguous slices
    block = max(1, min(out_h, _BLOCK_BYTES // max(1, 8 * region.shape[1] * channels * sy)))
    for r0 in range(0, out_h, block):
        rows = min(block, out_h - r0)
        top = r0 * sy
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


class _Blocks:
    """The blocks of `correlate_blocks` (see there): where each starts, and each one
    computed into the buffers of a workspace."""

    def __init__(self, image: np.ndarray, kernel: np.ndarray, *, padding: str = "same", boundary="zero",
                 offset: tuple[int, int] = (0, 0), magnitude: bool = False, stride: tuple[int, int] = (1, 1),
                 dilation: tuple[int, int] = (1, 1), groups: int = 1, cval: float = 0.0, prepare=None,
                 block_elements: int = BLOCK_ELEMENTS, method: str | None = None):
        image = np.asarray(image)
        self.batch = batch = image if image.ndim == 4 else image[None]
        kh, kw = kernel.shape[:2]
        self.height, self.width, self.channels = height, width, _ = batch.shape[1:4]
        self.out_h, self.out_w = out_h, out_w = output_size(padding, height, width, kh, kw, stride, dilation)
        self.origin = origin = window_origin(padding, (kh, kw), offset, (height, width), stride, dilation)
        self.dense = dense = dense_kernel(np.asarray(kernel, dtype=np.float64), groups)
        self.outs = outs = dense.shape[3]
        self.span_h = (kh - 1) * dilation[0] + 1
        span_w = (kw - 1) * dilation[1] + 1
        self.row_rule, self.col_rule = axis_boundaries(boundary)
        col_rule, padded_rule = self.col_rule, ("zero", "constant")
        self.fill = cval if "constant" in (self.row_rule, col_rule) else 0.0
        c_idx, c_ok = boundary_index(np.arange(origin[1], origin[1] + (out_w - 1) * stride[1] + span_w), width,
                                     col_rule)
        self.c_idx, self.c_ok = c_idx, c_ok
        self.c_inside = c_idx.size > 0 and origin[1] >= 0 and origin[1] + c_idx.size <= width
        self.c_out = ~c_ok if col_rule in padded_rule and not c_ok.all() else None
        self.rows_per = rows_per = max(1, min(out_h, block_elements // max(1, out_w * outs)))
        self.starts = [(n, i0) for n in range(batch.shape[0]) for i0 in range(0, out_h, rows_per)]
        self.magnitude, self.stride, self.dilation = magnitude, stride, dilation
        self.prepare, self.method = prepare, method
        # Multiply-adds of a block (values, and as many again for the magnitudes).
        self.block_work = rows_per * out_w * outs * dense[..., 0].size * (2 if magnitude else 1)

    def compute(self, n: int, i0: int, workspace: "Workspace"):
        """(values, magnitudes) of the block of output rows i0... of sample n, in `workspace`'s buffers."""
        stride, padded_rule = self.stride, ("zero", "constant")
        sample, height, width, channels = self.batch[n], self.height, self.width, self.channels
        i1 = min(self.out_h, i0 + self.rows_per)
        first = self.origin[0] + i0 * stride[0]
        r_idx, r_ok = boundary_index(np.arange(first, first + (i1 - 1 - i0) * stride[0] + self.span_h), height,
                                     self.row_rule)
        rows_inside = first >= 0 and first + r_idx.size <= height
        r_out = ~r_ok if self.row_rule in padded_rule and not r_ok.all() else None
        c_idx, c_inside, left = self.c_idx, self.c_inside, self.origin[1]
        own_type = self.batch.dtype == np.float64
        if rows_inside and c_inside and self.prepare is None and own_type:
            block = sample[first:first + r_idx.size, left:left + c_idx.size]   # a view
        elif self.row_rule in padded_rule and self.col_rule in padded_rule:
            # Zero or constant padding: the image's part is one rectangle (r_ok and c_ok are
            # runs), copied as a slice (and prepared there); the fill goes around it.
            block = workspace.get("region", (r_idx.size, c_idx.size, channels))
            (r0, r1), (c0, c1) = _run(r_ok), _run(self.c_ok)
            inside = block[r0:r1, c0:c1]
            inside[...] = sample[first + r0:first + r1, left + c0:left + c1]
            if self.prepare is not None:
                prepared = self.prepare(inside)
                if prepared is not inside:
                    inside[...] = prepared
            if r_out is not None:
                block[r_out] = self.fill
            if self.c_out is not None:
                block[:, self.c_out] = self.fill
        else:
            block = workspace.get("region", (r_idx.size, c_idx.size, channels))
            rows = sample[first:first + r_idx.size] if rows_inside else None
            if rows is None:
                rows = workspace.get("rows", (r_idx.size, width, channels), self.batch.dtype)
                np.take(sample, r_idx, axis=0, out=rows)
            if c_inside:
                block[...] = rows[:, left:left + c_idx.size]
            elif own_type:
                np.take(rows, c_idx, axis=1, out=block)
            else:
                block[...] = rows.take(c_idx, axis=1)
            if self.prepare is not None:
                block = self.prepare(block)
            if r_out is not None:
                block[r_out] = self.fill
            if self.c_out is not None:
                block[:, self.c_out] = self.fill
        shape = (i1 - i0, self.out_w, self.outs)
        out = (workspace.get("values", shape), workspace.get("mags", shape) if self.magnitude else None)
        return correlate_valid(block, self.dense, magnitude=self.magnitude, stride=stride, dilation=self.dilation,
                               out=out, workspace=workspace, method=self.method)


def _run(valid: np.ndarray) -> tuple[int, int]:
    """(first, end) of the True run of `valid` (a 'zero' boundary's in-image indices: one
    run, or none: (0, 0))."""
    inside = np.flatnonzero(valid)
    return (int(inside[0]), int(inside[-1]) + 1) if inside.size else (0, 0)


def correlate_blocks(image: np.ndarray, kernel: np.ndarray, *, padding: str = "same", boundary="zero",
                     offset: tuple[int, int] = (0, 0), magnitude: bool = False, stride: tuple[int, int] = (1, 1),
                     dilation: tuple[int, int] = (1, 1), groups: int = 1, cval: float = 0.0, prepare=None,
                     block_elements: int = BLOCK_ELEMENTS, method: str | None = None):
    """`correlate` a block of output rows at a time: yields (sample, first row, values,
    magnitudes), each block about `block_elements` output elements.

    Only the image rows a block reads are extended by `boundary` (never a padded copy of
    the whole image), so the working set is a few blocks whatever the image's size; the
    arrays yielded are buffers reused by the next block (copy what you keep).
    `prepare`, when given, maps the image's values before they are read (e.g. rounding
    them to a precision: elementwise, so it commutes with the boundary rules; a
    'constant' boundary's `cval` is filled in afterwards, as given); it is handed a
    block of our own and may change it in place. `method` as in `correlate_valid`.
    """
    plan = _Blocks(image, kernel, padding=padding, boundary=boundary, offset=offset, magnitude=magnitude,
                   stride=stride, dilation=dilation, groups=groups, cval=cval, prepare=prepare,
                   block_elements=block_elements, method=method)
    workspace = Workspace()
    for n, i0 in plan.starts:
        values, mags = plan.compute(n, i0, workspace)
        yield n, i0, values, mags


def map_blocks(work, image: np.ndarray, kernel: np.ndarray, **options) -> list:
    """[work(sample, first row, values, magnitudes, workspace) for each block of
    `correlate_blocks(image, kernel, **options)`], in block order.

    With a second core and blocks worth it, two threads take the blocks, each the next
    one not yet taken, and each runs `work` on the blocks it computed: what `work` does
    with a block (bounds, comparisons: numpy lets go of the GIL for them as for the
    products) then overlaps the next block's product instead of following it. Each
    thread has its own `workspace` (the block's buffers, and any `work` asks for), so
    `work` must write only what belongs to its own block and return the rest: the
    results come back in block order whichever thread made them, the same results as
    one thread gives.
    """
    plan = _Blocks(image, kernel, **options)
    starts = plan.starts
    if len(starts) < 2 or plan.block_work * len(starts) < _THREADED_BLOCKS or cores() < 2:
        workspace = Workspace()
        return [work(n, i0, *plan.compute(n, i0, workspace), workspace) for n, i0 in starts]
    import threading
    results: list = [None] * len(starts)
    lock, pending, failed = threading.Lock(), iter(range(len(starts))), []

    def run() -> None:
        workspace = Workspace(threads=False)   # one thread per block: no second one inside it
        while not failed:
            with lock:
                index = next(pending, None)
            if index is None:
                return
            n, i0 = starts[index]
            results[index] = work(n, i0, *plan.compute(n, i0, workspace), workspace)

    # Set once around both threads: each block's own setting (in correlate_valid) then
    # finds one thread and leaves one, whichever thread ends first.
    with single_threaded_blas():
        beside(run, run, failed)
    return results


def correlate(image: np.ndarray, kernel: np.ndarray, *, padding: str = "same", boundary="zero",
              offset: tuple[int, int] = (0, 0), magnitude: bool = False, stride: tuple[int, int] = (1, 1),
              dilation: tuple[int, int] = (1, 1), groups: int = 1, cval: float = 0.0, prepare=None,
              method: str | None = None):
    """Cross-correlate an (H, W, C) image, or an (N, H, W, C) batch, with an HWIO kernel
    (kh, kw, C / groups, C_out) in float64: (values, magnitudes). `prepare` and `method`
    as in `correlate_blocks`.

    Output element (i, j) reads the window starting at (i * sy + dy - top, j * sx + dx - left)
    for `offset = (dy, dx)`, with the image extended by `boundary` wherever the window
    leaves it (so every element is defined).
    """
    image = np.asarray(image, dtype=np.float64)
    batch = image if image.ndim == 4 else image[None]
    kh, kw = kernel.shape[:2]
    out_h, out_w = output_size(padding, batch.shape[1], batch.shape[2], kh, kw, stride, dilation)
    values = np.empty((batch.shape[0], out_h, out_w, kernel.shape[3]))
    mags = np.empty(values.shape) if magnitude else None
    for n, i0, block, block_mags in correlate_blocks(batch, kernel, padding=padding, boundary=boundary,
                                                     offset=offset, magnitude=magnitude, stride=stride,
                                                     dilation=dilation, groups=groups, cval=cval, prepare=prepare,
                                                     method=method):
        values[n, i0:i0 + block.shape[0]] = block
        if magnitude:
            mags[n, i0:i0 + block.shape[0]] = block_mags
    if image.ndim == 4:
        return values, mags
    return values[0], (mags[0] if magnitude else None)


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
