"""Scale (issue 12): the block-by-block evaluation gives the numbers of the whole-output one,
the correlation methods agree, evidence and statistics read in bounded memory are the
same, and `check` holds one case at a time. No timings here (see benchmarks/run.py)."""

from __future__ import annotations

import gc
import weakref
from dataclasses import astuple, replace

import numpy as np
import pytest
import scipy.signal

from convcheck.check import run as check_run
from convcheck import engine
from convcheck.engine import threads
from convcheck.engine.evaluation import evaluate_full
from convcheck.engine.precision import SMALLEST_NORMAL
from convcheck.engine.problem import Problem
from convcheck.engine.statistics import Differences
from convcheck.engine.summary import diagnosis_stats
from convcheck.engine.verdict import expected_computation
from convcheck.geometry import output_size
from convcheck.engine import evidence as ev
from convcheck.engine import precision as prec
from convcheck.check import load_suite, run_suite
from convcheck.inputs import prepare_inputs
from convcheck.engine.reference import correlate, correlate_blocks, reference
from convcheck.vocabulary import BOUNDARIES, Explanation

from .check_data import case, write_config

RNG = np.random.default_rng(12)


# ----------------------------------------------------------------------------- correlation


@pytest.mark.parametrize("kh, kw, channels, outs, stride, dilation", [
    (7, 7, 1, 1, (1, 1), (1, 1)),      # banded products
    (5, 3, 2, 3, (2, 1), (1, 2)),      # banded, strided and dilated
    (3, 3, 8, 8, (1, 1), (1, 1)),      # im2col
    (2, 2, 5, 4, (1, 2), (2, 1)),      # shifted slices
])
def test_every_method_computes_the_same_sums(kh, kw, channels, outs, stride, dilation):
    image = RNG.standard_normal((2, 37, 29, channels))
    kernel = RNG.standard_normal((kh, kw, channels, outs))
    values, mags = correlate(image, kernel, boundary="reflect", offset=(1, -2), magnitude=True, stride=stride,
                             dilation=dilation)
    exact, exact_mags = correlate(image, kernel, boundary="reflect", offset=(1, -2), magnitude=True,
                                  stride=stride, dilation=dilation, method="shifted")
    # Any order of the same float64 products: within gamma_n(2^-53) of each other.
    slack = 2 * (kh * kw * channels + 2) * 2.0 ** -53 * exact_mags
    assert np.all(np.abs(values - exact) <= slack) and np.all(np.abs(mags - exact_mags) <= slack)


def test_blocks_cover_the_output_once_and_read_the_boundary_rule():
    image = RNG.standard_normal((1, 23, 19, 1))
    kernel = RNG.standard_normal((5, 4, 1, 1))
    for boundary in BOUNDARIES + (("zero", "wrap"),):
        # Summed tap by tap, a block's values are bitwise those of the whole output.
        whole, _ = correlate(image, kernel, boundary=boundary, offset=(-3, 2), method="shifted")
        seen = np.zeros(whole.shape, dtype=int)
        for n, i0, values, _ in correlate_blocks(image, kernel, boundary=boundary, offset=(-3, 2),
                                                 block_elements=40, method="shifted"):
            rows = slice(i0, i0 + values.shape[0])
            seen[n, rows] += 1
            assert np.array_equal(values, whole[n, rows])
        assert np.all(seen == 1)


def test_identical_windows_give_identical_values_tap_by_tap():
    # A flat image: every interior window is the same, so its values must be too.
    image = np.full((1, 40, 40, 1), 0.1)
    kernel = RNG.standard_normal((9, 9, 1, 1))
    values, _ = correlate(image, kernel, padding="valid", method="shifted")
    assert np.unique(values).size == 1


def test_rounding_blocks_is_rounding_the_image():
    image = RNG.standard_normal((1, 30, 30, 1)) * 1e3
    kernel = RNG.standard_normal((3, 3, 1, 1))
    blocked, _ = correlate(image, kernel, prepare=prec.rounder("float16"))
    whole, _ = correlate(prec.round_to(image, "float16"), kernel)
    assert np.array_equal(blocked, whole)


