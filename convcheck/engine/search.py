"""Stages 1 and 2 of the search, on a few hundred sampled output positions.

1. every structure (transform x boundary x offset x scale/bias fit) on the samples, all
   offsets at once as one matrix product, against the loosest bound any allowed precision
   could need: what fails there cannot be the answer;
2. each survivor, simplest first, against each allowed precision's exact bound on the
   same samples (inputs rounded as that precision rounds them), and the negative control
   (decoy kernels) for one that passes.
Confirmation on the whole output is `convcheck.engine.passes`' job.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import precision as prec
from . import bounds
from ..geometry import dense_kernel, pad_before, transform_kernel
from ..vocabulary import BOUNDARIES
from .candidates import MAX_PAD_SPANS, FITS, Layout, Structure, as_value, fit_kind, folds_offset, per_channel_fit
from .clipping import clip_limits, clip_residual, clipped_mask
from .evaluation import SEARCH_BYTES
from .fits import (SCREEN_FIT_ULPS, evaluation_error, fit_allowance, fit_batch, fit_cval, fit_weights, fit_within,
                   settle_dead_channels, usable_fit)
from .problem import Problem, leaves_out
from .reference import Workspace
from .windows import gather_windows


_MAX_SAMPLES_EXHAUSTIVE = 400   # outputs this small are searched on every pixel
_WINDOW_BUDGET = 1 << 22         # stage 1's window elements per search (positions x offsets x taps)
_BORDER_SAMPLES = 128
_INTERIOR_SAMPLES = 192
_PATCH_CACHE_BYTES = 1 << 27    # sample windows kept for stage 2
_MAX_DECLARED_RADIUS = 8        # a declared offset widens the offsets searched up to this
_SAMPLES: dict = {}


def offset_radius(problem: Problem, near: bool = False) -> int:
    """How many input pixels each way the search's offsets reach: a few, more for a larger
    kernel, and as far as a declared offset; `near` (see `passes.search_passes`): the declared
    offset only."""
    kh, kw = problem.kernel.shape[:2]
    declared = min(max(abs(int(v)) for v in problem.baseline.offset), _MAX_DECLARED_RADIUS)
    return declared if near else max(1, min(4, max(kh, kw) // 2 + 1), declared)


class Search:
    """Stages 1 and 2 over one set of layouts (those changing the same number of geometry fields)."""

    def __init__(self, problem: Problem, layouts: list[Layout], near: bool = False):
        self.p = problem
        self.near = near
        self.out_hw = tuple(problem.output.shape[1:3])
        self.radius = offset_radius(problem, near)
        self.layouts = layouts
        self.samples, self.rows, self.cols = self._samples()
        self._patch_cache: dict[tuple, np.ndarray] = {}
        self.outs = int(problem.output.shape[3])
        self.screened = _screened_channels(self.outs)
        self._winograd_cache: dict[tuple, np.ndarray] = {}
        # How many candidates the search considers: what an `explained` verdict must beat.
        self.size = (max(1, len(layouts)) * len(problem.boundaries) * (2 * self.radius + 1) ** 2
                     * len(self.fits()) * len(self.activations()) * len(problem.precisions))

    def _plain_pass(self) -> bool:
        """The fallback passes (an FFT, a boundary rule per axis or a constant border) search
        the plain values only: no activation, no per-channel fit (what they are for, library
        filters, has neither; and the search stays affordable)."""
        return self.p.algorithm != "direct" or self.p.boundaries[0] != BOUNDARIES[0]

    def fits(self) -> tuple[str, ...]:
        """The scale/bias fits of this pass: none with an FFT's loose normwise bound (it would
        leave fitted parameters too much room); per channel only with several channels."""
        if self.p.algorithm != "direct":
            return ("none",)
        return tuple(f for f in FITS if (self.outs > 1 and not self._plain_pass()) or not per_channel_fit(f))

    def activations(self) -> list[str]:
        """The activations of this pass (see `Problem.activations_for`)."""
        storage = self.p.storage[self.p.precisions[0]]
        return ["linear"] if self._plain_pass() else self.p.activations_for(
            storage if storage in prec.INTEGER_RANGES else None)

    def _samples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Output positions (sample, row, col) to search on: all of a small output, else a
        border band + interior, spread over the batch.

        The border band (where windows leave the image) decides the boundary; the interior
        decides kernel, offset and precision. Deterministic, so verdicts are reproducible.
        """
        batch = self.p.output.shape[0]
        out_h, out_w = self.out_hw
        # The same shapes give the same positions (a suite asks again for every case): cached.
        key = (batch, out_h, out_w, self.p.output.shape[3], self.p.kernel.shape[:2], self.radius,
               self.p.image.shape[3])
        if key not in _SAMPLES:
            if len(_SAMPLES) > 64:
                _SAMPLES.clear()
            _SAMPLES[key] = self._positions()
            for array in _SAMPLES[key]:
                array.flags.writeable = False
        return _SAMPLES[key]

    def _positions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`_samples`, computed."""
        batch = self.p.output.shape[0]
        out_h, out_w = self.out_hw
        kh, kw, _, _ = self.p.kernel.shape
        # Stage 1 multiplies every position's windows at every offset by the kernels: with
        # many taps (a 3x3 kernel on 256 channels), fewer positions keep that product bounded.
        affordable = max(64, _WINDOW_BUDGET // ((2 * self.radius + 1) ** 2 * kh * kw * self.p.image.shape[3]))
        if batch * out_h * out_w <= min(_MAX_SAMPLES_EXHAUSTIVE, affordable):
            grid = np.indices((batch, out_h, out_w)).reshape(3, -1)
            return grid[0], grid[1], grid[2]
        rng = _Counter(20261123)
        band = max(self.p.kernel.shape[:2]) + self.radius
        # Every position gives one element per output channel: with many channels, fewer
        # positions give as many elements (stage 1's arrays grow with positions x channels).
        share = min(1.0, max(0.3, 2048 / ((_BORDER_SAMPLES + _INTERIOR_SAMPLES) * self.p.output.shape[3])),
                    affordable / (_BORDER_SAMPLES + _INTERIOR_SAMPLES))
        per_side = max(8, int(_BORDER_SAMPLES * share) // 4)
        interior = max(32, int(_INTERIOR_SAMPLES * share))
        depth_h = rng.integers(0, min(band, out_h), per_side * 2)
        depth_w = rng.integers(0, min(band, out_w), per_side * 2)
        along_h = rng.integers(0, out_w, per_side * 2)
        along_w = rng.integers(0, out_h, per_side * 2)
        rows = [np.array([0, 0, out_h - 1, out_h - 1]),
                depth_h[:per_side], out_h - 1 - depth_h[per_side:], along_w]
        cols = [np.array([0, out_w - 1, 0, out_w - 1]),
                along_h[:per_side], along_h[per_side:],
                np.concatenate([depth_w[:per_side], out_w - 1 - depth_w[per_side:]])]
        if out_h > 2 * band and out_w > 2 * band:
            rows.append(rng.integers(band, out_h - band, interior))
            cols.append(rng.integers(band, out_w - band, interior))
        else:
            rows.append(rng.integers(0, out_h, interior))
            cols.append(rng.integers(0, out_w, interior))
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        samples = rng.integers(0, batch, rows.size)
        flat = np.sort((samples * out_h + rows) * out_w + cols)
        flat = flat[np.r_[True, flat[1:] != flat[:-1]]]   # np.unique's values (without importing numpy.ma)
        return flat // (out_h * out_w), (flat // out_w) % out_h, flat % out_w

    def _patches(self, precision: Optional[str], boundary: str, layout: Layout, kernel_hw,
                 which=None) -> np.ndarray:
        """Sample windows for every offset in [-R, R]^2: (n_samples, kh' + 2R, kw' + 2R, C),
        kh' the dilated kernel's height. `precision` None means the inputs as loaded. Cached
        (the latest few, up to _PATCH_CACHE_BYTES: a large kernel's are large); with
        `which`, a mask (or a slice) of the samples, those samples' windows alone, not cached."""
        key = (precision, boundary, layout.padding, layout.stride, layout.dilation, tuple(kernel_hw), self.p.via)
        if which is None and key in self._patch_cache:
            return self._patch_cache[key]
        chosen = slice(None) if which is None else which
        r = self.radius
        top, left = pad_before(layout.padding, *kernel_hw, *self.p.image_hw, layout.stride, layout.dilation)
        span = ((kernel_hw[0] - 1) * layout.dilation[0] + 1, (kernel_hw[1] - 1) * layout.dilation[1] + 1)
        patches = gather_windows(
            self.p.image, boundary, self.rows[chosen] * layout.stride[0] - r - top,
            self.cols[chosen] * layout.stride[1] - r - left, span[0] + 2 * r, span[1] + 2 * r,
            samples=self.samples[chosen])
        rounding = None if precision is None else self.p.rounding(precision)
        # The rounded image's windows: rounding is elementwise and keeps the padding's zeros.
        patches = patches if rounding is None else rounding(patches)
        if which is None:
            while self._patch_cache and sum(a.nbytes for a in self._patch_cache.values()) + patches.nbytes \
                    > _PATCH_CACHE_BYTES:
                del self._patch_cache[next(iter(self._patch_cache))]
            self._patch_cache[key] = patches
        return patches

    def _inside(self, layout: Layout, kernel_hw) -> np.ndarray:
        """Which samples' windows (at every offset) lie inside the image: the same for every
        boundary rule."""
        r = self.radius
        height, width = self.p.image_hw
        top, left = pad_before(layout.padding, *kernel_hw, height, width, layout.stride, layout.dilation)
        span = ((kernel_hw[0] - 1) * layout.dilation[0] + 1, (kernel_hw[1] - 1) * layout.dilation[1] + 1)
        rows = self.rows * layout.stride[0] - r - top
        cols = self.cols * layout.stride[1] - r - left
        return (rows >= 0) & (rows + span[0] + 2 * r <= height) & (cols >= 0) & (cols + span[1] + 2 * r <= width)

    def _predict_boundary(self, boundary: str, layout: Layout, kernel_hw, stack: np.ndarray, inside, cache: dict):
        """`_predict` of every sample under `boundary`: the samples whose windows lie inside
        the image are computed once (in `cache`) for all boundary rules, the rest for this
        one; a large kernel's windows are gathered a few samples at a time."""
        size = 2 * self.radius + 1
        values = np.empty((inside.size, size, size, stack.shape[3]))
        mags = np.empty(values.shape)
        if inside.any() and "inside" not in cache:
            cache["inside"] = self._predict_some(boundary, layout, kernel_hw, stack, inside)
        if inside.any():
            values[inside], mags[inside] = cache["inside"]
        if not inside.all():
            values[~inside], mags[~inside] = self._predict_some(boundary, layout, kernel_hw, stack, ~inside)
        return values, mags

    def _predict_some(self, boundary: str, layout: Layout, kernel_hw, stack: np.ndarray, which: np.ndarray):
        """`_predict` of the samples `which` (a mask), their windows gathered in batches of
        at most SEARCH_BYTES."""
        span = ((kernel_hw[0] - 1) * layout.dilation[0] + 1, (kernel_hw[1] - 1) * layout.dilation[1] + 1)
        per_sample = 8 * (span[0] + 2 * self.radius) * (span[1] + 2 * self.radius) * self.p.image.shape[3]
        chosen = np.flatnonzero(which)
        step = max(1, 4 * SEARCH_BYTES // per_sample)
        parts = []
        for a in range(0, chosen.size, step):
            part = np.zeros(which.size, dtype=bool)
            part[chosen[a:a + step]] = True
            parts.append(self._predict(self._patches(None, boundary, layout, kernel_hw, part), stack,
                                       layout.dilation))
        return np.concatenate([v for v, _ in parts]), np.concatenate([m for _, m in parts])

    def _predict(self, patches: np.ndarray, kernels: np.ndarray, dilation=(1, 1)):
        """Correlate every sample window at every offset with a stack of kernels at once.

        kernels: (kh, kw, C, K), dense but not dilated: the windows take every dilation-th
        tap instead. Returns (n_samples, D, D, K) values and magnitudes.
        """
        kh, kw, channels, count = kernels.shape
        span = ((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1)
        windows = np.lib.stride_tricks.sliding_window_view(patches, span, axis=(1, 2))[
            :, :, :, :, ::dilation[0], ::dilation[1]]
        n, d1, d2 = windows.shape[:3]
        taps = kh * kw * channels
        flat = kernels.reshape(taps, count)
        abs_flat = np.abs(flat)
        values, mags = np.empty((n, d1, d2, count)), np.empty((n, d1, d2, count))
        # A few samples at a time when the kernel is large: the window matrix stays bounded
        # (and is one buffer, reused).
        step = max(1, SEARCH_BYTES // (8 * d1 * d2 * taps))
        if step >= n:
            cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * d1 * d2, taps)
            values[:] = (cols @ flat).reshape(n, d1, d2, count)
            mags[:] = (np.abs(cols) @ abs_flat).reshape(n, d1, d2, count)
            return values, mags
        space = Workspace()
        for a in range(0, n, step):
            b = min(n, a + step)
            cols = space.get("cols", ((b - a) * d1 * d2, taps))
            np.copyto(cols.reshape(b - a, d1, d2, kh, kw, channels), windows[a:b].transpose(0, 1, 2, 4, 5, 3))
            np.matmul(cols, flat, out=values[a:b].reshape(-1, count))
            np.abs(cols, out=cols)
            np.matmul(cols, abs_flat, out=mags[a:b].reshape(-1, count))
        return values, mags

    def _offset_mask(self, layout: Layout) -> np.ndarray:
        """(D, D, n) compared-or-not of each sample at each offset (see Problem.compared_mask);
        every sample under explicit pads whose offset folds into them (`folds_offset`)."""
        r = self.radius
        size = 2 * r + 1
        if folds_offset(layout.padding, self.p.baseline):
            return np.ones((size, size, self.rows.size), dtype=bool)
        stride = layout.stride
        shifts = np.arange(-r, r + 1)
        out_h, out_w = self.out_hw
        rows = self.rows[None, :] * stride[0] + shifts[:, None]
        cols = self.cols[None, :] * stride[1] + shifts[:, None]
        row_ok = (rows >= 0) & (rows <= (out_h - 1) * stride[0]) | ~leaves_out(shifts, out_h)[:, None]
        col_ok = (cols >= 0) & (cols <= (out_w - 1) * stride[1]) | ~leaves_out(shifts, out_w)[:, None]
        return row_ok[:, None, :] & col_ok[None, :, :]

    def _offset_allowed(self, layout: Layout) -> np.ndarray:
        """(D, D): every offset is a candidate (those that leave nothing out compare all);
        with algorithm 'winograd' only none (its tiles start at the output's origin); under
        explicit pads an offset folds into (`folds_offset`), those that keep them non-negative."""
        r = self.radius
        size = 2 * r + 1
        if self.p.algorithm == "winograd":
            allowed = np.zeros((size, size), dtype=bool)
            allowed[r, r] = True
            return allowed
        if self.near:   # the declared offset only (see `offset_radius`)
            allowed = np.zeros((size, size), dtype=bool)
            allowed[r + self.p.baseline.offset[0], r + self.p.baseline.offset[1]] = True
            return allowed
        if folds_offset(layout.padding, self.p.baseline):
            shifts = np.arange(-r, r + 1)
            (top, bottom), (left, right) = layout.padding
            kh, kw = transform_kernel(self.p.kernel, layout.transform).shape[:2]
            span_h = ((kh - 1) * layout.dilation[0] + 1) * MAX_PAD_SPANS
            span_w = ((kw - 1) * layout.dilation[1] + 1) * MAX_PAD_SPANS
            rows = (top - shifts >= 0) & (bottom + shifts >= 0) & (top - shifts <= span_h) & (bottom + shifts <= span_h)
            cols = (left - shifts >= 0) & (right + shifts >= 0) & (left - shifts <= span_w) & (right + shifts <= span_w)
            return rows[:, None] & cols[None, :]
        return np.ones((size, size), dtype=bool)

    def _winograd_stage1(self, transforms, padding: str) -> np.ndarray:
        """(T, 1, 1, n, O): the Winograd error of each kernel transform at the samples (no offset)."""
        return np.stack([self.winograd_at(None, t, padding)[:, self.screened] for t in transforms])[:, None, None]

    def winograd_at(self, precision: Optional[str], transform: str, padding: str,
                    kernel: Optional[np.ndarray] = None) -> np.ndarray:
        """Problem.winograd_term at the sampled positions: (n, O), cached for the inputs' own kernel."""
        key = (precision, transform, padding, self.p.via)
        if kernel is None and key in self._winograd_cache:
            return self._winograd_cache[key]
        term = self.p.winograd_term(precision, transform, padding, (self.samples, self.rows, self.cols),
                                    kernel=kernel)
        if kernel is None:
            self._winograd_cache[key] = term
        return term

    def structures(self):
        """Stage 1: every structure that the loosest allowed bound does not rule out.

        Returns (survivors, closest): survivors as structures; closest the best structure
        by fraction of samples within bound, as (structure, scale, bias).
        """
        p = self.p
        screen = _Screen(self)
        survivors, best = [], (-1.0, None)
        kept = 0
        groups: dict[tuple, list[str]] = {}
        for layout in self.layouts:
            shape = transform_kernel(p.kernel, layout.transform).shape[:2]
            groups.setdefault((shape, layout.padding, layout.stride, layout.dilation), []).append(layout.transform)
        for (shape, padding, stride, dilation), transforms in groups.items():
            layout = Layout(transforms[0], padding, stride, dilation)
            stack = np.concatenate([dense_kernel(transform_kernel(p.kernel, t), p.groups)[..., self.screened]
                                    for t in transforms], axis=3)
            compared = self._offset_mask(layout)[None, :, :, :, None]  # (1, D, D, n, 1)
            enough = self._offset_allowed(layout)
            inside, cache = self._inside(layout, shape), {}
            term = screen.fft if p.algorithm != "winograd" else self._winograd_stage1(transforms, padding)
            gate = None   # whether a boundary rule other than zero padding can pass (see `_interior_gate`)
            # Asked only where such a rule comes after zero padding (not in a narrow search's
            # zero padding alone: its answer went unused, a third of an unexplained layer's time).
            gated = any(b not in ("zero", "constant") for b in p.boundaries[p.boundaries.index("zero") + 1:]) \
                if "zero" in p.boundaries else False
            for boundary in p.boundaries:
                if gate is False and boundary not in ("zero", "constant"):
                    continue
                values, mags = self._predict_boundary("zero" if boundary == "constant" else boundary, layout, shape,
                                                      stack, inside, cache)
                if boundary == "constant":
                    self._constant_structures(values, mags, layout, shape, stack, transforms, screen, survivors)
                    continue
                n, d1, d2, _ = values.shape
                values = values.reshape(n, d1, d2, len(transforms), screen.outs).transpose(3, 1, 2, 0, 4)
                mags = mags.reshape(n, d1, d2, len(transforms), screen.outs).transpose(3, 1, 2, 0, 4)
                unit_bound = (screen.loosest * mags + screen.absolute + term) * (1 + screen.out_round)
                for activation in self.activations():
                    for fit, scale, bias, passed, within, usable in screen.fits(values, mags, unit_bound, compared,
                                                                              activation):
                        for ti, dy_i, dx_i in zip(*np.nonzero(passed & enough)):
                            survivors.append(Structure(transforms[ti], padding, boundary,
                                                       (int(dy_i) - self.radius, int(dx_i) - self.radius), fit,
                                                       stride, dilation, activation))
                        # The nearest that failed, for the report (first in C order on a tie).
                        nearest = np.where(usable & enough & ~(passed & enough), within, -1.0)
                        ti, dy_i, dx_i = np.unravel_index(int(np.argmax(nearest)), nearest.shape)
                        if nearest[ti, dy_i, dx_i] > best[0]:
                            struct = Structure(transforms[ti], padding, boundary,
                                               (int(dy_i) - self.radius, int(dx_i) - self.radius),
                                               fit, stride, dilation, activation)
                            best = (float(nearest[ti, dy_i, dx_i]),
                                    (struct, as_value(scale[ti, dy_i, dx_i]), as_value(bias[ti, dy_i, dx_i])))
                if boundary == "zero" and gate is None and gated:
                    gate = self._interior_gate(values, mags, unit_bound, compared, enough, inside, screen,
                                               found_any=len(survivors) > kept)
            kept = len(survivors)
        return survivors, best[1]

    def _interior_gate(self, values, mags, unit_bound, compared, enough, inside, screen: "_Screen",
                       found_any: bool) -> bool:
        """Whether another boundary rule can pass where zero padding did not: a boundary rule
        changes only the samples whose windows reach past the image's edge (`inside` False);
        the others (the interior) it computes as zero padding does. So a structure can pass
        under any rule only if it passes on the interior, which zero padding's values already
        give: each fit is fitted and checked on the interior samples alone (for the fit
        'none' an exact necessary condition; for a fitted scale or bias, the interior's own
        least-squares fit, as stage 1 fits every structure). Fewer than 16 interior positions
        decide nothing (True); with no border sample every rule computes what zero padding
        does, so it passes exactly where zero padding did. (Not on fewer interior positions:
        a least-squares fit on a subset can fail where the whole interior's passes, and a
        review found a reflect-padded layer with a bias lost that way.)"""
        if inside.all():
            return found_any
        if found_any or np.count_nonzero(inside) < 16:
            return True
        interior = compared & inside[None, None, None, :, None]
        for activation in self.activations():
            for _, _, _, passed, _, _ in screen.fits(values, mags, unit_bound, interior, activation):
                if (passed & enough).any():
                    return True
        return False

    def _outside(self, layout: "Layout", kernel_hw) -> np.ndarray:
        """Sample windows of the outside-the-image indicator (1 where a window reads padding)."""
        ones = np.broadcast_to(1.0, self.p.image.shape)  # read where the windows are: no image-sized array
        r = self.radius
        top, left = pad_before(layout.padding, *kernel_hw, *self.p.image_hw, layout.stride, layout.dilation)
        span = ((kernel_hw[0] - 1) * layout.dilation[0] + 1, (kernel_hw[1] - 1) * layout.dilation[1] + 1)
        inside = gather_windows(ones, "zero", self.rows * layout.stride[0] - r - top,
                                self.cols * layout.stride[1] - r - left, span[0] + 2 * r, span[1] + 2 * r,
                                samples=self.samples)
        return 1.0 - inside

    def _constant_structures(self, values, mags, layout, shape, stack, transforms, screen: "_Screen", survivors):
        """Stage 1 for a 'constant' boundary: the border value c fitted in closed form, with
        value = zero-boundary value + c * (the kernel's taps that read the border), times a
        declared scale plus a declared bias when there are."""
        p = self.p
        r = self.radius
        outs = screen.outs
        target = screen.target
        m_values, m_mags = self._predict(self._outside(layout, shape), stack, layout.dilation)
        n, d1, d2, _ = values.shape

        def arrange(a):
            return a.reshape(n, d1, d2, len(transforms), outs).transpose(3, 1, 2, 0, 4)

        values, mags, m_values, m_mags = (arrange(a) for a in (values, mags, m_values, m_mags))
        held = 0.0
        if screen.declared is not None:
            scale, bias, held_scale, held_bias = screen.declared
            values, m_values = scale * values + bias, scale * m_values
            held = held_scale * mags + held_bias
            mags, m_mags = np.abs(scale) * mags, np.abs(scale) * m_mags
        loosest, absolute, out_round = screen.loosest, screen.absolute, screen.out_round
        compared = self._offset_mask(layout)[None, :, :, :, None]
        weights = fit_weights((loosest * mags + absolute) * (1 + out_round) + out_round * np.abs(target)
                              + p.output_underflow + 1e-300) * compared
        with np.errstate(divide="ignore", invalid="ignore"):
            denom = np.sum(weights * m_values * m_values, axis=(3, 4))
            cval = np.where(denom > 0, np.sum(weights * m_values * (target - values), axis=(3, 4)) / denom, np.nan)
        predicted = values + cval[..., None, None] * m_values
        total = mags + np.abs(cval)[..., None, None] * m_mags
        bound = ((loosest * total + absolute) * (1 + out_round) + out_round * np.abs(predicted)
                 + p.output_underflow + held) * 1.01 + 1e-300
        bound += evaluation_error(predicted - values, predicted, SCREEN_FIT_ULPS)
        ratio = np.where(compared, np.abs(target - predicted) / bound, 0.0)
        passed = np.all(ratio <= 1.0, axis=(3, 4)) & np.isfinite(cval) & (cval != 0) & self._offset_allowed(layout)
        for ti, dy_i, dx_i in zip(*np.nonzero(passed)):
            survivors.append(Structure(transforms[ti], layout.padding, "constant", (int(dy_i) - r, int(dx_i) - r),
                                       "cval", layout.stride, layout.dilation))

    def _loose_coefficient(self, precision: str) -> float:
        """The bound coefficient of `precision` on inputs NOT yet rounded to it."""
        model = self.p.models[precision]
        unit = 0.0 if precision == "float64" else prec.STORAGE_U[precision]
        if precision == "tfloat32":
            unit += model.input_slack
        if len(self.p.roundings(precision)) > 1:
            # Rounded through float32 first: |fl_h(fl_32(x)) - x| <= (u_h + u_32 + u_h u_32) |x|.
            unit += 2 * prec.STORAGE_U["float32"]
        loose = prec.PrecisionModel(precision, model.accumulation_u, model.input_slack + unit,
                                    model.input_abs_slack, model.underflow, model.storage_u,
                                    model.storage_underflow)
        return loose.relative_coefficient(self.p.n, scaled=True)

    def decoy_passes(self, struct: Structure, precision: str) -> bool:
        """The negative control: does the same candidate with a random kernel pass too?

        Three decoy kernels (fixed draws, the kernel's own mean magnitude) go through the same
        structure, precision and fit, scale and bias refitted for each. If one of them
        reproduces the output as well, the test cannot tell kernels apart here (identical
        windows, a 1x1 kernel under a fitted scale, a bound wide against the values), so
        the candidate's pass is no evidence, whatever the bits say.
        """
        magnitude = float(np.mean(np.abs(self.p.kernel))) or 1.0
        if not np.isfinite(prec.round_to(np.array([2.0 * magnitude]), precision)[0]):
            # Decoys on [-2m, 2m), rounded to the candidate's precision, would overflow to inf
            # (a float16 kernel of 65504: a second review), and an inf decoy fails everywhere:
            # a control that cannot pass is none. Say that it may (the pass cannot decide).
            return True
        outs = self.p.kernel.shape[3]
        stacked = struct.fit == "none" and struct.boundary != "constant" and self.p.groups == 1 \
            and self.p.algorithm != "winograd"
        if stacked and self.p.algorithm != "fft" and self._decoys_fail_at_once(struct, precision, magnitude):
            return False
        # Uniform on [-2m, 2m): the mean magnitude m of the kernel's own entries.
        stack = prec.round_to(_decoy_draws(self.p.kernel.shape, _DECOYS) * (2.0 * magnitude), precision)
        if stacked:
            # Nothing fitted: the three in one product (the same test for each, an activation's
            # clipping included).
            return any(self.sampled_check(struct, precision, kernel=stack, stacked=_DECOYS))
        decoys = [stack[..., index * outs:(index + 1) * outs] for index in range(_DECOYS)]
        return any(self.sampled_check(struct, precision, kernel=decoy)[0] for decoy in decoys)

    def _decoys_fail_at_once(self, struct: Structure, precision: str, magnitude: float) -> bool:
        """True when every decoy of `decoy_passes` (nothing fitted, no FFT) fails on its first
        _HEAD_CHANNELS output channels at the first _HEAD_SAMPLES sampled positions.

        Nothing is fitted, so each element's test is its own, and a decoy passes only if every
        element does: one that fails here fails the whole control, and the control's answer is
        the same. The decoys' entries are hashed from their indices (`_decoy_draws`), so these
        channels' are drawn alone (a 256-channel 3x3 layer's three decoys are 1.8 million draws,
        12 ms, where a random kernel fails at once)."""
        p = self.p
        outs = p.kernel.shape[3]
        few = min(outs, _HEAD_CHANNELS)
        if p.declares_values:
            # The bound's coefficient depends on whether any scale differs from 1, over all the
            # channels it is given (bounds.error_bound): these channels must say the same as
            # all of them (a review: scales [1]*8 + [2] made the head's bound the tighter one).
            scale = p.declared_values(precision)[0]
            if np.ndim(scale) and bool(np.any(scale[:few] != 1.0)) != bool(np.any(scale != 1.0)):
                return False
        columns = (np.arange(_DECOYS)[:, None] * outs + np.arange(few)).reshape(-1)
        stack = prec.round_to(_decoy_draws(p.kernel.shape, _DECOYS, columns) * (2.0 * magnitude), precision)
        return not any(self.sampled_check(struct, precision, kernel=stack, stacked=_DECOYS, head=few))

    def sampled_check(self, struct: Structure, precision: str, *, kernel: Optional[np.ndarray] = None,
                      stacked: int = 0, head: Optional[int] = None):
        """Stage 2: the exact bound of `precision` on the samples (with `kernel` in place of
        the inputs' own, rounded to `precision`, for a decoy), each way the inputs may have
        been rounded to it in turn (`Problem.roundings`; a decoy's the direct way only).

        Returns (ok, scale, bias, fraction of sampled elements within the bound). With
        `stacked` (nothing fitted only), `kernel` is that many kernels side by side along its
        output axis, each checked on its own: returns the list of their `ok`. With `head` too,
        each of the stacked kernels holds only the first `head` output channels, checked at the
        first _HEAD_SAMPLES samples (see `_decoys_fail_at_once`).
        """
        ways = self.p.roundings(precision) if kernel is None else (None,)
        for via in ways:
            with self.p.rounded_via(via):
                result = self._sampled_check(struct, precision, kernel=kernel, stacked=stacked, head=head)
            if stacked or result[0] or via == ways[-1]:
                return result

    def _sampled_check(self, struct: Structure, precision: str, *, kernel: Optional[np.ndarray] = None,
                       stacked: int = 0, head: Optional[int] = None):
        """`sampled_check` with the inputs rounded the current way (`Problem.via`)."""
        p = self.p
        decoy = kernel is not None
        if kernel is None:
            kernel = p.rounded_kernel(precision)
        tk = transform_kernel(kernel, struct.transform)
        layout = Layout(struct.transform, struct.padding, struct.stride, struct.dilation)
        constant = struct.boundary == "constant"
        chosen = slice(None) if head is None else slice(0, _HEAD_SAMPLES)
        rows, cols, samples = self.rows[chosen], self.cols[chosen], self.samples[chosen]
        patches = self._patches(precision, "zero" if constant else struct.boundary, layout, tk.shape[:2],
                                which=None if head is None else chosen)
        wide = p.wide_kernel(tk, struct.dilation)
        r = self.radius
        dy, dx = struct.offset[0] + r, struct.offset[1] + r
        kh, kw = wide.shape[:2]
        window = patches[:, dy:dy + kh, dx:dx + kw]  # (n, kh, kw, C)
        flat = window.reshape(window.shape[0], -1)
        values = flat @ wide.reshape(-1, wide.shape[3])
        if stacked:
            # Decoys side by side: sum_i |x_i| |k_ij| <= (sum_i |x_i|) max_i |k_ij|, an upper bound
            # of each magnitude without a second product. A larger magnitude widens the decoy's
            # bound, so a decoy passes at least as often: the control stays as strict.
            mags = np.abs(flat).sum(axis=1)[:, None] * np.abs(wide).reshape(-1, wide.shape[3]).max(axis=0)
        else:
            mags = np.abs(flat) @ np.abs(wide.reshape(-1, wide.shape[3]))
        target = p.output[samples, rows, cols]
        if head is not None:
            target = target[:, :head]
        row_ok, col_ok = p.compared_mask(struct, rows, cols, self.out_hw)
        compared = (row_ok & col_ok)[:, None]
        if constant:
            outside = self._outside(layout, tk.shape[:2])[:, dy:dy + kh, dx:dx + kw].reshape(window.shape[0], -1)
            m_values = outside @ wide.reshape(-1, wide.shape[3])
            m_mags = outside @ np.abs(wide.reshape(-1, wide.shape[3]))
            cval, predicted, bound = fit_cval(values, mags, m_values, m_mags, target, p, precision, compared,
                                               self.samples)
            if not np.isfinite(cval) or cval == 0.0:
                return False, 1.0, cval, 0.0
            within = (np.abs(target - predicted) <= bound) | ~compared
            return bool(np.all(within)), 1.0, cval, float(np.mean(within))
        limits = clip_limits(struct.activation, p.storage[precision])
        extra = None
        if p.algorithm == "winograd":
            extra = self.winograd_at(precision, struct.transform, struct.padding, kernel if decoy else None)
        if stacked:
            outs = target.shape[1]
            results = []
            for index in range(stacked):
                part = slice(index * outs, (index + 1) * outs)
                _, _, predicted, bound = fit_within(values[:, part], mags[:, part], target, "none", p, precision,
                                                     compared=compared, samples=samples, limits=limits,
                                                     channels=None if head is None else np.arange(head))
                results.append(bool(np.all((clip_residual(target, predicted, limits) <= bound) | ~compared)))
            return results
        scale, bias, predicted, bound = fit_within(values, mags, target, struct.fit, p, precision,
                                                    compared=compared, samples=self.samples, extra=extra,
                                                    limits=limits)
        if not usable_fit(scale, bias):
            return False, scale, bias, 0.0
        within = (clip_residual(target, predicted, limits) <= bound) | ~compared
        return bool(np.all(within)), scale, bias, float(np.mean(within))


class _Screen:
    """Stage 1's loosest bound over the precisions a pass allows, and its fits.

    The coefficients are the largest any allowed precision needs (`loosest` on inputs not yet
    rounded to it, `out_round` for storing the result, `absolute` for underflow and subnormal
    rounding). A declared scale or bias (`declared`: (scale, bias, scale_dev, bias_dev)) is
    held where a fit does not fit it, the bound widened by how far each allowed precision's
    rounding of it may move it (|round(s) - s| A + |round(t) - t|) and by its declared
    uncertainty.
    """

    def __init__(self, search: "Search"):
        p = search.p
        self.p = p
        self.channels = search.screened
        self.target = p.output[search.samples, search.rows, search.cols][:, self.channels]  # (n, S)
        self.outs = self.target.shape[1]
        models = p.models
        # (+ storage_u: a bias added after the result was stored, see bounds.error_bound)
        self.loosest = max(search._loose_coefficient(q) + models[q].storage_u for q in p.precisions)
        self.out_round = max(bounds.output_rounding(m, p.output_u) + m.accumulation_u for m in models.values())
        extent = sum(p.raw_extent())
        self.absolute = max(p.n * (m.underflow + m.input_abs_slack * 2 * extent) + m.storage_underflow
                            for m in models.values())
        self.storage_abs = max(m.storage_abs for m in models.values())
        first = p.storage[p.precisions[0]]
        self.storage = first if first in prec.INTEGER_RANGES else None
        self.fft = max(p.fft_term(q).max() for q in p.precisions) * 1.01 if p.algorithm == "fft" else 0.0
        self.fit_names = search.fits()
        self.declared = None
        if p.declares_values:
            rounded = [p.declared_values(q) for q in p.precisions]
            scale_dev = np.max([np.abs(s - p.declared_scale) for s, _ in rounded], axis=0)
            bias_dev = np.max([np.abs(b - p.declared_bias) for _, b in rounded], axis=0)
            self.declared = tuple(_channels_of(a, self.channels)
                                  for a in (p.declared_scale, p.declared_bias, scale_dev, bias_dev))

    def fits(self, values, mags, unit_bound, compared, activation):
        """For each fit of the pass: (fit, scale, bias, passed, within, usable), arrays over
        (transform, offset, offset): whether every compared sample is within the bound,
        the fraction that is, and whether the fit exists at all."""
        p, target = self.p, self.target
        limits = clip_limits(activation, self.storage)
        clipped = clipped_mask(target, limits)
        # Clipped elements say only on which side of the limit the sum was: they take no part
        # in the fit, and are checked as that inequality.
        free = compared if clipped is None else compared & ~clipped
        weights = fit_weights(unit_bound + self.out_round * np.abs(target) + p.output_underflow + 1e-300) * free
        left_out = ~compared
        elements = values.shape[3] * values.shape[4]
        for fit in self.fit_names:
            kind = fit_kind(fit)
            fixed = None if self.declared is None else self.declared[:2]
            scale, bias = fit_batch(values, target, fit, weights, fixed)
            if clipped is not None and per_channel_fit(fit):
                scale, bias = settle_dead_channels(scale, bias, values, target, free, compared, limits, fit,
                                                   declared=0.0 if fixed is None else fixed[1],
                                                   declared_scale=None if fixed is None else fixed[0])
            unit_scale = (kind in ("none", "bias") and fixed is None) or bool(np.all(scale == 1.0))
            if kind == "none" and fixed is None:
                predicted = values
            elif unit_scale:
                predicted = values + bias[..., None, :]
            else:
                predicted = scale[..., None, :] * values
                predicted += bias[..., None, :]
            bound = self._bound(values, mags, unit_bound, predicted, scale, bias, fit, weights, unit_scale)
            ok = clip_residual(target, predicted, limits) <= bound
            ok |= left_out
            hits = np.count_nonzero(ok, axis=(3, 4))
            usable = np.all(np.isfinite(scale) & np.isfinite(bias) & (scale != 0.0), axis=-1)
            yield fit, scale, bias, (hits == elements) & usable, hits / elements, usable

    def _bound(self, values, mags, unit_bound, predicted, scale, bias, fit, weights, unit_scale: bool):
        """The loosest bound of a fit's prediction (see the class), widened by 1%: stage 1 is a
        screen, its own arithmetic in float64 (far below 1%) and the simplifications below
        only widen it.

        Terms: out_round |p| for storing the result; the sums' |s| U (U the loosest unit
        bound, s the scale); the output's underflow and a stored result's absolute rounding;
        when a scale or bias is applied, evaluating s v + b in float64,
        SCREEN_FIT_ULPS u64 (|p - b| + |p|) <= SCREEN_FIT_ULPS u64 (2 |p| + |b|) (taken as
        such: one pass fewer); an integer output's fit allowance; a declared scale's and
        bias's rounding and uncertainty."""
        kind = fit_kind(fit)
        applied = kind != "none" or self.declared is not None
        evaluation = SCREEN_FIT_ULPS * prec.U64
        bound = np.abs(predicted)
        bound *= self.out_round + (2 * evaluation if applied else 0.0)
        if unit_scale:
            bound += unit_bound
        else:
            bound += np.multiply(np.abs(scale)[..., None, :], unit_bound)
        constant = self.p.output_underflow + self.storage_abs
        bound += (constant + evaluation * np.abs(bias))[..., None, :] if applied else constant
        if self.storage is not None and kind != "none":
            bound += fit_allowance(values, bound, weights, fit)
        if self.declared is not None:
            _, _, scale_dev, bias_dev = self.declared
            if kind in ("none", "bias") and np.any(scale_dev):
                bound += scale_dev * mags
            if kind in ("none", "scale") and np.any(bias_dev):
                bound += bias_dev
            loosest = max(self.p.precisions, key=lambda q: prec.ACCUMULATION_U[q])
            uncertain = self.p.uncertainty_term(mags, loosest, kind, scale[..., None, :], self.channels)
            if uncertain is not None:
                bound += uncertain
        bound *= 1.01
        bound += 1e-300
        return bound


# Stage 1 screens a few output channels only: a structure that fails on them cannot be the
# answer (the screen is a necessary condition), and with many channels the screen's arrays,
# (transforms, offsets, offsets, samples, channels), would cost more than all later stages.
# Stage 2 and the whole-output confirmation check every channel.
_SCREENED_CHANNELS = 8


def _screened_channels(outs: int) -> np.ndarray:
    """The output channels stage 1 screens: all of a few, else `_SCREENED_CHANNELS` spread evenly."""
    if outs <= _SCREENED_CHANNELS:
        return np.arange(outs)
    # sorted(set(...)) is np.unique's answer without its import of numpy.ma (8 ms a process)
    return np.array(sorted(set(np.linspace(0, outs - 1, _SCREENED_CHANNELS).round().astype(int).tolist())), dtype=int)


def _channels_of(values: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """A declared number (shape ()) as it is, or a per-channel array's `channels`."""
    return values if np.ndim(values) == 0 else values[channels]


def _lowbias32(x: np.ndarray) -> np.ndarray:
    """Wellons' "lowbias32" integer hash of uint32 `x`, in place
    (https://nullprogram.com/blog/2018/07/31/: x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15;
    x *= 0x846ca68b; x ^= x >> 16): fixed, well-mixed bits without a random generator (numpy.random's
    import alone was 10 ms of a declared layer's confirmation, issue 21 item 8)."""
    for shift, factor in ((16, 0x7FEB352D), (15, 0x846CA68B)):
        x ^= x >> np.uint32(shift)
        x *= np.uint32(factor)
    x ^= x >> np.uint32(16)
    return x


def _hashed24(x: np.ndarray, offset: int = 0) -> np.ndarray:
    """24 well-mixed bits of each uint32 `x` (in place): `_lowbias32` of x times the
    golden-ratio constant 0x9E3779B9, plus `offset`, shifted right by 8."""
    x *= np.uint32(0x9E3779B9)
    x += np.uint32(offset)
    return _lowbias32(x) >> np.uint32(8)


class _Counter:
    """Fixed integer draws: `integers(low, high, size)` as numpy's Generator.integers gives them
    (uniform on [low, high)), from `_lowbias32` of a running counter offset by `seed`. Each
    draw of k values is 24 hashed bits scaled to the range (a bias below 2^-24 relative: these
    choose sample positions, nothing is inferred from their distribution)."""

    def __init__(self, seed: int):
        self.next = seed & 0xFFFFFFFF

    def integers(self, low: int, high: int, size: int) -> np.ndarray:
        x = (np.arange(size, dtype=np.uint64) + self.next).astype(np.uint32)
        self.next = (self.next + size) & 0xFFFFFFFF
        bits = _hashed24(x)
        return low + (bits.astype(np.int64) * (int(high) - int(low))) // (1 << 24)


_DECOYS = 3   # decoy kernels in the negative control
_HEAD_CHANNELS, _HEAD_SAMPLES = 8, 16   # where every decoy is tried first (`_decoys_fail_at_once`)


def _decoy_draws(shape: tuple, count: int, columns: Optional[np.ndarray] = None) -> np.ndarray:
    """`count` decoy kernels of `shape` (kh, kw, C, O) side by side along the output axis, as one
    float64 array (kh, kw, C, count * O) of values uniform on [-1, 1) (multiples of 2^-23);
    with `columns`, those of the count * O output columns alone (the same values).

    Each entry is `_hashed24` of its index (offset 0x632BE5AB): fixed values
    without a generator (numpy.random's normal draws and its import were a third of a declared
    layer's confirmation, issue 21 item 8). Cached per shape (a suite asks again for every case
    of one shape), up to _DRAW_CACHE_BYTES.
    """
    kh, kw, c, o = shape
    key, whole = (tuple(shape), count), columns is None
    if whole:
        if key in _DRAWS:
            return _DRAWS[key]
        columns = np.arange(count * o)
    index = np.arange(kh * kw * c, dtype=np.uint32)[:, None] * np.uint32(count * o) + columns.astype(np.uint32)
    draws = _hashed24(index, 0x632BE5AB).astype(np.float64).reshape(kh, kw, c, len(columns))   # exact
    draws *= 2.0 ** -23
    draws -= 1.0
    if not whole:
        return draws
    draws.flags.writeable = False
    while _DRAWS and sum(a.nbytes for a in _DRAWS.values()) + draws.nbytes > _DRAW_CACHE_BYTES:
        del _DRAWS[next(iter(_DRAWS))]
    if draws.nbytes <= _DRAW_CACHE_BYTES:
        _DRAWS[key] = draws
    return draws


_DRAWS: dict = {}
_DRAW_CACHE_BYTES = 64 << 20
