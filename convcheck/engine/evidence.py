"""When can the data decide? The evidence rule behind every `equal` and `explained` verdict.

Passing the error bound is necessary, not sufficient: a bound as wide as the values it
judges, an output too small for the parameters fitted to it, or windows that read only
zeros would let *any* output pass, and a verdict that could not have failed says nothing.
So a candidate that passes must also show that the test had power.

The rule, from first principles. At element i the candidate predicts C_i with bound B_i,
and |C_i| <= |s| A_i where A_i = |x| (*) |k| (the magnitudes the sum runs over, s the
scale). A computation unrelated to the candidate but over the same magnitudes lands
anywhere in [-|s| A_i, |s| A_i]; the chance that it falls within +-B_i of C_i is at most
B_i / (|s| A_i). Element i therefore carries

    bits_i = log2(|s| A_i / B_i), clipped to [0, 24]

bits of evidence: 0 where the bound is as wide as the values (vacuous) or where the window
reads only zeros (A_i = 0: an offset that moves it off the image, an all-zero image).
Positions whose windows give identical values (a flat region, windows that all read the
same replicated edge) are one draw: only one of them counts. No
element counts for more than 24 bits (float32's significand): integers, ramps and
repeated values make coincidences likelier than a continuous model says. Each fitted
parameter (a bias, a scale) can be chosen to match one element exactly, so the fitted
parameters cost the largest per-element contributions. What is left must reach

    20 bits (a chance pass below one in a million)                   for `equal`, and
    20 + log2(number of candidates the search considered)   bits    for `explained`

(the search tries many candidates, so one of them passing by chance must stay below one
in a million too: a Bonferroni correction). Every other reading of the inputs that `explain`
searches (the kernel's axes in another order, the image's channels reversed: engine
`_other_readings`) is a whole further search, so the number of readings multiplies the count.

A scale or bias fitted per output channel can match one element *of its channel* exactly,
so it takes the largest contribution of that channel, and every channel must then decide
on its own: at least 20 bits left in each (a channel with too few elements, or none
informative, cannot tell its bias from a coincidence). Elements clipped by an activation
(a ReLU's zeros, a ReLU6's sixes) or saturated to an integer type's range are checked only
as an inequality: they carry no bits, and at least a tenth of the compared elements must
be unclipped for a verdict about the whole output to rest on a real part of it.

Elements are not always independent (identical windows, a 1x1 kernel whose fitted scale
absorbs any other kernel), so the count is backed by a negative control: the same
candidate with three random decoy kernels, scale and bias refitted, must fail. Below
either test the verdict is `unexplained` with a reason that says *cannot decide* and
why, never "a genuine mismatch".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

CONFIDENCE_BITS = 20.0
ELEMENT_BITS_CAP = 24.0
MIN_UNCLIPPED_FRACTION = 0.1


@dataclass(frozen=True)
class Evidence:
    """How much a passing candidate's test could have failed, in bits (see module docstring)."""

    bits: float          # evidence left after the fitted parameters
    needed: float
    compared: int        # elements compared
    informative: int     # elements carrying at least one bit
    fitted: int          # parameters fitted to the output
    raw_bits: float      # evidence before the fitted parameters took their share
    decoy_passed: bool = False   # the negative control passed too (see engine: decoy_passes)
    clipped: int = 0     # compared elements clipped (activation) or saturated (integer output)
    weakest_channel: Optional[tuple[int, float]] = None   # per-channel fits: (channel, bits left)
    dead_channels: tuple[int, ...] = ()   # per-channel fits: channels every element of which is clipped

    @property
    def unclipped_fraction(self) -> float:
        return (self.compared - self.clipped) / self.compared if self.compared else 0.0

    @property
    def enough_unclipped(self) -> bool:
        return self.clipped == 0 or self.unclipped_fraction >= MIN_UNCLIPPED_FRACTION

    @property
    def channels_decide(self) -> bool:
        return self.weakest_channel is None or self.weakest_channel[1] >= CONFIDENCE_BITS

    @property
    def decisive(self) -> bool:
        return (self.bits >= self.needed and not self.decoy_passed and self.enough_unclipped
                and self.channels_decide)

    def to_dict(self) -> dict:
        d = {"bits": round(self.bits, 2), "needed": round(self.needed, 2),
             "compared": self.compared, "informative": self.informative, "fitted": self.fitted,
             "decoy_passed": self.decoy_passed}
        if self.clipped:
            d["clipped"] = self.clipped
        if self.weakest_channel is not None:
            d["weakest_channel"] = {"channel": self.weakest_channel[0], "bits": round(self.weakest_channel[1], 2)}
        if self.dead_channels:
            d["dead_channels"] = list(self.dead_channels)
        return d