# ----------------------------------------------------------------------------- the engine


def _problem(image, kernel, output):
    inputs = prepare_inputs(image, kernel, np.nan_to_num(output))
    # A backend's output may hold NaN (an overflow), which input files may not: set it directly.
    inputs = replace(inputs, output=np.asarray(output).reshape(inputs.output.shape))
    return Problem(inputs, expected_computation(inputs, "same", (1, 1), (1, 1), None), None)


CASES = [
    # (description, image, kernel, output, explanation fields)
    ("equal", lambda x, k: reference(x, k), {}),
    ("flipped, float32", lambda x, k: scipy.signal.convolve2d(x.astype(np.float32), k.astype(np.float32),
                                                             mode="same"),
     {"kernel_transform": "rot180", "precision": "float32"}),
    ("reflected border", lambda x, k: scipy.signal.correlate2d(np.pad(x, 1, mode="reflect"), k, mode="valid"),
     {"boundary": "reflect"}),
    ("rolled", lambda x, k: np.roll(reference(x, k), 1, axis=0), {"offset": (-1, 0)}),
    ("corrupted", lambda x, k: reference(x, k) + np.where(np.arange(x.size).reshape(x.shape) == 77, 1.0, 0.0), {}),
    ("NaN", lambda x, k: np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, reference(x, k)), {}),
]


def assert_blocks_hold_like_the_whole(blocks, whole, where=""):
    """The block path (evaluation._evaluate_blocks) holds each element to a bound on a lower
    bound of its magnitude, and gives the exact bound only to elements beyond it: the same
    elements fail, with the same residuals; the bounds it reports are no wider, and the
    evidence it weighs on them no larger (A / B(A) grows with A: fewer bits, never more)."""
    assert blocks.bad == whole.bad and np.array_equal(blocks.mismatch, whole.mismatch), where
    np.testing.assert_equal(blocks.max_residual, whole.max_residual, err_msg=str(where))
    assert np.isnan(blocks.max_bound) == np.isnan(whole.max_bound), where
    assert not blocks.max_bound > whole.max_bound, where
    assert np.isnan(blocks.worst_ratio) == np.isnan(whole.worst_ratio), where
    assert not blocks.worst_ratio < whole.worst_ratio, where
    assert blocks.compared == whole.compared, where
    assert (blocks.evidence is None) == (whole.evidence is None), where
    if whole.evidence is not None:
        b, w = blocks.evidence, whole.evidence
        assert (b.compared, b.fitted, b.clipped) == (w.compared, w.fitted, w.clipped), where
        assert b.bits <= w.bits * (1 + 1e-12) + 1e-9 and b.informative <= w.informative, where


@pytest.mark.parametrize("description, make, fields", CASES, ids=[c[0] for c in CASES])
def test_blocks_give_the_numbers_of_the_whole_output(description, make, fields):
    image = RNG.standard_normal((33, 41))
    kernel = RNG.standard_normal((3, 3))
    problem = _problem(image, kernel, make(image, kernel))
    expl = problem.baseline.with_(**fields)
    whole, values = evaluate_full(problem, expl, "none", needed=30.0, keep_arrays=True)
    blocks, differences = evaluate_full(problem, expl, "none", needed=30.0)
    assert_blocks_hold_like_the_whole(blocks, whole, description)
    # The statistics read from the summary are those of the values themselves.
    if not fields:
        assert isinstance(differences, Differences)
        old = diagnosis_stats(problem, values, whole, whole, tuple)
        new = diagnosis_stats(problem, differences, blocks, blocks, tuple)
        # NaN statistics equal too; the bound and the ratio to it are those each element
        # was held to (checked above).
        bound_fields = {"error_bound": None, "bound_ratio": None}
        np.testing.assert_equal(astuple(replace(old, **bound_fields)), astuple(replace(new, **bound_fields)))


