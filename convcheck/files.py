"""Writing reports and plots safely: never over an input, never half-written.

Pure Python (no numpy), so the CLI can check destinations before any work is done.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Optional

from .errors import InputError


def same_file(a: os.PathLike, b: os.PathLike) -> bool:
    """True when paths `a` and `b` name the same file (through links, `..` or another spelling)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return os.path.realpath(a) == os.path.realpath(b)


def archive_member(name: str) -> tuple[str, Optional[str]]:
    """('layer.npz', 'weight') for the array spec 'layer.npz:weight'; (name, None) for anything else.

    A name that is a file itself is always that file; otherwise the text after the last ':'
    is a member of the archive before it, when that ends in '.npz' (any case), as `np.savez`
    names its archives. Pure text: whether the archive exists is for its reader to say.
    """
    if os.path.lexists(name) or ":" not in name:
        return name, None
    archive, _, key = name.rpartition(":")
    if archive.lower().endswith(".npz") and key:
        return archive, key
    return name, None


def refuse_overwriting(path: Optional[str], option: str, protected: Iterable[tuple[str, object]]) -> None:
    """Refuse an output `path` that is one of the `protected` (role, path) files, e.g. an input
    (for an archive member 'layer.npz:weight', the archive).

    Raises `InputError` naming the option and the file it would destroy.
    """
    if path is None:
        return
    for role, other in protected:
        if other is not None and same_file(path, archive_member(os.fspath(other))[0]):
            raise InputError(f"{option} '{path}': is the {role}, which the report would overwrite; "
                             "choose another file name")


def write_atomic(path: os.PathLike, write: Callable[[str], None]) -> None:
    """Create or replace `path` all at once: `write(temp_path)` fills a temporary file in the
    same folder, which is then renamed over `path` (`os.replace`, atomic on one filesystem).

    A failure part-way (a full disk, a crash) leaves the old file untouched and no temporary
    file behind; two processes writing the same path leave one whole file, never a mix.
    A replaced file keeps its permissions; a new one gets the usual ones (0666 less umask).
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    stem, extension = os.path.splitext(name)
    import tempfile   # here: not on the way of a run that writes no file (2 ms)
    fd, temporary = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{extension}", dir=folder)
    os.close(fd)
    try:
        write(temporary)
        try:
            mode = os.stat(path).st_mode & 0o7777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def write_text_atomic(path: os.PathLike, text: str) -> None:
    """`write_atomic` for UTF-8 text, flushed to disk before the rename."""
    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8", newline="") as fp:
            fp.write(text)
            fp.flush()
            os.fsync(fp.fileno())
    write_atomic(path, write)


__all__ = ["archive_member", "refuse_overwriting", "same_file", "write_atomic", "write_text_atomic"]
