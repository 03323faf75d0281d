"""A seeded fuzzer for the engine's one promise: `equal` and `explained` can be trusted.

Each case is drawn from `numpy.random.default_rng([SEED, index])`, so case i is the same
on every machine and every run (no flakiness), and a failure names the index to replay:

    .venv/bin/python -m tests.fuzz 1234          # replay case 1234
    .venv/bin/python -m tests.fuzz 1236v         # replay the Values variant of case 1236
    make fuzz                                    # 10,000 cases with a summary

Kinds of output, over shapes 1-12 and every input dtype:
- exact:       the expected computation itself (inputs at their own precision)
- transformed: a known cause or two applied (kernel transform, padding, boundary,
               offset, narrower precision, bias, scale, a bias or scale per output
               channel, a ReLU/ReLU6 activation, the result stored in float32 (half
               inputs) or rounded and saturated to an integer type)
- corrupted:   an exact or transformed output with one element moved far away
- garbage:     random numbers of the right shape
- nan:         an exact output with a NaN in it

The oracle never trusts the engine: it reproduces whatever the engine claims with its
own small numpy code (np.pad + explicit sums) and checks the claim against the output.
- crash:        any exception but `InputError` (and `InputError` is only right for NaN)
- false verdict: `equal`/`explained` whose claimed computation, reproduced here, does
                 not reproduce the output, or that names a cause other than the truth
                 when the truth is not listed among the alternatives and is not simpler
- false alarm:   an exact or transformed output called a genuine mismatch
                 (`unexplained` that is not "cannot decide")
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

import ml_dtypes
import numpy as np

import convcheck
from convcheck.engine.precision import native_precision
from convcheck.vocabulary import Verdict

SEED = 20261124
BF16 = np.dtype(ml_dtypes.bfloat16)
INPUT_DTYPES = [np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16), BF16,
                np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.uint16), np.dtype(np.int16)]
TRANSFORMS = ["rot180", "transpose", "anti_transpose", "flip_ud", "flip_lr", "rot90", "rot270"]
BOUNDARIES = ["reflect", "symmetric", "wrap", "edge"]
_NUMPY_MODE = {"zero": "constant", "constant": "constant", "reflect": "reflect", "symmetric": "symmetric",
               "wrap": "wrap", "edge": "edge"}
_STORE = {"float64": np.dtype(np.float64), "float32": np.dtype(np.float32),
          "tfloat32": np.dtype(np.float32), "float16": np.dtype(np.float16), "bfloat16": BF16}
_BITS = {"float64": 53, "float32": 24, "tfloat32": 11, "float16": 11, "bfloat16": 8}
_INTEGERS = {"uint8": np.uint8, "int8": np.int8, "uint16": np.uint16, "int16": np.int16}


# ----------------------------------------------------------------------------- reproduction


def transformed_kernel(kernel: np.ndarray, name: str) -> np.ndarray:
    """CONTRACT section 2's kernel transforms, written independently of convcheck.reference."""
    k = kernel
    return {
        "identity": lambda: k,
        "rot180": lambda: np.flip(np.flip(k, 0), 1),
        "transpose": lambda: np.transpose(k, (1, 0, 2, 3)),
        "anti_transpose": lambda: np.transpose(np.flip(np.flip(k, 0), 1), (1, 0, 2, 3)),
        "flip_ud": lambda: np.flip(k, 0),
        "flip_lr": lambda: np.flip(k, 1),
        "rot90": lambda: np.stack([np.stack([np.rot90(k[:, :, c, o]) for o in range(k.shape[3])], -1)
                                   for c in range(k.shape[2])], 2),
        "rot270": lambda: np.stack([np.stack([np.rot90(k[:, :, c, o], -1) for o in range(k.shape[3])], -1)
                                    for c in range(k.shape[2])], 2),
    }[name]()


