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
