"""A walk's captured tensors kept on disk, so that its memory follows the largest layer, not
the model (issue 22 item 7).

A model's conv tensors add up to many times its largest layer: a plain 16-conv net with 32
channels at 384x384 captures about 300 MiB per model (each tensor 18 MiB), and a walk holds
two models. Each captured tensor is written to a temporary folder when the runner hands it
over (`Spill.keep`) and the layer holds a read-only memory map of it instead; judging a pair
touches only that pair's pages, and `release` hands them back to the kernel once the pair is
judged (the maps stay readable: a later read comes from the page cache or the file).

Where this happens: the PyTorch runners (exported graph, module hooks) hand over each tensor
the moment it is computed, so a capture holds one layer at a time besides the model's own
working memory; ONNX Runtime, a Keras probe model, TorchScript's rewritten graph and LiteRT
(every tensor preserved) return or keep all of a run's tensors at once, so their tensors go to
disk when their run ends: the next model's run and the judging no longer hold them.

Memory a runtime or the engine frees goes back to the C allocator, and glibc's keeps much of
it (its threshold for serving large blocks from the heap rises with the blocks freed): a
walk's peak RSS held 100-300 MiB of such free memory after a capture. `trim` hands it back
(glibc's `malloc_trim`) after each tensor kept; elsewhere it does nothing. Not after each pair
judged: the engine's next pair reuses what the last one freed, and a trim there cost 40 ms a
pair (the pages faulted in again) for 25 MiB less at the peak of a 16-conv net.

A folder that cannot be written (no space, read-only) is no error: the tensors stay in memory
as before and the walk's notes say so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import sys
import tempfile
from typing import Optional

import numpy as np

# Arrays smaller than this stay in memory: a file per bias-sized tensor costs more than it saves.
MIN_BYTES = 1 << 16


class Spill:
    """A temporary folder of captured tensors (a context manager: the folder goes on exit).

    `keep(array)` returns a read-only memory map of `array` written to the folder (an array
    kept before is returned as it is); `note` says why tensors stayed in memory, if they did.
    """

    def __init__(self, parent: Optional[str] = None):
        self._folder: Optional[tempfile.TemporaryDirectory] = None
        self._parent = parent
        self._count = 0
        self.note = ""

    def __enter__(self) -> "Spill":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def keep(self, array):
        """`array` on disk, as a read-only memory map of the same shape, dtype and values; `array`
        itself when it is small or empty, not a plain numeric array, already a map, or the folder
        failed."""
        if not isinstance(array, np.ndarray) or isinstance(array, np.memmap) or self.note or array.size == 0 \
                or array.nbytes < MIN_BYTES or array.dtype.hasobject or array.dtype.names is not None:
            return array
        # A dtype numpy's .npy header cannot name (ml_dtypes' bfloat16 reads back as raw 'V2')
        # goes as unsigned integers of its width and is viewed back.
        dtype = array.dtype
        stored = array if dtype.isbuiltin == 1 else array.view(f"u{dtype.itemsize}")
        try:
            if self._folder is None:
                self._folder = tempfile.TemporaryDirectory(prefix="convcheck-walk-", dir=self._parent,
                                                           ignore_cleanup_errors=True)
            path = os.path.join(self._folder.name, f"{self._count}.npy")
            self._count += 1
            if stored.flags.c_contiguous:
                np.save(path, stored, allow_pickle=False)
            else:   # a transposed view: copied through a map (np.save writes it element by element)
                target = np.lib.format.open_memmap(path, mode="w+", dtype=stored.dtype, shape=stored.shape)
                target[...] = stored
                del target
            kept = np.load(path, mmap_mode="r", allow_pickle=False)
        except OSError as exc:
            self.note = (f"captured tensors kept in memory: the temporary folder could not take them "
                         f"({exc.strerror or exc}); set TMPDIR to a folder with space to keep a walk's memory "
                         "to its largest layer")
            return array
        trim()   # what the runtime freed since the last tensor goes back to the system
        return kept if kept.dtype == dtype else kept.view(dtype)


def _malloc_trim():
    """glibc's malloc_trim, or None (another C library, another system)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):   # musl and others have none
        return None
    function.argtypes, function.restype = [ctypes.c_size_t], ctypes.c_int
    return function


_TRIM = _malloc_trim()


def trim() -> None:
    """Free memory the C allocator holds handed back to the system (glibc only; see above)."""
    if _TRIM is not None:
        _TRIM(0)


def release(*arrays) -> None:
    """Hand the resident pages of memory-mapped `arrays` back to the kernel (MADV_DONTNEED): the
    memory a judged layer's tensors took leaves the process; the maps stay valid and read their
    values again from the page cache or the file. Anything else (None, an array in memory, a
    system without madvise) is left as it is."""
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None:
        return
    for array in arrays:
        handle = getattr(array, "_mmap", None)
        if isinstance(handle, mmap.mmap) and hasattr(handle, "madvise"):
            try:
                handle.madvise(advice)
            except (OSError, ValueError):   # a closed map, an unsupported advice: nothing to give back
                pass


__all__ = ["MIN_BYTES", "Spill", "release", "trim"]