def _axis(padding, size, k, stride, dilation):
    """(output size, padding before) along one axis: TensorFlow's SAME/VALID rules, 'full', or
    explicit amounts (before, after) as PyTorch and ONNX give them (CONTRACT section 1)."""
    span = (k - 1) * dilation + 1
    if not isinstance(padding, str):
        before, after = (int(v) for v in padding)
        return (size + before + after - span) // stride + 1, before
    if padding == "same":
        out = -(-size // stride)
        return out, max((out - 1) * stride + span - size, 0) // 2
    if padding == "valid":
        return (size - span) // stride + 1, 0
    return (size + span - 2) // stride + 1, span - 1


def reproduce(image, kernel, *, kernel_transform="identity", padding="same", boundary="zero",
              offset=(0, 0), precision="float64", scale=1.0, bias=0.0, stride=(1, 1), dilation=(1, 1), cval=0.0):
    """(values, magnitudes) of a computation, in float64, by explicit sums over the taps.

    image (H, W, C), kernel HWIO. The inputs are rounded to `precision` first. `scale` and
    `bias` are numbers or one per output channel; the values are before any activation
    (see `finish`).
    """
    store = _STORE[precision]
    image = np.asarray(image, dtype=np.float64).astype(store).astype(np.float64)
    kernel = np.asarray(kernel, dtype=np.float64).astype(store).astype(np.float64)
    k = transformed_kernel(kernel, kernel_transform)
    kh, kw = k.shape[:2]
    h, w = image.shape[:2]
    pad_h, pad_w = (padding, padding) if isinstance(padding, str) else (padding[0], padding[1])
    out_h, top = _axis(pad_h, h, kh, stride[0], dilation[0])
    out_w, left = _axis(pad_w, w, kw, stride[1], dilation[1])
    margin = (max(kh, kw) + 2) * max(dilation) + abs(offset[0]) + abs(offset[1]) + 2
    if not isinstance(padding, str):   # explicit amounts: room for the largest of them
        margin += max(int(v) for pair in padding for v in pair)
    rows_rule, cols_rule = (boundary, boundary) if isinstance(boundary, str) else boundary
    padded = image
    for axis, rule, extra in ((0, rows_rule, h * stride[0]), (1, cols_rule, w * stride[1])):
        widths = [(0, 0)] * 3
        widths[axis] = (margin, margin + extra)
        fill = {"constant_values": cval if rule == "constant" else 0.0} if _NUMPY_MODE[rule] == "constant" else {}
        padded = np.pad(padded, widths, mode=_NUMPY_MODE[rule], **fill)
    r0, c0 = margin - top + offset[0], margin - left + offset[1]
    values = np.zeros((out_h, out_w, k.shape[3]))
    mags = np.zeros_like(values)
    for u in range(kh):
        for v in range(kw):
            rows = r0 + u * dilation[0] + np.arange(out_h) * stride[0]
            cols = c0 + v * dilation[1] + np.arange(out_w) * stride[1]
            window = padded[rows[:, None], cols[None, :], :]
            values += np.einsum("ijc,co->ijo", window, k[u, v])
            mags += np.einsum("ijc,co->ijo", np.abs(window), np.abs(k[u, v]))
    scale, bias = np.asarray(scale, dtype=np.float64), np.asarray(bias, dtype=np.float64)
    return values * scale + bias, mags * np.abs(scale)


def limits(activation="linear", output_precision=None):
    """(low, high) where a ReLU/ReLU6 clips and an integer type saturates (None: no limit)."""
    low = 0.0 if activation in ("relu", "relu6") else None
    high = 6.0 if activation == "relu6" else None
    if output_precision in _INTEGERS:
        info = np.iinfo(_INTEGERS[output_precision])
        low = float(info.min) if low is None else max(low, float(info.min))
        high = float(info.max) if high is None else min(high, float(info.max))
    return low, high


def finish(values: np.ndarray, activation="linear", output_precision=None) -> np.ndarray:
    """The activation, then (for an integer type) rounding to nearest and saturation, in float64."""
    low, high = limits(activation, output_precision)
    if output_precision in _INTEGERS:
        values = np.rint(values)
    return np.clip(values, -np.inf if low is None else low, np.inf if high is None else high)


def store_output(values: np.ndarray, precision: str, output_precision=None) -> np.ndarray:
    """A float64 result stored the way a library at `precision` stores it (or in `output_precision`)."""
    if output_precision in _INTEGERS:
        low, high = limits("linear", output_precision)
        return np.clip(np.rint(values), low, high).astype(_INTEGERS[output_precision])
    with np.errstate(over="ignore"):
        return values.astype(_STORE[output_precision or precision])


# ----------------------------------------------------------------------------- cases


@dataclass
class Case:
    index: int
    kind: str
    image: np.ndarray
    kernel: np.ndarray
    output: np.ndarray
    padding: str = "same"
    truth: dict = field(default_factory=dict)   # the fields the generator changed


def _values(rng, shape, dtype) -> np.ndarray:
    style = rng.choice(["normal", "positive", "integers", "wide"], p=[0.4, 0.25, 0.25, 0.1])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = max(info.min, -50), min(info.max, 255)
        if style == "wide":
            low, high = info.min, info.max
        return rng.integers(low, high, size=shape, endpoint=True).astype(dtype)
    if style == "normal":
        data = rng.standard_normal(shape)
    elif style == "positive":
        data = rng.uniform(0.0, 1.0, shape)
    elif style == "integers":
        data = rng.integers(-8, 9, shape).astype(np.float64)
    else:
        data = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)
    with np.errstate(over="ignore"):
        return data.astype(dtype)


