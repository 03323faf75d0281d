"""Diagnoses in a second process, while this one runs the next case's backends (`check`).

A suite of compare cases spends its time in two kinds of Python: the frameworks' calls
and convcheck's diagnoses of their outputs. Both hold the GIL (threads would only take
turns: measured slower), so `run_suite` may hand the diagnoses to one child Python,
which works on case i while this process runs the backends of case i + 1: on two cores
the diagnoses leave the critical path (`Pipeline` decides, by timing the first cases).

The child imports numpy and convcheck's engine, never a framework. It runs the same
`engine.diagnose` on the same arrays, so each diagnosis is the one this process would
make. Messages are pickles, each behind a magic word and its length, over the child's
stdin and stdout, between this process and the child it started, never from elsewhere.
The child answers every request in order: (True, the diagnosis), or (False, None) when
anything went wrong with it, and this process then makes that diagnosis itself (raising
as it would have). A reader thread in the child takes requests off the pipe as they
come, so this process never waits to write. When the child cannot be started, sends
something that is not an answer, or dies, every diagnosis it still owes is made here:
the results are the same, only slower.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Optional

_MAGIC = b"CCW1"
_HEADER = struct.Struct("<4sQ")
_MAX_MESSAGE = 1 << 40   # a length beyond this is not one of ours
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])
# The child: the package root instead of the current folder at the head of sys.path (a
# module there named like a standard one must not replace it).
_LAUNCH = ("import sys; sys.path[0] = sys.argv[1]; from convcheck.worker import main; main(); "
           "import os; os._exit(0)")   # out at once: the parent may be waiting in `close`


class _NotOurs(Exception):
    """What came down the pipe is not a message of this protocol."""


def _send(stream, data: bytes) -> None:
    stream.write(_HEADER.pack(_MAGIC, len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream) -> bytes:
    """The next message's bytes; EOFError at the end of the stream, _NotOurs for others."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the pipe closed")
    magic, size = _HEADER.unpack(header)
    if magic != _MAGIC or size > _MAX_MESSAGE:
        raise _NotOurs("not a message of convcheck.worker")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the pipe closed mid-message")
    return data


def _diagnose(inputs, options: dict):
    from .engine import diagnose
    return diagnose(inputs, **options)


def _usable() -> bool:
    """Whether a child Python can be started the way `DiagnosisWorker` starts one."""
    return bool(sys.executable) and not getattr(sys, "frozen", False)


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
        """Diagnosed in this process: the worker is gone, or its answer was no diagnosis."""
        try:
            self._set(_diagnose(self._inputs, self._options))
        except Exception as exc:  # raised again by result(), as an in-process diagnose raises
            self._set(error=exc)


class DiagnosisWorker:
    """One child process diagnosing requests in order; `submit` returns a `Pending`.
    `answered` counts the diagnoses the child made."""

    def __init__(self):
        self._owed: list[Pending] = []   # submitted, in order, not yet answered
        self._process: Optional[subprocess.Popen] = None
        self.answered = 0
        if not _usable():
            return   # every diagnosis is made here
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p))
        try:
            self._process = subprocess.Popen([sys.executable, "-c", _LAUNCH, _PACKAGE_ROOT], env=env,
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.DEVNULL)
        except Exception:
            self._process = None

    def submit(self, inputs, **options) -> Pending:
        pending = Pending(self, inputs, options)
        if self._process is None:
            pending._here()
            return pending
        try:
            data = pickle.dumps((inputs, options), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:   # not picklable: made here, the worker goes on
            pending._here()
            return pending
        try:
            _send(self._process.stdin, data)
        except Exception:
            self._give_up()
            pending._here()
            return pending
        self._owed.append(pending)
        return pending

    def _settle(self, wanted: Pending) -> None:
        """Receive answers in order until `wanted` has its own."""
        while not wanted._done:
            if self._process is None or not self._owed:
                wanted._here()
                return
            try:
                ok, value = pickle.loads(_receive(self._process.stdout))  # noqa: S301 - our own child's
            except Exception:   # the child died, or sent what is not an answer
                self._give_up()
                continue
            pending = self._owed.pop(0)
            if ok:
                self.answered += 1
                pending._set(value)
            else:
                pending._here()

    def _give_up(self) -> None:
        """The worker is gone: every diagnosis it owed is made here now."""
        owed, self._owed = self._owed, []
        self.close()
        for pending in owed:
            pending._here()

    def close(self) -> None:
        """Stop the child: at once when answers are still owed (they would go unread, and a
        child blocked writing them would never see the end of its input), else when it
        has read the end of its input."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if self._owed:
                process.kill()
            else:
                process.stdin.close()
            process.wait(timeout=10)
        except Exception:
            process.kill()
            process.wait()
        finally:
            for stream in (process.stdin, process.stdout):
                try:
                    stream.close()
                except Exception:
                    pass

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
    10-20% slower (fresh arrays, its own caches) and adds a pickle each way. So the first
    compare cases run here, timed (the very first left out: it waits for the frameworks'
    import), and the worker takes over only when their backends took at least half as
    long as their diagnoses. (Measured on 500 64x64 cases comparing TensorFlow and Keras,
    backends 3.8 ms and one diagnosis 1.7 ms a case: the worker wins. With two scipy
    backends, 0.5 ms against 3.4 ms: it stays here.)
    """

    TRIAL = 3   # compare cases timed, after the first

    def __init__(self, compares: int, min_cases: int):
        from .engine import cores
        worth = compares >= min_cases and cores() >= 2 and _usable()
        # Started now, so that its imports are done when the trial ends.
        self.worker = DiagnosisWorker() if worth else None
        self.seen = 0
        self.backends = self.diagnoses = self._spent = 0.0
        self.active = False

    def diagnoser(self):
        """What `compare_inputs` should diagnose with for the next case: the worker's
        `submit` once it took over, else a timed in-process diagnose."""
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
    """The child: answer each request, in order (see the module's docstring)."""
    # Interrupts are the parent's to handle: it stops this process when it stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = sys.stdin.buffer
    # The answers get fd 1 to themselves: anything else written to it, from Python or
    # from C, goes to fd 2 instead.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import numpy  # noqa: F401 - imported before the first request arrives
    from . import engine  # noqa: F401
    waiting: "queue.Queue[Optional[bytes]]" = queue.Queue()

    def read() -> None:
        try:
            while True:
                waiting.put(_receive(requests))
        except BaseException:   # the end of the input, or anything else: no more requests
            waiting.put(None)

    threading.Thread(target=read, daemon=True).start()
    while True:
        request = waiting.get()
        if request is None:
            break
        try:
            inputs, options = pickle.loads(request)  # noqa: S301 - from the parent that started us
            data = pickle.dumps((True, _diagnose(inputs, options)), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:
            data = pickle.dumps((False, None), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            _send(answers, data)
        except OSError:
            break
