"""Threads for the reference's products: a second thread beside the first, and one BLAS thread.

convcheck's products are many and small (a block of rows each): they run one per thread of
convcheck's own, never split over OpenBLAS's thread pool (see `single_threaded_blas`).
"""

from __future__ import annotations

import contextlib
import os


def beside(work, helper_work, failed: list) -> None:
    """`work()` on this thread and `helper_work()` on a second one beside it, each taking
    blocks until none is left or `failed` holds a failure; the first failure of either is
    raised here once both have stopped (the other stops after the block it is on)."""
    import threading

    def help_out():
        try:
            helper_work()
        except BaseException as exc:   # raised again below: its blocks were not made
            failed.append(exc)

    helper = threading.Thread(target=help_out)
    helper.start()
    try:
        work()
    except BaseException as exc:
        failed.append(exc)
        raise
    finally:
        helper.join()
    if failed:
        raise failed[0]


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_BLAS_THREADS: list | None = None


def _openblas_threads() -> list:
    """(get, set) thread-count functions of every OpenBLAS loaded in this process (found
    once; empty where there is none, e.g. numpy on Accelerate or MKL, or no /proc)."""
    global _BLAS_THREADS
    if _BLAS_THREADS is None:
        found = []
        try:
            import ctypes
            with open("/proc/self/maps") as maps:
                paths = sorted({line.split()[-1] for line in maps
                                if "openblas" in line.lower() and line.split()[-1].startswith("/")})
            for path in paths:
                library = ctypes.CDLL(path)
                for name in ("scipy_openblas{}64_", "scipy_openblas{}", "openblas{}64_", "openblas{}"):
                    get = getattr(library, name.format("_get_num_threads"), None)
                    set_ = getattr(library, name.format("_set_num_threads"), None)
                    if get is not None and set_ is not None:
                        found.append((get, set_))
                        break
        except (OSError, AttributeError, ValueError):
            pass
        _BLAS_THREADS = found
    return _BLAS_THREADS


@contextlib.contextmanager
def single_threaded_blas():
    """Run numpy's matrix products on one thread inside the block.

    The products here are small and many (one per block of rows): OpenBLAS splits each
    over all cores, which costs more than it gains and, on a busy machine, 2 to 10 times
    the single-threaded time (measured on a 2-core machine shared with other jobs). The
    previous thread counts are restored on exit.
    """
    libraries = _openblas_threads()
    before = [get() for get, _ in libraries]
    for _, set_ in libraries:
        set_(1)
    try:
        yield
    finally:
        for (_, set_), count in zip(libraries, before):
            set_(count)