def _native(image, kernel) -> str:
    return native_precision(image, kernel)


def _values_truth(rng, truth: dict, outs: int, baseline: str) -> None:
    """One of the Values of issue 9, drawn into `truth`: a bias or scale per output channel,
    an activation, or the type the result is stored in."""
    choice = str(rng.choice(["channel_bias", "channel_scale", "relu", "relu6", "output_precision"]))
    if choice == "channel_bias" and outs > 1:
        truth["bias"] = tuple(float(v) for v in np.round(rng.uniform(-2, 2, outs), 3))
    elif choice == "channel_scale" and outs > 1:
        truth["scale"] = tuple(float(v) for v in rng.choice([0.5, 2.0, 1 / 9, -1.0, 3.0], outs, replace=False))
    elif choice in ("relu", "relu6"):
        truth["activation"] = choice
    elif choice == "output_precision":
        # Half-precision inputs summed and kept in float32; anything else rounded to integers.
        truth["output_precision"] = "float32" if baseline in ("bfloat16", "float16") else \
            str(rng.choice(["uint8", "int8"]))


def _geometry(truth: dict, padding: str, precision: str) -> dict:
    """The `reproduce` arguments of a truth (without its activation and output type)."""
    return {**{k: v for k, v in truth.items() if k not in ("activation", "output_precision")},
            "padding": padding, "precision": precision}


def make_case(index: int, values: bool = False) -> Optional[Case]:
    """Case `index`: the same arrays on every run. With `values`, its variant with one of
    issue 9's Values added (drawn from a generator of its own, so case `index` itself stays
    what it always was): None for a garbage or NaN case, which has no variant."""
    rng = np.random.default_rng([SEED, index])
    h, w = (int(x) for x in rng.integers(1, 13, 2))
    channels = int(rng.choice([1, 1, 1, 2, 3]))
    outs = int(rng.choice([1, 1, 2]))
    kh, kw = (int(x) for x in rng.integers(1, 6, 2))
    image_dtype = INPUT_DTYPES[rng.integers(len(INPUT_DTYPES))]
    kernel_dtype = INPUT_DTYPES[rng.integers(len(INPUT_DTYPES))]
    image = _values(rng, (h, w, channels), image_dtype)
    kernel = _values(rng, (kh, kw, channels, outs), kernel_dtype)
    baseline = _native(image, kernel)
    kind = str(rng.choice(["exact", "transformed", "corrupted", "garbage", "nan"],
                          p=[0.25, 0.35, 0.25, 0.1, 0.05]))
    if values:
        if kind in ("garbage", "nan"):
            return None
        kind = "transformed" if kind == "exact" else kind
    truth: dict = {}
    if kind in ("transformed", "corrupted") and rng.random() < (0.9 if kind == "transformed" else 0.5):
        for name in rng.choice(["kernel_transform", "padding", "boundary", "offset", "precision",
                                "bias", "scale"], size=int(rng.integers(1, 3)), replace=False):
            if name == "kernel_transform":
                truth[name] = str(rng.choice(TRANSFORMS))
            elif name == "padding":
                options = ["full"] + (["valid"] if max(kh, kw) <= min(h, w) else [])  # any transform
                truth[name] = str(rng.choice(options))
            elif name == "boundary":
                truth[name] = str(rng.choice(BOUNDARIES))
            elif name == "offset":
                truth[name] = (int(rng.integers(-1, 2)), int(rng.integers(-1, 2)))
            elif name == "precision":
                narrower = [p for p in ("float32", "bfloat16", "float16") if _BITS[p] < _BITS[baseline]]
                if narrower:
                    truth[name] = str(rng.choice(narrower))
            elif name == "bias":
                truth[name] = float(np.round(rng.standard_normal(), 3)) or 0.5
            elif name == "scale":
                truth[name] = float(rng.choice([0.5, 2.0, 1 / 9, -1.0, 3.0]))
    if values:   # the issue 9 Values: one of them
        _values_truth(np.random.default_rng([SEED, index, 9]), truth, outs, baseline)
    if "output_precision" in truth and truth["output_precision"] != "float32":
        truth.pop("precision", None)     # integer outputs are judged at float32 or wider only
    precision = truth.get("precision", baseline)
    padding = truth.get("padding", "same")
    if "offset" in truth:
        out_h = _axis(padding, h, kh, 1, 1)[0]
        out_w = _axis(padding, w, kw, 1, 1)[0]
        if truth["offset"] == (0, 0):
            del truth["offset"]
    values, _ = reproduce(image.astype(np.float64), kernel.astype(np.float64), **_geometry(truth, padding, precision))
    activation, stored = truth.get("activation", "linear"), truth.get("output_precision")
    if stored in _INTEGERS:
        # The integer type whose range holds most of the values (else no integer output).
        stored = next((name for name in (("uint8", "int8", "uint16", "int16") if stored == "uint8" else
                                         ("int8", "uint8", "int16", "uint16"))
                       if np.mean((finish(values, activation) > np.iinfo(_INTEGERS[name]).min)
                                  & (finish(values, activation) < np.iinfo(_INTEGERS[name]).max)) >= 0.5), None)
        if stored is None:
            truth.pop("output_precision")
        else:
            truth["output_precision"] = stored
    output = store_output(finish(values, activation, stored), precision, stored)
    if kind == "corrupted":
        flat = output.astype(np.float64).ravel()
        # A compared element: under an offset the contract leaves the edge rows/cols out.
        dy, dx = truth.get("offset", (0, 0))
        out_h, out_w, outs = output.shape
        dy, dx = (dy if _leaves_out(dy, out_h) else 0), (dx if _leaves_out(dx, out_w) else 0)
        row = int(rng.integers(max(0, -dy), out_h - max(0, dy)))
        col = int(rng.integers(max(0, -dx), out_w - max(0, dx)))
        at = (row * out_w + col) * outs + int(rng.integers(outs))
        _, mags = reproduce(image.astype(np.float64), kernel.astype(np.float64),
                            **_geometry(truth, padding, precision))
        delta = 0.25 * (mags.ravel()[at] + abs(flat[at])) + 1e-3 * float(np.max(np.abs(flat))) + 1.0
        sign = rng.choice([-1.0, 1.0])
        low, high = limits("linear", truth.get("output_precision"))
        if (high is not None and flat[at] >= high) or (low is not None and flat[at] <= low):
            sign = -1.0 if high is not None and flat[at] >= high else 1.0   # away from saturation
        with np.errstate(invalid="ignore", over="ignore"):
            flat[at] += delta * sign
        output = store_output(flat.reshape(output.shape), precision, truth.get("output_precision"))
    elif kind == "garbage":
        scale = float(np.max(np.abs(values))) or 1.0
        output = store_output(rng.standard_normal(values.shape) * scale, precision, truth.get("output_precision"))
    elif kind == "nan":
        output = output.astype(np.float64)
        output.ravel()[int(rng.integers(output.size))] = np.nan
    return Case(index, kind, image, kernel, output, "same", truth)


