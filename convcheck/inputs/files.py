"""Reading one `.npy` file, or one array of a `.npz` archive, safely: a regular file, a sound header,
a dtype convcheck computes with and a size within the limit, checked before any data is read;
never unpickled.
"""

from __future__ import annotations

import errno
import math
import os
import stat
import tokenize

import numpy as np

from ..errors import InputError
from ..files import archive_member
from .arrays import check_dtype, one_line

DEFAULT_MAX_ELEMENTS = 2**28

_ROLES = ("image", "kernel", "output", "bias", "scale", "original", "port")   # the last two: `convcheck weights`
_MAX_DIMENSION = 2**62  # numpy sizes are C ssize_t: a bigger dimension is a crafted header
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def read_npy(path, role: str, max_elements: int = DEFAULT_MAX_ELEMENTS) -> np.ndarray:
    """Read one array from a `.npy` file, or from a `.npz` archive, refusing anything unsafe or unusable.

    `role` names the array in messages ('image', 'kernel', 'output', 'bias', 'scale', and
    `convcheck weights`'s 'original' and 'port': "image file 'x.npy': ..."). The header is read and checked first (dtype, `max_elements`, file
    size), so a huge or truncated file is refused without allocating; data is loaded with
    `allow_pickle=False`, so a pickled object array is never unpickled. An archive from
    `np.savez` is read as `FILE.npz:KEY` (its array KEY), or as `FILE.npz` when it holds exactly
    one array; its member is checked exactly as a `.npy` file is. The array keeps its dtype (a
    non-native byte order is made native); its shape is not checked here (see `as_image`,
    `as_kernel`, `as_output`), nor are its values.
    """
    if role not in _ROLES:
        raise ValueError(f"role must be one of {', '.join(_ROLES)}, not {role!r}")
    try:
        name = os.fspath(path)
    except TypeError:
        raise InputError(f"{role} file: expected a path to a .npy file, got {type(path).__name__}; "
                         "pass the path of a file saved with np.save") from None
    label = f"{role} file '{name}'"
    if isinstance(max_elements, bool) or not isinstance(max_elements, (int, np.integer)) or max_elements < 1:
        raise InputError(f"--max-elements must be a positive integer, not {max_elements!r}; "
                         f"the default is {DEFAULT_MAX_ELEMENTS}")

    archive, key = archive_member(name)
    if key is not None:
        check_regular_file(archive, label, "a .npz archive", "give the path of an archive saved with np.savez")
        return _read_npz(archive, key, label, max_elements)
    check_regular_file(name, label, "a .npy file", "give the path of a file saved with np.save")
    try:
        with open(name, "rb") as fp:
            file_size = os.fstat(fp.fileno()).st_size
            if file_size == 0:
                raise InputError(f"{label}: is empty (0 bytes); save the array again with np.save(path, array)")
            if fp.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC:
                return _read_npz(name, None, label, max_elements)
            fp.seek(0)
            dtype, shape, fortran_order, data_offset = _read_header(fp, label, file_size)
    except OSError as exc:
        raise InputError(f"{label}: cannot be read ({exc.strerror or exc}); check that it exists and is readable") from None

    _check_header(label, dtype, shape, data_offset, file_size, max_elements)
    try:
        array = np.load(name, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{label}: could not be loaded as a .npy file ({one_line(exc)}); "
                         "save it again with np.save(path, array)") from None
    if not isinstance(array, np.ndarray):  # np.load returns an NpzFile for a zip archive
        raise InputError(f"{label}: is not a .npy file; save a single array with np.save(path, array)")
    return _native(array)


def _check_header(label: str, dtype: np.dtype, shape: tuple[int, ...], data_offset: int, size: int,
                  max_elements: int) -> None:
    """Refuse, from a .npy header alone, a dtype convcheck cannot use, more than `max_elements`
    elements, or data shorter than the header promises (`size`: the file's, or the member's, bytes)."""
    check_dtype(dtype, label, from_file=True)
    count = math.prod(shape)
    if count > max_elements:
        raise InputError(f"{label}: its header says it holds {count} elements (shape {shape}), more than the "
                         f"limit of {max_elements}; crop it, or raise the limit with --max-elements "
                         "(max_elements= in Python) if you really mean to compare an array this large")
    expected = data_offset + count * dtype.itemsize
    if size < expected:
        raise InputError(f"{label}: is truncated: its header promises {expected} bytes (shape {shape}, "
                         f"dtype {dtype}) but the file holds {size}; copy or save it again")


def _native(array: np.ndarray) -> np.ndarray:
    return array.astype(array.dtype.newbyteorder("=")) if not array.dtype.isnative else array


def _read_npz(archive: str, key, label: str, max_elements: int) -> np.ndarray:
    """Array `key` of the `np.savez` archive `archive` (its only array when `key` is None), its
    member checked as `read_npy` checks a file: header first, never unpickled."""
    import zipfile
    import zlib

    try:
        with zipfile.ZipFile(archive) as members:
            arrays = {info.filename[:-4]: info for info in members.infolist()
                      if info.filename.endswith(".npy") and not info.is_dir()}
            info = arrays[_member_key(arrays, archive, key, label)]
            with members.open(info) as fp:
                dtype, shape, _, data_offset = _read_header(fp, label, info.file_size)
                _check_header(label, dtype, shape, data_offset, info.file_size, max_elements)
                fp.seek(0)
                array = np.lib.format.read_array(fp, allow_pickle=False)
    except InputError:
        raise
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, ValueError, OSError, EOFError) as exc:
        raise InputError(f"{label}: could not be read as a .npz archive ({one_line(exc)}); save it again with "
                         "np.savez(path, name=array)") from None
    return _native(array)


