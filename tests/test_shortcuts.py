"""Shortcuts taken for speed (issue 21 item 8) that must not change an answer:

- the negative control first tries its decoys on a few output channels at a few sampled
  positions (`Search._decoys_fail_at_once`), drawing only those channels' entries: a decoy
  that fails there fails the whole control, so every diagnosis must be the same with the
  shortcut as without it;
- `_decoy_draws` of some columns are exactly those columns of the full draws;
- `precision.blocks` starts with a small block even for a batch of one (a whole 64x112x112
  output was read to find its first value that no half format holds).
"""

from __future__ import annotations

import numpy as np
import pytest

import convcheck
from convcheck.engine import precision as prec
from convcheck.engine import search
from convcheck.formats import render_explain
from convcheck.results import Verdict


def _layer(seed: int, *, c_in=6, c_out=12, size=12, k=3, bias=True, relu=False, image=None):
    """A float32 NCHW layer: the float64 correlation (zero padding 1) with its bias and ReLU,
    rounded to float32 (what a float32 runtime returns, within its bound)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, c_in, size, size)).astype(np.float32) if image is None else image
    w = (rng.standard_normal((c_out, c_in, k, k)) / np.sqrt(c_in * k * k)).astype(np.float32)
    b = (rng.standard_normal(c_out) * 0.1).astype(np.float32) if bias else np.zeros(c_out, np.float32)
    pad = k // 2
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3))  # (1, C, H, W, k, k)
    y = np.einsum("nchwij,ocij->nohw", windows, w.astype(np.float64)) + b.astype(np.float64)[None, :, None, None]
    if relu:
        y = np.maximum(y, 0.0)
    return x, w, b, y.astype(np.float32)


def _sparse(seed: int, c_in=6, size=12) -> np.ndarray:
    """Zero but for three pixels: most windows, and so most decoy values, are zero."""
    rng = np.random.default_rng(seed)
    image = np.zeros((1, c_in, size, size), np.float32)
    for _ in range(3):
        image[0, :, rng.integers(size), rng.integers(size)] = rng.uniform(0.5, 1.0, c_in).astype(np.float32)
    return image


CASES = {
    "dense, bias": dict(seed=1),
    "dense, bias, ReLU": dict(seed=2, relu=True),
    "dense, many channels": dict(seed=3, c_in=16, c_out=40),
    "1x1 kernel": dict(seed=4, k=1),
    "no bias": dict(seed=5, bias=False),
    "sparse image": dict(seed=6, image=_sparse(6)),
    "sparse image, ReLU": dict(seed=7, relu=True, image=_sparse(7)),
    "constant image": dict(seed=8, image=np.full((1, 6, 12, 12), 0.75, np.float32)),
}


def _explain(x, w, b, y, relu: bool) -> str:
    expected = {"bias": b, **({"activation": "relu"} if relu else {})}
    diagnosis = convcheck.explain(x, w, y, layout="nchw", padding=w.shape[2] // 2, expected=expected)
    return render_explain(diagnosis, "json", names={"image": "x", "kernel": "w", "output": "y"})


def test_the_control_s_first_channels_change_no_diagnosis(monkeypatch):
    settled = []
    original = search.Search._decoys_fail_at_once

    def counted(self, *args):
        result = original(self, *args)
        settled.append(result)
        return result

    monkeypatch.setattr(search.Search, "_decoys_fail_at_once", counted)
    with_head = {}
    for name, case in CASES.items():
        x, w, b, y = _layer(**case)
        corrupted = y.copy()
        corrupted.reshape(-1)[corrupted.size // 2] += 0.5
        with_head[name] = [_explain(x, w, b, out, case.get("relu", False)) for out in (y, corrupted)]
    # Both ways out of the shortcut were taken: decoys that fail at once, and decoys that
    # pass the first channels (the sparse image's zero windows) and go on to the whole test.
    assert True in settled and False in settled
    monkeypatch.setattr(search.Search, "_decoys_fail_at_once", lambda self, *args: False)
    for name, case in CASES.items():
        x, w, b, y = _layer(**case)
        corrupted = y.copy()
        corrupted.reshape(-1)[corrupted.size // 2] += 0.5
        without = [_explain(x, w, b, out, case.get("relu", False)) for out in (y, corrupted)]
        assert without == with_head[name], name


@pytest.mark.parametrize("shape", [(3, 3, 256, 256), (7, 7, 3, 64), (1, 1, 5, 3), (2, 4, 3, 1)])
def test_decoy_columns_are_the_full_draws_columns(shape):
    outs = shape[3]
    columns = (np.arange(3)[:, None] * outs + np.arange(min(outs, 8))).reshape(-1)
    full = search._decoy_draws(shape, 3)
    assert np.array_equal(search._decoy_draws(shape, 3, columns), full[..., columns])


@pytest.mark.parametrize("shape", [(1, 112, 112, 64), (1, 1, 1, 10000), (3, 2000, 700), (4, 3, 5), (7,), (0, 5)])
def test_blocks_cover_the_array_in_order_and_start_small(shape):
    array = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    parts = list(prec.blocks(array, 4096, 1 << 20))
    assert np.array_equal(np.concatenate([p.reshape(-1) for p in parts]), array.reshape(-1))
    assert parts[0].size <= 4096
    assert all(np.shares_memory(p, array) or p.size == 0 for p in parts)   # views: no copy


def test_a_decoy_that_reproduces_the_output_is_still_found(monkeypatch):
    """The first decoy made the layer's own kernel (weights of +-1: mean magnitude 1, so the
    decoy is its draws times 2): it passes wherever the layer does, and the control must
    say so with the shortcut as without it (a shortcut that always settled would call the
    layer `equal`)."""
    rng = np.random.default_rng(21)
    w = rng.choice([-1.0, 1.0], size=(5, 4, 3, 3)).astype(np.float32)
    x, _, b, _ = _layer(22, c_in=4, c_out=5)
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    y = (np.einsum("nchwij,ocij->nohw", windows, w.astype(np.float64))
         + b.astype(np.float64)[None, :, None, None]).astype(np.float32)
    real = search._decoy_draws

    def draws(shape, count, columns=None):
        full = np.array(real(shape, count))
        full[..., :shape[3]] = w.transpose(2, 3, 1, 0) / 2.0   # HWIO: the engine's kernel layout
        return full if columns is None else full[..., columns]

    monkeypatch.setattr(search, "_decoy_draws", draws)
    caught = convcheck.explain(x, w, y, layout="nchw", padding=1, expected={"bias": b})
    assert caught.verdict is not Verdict.EQUAL and caught.cannot_decide
    monkeypatch.setattr(search.Search, "_decoys_fail_at_once", lambda self, *args: True)
    assert convcheck.explain(x, w, y, layout="nchw", padding=1, expected={"bias": b}).verdict is Verdict.EQUAL


def test_the_first_channels_do_not_stand_for_a_scale_they_do_not_share():
    """A review of the shortcut: declared scales [1]*8 + [2] (float32, a 1x1 kernel that is
    decoy 0 itself on its one live input channel). The bound's coefficient depends on whether
    any scale differs from 1, over every channel it is given: on the first 8 alone the head's
    bound was the tighter one, it said every decoy fails, and an element 3.5 u A off made the
    layer `equal` where the whole control finds decoy 0 passing (cannot decide)."""
    outs, channels, magnitude = 9, 2, 0.25
    decoy = search._decoy_draws((1, 1, channels, outs), 3)[..., :outs] * 2 * magnitude
    kernel = decoy.astype(np.float32)
    # Input channel 1 is dead (zero image): its weights only bring mean |k| to 0.25 exactly.
    rest = channels * outs * magnitude - np.abs(decoy[0, 0, 0, :]).sum()
    kernel[0, 0, 1, 0] = 0.0
    share = np.float32(rest / 8)
    kernel[0, 0, 1, 1:8] = share
    kernel[0, 0, 1, 8] = np.float32(rest - 7 * float(share))
    assert float(np.mean(np.abs(kernel.astype(np.float64)))) == magnitude
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 24, 24, channels)).astype(np.float32)
    x[..., 1] = 0.0
    d00, u = float(kernel[0, 0, 0, 1]), 2.0 ** -24
    best = None   # an input value whose product's float32 neighbour 3.5 u |p| away exists
    for k in range(-3, 4):
        for delta in np.linspace(0.001, 0.2, 400):
            x00 = np.float32(np.sign(d00) * 2.0 ** k / abs(d00) * (1 - delta))
            p = float(x00) * d00
            t = np.float32(p + 3.5 * u * abs(p))
            off = (float(t) - p) / (u * abs(p))
            if 3.15 < off < 3.85 and (best is None or abs(off - 3.5) < abs(best[2] - 3.5)):
                best = (x00, float(t), off)
    x[0, 0, 0, 0] = best[0]
    scale = np.array([1.0] * 8 + [2.0])
    y = (np.einsum("nhwc,co->nhwo", x.astype(np.float64), kernel[0, 0].astype(np.float64)) * scale).astype(np.float32)
    y[0, 0, 0, 1] = best[1]
    diagnosis = convcheck.explain(x, kernel, y, padding="valid", expected={"scale": scale})
    assert diagnosis.verdict is not Verdict.EQUAL and diagnosis.cannot_decide
    assert diagnosis.evidence["decoy_passed"]


def test_a_control_whose_decoys_would_overflow_cannot_decide():
    """Decoys on [-2m, 2m) for a kernel of 1.5e308 overflow to inf and fail everywhere: a
    control that cannot pass. A fitted scale of 2.5 on tiny inputs was `explained` on it; the
    same layer rescaled cannot decide (a 1x1 kernel: the decoy is a scale too)."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 1, (1, 12, 12, 1)) * 1e-300
    k = np.array([1.5e308]).reshape(1, 1, 1, 1)
    with np.errstate(all="ignore"):
        diagnosis = convcheck.explain(x, k, 2.5 * x * k[0, 0, 0, 0], padding="valid")
    rescaled = convcheck.explain(x * 1e300, k / 1e300, 2.5 * x * k[0, 0, 0, 0], padding="valid")
    assert rescaled.cannot_decide
    assert diagnosis.verdict is not Verdict.EXPLAINED and diagnosis.cannot_decide