def test_evidence_of_a_large_output_is_that_of_every_position(monkeypatch):
    image = RNG.standard_normal((90, 80))
    kernel = RNG.standard_normal((5, 5))
    output = scipy.signal.convolve2d(image.astype(np.float32), kernel.astype(np.float32), mode="same")
    problem = _problem(image, kernel, output)
    expl = problem.baseline.with_(kernel_transform="rot180", precision="float32")
    kept = evaluate_full(problem, expl, "none", needed=30.0)[0].evidence
    # Few positions kept per output: bits at the subset's positions, the rest computed again.
    monkeypatch.setattr(ev.RowBits, "KEEP_ALL", 100)
    monkeypatch.setattr(ev, "_SUBSET", 50)
    sparse = evaluate_full(problem, expl, "none", needed=30.0)[0].evidence
    monkeypatch.setattr(ev.RowBits, "KEEP_ALL", 1 << 30)
    full = evaluate_full(problem, expl, "none", needed=30.0)[0].evidence
    assert kept.decisive and sparse.decisive and full.decisive
    assert sparse.compared == full.compared and sparse.informative == full.informative
    assert sparse.bits == pytest.approx(full.bits, rel=1e-12)


def test_row_bits_rank_positive_positions_like_flatnonzero():
    rows = np.where(RNG.random(3000) < 0.4, RNG.random(3000), 0.0)
    for keep_all in (1 << 20, 10):
        kept = ev.RowBits(rows.size, bits_at=lambda chosen: rows[chosen])
        kept.KEEP_ALL = keep_all
        kept.__init__(rows.size, bits_at=lambda chosen: rows[chosen])
        for start in range(0, rows.size, 700):
            kept.put(start, rows[start:start + 700])
        ranks = np.array([0, 5, 17, 400, kept.positive_count() - 1])
        chosen, bits = kept.ranked(ranks)
        assert np.array_equal(chosen, np.flatnonzero(rows > 0)[ranks]) and np.array_equal(bits, rows[chosen])


def test_representable_reads_blocks_and_treats_nan_as_not_stored():
    values = RNG.standard_normal((3000, 700)).astype(np.float32).astype(np.float64)
    assert prec.representable(values, "float32") and prec.representable(values.T, "float32")
    values[2999, 699] = 0.1
    assert not prec.representable(values, "float32")
    assert not prec.representable(np.array([[1.0, np.nan]], dtype=np.float32), "float32")
    assert prec.representable(np.array([[1.0, 2.0]], dtype=np.float16), "float32")


def test_stats_read_non_contiguous_outputs():
    # A transposed (swapped) output is a view: its statistics need no copy and no ravel.
    image = RNG.standard_normal((20, 30))
    kernel = RNG.standard_normal((3, 3))
    output = np.ascontiguousarray(reference(image, kernel).T).T + 1e-3
    d = engine.explain(image, kernel, output)
    assert d.stats.max_abs_diff == pytest.approx(1e-3, rel=1e-6)


# ----------------------------------------------------------------------------- check


def test_check_holds_one_case_at_a_time(tmp_path, monkeypatch):
    image = RNG.standard_normal((16, 16))
    kernel = RNG.standard_normal((3, 3))
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "kernel.npy", kernel)
    np.save(tmp_path / "correlated.npy", reference(image, kernel))
    config = write_config(tmp_path, *(case(f"c{i}", "correlated") for i in range(6)))
    alive: list[weakref.ref] = []
    load = check_run._load

    def tracked(case_, config_):
        inputs = load(case_, config_)
        alive.append(weakref.ref(inputs.image))
        return inputs

    peaks: list[int] = []

    def progress(done, total, name):
        gc.collect()
        peaks.append(sum(ref() is not None for ref in alive))

    monkeypatch.setattr(check_run, "_load", tracked)
    monkeypatch.setattr(check_run, "_KEPT_BYTES", 0)   # nothing kept from the validation pass
    report = run_suite(load_suite(config), progress=progress)
    assert [c.status for c in report.cases] == ["pass"] * 6
    assert len(alive) == 12          # every case validated, then loaded again to run
    assert max(peaks) == 0           # before each case runs, no earlier case's arrays are alive