# ----------------------------------------------------------------------------- oracle


def _changed(diagnosis) -> dict:
    e = diagnosis.explanation
    return {f: getattr(e, f) for f in e.changed_fields(diagnosis.baseline)}


def _fields(expl) -> dict:
    return {"kernel_transform": expl.kernel_transform, "padding": expl.padding, "boundary": expl.boundary,
            "offset": tuple(expl.offset), "precision": expl.precision, "scale": expl.scale, "bias": expl.bias,
            "stride": tuple(expl.stride), "dilation": tuple(expl.dilation), "cval": expl.cval}


def _reproduces(case: Case, expl, loose: float) -> bool:
    """Does the claimed computation, reproduced here, give the output within `loose` of |values|?

    The activation and an integer output type are applied as claimed (clip, round and
    saturate), with half an integer unit more allowed for the rounding; a clipped element
    must then sit where the claimed values are clipped too.
    """
    values, mags = reproduce(case.image.astype(np.float64), case.kernel.astype(np.float64), **_fields(expl))
    stored = expl.output_precision
    values = finish(values, expl.activation, stored)
    output = np.asarray(case.output, dtype=np.float64).reshape(values.shape)
    tol = loose * (mags + np.abs(values)) + 4 * np.spacing(np.abs(values)) + 1e-300 \
        + (0.5 if stored in _INTEGERS else 0.0)
    ok = np.abs(output - values) <= tol
    # CONTRACT section 2: under an offset only the elements whose shifted window the
    # reference has are compared; the rest must still be few (see the engine).
    (sy, sx), (dy, dx) = expl.stride, expl.offset
    rows = np.arange(values.shape[0]) * sy + dy
    cols = np.arange(values.shape[1]) * sx + dx
    row_in = (rows >= 0) & (rows <= (values.shape[0] - 1) * sy) | (not _leaves_out(dy, values.shape[0]))
    col_in = (cols >= 0) & (cols <= (values.shape[1] - 1) * sx) | (not _leaves_out(dx, values.shape[1]))
    return bool(np.all(ok | ~(row_in[:, None, None] & col_in[None, :, None])))