def needed_bits(candidates: int) -> float:
    """The evidence a verdict needs when it was chosen among `candidates` computations."""
    return CONFIDENCE_BITS + math.log2(max(1, candidates))


def weigh(values: np.ndarray, magnitude: np.ndarray, bound: np.ndarray, *, scale, fitted: int,
          needed: float, unclipped: Optional[np.ndarray] = None, per_channel: int = 0,
          windows_at=None, spread: float = np.inf) -> Evidence:
    """The evidence of a candidate that passed: `values` its correlation values (Ho, Wo, O),
    `magnitude` A = |x| (*) |k| of its inputs, `bound` its elementwise bound, `fitted` how
    many parameters were fitted to the output, `scale` a number or one per output channel;
    `windows_at(indices)` keys of the windows of positions in C order and `spread` how far
    apart two sums of one window can be (see `weigh_rows`).

    Positions whose windows give identical values are one draw, not several: only the
    first of each counts (a flat region, windows that all read the same replicated edge).
    `unclipped` (a boolean mask like `values`) marks the elements not clipped by an
    activation or saturated: the others carry no bits. `per_channel` > 0 says the fit was
    per output channel, that many parameters in each: each channel pays its own and must
    decide on its own (see the module docstring).
    """
    bits = element_bits(magnitude, bound, scale)
    clipped = 0
    if unclipped is not None:
        unclipped = np.broadcast_to(unclipped, bits.shape)
        bits = np.where(unclipped, bits, 0.0)
        clipped = int(bits.size - np.count_nonzero(unclipped))
    outs = values.shape[-1]
    informative = int(np.count_nonzero(bits >= 1.0))
    if per_channel:
        # A dead channel (every element clipped: a ReLU's dead channel) has nothing to decide:
        # its parameters are only bounded (engine.fits.settle_dead_channels), it carries no
        # bits and pays none; the channels with unclipped elements decide.
        dead = np.zeros(outs, dtype=bool) if unclipped is None else \
            ~unclipped.reshape(-1, outs).any(axis=0)
        lefts, raws = {}, []
        for channel in np.flatnonzero(~dead):
            raw, taken = _distinct_bits(values[..., channel].reshape(-1, 1), bits[..., channel].ravel(),
                                        per_channel, needed, windows_at, spread)
            raws.append(raw)
            lefts[int(channel)] = raw - taken
        weakest = min(lefts, key=lefts.get) if lefts else None
        return Evidence(float(sum(lefts.values())), needed, int(bits.size), informative, fitted, float(sum(raws)),
                        clipped=clipped, weakest_channel=None if weakest is None else (weakest, float(lefts[weakest])),
                        dead_channels=tuple(int(c) for c in np.flatnonzero(dead)))
    raw, taken = _distinct_bits(values.reshape(-1, outs), bits.reshape(-1, outs).sum(axis=1), fitted, needed,
                                windows_at, spread)
    return Evidence(raw - taken, needed, int(bits.size), informative, fitted, raw, clipped=clipped)


