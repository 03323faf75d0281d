"""Diagnoses in a second process, while this one runs the next case's backends (`check`).

A suite of compare cases spends its time in two kinds of Python: the frameworks' calls
and convcheck's diagnoses of their outputs. Both hold the GIL (threads would only take
turns: measured slower), so `run_suite` hands the diagnoses to one child Python, which
works on case i while this process runs the backends of case i + 1: on two cores the
diagnoses leave the critical path.

The child imports numpy and convcheck's engine, never a framework. It runs the same
`engine.diagnose` on the same arrays, so each diagnosis is the one this process would
make. Messages are length-prefixed pickles over the child's stdin and stdout, between
this process and the child it started, never from elsewhere. A reader thread in the
child takes every request off the pipe as it comes, so neither side can block the other
with a full pipe. When the child cannot be started, or dies, every diagnosis it still
owes is made here instead: the results are the same, only slower.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Optional

_HEADER = struct.Struct("<Q")
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


def _send(stream, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream) -> Any:
    """The next message, or raise EOFError at the end of the stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the diagnosis worker's pipe closed")
    size = _HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the diagnosis worker's pipe closed mid-message")
    return pickle.loads(data)  # noqa: S301 - from our own child process only


def _diagnose(inputs, options: dict):
    from .engine import diagnose
    return diagnose(inputs, **options)


class Pending:
    """A diagnosis the worker owes: `result()` waits for it (or makes it here)."""

    def __init__(self, worker: "DiagnosisWorker", inputs, options: dict):
        self._worker, self._inputs, self._options = worker, inputs, options
        self._done = False
        self._value = None
        self._error: Optional[BaseException] = None

    def result(self):
        if not self._done:
            self._worker._settle(self)
        if self._error is not None:
            raise self._error
        return self._value

    def _set(self, value=None, error: Optional[BaseException] = None) -> None:
        self._done = True
        self._inputs = self._options = None
        self._value, self._error = value, error

    def _here(self) -> None:
        """Diagnosed in this process: the worker is gone, or its diagnosis raised."""
        try:
            self._set(_diagnose(self._inputs, self._options))
        except Exception as exc:  # raised again by result(), as an in-process diagnose raises
            self._set(error=exc)


class DiagnosisWorker:
    """One child process diagnosing requests in order; `submit` returns a `Pending`."""

    def __init__(self):
        self._owed: list[Pending] = []   # submitted, in order, not yet received
        self._process: Optional[subprocess.Popen] = None
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p))
        try:
            self._process = subprocess.Popen([sys.executable, "-m", "convcheck.worker"], env=env,
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.DEVNULL)
        except OSError:
            self._process = None   # every diagnosis is made here

    def submit(self, inputs, **options) -> Pending:
        pending = Pending(self, inputs, options)
        if self._process is None:
            pending._here()
            return pending
        try:
            _send(self._process.stdin, (inputs, options))
            self._owed.append(pending)
        except (OSError, ValueError, pickle.PicklingError):
            self._give_up()
            pending._here()
        return pending

    def _settle(self, wanted: Pending) -> None:
        """Receive answers in order until `wanted` has its own."""
        while not wanted._done:
            if self._process is None or not self._owed:
                wanted._here()
                return
            try:
                ok, value = _receive(self._process.stdout)
            except (EOFError, OSError, pickle.UnpicklingError, ValueError):
                self._give_up()
                continue
            pending = self._owed.pop(0)
            if ok:
                pending._set(value)
            else:   # the worker's diagnosis raised: raised here again, with this traceback
                pending._here()

    def _give_up(self) -> None:
        """The worker is gone: what it owes is made here, on demand."""
        owed, self._owed = self._owed, []
        self.close()
        for pending in owed:
            pending._here()

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.stdin.close()
            process.wait(timeout=10)
        except Exception:
            process.kill()
            process.wait()
        finally:
            process.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Pipeline:
    """Where a suite's compare cases are diagnosed: here, or in a `DiagnosisWorker`.

    The worker pays when the backends take a fair share of a case: it diagnoses case i
    while this process runs case i + 1's backends, so a case costs about the longer of
    the two instead of their sum. When diagnoses are most of the work (scipy's backends
    take well under a millisecond), they would only wait in the worker, which diagnoses
    10-20% slower (fresh arrays, its own caches) and adds a pickle each way: measured on
    500 64x64 cases, 3.2 s with the worker against 2.5 s without. So the first compare
    cases run here, timed (the very first left out: it waits for the frameworks'
    import), and the worker takes over only when their backends took at least half as
    long as their diagnoses.
    """

    TRIAL = 3   # compare cases timed, after the first

    def __init__(self, compares: int, min_cases: int):
        worth = compares >= min_cases and (os.cpu_count() or 1) >= 2
        self.worker = DiagnosisWorker() if worth else None   # started now: its import overlaps
        self.seen = 0
        self.backends = self.diagnoses = self._spent = 0.0
        self.active = False

    def diagnoser(self):
        """What `compare_inputs` should diagnose with for the next case."""
        return self.worker.submit if self.active else self._timed

    def _timed(self, inputs, **options):
        import time
        started = time.perf_counter()
        try:
            return _diagnose(inputs, options)
        finally:
            self._spent += time.perf_counter() - started

    def ran(self, seconds: float) -> None:
        """A compare case took `seconds` (its diagnoses included, when made here)."""
        if self.active or self.worker is None:
            return
        self.seen += 1
        if self.seen > 1:
            self.backends += seconds - self._spent
            self.diagnoses += self._spent
        self._spent = 0.0
        if self.seen > self.TRIAL:
            if self.backends >= self.diagnoses / 2:
                self.active = True
            else:
                self.close()

    def close(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.close()


def main() -> None:
    """The child: diagnose each request and answer, in order, (True, the diagnosis), or
    (False, None) when it raised (the parent then diagnoses that one itself)."""
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr   # nothing printed may corrupt the answers
    waiting: "queue.Queue[Any]" = queue.Queue()

    def read() -> None:
        while True:
            try:
                waiting.put(_receive(requests))
            except (EOFError, OSError):
                waiting.put(None)
                return

    threading.Thread(target=read, daemon=True).start()
    while True:
        request = waiting.get()
        if request is None:
            break
        inputs, options = request
        try:
            answer = (True, _diagnose(inputs, options))
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            data = pickle.dumps((False, None), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            answers.write(_HEADER.pack(len(data)))
            answers.write(data)
            answers.flush()
        except OSError:
            break


if __name__ == "__main__":
    main()
    sys.stderr.flush()
    os._exit(0)   # nothing to tear down: the parent may be waiting in `close`
