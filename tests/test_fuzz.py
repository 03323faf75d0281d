"""The seeded fuzzer (tests/fuzz.py) on a slice of its cases: no crash, no false verdict,
no false alarm. Deterministic: case i is the same arrays on every run. `make fuzz` runs
10,000 cases; FUZZ_CASES=N widens this test."""

import os

import pytest

from tests import fuzz

CASES = int(os.environ.get("FUZZ_CASES", "400"))
CHUNK = 150


@pytest.mark.parametrize("start", range(0, CASES, CHUNK))
def test_fuzz_slice_has_no_crash_false_verdict_or_false_alarm(start):
    counts = fuzz.run(range(start, min(start + CHUNK, CASES)))
    assert counts["crash"] == 0, counts
    assert counts["false verdict"] == 0, counts
    assert counts["false alarm"] == 0, counts
    # The data decide most cases: "cannot decide" stays the exception, not an escape hatch.
    assert counts["cannot decide"] <= CHUNK // 20, counts


def test_fuzz_cases_are_reproducible():
    a, b = fuzz.make_case(1234), fuzz.make_case(1234)
    assert a.kind == b.kind and a.truth == b.truth
    assert (a.output.tobytes(), a.image.tobytes()) == (b.output.tobytes(), b.image.tobytes())


def test_the_oracle_catches_a_false_claim():
    """The oracle itself can fail: a claim that does not reproduce the output is caught."""
    case = fuzz.make_case(next(i for i in range(100) if fuzz.make_case(i).kind == "garbage"))
    import numpy as np
    import convcheck

    expl = convcheck.Explanation(padding="same", precision="float64")
    assert not fuzz._reproduces(case, expl, 2.0 ** -6)
    assert np.all(np.isfinite(case.output.astype(float)))


# Cases the 10,000-case runs (`make fuzz`) once failed, beyond the slice above: a fitted
# border value absorbing a corrupted pixel (2885, a false verdict), a bias whose least-squares
# fit was two ulps off a 1x1 kernel's exact float64 values (1354) and a fitted scale + bias
# beyond a bound of one ulp (3147), both false alarms; a real bias claimed as 'algorithm fft'
# (1609, 2108v: false verdicts); float16 inputs rounded to bfloat16 with the result kept in
# float32, never searched (1600v, 1720v: false alarms); a 16-element output whose true cause
# (edge boundary, scale, a bias per channel) came after the eight whole-output checks then
# allowed (4404v: a false alarm); a float16 output of a scale and a bias called unattainable in
# float16 for a fit 1e-4 off the truth's scale (7904: half_storage_unattainable now allows the
# fit's own spread); bfloat16 with a scale per channel and a bias whose fit left one element
# just outside the bound it moved to (2620v: fit_within takes the intervals again at the new
# bound; "cannot decide" now), both false alarms; a true 'boundary symmetric' / 'offset' under a
# ReLU6 on data of few bits, whose output's values a half format holds by exact arithmetic, once
# refuted as float32 storage for every candidate from the expected computation's reference
# (160v, 5552v: false alarms of this session's first stored-value rule).
@pytest.mark.parametrize("index", ["1354", "2885", "3147", "1609", "2108v", "1600v", "1720v", "4404v", "7904",
                                   "2620v", "160v", "5552v"])
def test_cases_the_long_run_found_stay_fixed(index):
    outcome, detail = fuzz.judge(fuzz.make_case(int(index.rstrip("v")), values=index.endswith("v")))
    assert outcome in ("ok", "cannot decide"), (index, outcome, detail)

