"""convcheck.worker: diagnoses made in a second process are the ones made here."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import scipy.signal

from convcheck.check import run as check_run
from convcheck.check import load_suite, run_suite
from convcheck.engine import diagnose
from convcheck.errors import InputError
from convcheck.inputs import prepare_inputs
from convcheck.worker import DiagnosisWorker, Pipeline

from .check_data import case, write_config, write_data


def _cases():
    rng = np.random.default_rng(20261125)
    image = rng.standard_normal((24, 20)).astype(np.float32)
    kernel = rng.standard_normal((3, 5)).astype(np.float32)
    same = scipy.signal.correlate2d(image, kernel, mode="same")
    flipped = scipy.signal.convolve2d(image, kernel, mode="same")
    corrupted = same.copy()
    corrupted[3, 4] += 1.0
    return [prepare_inputs(image, kernel, output) for output in (same, flipped, corrupted)]


def _document(diagnosis) -> str:
    return json.dumps(diagnosis.to_json_dict(), sort_keys=True)


def test_the_worker_diagnoses_as_this_process_does():
    cases = _cases()
    with DiagnosisWorker() as worker:
        pending = [worker.submit(inputs) for inputs in cases]
        kept = worker.submit(cases[1], keep_arrays=True)
        got = [p.result() for p in pending]
        arrays = kept.result().arrays
        assert worker.answered == 4   # made by the child, not here
    assert [_document(d) for d in got] == [_document(diagnose(inputs)) for inputs in cases]
    assert [d.verdict.value for d in got] == ["equal", "explained", "unexplained"]
    expected = diagnose(cases[1], keep_arrays=True).arrays
    assert arrays is not None and all(np.array_equal(getattr(arrays, name), getattr(expected, name))
                                      for name in vars(expected))


def test_a_diagnosis_that_raises_raises_here_as_it_would():
    inputs = _cases()[0]
    with pytest.raises(InputError) as here:
        diagnose(inputs, padding="sideways")
    with DiagnosisWorker() as worker:
        pending = worker.submit(inputs, padding="sideways")
        after = worker.submit(inputs)
        with pytest.raises(InputError) as there:
            pending.result()
        assert after.result().verdict.value == "equal"   # the worker goes on
        assert worker.answered == 1
    assert str(there.value) == str(here.value)


def test_what_is_not_an_answer_leaves_the_diagnoses_to_this_process():
    cases = _cases()
    worker = DiagnosisWorker()
    worker._process.stdout = io.BufferedReader(io.BytesIO(b"not a message of ours, but stray bytes"))
    owed = [worker.submit(inputs) for inputs in cases]
    assert [_document(p.result()) for p in owed] == [_document(diagnose(inputs)) for inputs in cases]
    assert worker._process is None and worker.answered == 0


def test_a_worker_owing_answers_is_stopped_at_once():
    cases = _cases()
    worker = DiagnosisWorker()
    for _ in range(40):   # more answers than a pipe holds, never read
        worker.submit(cases[0], keep_arrays=True)
    process = worker._process
    worker.close()
    # Killed, not left to finish: a child that read the end of its input leaves with 0.
    assert process.poll() is not None and process.returncode != 0


def test_a_dead_worker_leaves_its_diagnoses_to_this_process():
    cases = _cases()
    worker = DiagnosisWorker()
    first = worker.submit(cases[0])
    assert first.result().verdict.value == "equal" and worker.answered == 1
    worker._process.kill()
    worker._process.wait()
    owed = [worker.submit(inputs) for inputs in cases]   # written to a dead pipe, or answered by none
    assert [_document(p.result()) for p in owed] == [_document(diagnose(inputs)) for inputs in cases]
    worker.close()


def test_the_pipeline_takes_the_worker_only_when_backends_take_a_fair_share(monkeypatch):
    def decide(backend_ms: float, diagnosis_ms: float) -> bool:
        pipeline = Pipeline(compares=100, min_cases=8)
        try:
            for _ in range(Pipeline.TRIAL + 1):
                pipeline._spent = diagnosis_ms / 1000
                pipeline.ran((backend_ms + diagnosis_ms) / 1000)
            return pipeline.active
        finally:
            pipeline.close()

    monkeypatch.setattr("convcheck.engine.cores", lambda: 2)
    assert decide(backend_ms=4.0, diagnosis_ms=1.7)        # TensorFlow + Keras on 64x64
    assert not decide(backend_ms=0.5, diagnosis_ms=3.4)    # scipy's backends
    assert decide(backend_ms=1.8, diagnosis_ms=3.4)        # over half as long: the worker's turn
    assert not decide(backend_ms=1.6, diagnosis_ms=3.4)
    assert Pipeline(compares=7, min_cases=8).worker is None
    monkeypatch.setattr("convcheck.engine.cores", lambda: 1)
    assert Pipeline(compares=100, min_cases=8).worker is None   # one core: nothing to overlap


def test_a_suite_reports_the_same_with_and_without_the_worker(tmp_path, monkeypatch):
    write_data(tmp_path)
    config = write_config(tmp_path, *(case(f"c{i}", backends=["scipy"]) for i in range(9)))

    def report(min_cases: int, trial: int) -> str:
        monkeypatch.setattr(check_run, "_WORKER_MIN_CASES", min_cases)
        monkeypatch.setattr(Pipeline, "TRIAL", trial)
        return json.dumps(_timeless(run_suite(load_suite(config)).to_json_dict()), sort_keys=True)

    answered = []
    close = DiagnosisWorker.close

    def counting_close(self):
        answered.append(self.answered)
        close(self)

    monkeypatch.setattr(DiagnosisWorker, "close", counting_close)
    with_worker = report(min_cases=2, trial=0)   # the worker from the second case on
    assert sum(answered) >= 8   # the child diagnosed the outputs of cases 2 to 9
    assert with_worker == report(min_cases=10 ** 9, trial=0)


def _timeless(document):
    """The document without its timings (every "seconds")."""
    if isinstance(document, dict):
        return {key: _timeless(value) for key, value in document.items() if key != "seconds"}
    if isinstance(document, list):
        return [_timeless(value) for value in document]
    return document