def element_bits(magnitude: np.ndarray, bound: np.ndarray, scale, out=None) -> np.ndarray:
    """bits_i = log2(|s| A_i / B_i) clipped to [0, 24], 0 where it is undefined (0/0), in
    `out` when given (`scale` a number or one per output channel)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if np.ndim(scale) == 0 and scale in (1.0, -1.0):   # |s| A is A: one pass less
            bits = np.divide(magnitude, bound, out=out)
        else:
            bits = np.multiply(magnitude, np.abs(scale), out=out)
            np.divide(bits, bound, out=bits)
        np.log2(bits, out=bits)
    # NaN -> 0, -inf -> 0, +inf -> the cap: what nan_to_num and clip would give.
    np.fmax(bits, 0.0, out=bits)
    np.minimum(bits, ELEMENT_BITS_CAP, out=bits)
    return bits


def _distinct_bits(rows_values: np.ndarray, row_bits: np.ndarray, fitted: int, needed: float, windows_at=None,
                   spread: float = np.inf):
    """(raw bits, bits the fitted parameters take) over the distinct rows of `rows_values`."""
    evidence = weigh_rows(row_bits, lambda chosen: rows_values[chosen], informative=0, compared=0, fitted=fitted,
                          needed=needed, windows_at=windows_at, spread=spread)
    return evidence.raw_bits, evidence.raw_bits - evidence.bits


def weigh_rows(row_bits, values_at, *, informative: int, compared: int, fitted: int,
               needed: float, windows_at=None, spread: float = np.inf) -> Evidence:
    """`weigh` from the bits of each position (summed over output channels), for positions
    in C order: `row_bits` an array of them or a `RowBits`; `values_at(indices)` gives
    those positions' values (n, O) and `windows_at(indices)` a key for each of their
    windows (n, k; equal windows, equal keys: see `window_keys`), to tell identical
    windows apart; `informative` and `compared` count elements.

    Positions are one draw when their values are equal or their windows are: a matrix
    product need not sum two equal windows in the same order (BLAS kernels block rows
    and columns by their position), so equal values alone could miss equal windows.
    `spread` bounds how far apart two sums of one window can be (see `same_window_spread`):
    windows are read only when values of different positions come that close.
    """
    if not isinstance(row_bits, RowBits):
        row_bits = RowBits.of(row_bits)
    count = row_bits.positive_count()
    # Distinct windows among a few thousand informative positions settle any realistic
    # `needed` (at most 24 bits each); all of them only when those do not suffice.
    subset = np.linspace(0, count - 1, _SUBSET).astype(int) if count > _SUBSET else None
    for ranks in (subset, None):
        chosen, bits = row_bits.ranked(np.arange(count) if ranks is None else ranks)
        first = _first_of_each(values_at(chosen), None if windows_at is None else (lambda: windows_at(chosen)),
                               spread)
        distinct = np.sort(bits[first])
        raw = float(distinct.sum())
        taken = float(distinct[distinct.size - min(fitted, distinct.size):].sum()) if fitted else 0.0
        if raw - taken >= needed or chosen.size == count:
            break
    return Evidence(raw - taken, needed, compared, informative, fitted, raw)


def same_window_spread(n: int, max_input: float, max_kernel: float) -> float:
    """How far apart two float64 sums of the same n products (any order, with or without
    FMA) can be: each is within gamma_n(2^-53) sum |x_i k_i| <= gamma_n n max|x| max|k| of
    the exact sum (Higham, section 3.1), so twice that, inflated by 1% for computing it."""
    nu = n * 2.0 ** -53
    spread = 2.0 * nu / (1.0 - nu) * n * max_input * max_kernel * 1.01
    return spread if np.isfinite(spread) else np.inf


def window_keys(windows: np.ndarray) -> np.ndarray:
    """One key per window (n,): its bytes, or for a large window (over 4 KiB) a 128-bit
    BLAKE2 digest of them. Equal windows get equal keys; two different large windows
    sharing a digest (odds 2^-128) would only count as one draw."""
    # + 0.0 makes -0.0 (zero padding copied from a negative pixel's sign) the bytes of +0.0:
    # windows equal as numbers get equal keys.
    rows = (np.ascontiguousarray(windows) + 0.0).reshape(len(windows), math.prod(np.shape(windows)[1:]))
    if rows.dtype.itemsize * rows.shape[1] > _KEY_BYTES:
        import hashlib   # here: imported only when windows are this large
        digests = np.empty((len(rows), 16), dtype=np.uint8)
        for index, row in enumerate(rows):
            digests[index] = np.frombuffer(hashlib.blake2b(row.tobytes(), digest_size=16).digest(), dtype=np.uint8)
        rows = digests
    rows = np.ascontiguousarray(rows)
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(len(rows))


_KEY_BYTES = 4096


def _close_values(values: np.ndarray, labels: np.ndarray, spread: float) -> bool:
    """Whether two rows with different labels have values within `spread` of each other."""
    order = np.argsort(values, kind="stable")
    steps = np.diff(values[order])
    different = labels[order][1:] != labels[order][:-1]
    return bool(np.any(different & ~(steps > spread)))


def _groups(rows: np.ndarray) -> np.ndarray:
    """A label per row, equal for equal rows, as np.unique's inverse groups them: rows (n,)
    of one value or key each (-0.0 equals 0.0, all NaNs one group), or (n, k) compared as
    numbers (-0.0 equals 0.0, a row with a NaN equal to none). By sorting, without
    np.unique, whose first call imports numpy.ma (16 ms per process)."""
    if rows.ndim == 1 or rows.shape[1] == 1:
        column = rows.reshape(len(rows))
        order = np.argsort(column, kind="stable")
        ordered = column[order]
        steps = ordered[1:] != ordered[:-1]
        if ordered.dtype.kind in "fc":
            steps &= ~(np.isnan(ordered[1:]) & np.isnan(ordered[:-1]))
    elif rows.dtype.kind == "f" and not np.isnan(rows).any():
        # Rows equal as numbers are equal as bytes once -0.0 is +0.0 (x + 0.0): one sort
        # of the rows' bytes (4096 rows of 64 channels: 3 ms, lexsort 17 ms).
        flat = np.ascontiguousarray(rows + 0.0)
        return _groups(flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).reshape(len(rows)))
    else:
        order = np.lexsort(rows.T[::-1])   # the first column the primary key
        ordered = rows[order]
        steps = np.any(ordered[1:] != ordered[:-1], axis=1)
    labels = np.empty(len(rows), dtype=np.intp)
    if len(rows):
        labels[order] = np.cumsum(np.r_[False, steps])
    return labels


def _first_rows(labels: np.ndarray) -> np.ndarray:
    """The first row of each label, in the order of the labels (np.unique's return_index)."""
    if len(labels) == 0:
        return np.zeros(0, dtype=np.intp)
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    return order[np.r_[True, ordered[1:] != ordered[:-1]]]


def _first_of_each(values: np.ndarray, windows_at=None, spread: float = np.inf) -> np.ndarray:
    """The first row of each group of rows equal in `values` or (when `windows_at()` gives
    their window keys) in their windows (groups joined through either, transitively), in
    order. `spread` bounds how far apart two sums of one window can be: when no two rows of
    different values are that close, no equal windows can have different values, and the
    windows are not read."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.intp)
    if values.shape[1] == 1:
        # One channel (the usual case): one stable sort gives the groups, their first rows
        # (stable: the earliest of equal values leads) and whether values come close.
        column = values[:, 0]
        order = np.argsort(column, kind="stable")
        ordered = column[order]
        starts = np.r_[True, ordered[1:] != ordered[:-1]]
        if windows_at is None or not np.any(starts[1:] & ~(np.diff(ordered) > spread)):
            return np.sort(order[starts])
    labels = _groups(values)
    if windows_at is not None and len(labels) > 1 and _close_values(values[:, 0], labels, spread):
        by_window = _groups(windows_at())
        # Each row takes the smallest label of its window group, then of its value group,
        # until nothing changes: the connected groups of the two partitions together.
        by_value = labels.copy()
        while True:
            lowest = np.full(by_window.max() + 1, labels.size)
            np.minimum.at(lowest, by_window, labels)
            joined = lowest[by_window]
            lowest = np.full(by_value.max() + 1, labels.size)
            np.minimum.at(lowest, by_value, joined)
            joined = lowest[by_value]
            if np.array_equal(joined, labels):
                break
            labels = joined
    return np.sort(_first_rows(labels))


def _chunks(flat: np.ndarray, size: int = 1 << 20):
    return (flat[start:start + size] for start in range(0, flat.size, size))


class RowBits:
    """Each position's bits, gathered block by block, in bounded memory.

    Up to `KEEP_ALL` positions every position's bits are kept. Beyond, a bool per
    position says which carry any (what `weigh_rows` ranks), and the bits are kept only at
    the positions the subset takes when every position carries some (the usual case:
    only windows of zeros carry none); other positions' bits come from `bits_at(indices)`,
    the same elementwise bits computed again there.
    """

    KEEP_ALL = 1 << 20

    def __init__(self, count: int, bits_at=None):
        self.count = count
        self.bits_at = bits_at
        self.all = np.zeros(count) if count <= self.KEEP_ALL else None
        self.positive = None if self.all is not None else np.zeros(count, dtype=bool)
        self.guess = None if self.all is not None else np.linspace(0, count - 1, _SUBSET).astype(int)
        self.guess_bits = None if self.all is not None else np.zeros(_SUBSET)

    @classmethod
    def of(cls, row_bits: np.ndarray) -> "RowBits":
        """Every position's bits, as given."""
        kept = cls(0)
        kept.count, kept.all = row_bits.size, row_bits
        return kept

    def put(self, start: int, bits: np.ndarray) -> None:
        """The bits of positions start, start + 1, ... (one block's, in C order)."""
        bits = bits.reshape(-1)
        if self.all is not None:
            self.all[start:start + bits.size] = bits
            return
        np.greater(bits, 0, out=self.positive[start:start + bits.size])
        lo, hi = np.searchsorted(self.guess, [start, start + bits.size])
        self.guess_bits[lo:hi] = bits[self.guess[lo:hi] - start]

    def positive_count(self) -> int:
        source = self.all if self.all is not None else self.positive
        return sum(int(np.count_nonzero(chunk)) for chunk in _chunks(source))

    def ranked(self, ranks: np.ndarray):
        """(indices, bits) of the positive positions of the given sorted ranks."""
        if self.all is not None:
            chosen = _ranked(self.all, ranks)
            return chosen, self.all[chosen]
        chosen = _ranked(self.positive, ranks)
        if chosen.size == self.guess.size and np.array_equal(chosen, self.guess):
            return chosen, self.guess_bits
        return chosen, self.bits_at(chosen)


def _ranked(row_bits: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The indices of the positive entries of `row_bits` of the given (sorted) ranks: what
    np.flatnonzero(row_bits > 0)[ranks] gives, read in chunks (no index per position)."""
    found, seen = [], 0
    for number, chunk in enumerate(_chunks(row_bits)):
        positive = np.flatnonzero(chunk > 0)
        wanted = ranks[(ranks >= seen) & (ranks < seen + positive.size)]
        found.append(positive[wanted - seen] + number * (1 << 20))
        seen += positive.size
    return np.concatenate(found) if found else np.zeros(0, dtype=np.intp)


_SUBSET = 4096


def cannot_decide_reason(evidence: Evidence, candidate: str, precision: str, *, subnormal: bool) -> str:
    """A sentence saying why the data cannot decide, naming the candidate that passed."""
    count = evidence.compared
    elements = f"{count} element{'s' if count != 1 else ''}"
    head = (f"cannot decide: {candidate} reproduces the output within the error bound, but "
            f"{elements} {'give' if count != 1 else 'gives'} only {evidence.bits:.0f} bits of evidence "
            f"where {evidence.needed:.0f} are needed")
    if not evidence.enough_unclipped:
        unclipped = evidence.compared - evidence.clipped
        head = (f"cannot decide: {candidate} reproduces the output within the error bound, but only "
                f"{unclipped} of {elements} ({100 * evidence.unclipped_fraction:.1f}%) are unclipped")
        why = ("the rest were clipped by the activation or saturated to the integer range, which says "
               "only that they lie beyond the limit: a verdict needs at least "
               f"{100 * MIN_UNCLIPPED_FRACTION:.0f}% of the output unclipped")
        return f"{head} ({why})."
    if evidence.bits >= evidence.needed and not evidence.channels_decide:
        channel, left = evidence.weakest_channel
        head = (f"cannot decide: {candidate} reproduces the output within the error bound, but output "
                f"channel {channel} gives only {max(left, 0.0):.0f} bits of evidence after its own fitted "
                f"parameters, where {CONFIDENCE_BITS:.0f} are needed")
        why = ("a bias or scale fitted per output channel must be decided by that channel's own elements: "
               "too few of them, or too few unclipped, to tell it from a coincidence")
        return f"{head} ({why})."
    if evidence.decoy_passed and evidence.bits >= evidence.needed:
        head = (f"cannot decide: {candidate} reproduces the output within the error bound, but so does "
                "the same computation with a random kernel")
        why = ("the windows are too alike, the kernel too small for the fitted scale, or the bound too wide "
               "for the data to tell one kernel from another")
    elif evidence.informative == 0:
        if subnormal:
            why = (f"the inputs hold subnormal values, where {precision}'s error bound is as large as "
                   "the values themselves (TensorFlow on CPU also flushes them to zero); rescale the data")
        else:
            why = ("every window reads only zeros, or the bound is as wide as the values: "
                   "the output would pass whatever the kernel was")
    elif evidence.fitted and evidence.raw_bits - evidence.bits >= evidence.raw_bits / 2:
        why = (f"{evidence.fitted} parameter{'s' if evidence.fitted != 1 else ''} fitted to the output "
               f"use{'s' if evidence.fitted == 1 else ''} up most of what {elements} can tell")
    elif evidence.informative < count / 2:
        why = (f"only {evidence.informative} of {elements} carry information "
               f"(the rest read zeros, or {precision}'s bound is as wide as their values)")
    else:
        why = "too few elements to rule out a coincidence among the candidates searched"
    return f"{head} ({why})."