def _member_key(arrays: dict, archive: str, key, label: str) -> str:
    """The member to read: `key`, or the archive's only array; else an `InputError` listing the keys."""
    keys = ", ".join(sorted(arrays)) or "none"
    if key is None:
        if len(arrays) == 1:
            return next(iter(arrays))
        if not arrays:
            raise InputError(f"{label}: is a zip archive holding no .npy arrays; save the array with np.save, or "
                             "into an archive with np.savez(path, name=array)")
        raise InputError(f"{label}: is a .npz archive of {len(arrays)} arrays ({keys}); name the one to read as "
                         f"{archive}:KEY, e.g. {archive}:{sorted(arrays)[0]}")
    if key not in arrays:
        example = f", e.g. {archive}:{sorted(arrays)[0]}" if arrays else ""
        raise InputError(f"{label}: the archive has no array '{key}' (its arrays: {keys}); name one of them as "
                         f"{archive}:KEY{example}")
    return key


_NOT_REGULAR = ((stat.S_ISDIR, "is a directory"),
                (stat.S_ISFIFO, "is a named pipe (FIFO), which would block forever"),
                (stat.S_ISCHR, "is a character device (like /dev/zero or /dev/urandom)"),
                (stat.S_ISBLK, "is a block device"),
                (stat.S_ISSOCK, "is a socket"))


def check_regular_file(name: str, label: str, what: str = "a .npy file",
                       todo: str = "give the path of a file saved with np.save") -> None:
    """Refuse, before opening it, anything at `name` that is not a regular file, saying what it is.

    A FIFO or a device would block or never end when read, so nothing but a regular file
    (or a symbolic link to one) is ever opened. `label` starts the message ("image file
    'x.npy'"); `what` is what was expected and `todo` what to do instead.
    """
    try:
        info = os.stat(name)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{label}: is a symbolic link loop (the links point at each other, never at a file); "
                             f"fix the links and {todo}") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise InputError(f"{label}: cannot be reached: permission denied on the file or a folder on its "
                             "path; make it readable (chmod) or copy the file somewhere readable") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise InputError(f"{label}: the path is too long for this system; give a shorter path") from None
        if exc.errno == errno.ENOTDIR:
            raise InputError(f"{label}: no such file (a part of the path is a file, not a folder); "
                             "check the path") from None
        if os.path.islink(name):
            raise InputError(f"{label}: is a broken symbolic link (it points at "
                             f"'{os.readlink(name)}', which does not exist); fix the link or {todo}") from None
        raise InputError(f"{label}: no such file; check the path") from None
    for test, description in _NOT_REGULAR:
        if test(info.st_mode):
            raise InputError(f"{label}: {description}, not {what}; {todo}")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{label}: is not a regular file, so not {what}; {todo}")


def _read_header(fp, label: str, file_size: int):
    """Parse the .npy magic and header; return (dtype, shape, fortran_order, data offset)."""
    start = fp.read(len(_NPY_MAGIC))
    fp.seek(0)
    if start[:4] == _ZIP_MAGIC:   # a zip inside an archive (a file's own zip is read as a .npz)
        raise InputError(f"{label}: is not a .npy file (it is a zip archive); save the array with np.save(path, array)")
    if start != _NPY_MAGIC:
        if len(start) < len(_NPY_MAGIC) and _NPY_MAGIC.startswith(start):
            raise InputError(f"{label}: is truncated ({file_size} bytes, shorter than a .npy header); "
                             "copy or save it again")
        raise InputError(f"{label}: is not a .npy file (it does not start with the .npy magic string); "
                         "save the array with np.save(path, array)")
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, fortran_order, dtype = fmt.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran_order, dtype = fmt.read_array_header_2_0(fp)
        elif version == (3, 0):
            # Version 3.0 is 2.0 with a UTF-8 header instead of Latin-1; numpy has no public
            # reader for it. The header of every dtype convcheck accepts is ASCII, which both
            # encodings read alike (a non-ASCII structured dtype is refused afterwards anyway).
            shape, fortran_order, dtype = fmt.read_array_header_2_0(fp)
        else:
            raise InputError(f"{label}: uses .npy format version {version[0]}.{version[1]}, which this numpy "
                             "cannot read; save it again with np.save(path, array)")
    except InputError:
        raise
    except Exception as exc:  # a crafted header can make numpy's parser raise almost anything
        if isinstance(exc, (SyntaxError, tokenize.TokenError)):
            raise InputError(f"{label}: has a corrupt .npy header (its header-length field does not match "
                             "the header that follows); save it again with np.save(path, array)") from None
        message = one_line(exc)
        if "EOF" in message:
            raise InputError(f"{label}: is truncated (the file ends inside its .npy header); "
                             "copy or save it again") from None
        raise InputError(f"{label}: has a corrupt .npy header ({message}); "
                         "save it again with np.save(path, array)") from None
    if not isinstance(shape, tuple) or any(type(dim) is not int for dim in shape):
        raise InputError(f"{label}: has a corrupt .npy header (its shape {shape!r} is not a tuple of "
                         "integers); save it again with np.save(path, array)")
    if any(dim < 0 for dim in shape):
        raise InputError(f"{label}: has a corrupt .npy header (negative dimension in shape {shape}); "
                         "save it again with np.save(path, array)")
    if any(dim > _MAX_DIMENSION for dim in shape):
        raise InputError(f"{label}: has a corrupt .npy header (a dimension in shape {shape} is larger "
                         "than any array can be); save it again with np.save(path, array)")
    return dtype, tuple(int(d) for d in shape), fortran_order, fp.tell()
