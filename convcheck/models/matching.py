"""Pair the conv layers of an original model with its port's, by their weights and their order.

A port renames layers, fuses or unfuses BatchNorms (which scales each output channel of the
kernel), adds or drops layers, and may have scrambled a kernel's axes. Names therefore say
little; weights say a lot. The pairing is an assignment problem
(`scipy.optimize.linear_sum_assignment`) over a cost that is mostly dissimilarity of the
weights and a little distance in execution order:

- similarity: the per-output-channel cosine of the two grouped-HWIO kernels (a BatchNorm
  folded into the weights multiplies each output channel by one factor: its cosine is
  unchanged; the absolute value covers a negative factor), averaged over the channels, best
  over the readings a port may have scrambled the kernel into (the same layout; input and
  output channels swapped; PyTorch OIHW values `reshape`d into HWIO and the reverse; the
  kernel flipped 180 degrees). Kernels that no reading maps onto each other but that hold the
  same values, in any order and up to one factor (the sorted magnitudes, normalised, equal
  within a rounding of the narrower dtype), are similar too: a reshape or permutation the
  readings do not name keeps the multiset of values;
- impossible pairs: a different number of weights or of output channels (no layout, reshape
  or permutation changes either);
- order: a cost of `ORDER_WEIGHT` times the distance of the two layers' relative positions in
  execution order, which decides between equally similar layers (identical twins) and never
  outweighs a real difference in similarity;
- threshold: a pair less similar than its threshold is no match: both layers stay unmatched.
  The threshold is what chance cannot reach (`chance_threshold`): for a kernel unrelated to
  the original, each channel's |cosine| is that of a random direction in n dimensions (n
  weights per output channel), with mean Gamma(n/2) / (sqrt(pi) Gamma((n + 1)/2)) (about
  sqrt(2 / (pi n))) and mean square 1/n, so the mean over C channels lies more than six of its
  standard deviations sqrt((1/n - mean^2) / C) above the mean by chance with probability
  below 1e-9 (Chebyshev-Cantelli would say 3%; the sum of C bounded terms is near normal). The
  threshold is that, at least `THRESHOLD`, at most `EXACT` (what a folded BatchNorm or a
  float16 rounding keeps): kernels too small for chance to be ruled out (a 1x1 kernel over 4
  channels) must be the same up to those.

`--match ORIGINAL=PORT` pairs are fixed first, then the rest are assigned. numpy and scipy only.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import InputError

THRESHOLD = 0.6
EXACT = 0.99
ORDER_WEIGHT = 0.05
_IMPOSSIBLE = 1e6        # cost of a pair whose shapes cannot correspond
_UNRELATED = 10.0        # cost of a pair below its threshold: equal for all, so it never steers the assignment
# Unit roundoff of the dtypes kernels come in: the multiset comparison allows one rounding.
_UNIT_ROUNDOFF = {"float64": 2.0 ** -53, "float32": 2.0 ** -24, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}
READINGS = ("same layout", "input and output channels swapped", "OIHW values reshaped into HWIO",
            "HWIO values reshaped into OIHW", "flipped 180 degrees")
VALUES_READING = "the same values in another order"


@dataclass(frozen=True)
class Pair:
    """One matched pair: indices into the original's and the port's layers (execution order),
    how it was made (`by`: 'weights', 'name' for a --match pair, 'data flow' for a pair of
    weights matches undone by `_uncross`), the similarity of the weights (0..1, see the module
    docstring), the reading of the port's kernel that gave it, and what the walk should say
    of it (`note`)."""

    original: int
    port: int
    by: str
    similarity: float
    reading: str
    note: str = ""


@dataclass(frozen=True)
class Matching:
    """The pairs in the original's execution order, and the layers left unmatched on each side
    (indices, in execution order)."""

    pairs: tuple[Pair, ...]
    unmatched_original: tuple[int, ...]
    unmatched_port: tuple[int, ...]


def parse_match(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """'--match ORIGINAL_NAME=PORT_NAME' values as (original, port) name pairs (InputError otherwise).
    The last '=' splits, so an original name may hold '='; a port name may not."""
    pairs = []
    for value in values or ():
        original, sep, port = str(value).rpartition("=")
        if not sep or not original.strip() or not port.strip():
            raise InputError(f"--match '{value}': is not ORIGINAL_NAME=PORT_NAME; write e.g. "
                             "--match layer1.0.conv1=conv2d_3 (the names the table shows)")
        pairs.append((original.strip(), port.strip()))
    return tuple(pairs)


def match_layers(original: Sequence, port: Sequence, overrides: Sequence[tuple[str, str]] = (), *,
                 threshold: float = THRESHOLD) -> Matching:
    """Pair `original` and `port` conv layers (ConvLayer sequences in execution order).

    `overrides` are (original name, port name) pairs that are matched as given (by 'name');
    a name that is not a layer of its model, or is named twice, is an `InputError` naming
    the layers there are. The rest are assigned by weights and order (module docstring)."""
    fixed = _fixed_pairs(original, port, overrides)
    taken_o = {p.original for p in fixed}
    taken_p = {p.port for p in fixed}
    rows = [i for i in range(len(original)) if i not in taken_o]
    cols = [j for j in range(len(port)) if j not in taken_p]
    pairs = list(fixed)
    if rows and cols:
        similarity, reading = similarity_matrix([original[i].kernel for i in rows], [port[j].kernel for j in cols])
        position_o = _positions(len(original))[rows]
        position_p = _positions(len(port))[cols]
        needed = np.array([[chance_threshold(original[i].kernel.shape, threshold) for _ in cols] for i in rows])
        cost = (1.0 - similarity) + ORDER_WEIGHT * np.abs(position_o[:, None] - position_p[None, :])
        with np.errstate(invalid="ignore"):
            good = similarity >= needed   # False where NaN (impossible pairs)
        cost = np.where(good, cost, np.where(np.isnan(similarity), _IMPOSSIBLE, _UNRELATED))
        from scipy.optimize import linear_sum_assignment
        for r, c in zip(*linear_sum_assignment(cost)):
            if good[r, c]:
                pairs.append(Pair(rows[r], cols[c], "weights", float(similarity[r, c]), reading[r][c]))
    pairs = _uncross(pairs, original, port)
    pairs.sort(key=lambda p: p.original)
    matched_o = {p.original for p in pairs}
    matched_p = {p.port for p in pairs}
    return Matching(tuple(pairs), tuple(i for i in range(len(original)) if i not in matched_o),
                    tuple(j for j in range(len(port)) if j not in matched_p))


def _uncross(pairs: list[Pair], original: Sequence, port: Sequence) -> list[Pair]:
    """Weights matches that contradict the models' data flow, re-paired by it.

    A port that loaded same-shaped layers' weights into each other's places is matched by
    weights to the wrong places, and each layer is then `equal` on its own input (a hunt: the
    second and third convs of a chain swapped, exit 0, while the port computed something
    else). Where a layer reads another conv layer's output as it is (the capture shares the
    tensor: `producers`), the data flow gives each original layer its place in the port, with
    no tolerance: a layer that reads no conv's output (a root) is placed at its match, trusted
    where that match reads no conv's output either; one that reads a trusted layer A's output,
    at the one port layer that reads the output of A's place (trusted; with several readers, as
    for parallel branches or a residual block, at its match, trusted where the match is one of
    them); anything else at its match, untrusted. The original layers placed elsewhere than
    their weights matches are re-paired with their places, one cycle of the permutation at a
    time, only where the cycle's places are exactly its layers' matches, every one is trusted,
    no other layer has one of those places (a port that adds an op on one branch leaves two
    layers one place), every pair of it is a weights match, and the shapes allow it (`_fits`).
    Three reviews found each of these conditions missing: a correct branch after a flipped
    layer, a faithful port with an ONNX Identity on one branch, and crossed identical twins
    (or a swap of two layers that read a pool's output) whose wrong places passed down to
    their readers, were re-paired; `by` 'data flow', with a note, and the engine then judges each port layer
    against the original layer whose place it takes. Parallel branches that read the same
    tensor cannot be told apart this way (a port that swapped their weights differs only in
    how their outputs are combined, which the drift notes show)."""
    producers_o, producers_p = producers(original), producers(port)
    readers: dict[int, list[int]] = {}
    for j, k in producers_p.items():
        readers.setdefault(k, []).append(j)
    matched = {pair.original: pair for pair in pairs}
    place: dict[int, int] = {}
    trusted: dict[int, bool] = {}   # the place follows from the data flow, from an agreeing root
    for o in sorted(matched):   # execution order: a layer's producer is placed before it
        source, match = producers_o.get(o), matched[o].port
        place[o] = match
        if source is None:
            # A root (it reads no conv's output): placed at its match, trusted where that reads
            # no conv's output either.
            trusted[o] = producers_p.get(match) is None
        elif trusted.get(source, False):
            found = readers.get(place[source], [])
            if len(found) == 1:
                place[o], trusted[o] = found[0], True
            else:   # several readers (parallel branches): the match must be one of them
                trusted[o] = match in found
        else:
            trusted[o] = False
    claims: dict[int, list[int]] = {}
    for o, j in place.items():
        claims.setdefault(j, []).append(o)
    moved = {o for o in matched if place[o] != matched[o].port}
    by_port = {pair.port: pair.original for pair in pairs}
    rematched: dict[int, Pair] = {}
    while moved:
        cycle, o = [], min(moved)
        while o is not None and o not in cycle:
            cycle.append(o)
            o = by_port.get(place[o])   # the original layer whose match sits in o's place
        moved -= set(cycle)
        if o != cycle[0] or any(len(claims[place[c]]) != 1 or matched[c].by != "weights" or not trusted[c]
                                or not _fits(original[c], port[place[c]]) for c in cycle):
            continue   # not a closed cycle of weights matches placed by the data flow, or a place claimed twice
        for c in cycle:
            there = place[c]
            similarity, reading = similarity_matrix([original[c].kernel], [port[there].kernel])
            value, source = float(similarity[0, 0]), producers_o[c]
            where = (f"paired by the data flow: the port's layer '{port[there].name}' reads the output of "
                     f"'{port[place[source]].name}', the counterpart of this layer's input '{original[source].name}'")
            # Twins (the same weights in both places) are no mistake: only their order was crossed.
            same = value >= matched[c].similarity - 1e-6
            rematched[c] = Pair(c, there, "data flow", value, reading[0][0] or "none", note=(
                f"{where} (it holds the same weights as '{port[matched[c].port].name}')" if same else
                f"{where}, while '{port[matched[c].port].name}' holds this layer's weights (weights loaded into "
                "the wrong layers?)"))
    return [rematched.get(pair.original, pair) for pair in pairs]


def producers(layers: Sequence) -> dict[int, int]:
    """{layer index: index of the layer whose output it reads as it is} (the capture shares a
    tensor two layers have in common; layers joined by another op have no entry)."""
    outputs = {id(layer.output): i for i, layer in enumerate(layers)}
    return {j: outputs[id(layer.input)] for j, layer in enumerate(layers)
            if id(layer.input) in outputs and outputs[id(layer.input)] != j}


def _fits(original_layer, port_layer) -> bool:
    """Whether a port layer may be judged against an original layer: the same input shape and
    kernels whose shapes correspond (as `similarity_matrix` requires)."""
    k_o, k_p = original_layer.kernel, port_layer.kernel
    return (tuple(original_layer.input.shape) == tuple(port_layer.input.shape) and k_o.size == k_p.size
            and k_o.shape[-1] == k_p.shape[-1])


def chance_threshold(shape, floor: float = THRESHOLD) -> float:
    """The similarity a kernel of `shape` (grouped HWIO) must reach to be a match: six standard
    deviations above what an unrelated kernel reaches by chance, within [floor, EXACT] (module
    docstring)."""
    channels = int(shape[-1])
    n = max(int(np.prod(shape)) // max(channels, 1), 1)
    mean = math.exp(math.lgamma(n / 2) - math.lgamma((n + 1) / 2)) / math.sqrt(math.pi)
    spread = math.sqrt(max(1.0 / n - mean * mean, 0.0) / max(channels, 1))
    return min(max(floor, mean + 6 * spread), EXACT)


def _positions(count: int) -> np.ndarray:
    """Each layer's relative position in execution order, 0 (first) .. 1 (last)."""
    return np.arange(count, dtype=np.float64) / max(count - 1, 1)


def _fixed_pairs(original, port, overrides) -> list[Pair]:
    """The --match pairs, checked: both names exist, and no layer is named twice."""
    pairs, seen_o, seen_p = [], set(), set()
    names_o = {layer.name: i for i, layer in enumerate(original)}
    names_p = {layer.name: j for j, layer in enumerate(port)}
    for name_o, name_p in overrides:
        i = _index(names_o, name_o, "original")
        j = _index(names_p, name_p, "port")
        if i in seen_o or j in seen_p:
            twice = name_o if i in seen_o else name_p
            raise InputError(f"--match: layer '{twice}' is named in two --match pairs; match each layer once")
        seen_o.add(i)
        seen_p.add(j)
        similarity, reading = similarity_matrix([original[i].kernel], [port[j].kernel])
        value = float(similarity[0, 0])
        pairs.append(Pair(i, j, "name", 0.0 if np.isnan(value) else value,
                          reading[0][0] if not np.isnan(value) else "shapes cannot correspond"))
    return pairs


def _index(names: dict, name: str, side: str) -> int:
    if name in names:
        return names[name]
    close = difflib.get_close_matches(name, list(names), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    shown = ", ".join(list(names)[:12]) + (", ..." if len(names) > 12 else "")
    raise InputError(f"--match: '{name}' is not a conv layer of the {side} model{hint}; its layers are {shown}")


# ----------------------------------------------------------------------------- similarity


def similarity_matrix(original_kernels: Sequence[np.ndarray], port_kernels: Sequence[np.ndarray]):
    """(similarity, reading): an (n_original, n_port) array of similarities in [0, 1] (NaN where
    the shapes cannot correspond) and, per pair, the name of the reading that gave it.

    Vectorised: port kernels of one shape are stacked, and each original's readings of that
    shape are compared with all of them in one product. The multiset comparison (a sort) runs
    only for compatible pairs that no reading matched."""
    originals = [np.asarray(k) for k in original_kernels]
    ports = [np.asarray(k) for k in port_kernels]
    similarity = np.full((len(originals), len(ports)), np.nan)
    reading = [["" for _ in ports] for _ in originals]
    groups: dict[tuple[int, ...], list[int]] = {}
    for j, kernel in enumerate(ports):
        groups.setdefault(tuple(kernel.shape), []).append(j)
    stacked = {shape: _unit_channels(np.stack([ports[j] for j in members]))
               for shape, members in groups.items()}
    for i, kernel in enumerate(originals):
        kernel = np.asarray(kernel, np.float32)
        for shape, members in groups.items():
            if kernel.size != int(np.prod(shape)) or kernel.shape[-1] != shape[-1]:
                continue
            best = np.full(len(members), -1.0)
            names = [""] * len(members)
            for name, view in _readings(kernel, shape):
                cosines = _mean_abs_cosine(_unit_channels(view[None])[0], stacked[shape])
                for m in np.flatnonzero(cosines > best):
                    best[m], names[m] = cosines[m], name
            for m, j in enumerate(members):
                similarity[i, j], reading[i][j] = best[m], names[m]
    _same_values(originals, ports, similarity, reading)
    return similarity, reading


def _readings(kernel: np.ndarray, shape: tuple[int, ...]):
    """(name, the original's kernel as the port would hold it after that mistake) for each
    reading whose shape is the port's `shape` (all grouped HWIO (kh, kw, C_in / G, C_out))."""
    kh, kw, c_in, c_out = kernel.shape
    candidates = [(READINGS[0], lambda: kernel),
                  (READINGS[1], lambda: kernel.transpose(0, 1, 3, 2)),
                  # PyTorch's OIHW memory given HWIO's shape with reshape (the port's kernel holds those values)
                  (READINGS[2], lambda: kernel.transpose(3, 2, 0, 1).reshape(shape)),
                  # HWIO memory given OIHW's shape, as the port's loader then reads it back into HWIO
                  (READINGS[3], lambda: kernel.reshape(shape[3], shape[2], shape[0], shape[1]).transpose(2, 3, 1, 0)),
                  (READINGS[4], lambda: kernel[::-1, ::-1])]
    for name, make in candidates:
        view = make()
        if view.shape == tuple(shape):
            # Readings that coincide (a 1x1 kernel's flip) need no care: the first keeps its name.
            yield name, view


def _unit_channels(kernels: np.ndarray) -> np.ndarray:
    """(m, kh, kw, ci, co) kernels as (m, n, co) float32 columns of unit length (zero stays zero)."""
    flat = np.asarray(kernels, np.float32).reshape(kernels.shape[0], -1, kernels.shape[-1])
    norms = np.sqrt(np.einsum("mnc,mnc->mc", flat, flat))
    return flat / np.where(norms > 0, norms, 1.0)[:, None, :]


def _mean_abs_cosine(unit: np.ndarray, stacked: np.ndarray) -> np.ndarray:
    """Mean over output channels of |cosine| between one kernel (n, co) and each of (m, n, co);
    a channel that is zero in both counts as 1 (the same), zero in one only as 0."""
    cosines = np.abs(np.einsum("nc,mnc->mc", unit, stacked))
    zero_o = ~np.any(unit != 0, axis=0)
    zero_p = ~np.any(stacked != 0, axis=1)
    cosines = np.where(zero_o[None, :] & zero_p, 1.0, cosines)
    return np.minimum(cosines.mean(axis=1), 1.0)


def _same_values(originals, ports, similarity, reading) -> None:
    """Mark compatible pairs that no reading matched but that hold the same values in another
    order, up to one factor and one rounding: sorted magnitudes over their norm, within
    4 u of the narrower dtype (Euclidean distance of the unit vectors)."""
    signatures: dict[tuple[str, int], np.ndarray] = {}

    def signature(side: str, index: int, kernel: np.ndarray) -> np.ndarray:
        if (side, index) not in signatures:
            values = np.sort(np.abs(np.asarray(kernel, np.float32)).ravel()).astype(np.float64)
            norm = np.sqrt(np.dot(values, values))
            signatures[(side, index)] = values / norm if norm > 0 else values
        return signatures[(side, index)]

    # Only layers that no reading matched on either side: a sort per kernel is the costly part.
    known = np.where(np.isnan(similarity), -1.0, similarity)
    needed = np.array([chance_threshold(kernel.shape) for kernel in originals])[:, None]
    matched = known >= needed
    candidates = (known >= 0) & ~matched & ~matched.any(axis=1)[:, None] & ~matched.any(axis=0)[None, :]
    for i, j in zip(*np.nonzero(candidates)):
        a, b = originals[i], ports[j]
        tolerance = 4 * max(_UNIT_ROUNDOFF.get(a.dtype.name, 2.0 ** -24), _UNIT_ROUNDOFF.get(b.dtype.name, 2.0 ** -24))
        distance = float(np.linalg.norm(signature("o", i, a) - signature("p", j, b)))
        if distance <= tolerance:
            similarity[i, j], reading[i][j] = 1.0 - distance, VALUES_READING


__all__ = ["THRESHOLD", "EXACT", "ORDER_WEIGHT", "READINGS", "VALUES_READING", "Pair", "Matching", "parse_match",
           "match_layers", "chance_threshold", "similarity_matrix", "producers"]
