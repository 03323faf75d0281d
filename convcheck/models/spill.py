"""A walk's captured tensors kept on disk, so that its memory follows the largest layer, not
the model (issue 22 item 7).

A model's conv tensors add up to many times its largest layer: a plain 16-conv net with 32
channels at 384x384 captures about 300 MiB per model (each tensor 18 MiB), and a walk holds
two models. Each captured tensor is written to a temporary folder when the runner hands it
over (`Spill.keep`) and the layer holds a read-only memory map of it instead; judging a pair
touches only that pair's pages, and `Spill.release` hands them back to the kernel once the
pair is judged (the maps stay readable: a later read comes from the page cache or the file).

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

Each file is unlinked as soon as it is mapped (the map keeps its data; nothing is left behind
when a walk is killed), and each map holds one file descriptor, so the soft limit on open
files is raised to the hard one. The folder is the temporary folder (`TMPDIR`), or /var/tmp
when that one is a tmpfs (RAM: spilling there moves the memory, it saves none) and /var/tmp
is not; a tmpfs that is the only choice is used, with a note. A folder that cannot be
written (no space, read-only, no descriptors left) is no error: the tensors from there on
stay in memory and the walk's notes say why.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import sys
import tempfile
import weakref
from typing import Optional

import numpy as np

# Arrays smaller than this stay in memory: a file per bias-sized tensor costs more than it saves.
MIN_BYTES = 1 << 16


class Spill:
    """A temporary folder of captured tensors (a context manager: the folder goes on exit).

    `keep(array)` returns a read-only memory map of `array` written to the folder (an array
    it cannot or need not keep is returned as it is); `release(*arrays)` gives back the
    pages of the maps it made; `note` says what a reader should know (tensors kept in
    memory, a folder in RAM).
    """

    def __init__(self, parent: Optional[str] = None):
        self._folder: Optional[tempfile.TemporaryDirectory] = None
        self._parent = parent
        self._count = 0
        self._maps = weakref.WeakSet()   # the mmap objects this spill made (an id could be reused)
        self._failed = False
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
        itself when it is small or empty, not a plain numeric array, already a map, or the
        folder failed."""
        if not isinstance(array, np.ndarray) or isinstance(array, np.memmap) or self._failed or array.size == 0 \
                or array.nbytes < MIN_BYTES or array.dtype.hasobject or array.dtype.names is not None:
            return array
        # A dtype numpy's .npy header cannot name (ml_dtypes' bfloat16 reads back as raw 'V2')
        # goes as unsigned integers of its width and is viewed back.
        dtype = array.dtype
        stored = array if dtype.isbuiltin == 1 else array.view(f"u{dtype.itemsize}")
        try:
            if self._folder is None:
                self._open()
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
            self._failed = True
            self._add_note(f"captured tensors kept in memory from then on: the temporary folder could not take "
                           f"one ({exc.strerror or exc}); {_advice(exc)}")
            return array
        try:
            os.unlink(path)   # the map keeps the data; a killed walk leaves no file behind
        except OSError:   # a system that cannot unlink an open file: the folder's cleanup removes it
            pass
        self._maps.add(kept._mmap)
        trim()   # what the runtime freed since the last tensor goes back to the system
        return kept if kept.dtype == dtype else kept.view(dtype)

    def release(self, *arrays) -> None:
        """Hand the resident pages of `arrays` that are this spill's maps back to the kernel
        (MADV_DONTNEED): the memory a judged layer's tensors took leaves the process; the maps
        stay valid and read their values again (from the page cache, or the unlinked file).
        Anything else (None, an array in memory, a map the caller made — whose own changes
        to a private map would be lost —, a system without madvise) is left as it is."""
        advice = getattr(mmap, "MADV_DONTNEED", None)
        if advice is None:
            return
        for array in arrays:
            handle = getattr(array, "_mmap", None)
            if isinstance(handle, mmap.mmap) and handle in self._maps and hasattr(handle, "madvise"):
                try:
                    handle.madvise(advice)
                except (OSError, ValueError):   # a closed map, an unsupported advice: nothing to give back
                    pass

    def _open(self) -> None:
        """The folder, on the first tensor kept (see the module docstring for which one)."""
        _raise_file_limit()
        parent, in_memory = self._parent, False
        if parent is None:
            parent, in_memory = _disk_folder()
        self._folder = tempfile.TemporaryDirectory(prefix="convcheck-walk-", dir=parent, ignore_cleanup_errors=True)
        if in_memory:
            self._add_note(f"captured tensors kept in '{parent}', a tmpfs: they take RAM there instead of in this "
                           "process; set TMPDIR to a folder on disk to keep a walk's memory to its largest layer")

    def _add_note(self, note: str) -> None:
        self.note = f"{self.note}; {note}" if self.note else note


def _advice(exc: OSError) -> str:
    """What to do when the folder could not take a tensor."""
    import errno
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return "each tensor kept on disk holds a file open: raise the open-file limit (ulimit -n)"
    return "set TMPDIR to a folder with space to keep a walk's memory to its largest layer"


def _raise_file_limit() -> None:
    """The soft limit on open files raised to the hard one (each map holds a descriptor)."""
    try:
        import resource
    except ImportError:   # not a POSIX system
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):   # a limit the system refuses: the note on failure says what to do
        pass


_RAM_FILESYSTEMS = ("tmpfs", "ramfs")


def _filesystem(path: str) -> str:
    """The type of the filesystem `path` is on, from /proc/mounts ('' where unknown)."""
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as mounts:
            entries = [line.split() for line in mounts]
    except OSError:
        return ""
    real = os.path.realpath(path)
    best, kind = "", ""
    for entry in entries:
        if len(entry) < 3:
            continue
        point = entry[1].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, entry[2]
    return kind


def _disk_folder() -> tuple[str, bool]:
    """(the folder to spill under, whether it is in RAM): the temporary folder, or /var/tmp
    when the temporary folder is a tmpfs and /var/tmp is writable and not (TMPDIR, when set,
    is the user's choice and kept)."""
    folder = tempfile.gettempdir()
    if _filesystem(folder) not in _RAM_FILESYSTEMS:
        return folder, False
    if "TMPDIR" not in os.environ and os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK) \
            and _filesystem("/var/tmp") not in _RAM_FILESYSTEMS:
        return "/var/tmp", False
    return folder, True


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


__all__ = ["MIN_BYTES", "Spill", "trim"]