def test_check_keeps_validated_cases_within_its_budget(tmp_path, monkeypatch):
    image = RNG.standard_normal((16, 16))
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "kernel.npy", RNG.standard_normal((3, 3)))
    np.save(tmp_path / "correlated.npy", reference(image, np.load(tmp_path / "kernel.npy")))
    config = write_config(tmp_path, *(case(f"c{i}", "correlated") for i in range(6)))
    loads = []
    load = check_run._load
    monkeypatch.setattr(check_run, "_load", lambda c, p: loads.append(c.name) or load(c, p))
    one_case = 3 * image.nbytes + 9 * 8
    monkeypatch.setattr(check_run, "_KEPT_BYTES", 2 * one_case)
    run_suite(load_suite(config))
    # Two cases fit the budget and load once; the other four load again when they run.
    assert len(loads) == 6 + 4


# ----------------------------------------------------------------------------- plot


def test_plot_draws_at_most_max_rows_and_names_the_rest(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from convcheck import plot
    image = RNG.standard_normal((12, 12))
    kernel = RNG.standard_normal((3, 3))
    flipped = engine.explain(image, kernel, scipy.signal.convolve2d(image, kernel, mode="same"), keep_arrays=True)
    monkeypatch.setattr(plot, "MAX_ROWS", 2)
    path = tmp_path / "capped.png"
    plot.save_plot([(f"r{i}", flipped) for i in range(5)], path)
    import matplotlib.image
    height = matplotlib.image.imread(path).shape[0]
    assert 2 * 400 <= height < 3 * 400          # two rows of 4 inches and a one-inch note, at 100 dpi


def test_explanation_dict_is_unchanged_by_the_faster_copy():
    expl = Explanation(kernel_transform="rot180", boundary=("zero", "wrap"), offset=(1, -1), precision="tfloat32",
                       scale=2.0, bias=0.5)
    d = expl.to_dict()
    assert d["boundary"] == ["zero", "wrap"] and d["offset"] == [1, -1] and d["output_precision"] == "float32"
    assert list(d) == list(Explanation().to_dict())


def test_equal_windows_count_once_even_when_their_sums_differ():
    # A matrix product may sum two equal windows in different orders (ulps apart): those
    # positions are still one draw; windows are read only when values come that close.
    values = np.array([[1.0], [1.0 + 2.0 ** -50], [5.0]])
    keys = ev.window_keys(np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 4.0]]))
    assert list(ev._first_of_each(values, lambda: keys, spread=1e-12)) == [0, 2]
    assert list(ev._first_of_each(values, lambda: pytest.fail("windows read"), spread=1e-20)) == [0, 1, 2]
    assert ev.same_window_spread(49, 2.0, 3.0) == pytest.approx(2 * 49 * 2.0 ** -53 * 49 * 6.0 * 1.01, rel=1e-6)
    large = RNG.standard_normal((3, 1000))
    large[2] = large[0]
    assert list(ev._first_of_each(np.array([[1.0], [2.0], [1.0 + 2.0 ** -50]]), lambda: ev.window_keys(large),
                                  spread=1e-12)) == [0, 1]


def test_a_flat_batch_counts_its_identical_windows_once():
    # Many channels: the sums are matrix products; every interior window of a flat image is
    # the same draw, so the evidence is that of the few distinct windows, not of thousands.
    image = np.full((1, 24, 24, 8), 0.5)
    kernel = RNG.standard_normal((3, 3, 8, 8))
    d = engine.explain(image, kernel, reference(image, kernel))
    distinct = engine.explain(image[:, :5, :5], kernel, reference(image[:, :5, :5], kernel))
    assert d.evidence["bits"] == pytest.approx(distinct.evidence["bits"], rel=1e-9)