def _leaves_out(shift: int, size: int) -> bool:
    """The contract's rule as convcheck applies it: only a one-pixel offset on an axis of at
    least 8 outputs leaves out the elements the reference has no window for."""
    return abs(shift) == 1 and size >= 8


def _matches_truth(diagnosis, truth: dict) -> bool:
    claimed = _changed(diagnosis)
    expected = {k: v for k, v in truth.items()}
    expected.setdefault("padding", diagnosis.baseline.padding)

    def same(fields):
        for name in set(fields) | set(expected):
            a = fields.get(name, getattr(diagnosis.baseline, name))
            b = expected.get(name, getattr(diagnosis.baseline, name))
            if name in ("bias", "scale"):   # a number, or one per channel
                if not np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-3, atol=1e-6):
                    return False
            elif (tuple(a) if isinstance(a, (list, tuple)) else a) != (tuple(b) if isinstance(b, (list, tuple)) else b):
                return False
        return True

    if same(claimed):
        return True
    return any(same({f: getattr(a, f) for f in a.changed_fields(diagnosis.baseline)})
               for a in diagnosis.alternatives)


def judge(case: Case) -> tuple[str, str]:
    """(outcome, detail): outcome is 'ok', 'cannot decide', 'crash', 'false verdict' or 'false alarm'."""
    try:
        d = convcheck.explain(case.image, case.kernel, case.output, padding=case.padding)
    except convcheck.InputError as exc:
        if not np.all(np.isfinite(np.asarray(case.output, dtype=np.float64))):
            return "ok", "refused a non-finite output"  # NaN, or a value that overflowed its dtype
        return "crash", f"InputError: {exc}"
    except Exception as exc:  # noqa: BLE001 - any other exception is the bug we look for
        return "crash", f"{type(exc).__name__}: {exc}"
    if d.verdict is Verdict.UNEXPLAINED:
        if case.kind in ("exact", "transformed"):
            return ("cannot decide", d.reason or "") if d.cannot_decide else ("false alarm", str(d.notes))
        return "ok", "unexplained"
    claimed = d.explanation
    # Whatever is claimed must reproduce the output, by our own code, within a loose 2^-6 of the
    # magnitudes (far looser than any bound; a real miss is a 25% corruption or garbage).
    if not _reproduces(case, claimed, 2.0 ** -6):
        return "false verdict", f"{d.verdict}: {_changed(d) if d.explanation else {}} does not reproduce it"
    if case.kind in ("exact", "transformed"):
        if d.verdict is Verdict.EQUAL and not case.truth:
            return "ok", "equal"
        if _matches_truth(d, case.truth):
            return "ok", str(d.verdict)
        # A different claim that reproduces the output is fine only when it is no more
        # complex than the truth (the truth was degenerate here: e.g. a boundary never read).
        if len(_changed(d)) <= len(case.truth):
            return "ok", "degenerate truth"
        return "false verdict", f"claimed {_changed(d)}, truth {case.truth}"
    return "false verdict", f"{case.kind} output called {d.verdict}: {_changed(d)}"


def run(indices) -> Counter:
    """Judge every case; returns the outcome counts and prints failures."""
    counts: Counter = Counter()
    failures = []
    for index in indices:
        # Every fourth index also has its Values variant (replayed as '<index>v').
        for values in (False, True) if index % VALUES_EVERY == 0 else (False,):
            case = make_case(index, values)
            if case is None:
                continue
            outcome, detail = judge(case)
            counts[outcome] += 1
            counts[f"kind:{case.kind}"] += 1
            counts["values variants"] += values
            if outcome in ("crash", "false verdict", "false alarm"):
                failures.append((f"{index}{'v' if values else ''}", case.kind, outcome, detail))
    for failure in failures[:20]:
        print("FAIL case %s (%s): %s: %s" % failure)
    return counts


VALUES_EVERY = 4


if __name__ == "__main__":
    if len(sys.argv) == 2:
        case = make_case(int(sys.argv[1].rstrip("v")), sys.argv[1].endswith("v"))
        print(case.kind, case.truth, case.image.dtype, case.image.shape, case.kernel.dtype, case.kernel.shape,
              case.output.dtype, case.output.shape)
        print(judge(case))
    else:
        start, stop = int(sys.argv[1]), int(sys.argv[2])
        print(dict(sorted(run(range(start, stop)).items())))