def test_a_kernel_whose_weight_sums_overflow_is_refused_whatever_the_image():
    """Tiny image values times weights whose |k| sums overflow float64: refused (exit 2), as
    before the shortcut of `_check_range` (the decoys of such a kernel would be inf)."""
    from convcheck.errors import InputError

    x = np.full((1, 6, 6, 2), 1e-300)
    k = np.full((1, 1, 2, 1), 1.5e308)
    with pytest.raises(InputError, match="beyond float64's range"):
        convcheck.explain(x, k, np.zeros((1, 6, 6, 1)), padding="valid")


def test_another_boundary_rule_is_searched_when_the_whole_interior_allows_it():
    """A review of a shortcut since taken back: the interior gate on the first 32 interior
    positions only. A float64 3x3 layer with reflect padding and a bias of 0.5, its errors
    +-0.95 of the bound arranged so that the whole interior's least-squares bias holds and
    the first 32 positions' does not: the gate said no other boundary rule could pass, and
    the layer was unexplained."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 20, 20, 1))
    k = rng.standard_normal((3, 3, 1, 1))
    k -= k.mean()
    padded = np.pad(x.astype(np.longdouble), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    exact = (np.einsum("nhwcij,ijco->nhwo", windows, k.astype(np.longdouble)) + 0.5).astype(np.float64)
    first = convcheck.explain(x, k, exact, padding="same", keep_arrays=True)
    assert first.explanation.boundary == "reflect"
    bound = np.asarray(first.arrays.bound_after, dtype=np.float64).reshape(exact.shape)
    reproduction = np.asarray(first.arrays.reproduction, dtype=np.float64).reshape(exact.shape)
    interior = [(i, j) for i in range(20) for j in range(20) if 3 <= i <= 13 and 3 <= j <= 13]
    signs = {position: -1.0 if n == 16 else 1.0 for n, position in enumerate(interior[:32])}
    signs.update({position: -1.0 for position in interior[32:][::3][:30]})
    y = exact.copy()
    for (i, j), sign in signs.items():
        y[0, i, j, 0] = reproduction[0, i, j, 0] + sign * 0.9 * bound[0, i, j, 0]
    diagnosis = convcheck.explain(x, k, y, padding="same")
    assert diagnosis.verdict is Verdict.EXPLAINED
    assert diagnosis.explanation.boundary == "reflect" and abs(diagnosis.explanation.bias - 0.5) < 1e-9


@pytest.mark.parametrize("precision, output", [("float32", "float32"), ("float64", "float64"), ("float16", "float16"),
                                               ("bfloat16", "float32"), ("float32", "float16")])
def test_the_bound_with_a_declared_bias_is_never_below_the_one_it_replaced(precision, output):
    """`error_bound(..., bias=b)` (a declared bias: |b| for the bias-first term, convcheck's own
    fl(fl(s v) + b) folded in) against what it replaced: `unbiased` = s v computed, and
    `fits.evaluation_error(predicted - b, predicted)` added after. Seeded values over many
    binades, zero and per-channel biases and scales, half-precision storage. Never below up
    to (n + 8) 2^-53 of it: the rounding of the bound's own sum (a term moved into it) and
    the old stand-in for |b|, |fl(predicted - s v)|, which may exceed |b| by u64 (|p| + |b|)
    before its factor gamma_n: what error_bound's inflation by 1 + 8 n 2^-53 is there for (a
    review found 149 2^-53 below at n = 5000 with magnitudes made smaller than |v|; these
    are at least |v|, as the blocks' lower bound |v| / (1 + gamma) gives)."""
    from convcheck.engine import bounds
    from convcheck.engine.fits import evaluation_error

    rng = np.random.default_rng(5)
    model = prec.PrecisionModel.for_inputs(precision, (np.dtype("float32"), np.dtype("float32")), output)
    for case in range(200):
        outs = int(rng.integers(1, 6))
        values = rng.standard_normal((7, 5, outs)) * 10.0 ** rng.integers(-30, 30, (7, 5, outs))
        values[rng.random(values.shape) < 0.1] = 0.0
        magnitude = np.abs(values) * (1 + rng.random(values.shape) * 10)
        scale = 1.0 if case % 3 == 0 else rng.uniform(-3, 3, outs) if case % 3 == 1 else float(rng.uniform(0.1, 4))
        bias = np.zeros(outs) if case % 5 == 0 else rng.standard_normal(outs) * 10.0 ** rng.integers(-20, 20, outs)
        predicted = values * scale + bias
        has_bias = bool(np.any(bias != 0))
        common = dict(n=int(rng.integers(1, 5000)), model=model, output_u=prec.STORAGE_U[output],
                      output_underflow=prec.UNDERFLOW[output], scale=scale, has_bias=has_bias)
        old = bounds.error_bound(magnitude, predicted, unbiased=values * scale if has_bias else None, **common)
        old = old + evaluation_error(predicted - bias, predicted)
        new = bounds.error_bound(magnitude, predicted, unbiased=(lambda: values * scale) if has_bias else None,
                                 bias=bias, **common)
        assert np.all(new >= old * (1 - (common["n"] + 8) * 2.0 ** -53)), (case, float(np.max(old / new)))