def test_blocks_match_the_whole_output_over_random_geometries():
    """Seeded draws over what the block path must handle like the whole-output one: batches,
    strides, dilation, groups, offsets (partly compared rows and columns), boundaries, half
    precision inputs, float32/half/float64 outputs, NaN and corrupted elements."""
    import ml_dtypes

    rng = np.random.default_rng(4)
    compared = 0
    for _ in range(60):
        batch, channels = int(rng.integers(1, 3)), int(rng.choice([1, 2, 4]))
        groups = int(rng.choice([1, 2])) if channels % 2 == 0 else 1
        height, width = (int(v) for v in rng.integers(6, 20, 2))
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        outs = groups * int(rng.integers(1, 3))
        stride = tuple(int(v) for v in rng.integers(1, 3, 2))
        dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
        padding = str(rng.choice(["same", "valid", "full"]))
        oh, ow = output_size(padding, height, width, kh, kw, stride, dilation)
        if oh <= 0 or ow <= 0:
            continue
        half = [np.float16, ml_dtypes.bfloat16][int(rng.integers(2))]
        image = rng.standard_normal((batch, height, width, channels)).astype(half)
        kernel = rng.standard_normal((kh, kw, channels // groups, outs)).astype(half)
        offset = (int(rng.integers(-2, 3)), int(rng.integers(-2, 3)))
        boundary = str(rng.choice(["zero", "reflect", "edge", "wrap"]))
        values, _ = correlate(image.astype(np.float64), kernel.astype(np.float64), padding=padding,
                              boundary=boundary, offset=offset, stride=stride, dilation=dilation, groups=groups)
        output = values.astype([np.float32, half, np.float64][int(rng.integers(3))])
        if rng.random() < 0.2:
            output.flat[rng.integers(output.size)] = np.nan
        if rng.random() < 0.2:
            output.flat[rng.integers(output.size)] += 1
        inputs = prepare_inputs(image, kernel, np.nan_to_num(output))
        inputs = replace(inputs, output=output)
        problem = Problem(inputs, expected_computation(inputs, padding, stride, dilation, groups), None)
        for q in problem.precisions:
            expl = problem.baseline.with_(boundary=boundary, offset=offset, precision=q, groups=groups,
                                          output_precision=problem.storage[q])
            whole, _ = evaluate_full(problem, expl, "none", needed=30.0, keep_arrays=True)
            blocks, _ = evaluate_full(problem, expl, "none", needed=30.0)
            where = (batch, height, width, channels, groups, kh, kw, outs, stride, dilation, padding, offset,
                     boundary, q)
            assert_blocks_hold_like_the_whole(blocks, whole, where)
            compared += 1
    assert compared >= 60


def test_window_keys_treat_negative_zero_as_zero():
    a = np.array([[0.0, 2.0, 2.0]])
    b = np.array([[-0.0, 2.0, 2.0]])
    assert ev.window_keys(a)[0] == ev.window_keys(b)[0]


def test_groups_and_first_rows_are_those_of_unique():
    # evidence sorts by itself (np.unique's first call imports numpy.ma): the same partition
    # of rows, and the same first row of each group, over values with -0.0, NaN and repeats.
    rng = np.random.default_rng(20261125)

    def partition(labels):
        first: dict = {}
        return [first.setdefault(label, i) for i, label in enumerate(labels)]

    for trial in range(600):
        n, k = int(rng.integers(0, 40)), int(rng.choice([1, 2, 3, 64]))
        dtype = (np.float64, np.float32, np.float16)[trial % 3]
        rows = rng.integers(-2, 3, (n, k)).astype(dtype)
        rows[rng.random((n, k)) < 0.2] = -0.0
        rows[rng.random((n, k)) < 0.05] = np.inf
        if trial % 4 == 0:
            rows[rng.random((n, k)) < 0.1] = np.nan
        if trial % 5 == 0:
            rows = np.asfortranarray(rows)   # not C-contiguous
        if k == 1:
            expected = np.unique(rows.reshape(n), return_inverse=True)[1].reshape(-1)
        else:
            expected = np.unique(rows, axis=0, return_inverse=True)[1].reshape(-1)
        keys = ev.window_keys(rows.reshape(n, k, 1))
        for got, want in ((ev._groups(rows), expected),
                          (ev._groups(keys), np.unique(keys, return_inverse=True)[1].reshape(-1))):
            assert partition(got) == partition(want), (trial, rows)
            assert np.array_equal(ev._first_rows(got), np.unique(got, return_index=True)[1])


def test_blocks_shared_between_two_threads_sum_alike(monkeypatch):
    from convcheck.engine import reference as ref
    image = RNG.standard_normal((1, 40, 40, 64))
    kernel = RNG.standard_normal((3, 3, 64, 64))   # blocks of 455 x 576 x 64: over _THREADED_PRODUCT
    assert 455 * 576 * 64 >= ref._THREADED_PRODUCT
    threads = []
    real = ref.Workspace.helper

    def helper(self):
        threads.append(1)
        return real(self)

    monkeypatch.setattr(ref.Workspace, "helper", helper)
    monkeypatch.setattr(ref, "cores", lambda: 2)
    with ref.single_threaded_blas():
        values, mags = correlate(image, kernel, magnitude=True)
    assert threads   # a second thread took blocks
    exact, exact_mags = correlate(image, kernel, magnitude=True, method="shifted")
    slack = 2 * (3 * 3 * 64 + 2) * 2.0 ** -53 * exact_mags
    assert np.all(np.abs(values - exact) <= slack) and np.all(np.abs(mags - exact_mags) <= slack)


def test_rows_with_the_same_output_bytes_share_one_diagnosis(monkeypatch):
    from convcheck import comparison
    from convcheck.comparison import compare, demo_paths
    diagnosed, outputs = [], {}
    real_diagnose, real_run = comparison.diagnose, comparison._run_backend

    def counting(inputs, **options):
        diagnosed.append(comparison._digest(inputs.output))
        return real_diagnose(inputs, **options)

    def recording(backend, inputs, **options):
        ran = real_run(backend, inputs, **options)
        outputs[backend.name] = comparison._digest(ran[0])
        return ran

    monkeypatch.setattr(comparison, "diagnose", counting)
    monkeypatch.setattr(comparison, "_run_backend", recording)
    image, kernel = (np.load(path) for path in demo_paths())
    kernel = kernel + kernel[::-1, ::-1]   # symmetric: a convolution and a correlation compute the same sums
    rows = {row.backend: row for row in compare(image, kernel, backends=["scipy"]).results}
    assert all(row.status == "ok" for row in rows.values()) and set(rows) == set(outputs)
    # Each distinct output diagnosed once; rows share a diagnosis exactly when their bytes agree.
    assert sorted(diagnosed) == sorted(set(outputs.values()))
    for a in rows:
        for b in rows:
            assert (rows[a].diagnosis is rows[b].diagnosis) == (outputs[a] == outputs[b]), (a, b)
    # scipy.ndimage's convolve runs its correlate on the flipped kernel: on a symmetric kernel, the same bits.
    assert outputs["scipy.ndimage.convolve"] == outputs["scipy.ndimage.correlate"]
    assert len(set(outputs.values())) < len(outputs)


def test_smallest_normals_are_those_of_finfo():
    import ml_dtypes
    for precision, tiny in SMALLEST_NORMAL.items():
        assert tiny == float(ml_dtypes.finfo(prec.storage_type(precision)).tiny), precision


def test_bfloat16_representability_read_from_the_bits_agrees_with_rounding():
    rng = np.random.default_rng(16)
    cases = [rng.standard_normal(5000).astype(np.float32),
             prec.round_to(rng.standard_normal(5000), "bfloat16").astype(np.float32),
             np.array([np.inf, -np.inf, 0.0, -0.0, 2.0 ** -133], dtype=np.float32),   # a bfloat16 subnormal
             np.array([1.0, np.nan], dtype=np.float32), np.array([1.0 + 2.0 ** -20], dtype=np.float32)]
    for values in cases:
        exact = np.array_equal(prec.round_to(values, "bfloat16"), values.astype(np.float64))
        assert prec.representable(values, "bfloat16") == exact, values[:4]
    assert [prec.representable(v, "bfloat16") for v in cases] == [False, True, True, False, False]


def test_a_failure_in_the_second_thread_is_raised_not_lost(monkeypatch):
    from convcheck.engine import reference as ref

    class Failing(ref.Workspace):
        def get(self, *args, **kwargs):
            raise MemoryError("no room for the helper's buffers")

    monkeypatch.setattr(ref.Workspace, "helper", lambda self: Failing())
    monkeypatch.setattr(ref, "cores", lambda: 2)
    image = RNG.standard_normal((1, 40, 40, 64))
    kernel = RNG.standard_normal((3, 3, 64, 64))
    with pytest.raises(MemoryError, match="helper"):
        correlate(image, kernel, magnitude=True)


# ----------------------------------------------------------------------------- blocks on two threads


def _padded_correlation(image, kernel, *, padding, offset, stride, dilation, cval):
    """An independent 'zero'/'constant' correlation: np.pad with `cval` on every side, then
    each window summed tap by tap (the layouts of reference.correlate)."""
    from convcheck.geometry import output_size
    from convcheck.engine.windows import window_origin
    batch, height, width, _ = image.shape
    kh, kw, _, outs = kernel.shape
    out_h, out_w = output_size(padding, height, width, kh, kw, stride, dilation)
    top, left = window_origin(padding, (kh, kw), offset, (height, width), stride, dilation)
    margin = 40
    padded = np.pad(image, ((0, 0), (margin, margin), (margin, margin), (0, 0)), constant_values=cval)
    result = np.zeros((batch, out_h, out_w, outs))
    for u in range(kh):
        for v in range(kw):
            r0, c0 = margin + top + u * dilation[0], margin + left + v * dilation[1]
            taps = padded[:, r0:r0 + (out_h - 1) * stride[0] + 1:stride[0], c0:c0 + (out_w - 1) * stride[1] + 1:stride[1]]
            result += taps @ kernel[u, v]
    return result


@pytest.mark.parametrize("dtype, boundary, cval, prepare", [
    (np.float32, "zero", 0.0, None),              # another type: read into a block of our own
    (np.float64, "zero", 0.0, "float16"),         # rounded block by block
    (np.float64, "constant", 2.5, "bfloat16"),    # the fill is not rounded
    (np.float16, ("constant", "zero"), -1.0, None),
])
def test_zero_and_constant_blocks_are_slices_of_the_padded_image(dtype, boundary, cval, prepare):
    rng = np.random.default_rng(31)
    image = rng.standard_normal((2, 13, 11, 3)).astype(dtype)
    kernel = rng.standard_normal((3, 2, 3, 2))
    rounded = image if prepare is None else prec.round_to(image, prepare)
    for padding, offset, stride, dilation in [("same", (0, 0), (1, 1), (1, 1)), ("full", (2, -1), (2, 1), (1, 2)),
                                              ("same", (-20, 3), (1, 1), (1, 1)),   # blocks wholly in the padding
                                              ("valid", (1, 30), (1, 2), (2, 1))]:
        values, _ = correlate(image, kernel, padding=padding, boundary=boundary, offset=offset, stride=stride,
                              dilation=dilation, cval=cval, method="shifted",
                              prepare=None if prepare is None else prec.rounder(prepare))
        # 'zero' rows with a 'constant' column rule: the fill is the constant's (as correlate_blocks has it).
        expected = _padded_correlation(rounded.astype(np.float64), kernel, padding=padding, offset=offset,
                                       stride=stride, dilation=dilation, cval=cval)
        slack = 2 * (3 * 2 * 3 + 2) * 2.0 ** -53 * _padded_correlation(
            np.abs(rounded.astype(np.float64)), np.abs(kernel), padding=padding, offset=offset, stride=stride,
            dilation=dilation, cval=abs(cval))
        assert np.all(np.abs(values - expected) <= slack), (padding, offset)


def test_a_rounder_shared_by_two_threads_rounds_each_ones_blocks():
    import threading
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(1 << 18) * 1e3, rng.standard_normal(1 << 17) * 1e-3]
    expected = [prec.round_to(a, "float16") for a in arrays]
    rounder = prec.rounder("float16")
    start, wrong = threading.Barrier(2), []

    def run(index):
        start.wait()
        for _ in range(20):
            if not np.array_equal(rounder(arrays[index].copy()), expected[index]):
                wrong.append(index)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong


def _threads_used(monkeypatch, cores: int) -> list:
    """Force map_blocks onto `cores` threads (whatever the work); the list records, per
    workspace made, whether it could start a thread of its own (False: map_blocks shares)."""
    from convcheck.engine import reference as ref
    made = []
    real = ref.Workspace.__init__

    def init(self, threads=True):
        made.append(threads)
        real(self, threads)

    monkeypatch.setattr(ref.Workspace, "__init__", init)
    monkeypatch.setattr(ref, "cores", lambda: cores)
    monkeypatch.setattr(ref, "_THREADED_BLOCKS", 0)
    return made


def test_map_blocks_returns_each_blocks_result_in_order_on_two_threads(monkeypatch):
    from convcheck.engine import reference as ref
    made = _threads_used(monkeypatch, 2)
    rng = np.random.default_rng(8)
    image = rng.standard_normal((3, 20, 9, 2)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 2, 4))
    whole, whole_mags = correlate(image, kernel, magnitude=True, method="shifted")
    parts = ref.map_blocks(lambda n, i0, values, mags, space: (n, i0, values.copy(), mags.copy()), image, kernel,
                           magnitude=True, block_elements=4 * 9 * 4, method="shifted")   # 4 rows a block
    assert False in made   # the blocks were shared by two threads
    assert [(n, i0) for n, i0, _, _ in parts] == [(n, i0) for n in range(3) for i0 in range(0, 20, 4)]
    for n, i0, values, mags in parts:
        rows = slice(i0, i0 + values.shape[0])
        assert np.array_equal(values, whole[n, rows]) and np.array_equal(mags, whole_mags[n, rows])