def test_decoys_that_overflow_the_candidate_s_own_format_cannot_decide():
    """A second review: 2m finite in float64 but not in float16 (a float16 kernel of 65504, its
    decoys on [-131008, 131008) rounded to inf): the control could not pass, and per-channel
    scales [2.5, 1.5, 3, 0.75] were `explained`; the same layer rescaled cannot decide."""
    rng = np.random.default_rng(1)
    x = (rng.uniform(0.5, 1, (1, 12, 12, 1)) * 1e-3).astype(np.float16)
    k = np.full((1, 1, 1, 4), 65504.0, dtype=np.float16)
    scale = np.array([2.5, 1.5, 3.0, 0.75])
    y = (scale * x.astype(np.float64) * k.astype(np.float64)[0, 0, 0]).astype(np.float16)
    with np.errstate(all="ignore"):
        diagnosis = convcheck.explain(x, k, y, padding="valid")
    assert diagnosis.verdict is not Verdict.EXPLAINED and diagnosis.cannot_decide


def test_weight_sums_that_round_past_float64_are_refused():
    """A second review: 11 taps of 1.6342664862384688e307, fl(11 M) finite but the column's sum
    rounding up to inf: refused, as the column sums always refused it."""
    from convcheck.errors import InputError

    k = np.full((1, 1, 11, 1), 1.6342664862384688e307)
    with pytest.raises(InputError, match="beyond float64's range"):
        convcheck.explain(np.full((1, 6, 6, 11), 1e-300), k, np.zeros((1, 6, 6, 1)), padding="valid")