def test_a_failing_block_on_either_thread_is_raised_and_the_blas_threads_restored(monkeypatch):
    from convcheck.engine import reference as ref
    _threads_used(monkeypatch, 2)
    before = [get() for get, _ in threads._openblas_threads()]
    image = np.ones((4, 16, 16, 2))
    kernel = np.ones((3, 3, 2, 2))
    for failing in range(0, 16, 3):
        def work(n, i0, values, mags, space, failing=failing):
            if n * 4 + i0 // 4 == failing:   # blocks of 4 rows, 4 a sample
                raise ValueError(f"block {failing}")
            return n
        with pytest.raises(ValueError, match=f"block {failing}"):
            ref.map_blocks(work, image, kernel, block_elements=4 * 16 * 2, method="shifted")
    assert [get() for get, _ in threads._openblas_threads()] == before


@pytest.mark.parametrize("make", ["equal", "corrupted", "float32 of float64 inputs", "offset"])
def test_two_threads_give_the_diagnosis_of_one(monkeypatch, make):
    from convcheck.engine import diagnose
    rng = np.random.default_rng(40)
    image = rng.standard_normal((4, 18, 15, 6))
    kernel = rng.standard_normal((3, 3, 6, 5))
    if make == "float32 of float64 inputs":
        output = reference(image.astype(np.float32), kernel.astype(np.float32)).astype(np.float32)
    else:
        image = image.astype(np.float32)
        output = reference(image, kernel.astype(np.float32)).astype(np.float32)
        if make == "corrupted":
            output[1, 4, 7, 2] += 0.5
            output[3, 17, 0, 4] -= 2.0
        elif make == "offset":
            output = np.roll(output, 1, axis=2)
    inputs = prepare_inputs(image, kernel, output)
    results = {}
    for cores in (1, 2):
        made = _threads_used(monkeypatch, cores)
        results[cores] = diagnose(inputs).to_json_dict()
        assert (False in made) == (cores == 2)
    assert results[1] == results[2]
