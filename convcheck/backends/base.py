"""The small interface every backend implements, and the helpers they share.

A backend runs one image (H, W, C) and one HWIO kernel (kh, kw, C_in, C_out) through one
library call and returns what the library returned, untouched, as a `BackendRun`.
Backends never diagnose: comparing the output with the reference is the engine's job.

Heavy frameworks are imported only inside `warm_up` / `run`, never at module import, so
`convcheck --help` and the pure-numpy paths never pay for TensorFlow or scipy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.metadata
import importlib.util
import os
import re
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BackendError, InputError
from ..geometry import geometry_pair as _reference_geometry_pair
from ..geometry import is_explicit, normalize_padding, output_size, padding_amounts, padding_text
from ..vocabulary import DTYPES


_VERSIONS: dict = {}   # distribution names -> installed version (None: not installed)


@dataclass(frozen=True)
class BackendRun:
    """One library call's result, exactly as the library gave it.

    `output` is (Ho, Wo, C_out) in the library's own dtype (the batch axis removed).
    `compute_dtype` is what the library actually computed in ('float16', 'bfloat16',
    'float32', 'float64', or e.g. 'int64' for scipy on integers with library defaults).
    `padding` is the output-size convention actually used ('same', 'valid', 'full'), or the
    explicit ((top, bottom), (left, right)) amounts asked for.
    `seconds` is the wall time of the library call(s) only, not imports or conversions.
    `notes` are plain sentences saying what was done beyond the plain call.
    `algorithm` is how the sums were computed (CONTRACT section 2): 'direct', or 'fft'
    for `scipy.signal.fftconvolve`, whose rounding error is normwise.
    """

    output: np.ndarray
    compute_dtype: str
    padding: str
    seconds: float
    notes: tuple[str, ...] = ()
    algorithm: str = "direct"


class Backend(ABC):
    """One library's convolution behind a uniform `run` (Polygraphy-style runner).

    Subclasses set `name` (the public dotted name), `module` (the top-level module whose
    presence decides availability), `package` (the pip distribution that provides it, for
    `version`), `extra` (the convcheck extra that installs it, named in the install hint;
    None for convcheck's own dependencies) and optionally `distributions` (every
    distribution name that may provide the module, for `version`), and implement
    `warm_up` and `_run`.

    `native_geometry` says whether the library's own call takes stride, dilation and
    groups: such a backend's `_run` also receives `stride`, `dilation` and `groups` and
    the GROUPED HWIO kernel (kh, kw, C_in / groups, C_out). Other backends get plain
    geometry only (`convcheck.comparison` emulates the rest for them).
    """

    name: str
    module: str
    package: str
    extra: str | None = None
    distributions: tuple[str, ...] = ()
    native_geometry: bool = False

    def required_modules(self) -> tuple[tuple[str, str | None], ...]:
        """(module, convcheck extra) pairs that must be importable for this backend to run."""
        return ((self.module, self.extra),)

    def availability(self) -> tuple[bool, str | None]:
        """Whether the framework can be imported, and if not why, with the install command.

        Uses `importlib.util.find_spec` on top-level names only, so nothing is imported.
        """
        for module, extra in self.required_modules():
            if not _module_exists(module):
                return False, f"{module} is not installed: {install_hint(extra or module)}"
        return True, None

    def version(self) -> str | None:
        """The installed version of the framework's distribution, without importing it
        (looked up once: reading the installed metadata takes milliseconds, every row of a
        suite asks)."""
        names = tuple(self.distributions or (self.package,))
        key = (names, importlib.metadata.version)   # (a replaced lookup, as in tests, is asked again)
        if key not in _VERSIONS:
            _VERSIONS[key] = None
            for distribution in names:
                try:
                    _VERSIONS[key] = importlib.metadata.version(distribution)
                    break
                except importlib.metadata.PackageNotFoundError:
                    continue
        return _VERSIONS[key]

    @abstractmethod
    def warm_up(self) -> None:
        """Import the framework, so a caller can pay for it in a background thread."""

    def run(self, image: np.ndarray, kernel: np.ndarray, *, padding: str, dtype: str,
            library_defaults: bool = False, stride=(1, 1), dilation=(1, 1), groups: int = 1) -> BackendRun:
        """Run `image` (H, W, C) and `kernel` (kh, kw, C_in / groups, C_out) through the library.

        `stride`, `dilation` and `groups` are CONTRACT section 1's; anything but the
        defaults needs a backend with `native_geometry` (others raise `InputError`).

        With `library_defaults=False` the library is asked to compute in `dtype` with
        zero `padding` (settings held consistent across backends): a convention's name ('same',
        'valid', 'full', any case) or explicit amounts (CONTRACT section 1: P, (PH, PW),
        (top, bottom, left, right) or ((top, bottom), (left, right))), which a library without
        explicit padding gets as its 'valid' call on an image zero-padded by hand. With
        `library_defaults=True` it is called the way people usually call it, with its own
        defaults wherever it has one; the row's `notes` say which were used.
        2-D inputs ((H, W) and (kh, kw)) are accepted as one channel.

        Raises `BackendError` when the framework is missing (with the install command) or
        its call raised (with a one-line reason), `InputError` for arguments convcheck
        itself rejects (unknown padding/dtype, shapes that do not fit).
        """
        padding = normalize_padding(padding)
        if dtype not in DTYPES:
            raise InputError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        stride, dilation = geometry_pair(stride, "stride"), geometry_pair(dilation, "dilation")
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
            raise InputError(f"groups must be a positive integer, got {groups!r}")
        groups = int(groups)
        plain = stride == (1, 1) and dilation == (1, 1) and groups == 1
        if not plain and not self.native_geometry:
            raise InputError(f"{self.name} takes no stride, dilation or groups of its own: "
                             f"convcheck.comparison.compare emulates them for it")
        image, kernel = as_hwc_hwio(image, kernel, groups)
        span_h, span_w = ((kernel.shape[0] - 1) * dilation[0] + 1, (kernel.shape[1] - 1) * dilation[1] + 1)
        padded_h, padded_w = image.shape[:2]
        if is_explicit(padding):
            padded_h, padded_w = padded_h + sum(padding[0]), padded_w + sum(padding[1])
        if padding in ("valid",) or is_explicit(padding):
            if span_h > padded_h or span_w > padded_w:
                # Libraries disagree here (TF returns an empty array, scipy swaps the operands):
                # refuse once, for all of them.
                what = ("'valid' padding leaves no output; use padding 'same' or 'full'" if padding == "valid" else
                        f"padding {padding_text(padding)} leaves no output ({padded_h}x{padded_w} padded); "
                        "pad more, or use padding 'same' or 'full'")
                raise InputError(f"the {span_h}x{span_w} kernel is larger than the "
                                 f"{image.shape[0]}x{image.shape[1]} image: {what}")
        available, reason = self.availability()
        if not available:
            raise BackendError(self.name, reason or "not available")
        geometry = ({"stride": stride, "dilation": dilation, "groups": groups}
                    if self.native_geometry else {})
        by_hand = is_explicit(padding) and not self.native_geometry and not library_defaults
        try:
            if by_hand:
                return self._padded_by_hand(image, kernel, padding, dtype)
            return self._run(image, kernel, padding=padding, dtype=dtype,
                             library_defaults=library_defaults, **geometry)
        except (BackendError, InputError):
            raise
        except ImportError as exc:
            raise BackendError(self.name, f"could not import {self.module}: {one_line(exc)}") from exc
        except Exception as exc:  # the framework raised: the caller reports a 'failed' row
            raise BackendError(self.name, f"{type(exc).__name__}: {one_line(exc)}") from exc

    @abstractmethod
    def _run(self, image: np.ndarray, kernel: np.ndarray, *, padding, dtype: str,
             library_defaults: bool) -> BackendRun:
        """`run` after validation: `image` is 3-D, `kernel` 4-D with matching channels; `padding`
        a convention's name, or explicit amounts ((top, bottom), (left, right)) for a backend
        with `native_geometry` (the others get explicit amounts as 'valid' on an image padded by hand)."""

    def _padded_by_hand(self, image: np.ndarray, kernel: np.ndarray, padding, dtype: str) -> BackendRun:
        """Explicit amounts for a library that takes none (scipy, OpenCV): the image zero-padded by
        those amounts, then the library's 'valid' call; the row says so. Exact: the zeros are the
        contract's zero padding."""
        (top, bottom), (left, right) = padding
        run = self._run(zero_pad(image, (top, bottom, left, right)), kernel, padding="valid", dtype=dtype,
                        library_defaults=False)
        note = (f"{self.name} takes no explicit padding: the image was zero-padded by hand by "
                f"{padding_text(padding)} ([[top, bottom], [left, right]]) and run with 'valid'")
        return dataclasses.replace(run, padding=padding, notes=(note,) + tuple(run.notes))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def install_hint(extra: str) -> str:
    """The command that installs a convcheck extra: pip install 'convcheck[torch]'.

    A name that is not one of convcheck's extras (a base dependency such as scipy) is
    named as a plain package.
    """
    if extra in EXTRAS:
        return f"pip install 'convcheck[{extra}]'"
    return f"pip install {extra}"


# The optional extras of pyproject.toml that bring a framework.
EXTRAS = ("tensorflow", "torch", "jax", "opencv")


@contextlib.contextmanager
def quiet_stderr():
    """Send everything written to the process's file descriptor 2 to /dev/null meanwhile.

    Frameworks print their start-up chatter (TensorFlow's oneDNN and absl lines, XLA's
    platform warnings) from C++ straight to fd 2, where no Python redirection reaches.
    Only the import is wrapped, and fd 2 is restored after: no numbers change, and
    errors raised later still reach the terminal.
    """
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError, OSError):
        pass
    try:
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no fd 2 (e.g. a GUI process): nothing to silence
        yield
        return
    with _QUIET_LOCK:
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError, OSError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


_QUIET_LOCK = threading.RLock()


# A backend asks for its framework on every run; a quiet import (fd 2 redirected, loggers
# reset: 0.3 ms) is made once per process instead, which for a suite of hundreds of small
# cases adds up. functools.cache remembers no failure: a failed import raises again.
imported_once = functools.cache


def quiet_loggers(*names: str):
    """Raise Python loggers (absl, jax) to ERROR, so their warnings do not reach the terminal."""
    import logging
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)


def pad_amounts(kh: int, kw: int, padding: str) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero padding of a padding convention at stride 1 (CONTRACT
    section 1; the image's size only matters at other strides)."""
    return padding_amounts(padding, kh, kw, kh, kw)


# One implementation of the contract's geometry, shared with the engine (convcheck.reference).
geometry_pair = _reference_geometry_pair
geometry_pads = padding_amounts


def output_shape(padding: str, height: int, width: int, kh: int, kw: int, stride=(1, 1),
                 dilation=(1, 1)) -> tuple[int, int]:
    """(Ho, Wo) of CONTRACT section 1."""
    return output_size(padding, height, width, kh, kw, tuple(stride), tuple(dilation))


def sum_over_channels(image: np.ndarray, kernel: np.ndarray, call, crop=None, wide=np.float64):
    """For libraries without a sum over channels: one 2-D `call(plane, taps)` per (input,
    output) channel pair, summed over input channels. Returns (output (H, W, C_out), seconds
    spent in the calls). `crop`, a pair of slices, keeps that part of each result; integer
    results are summed as `wide` so that several channels cannot wrap around."""
    import time
    channels_in, channels_out = kernel.shape[2], kernel.shape[3]
    planes = [np.ascontiguousarray(image[:, :, c]) for c in range(channels_in)]
    seconds, columns = 0.0, []
    for o in range(channels_out):
        total = None
        for c in range(channels_in):
            taps = np.ascontiguousarray(kernel[:, :, c, o])
            start = time.perf_counter()
            part = call(planes[c], taps)
            seconds += time.perf_counter() - start
            if crop is not None:
                part = part[crop]
            if part.dtype.kind in "iub" and channels_in > 1:
                part = part.astype(wide)
            total = part if total is None else total + part
        columns.append(total)
    return np.stack(columns, axis=-1), seconds


def zero_pad(image: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """An (H, W, C) image with (top, bottom, left, right) rows/columns of zeros added (exact)."""
    top, bottom, left, right = pads
    if not any(pads):
        return image
    return np.pad(image, ((top, bottom), (left, right), (0, 0)))


STRIDE_EMULATED = ("stride emulated: the library ran at stride 1 (dilation native) on the image "
                   "zero-padded as CONTRACT section 1 pads it, and every stride-th output was kept")


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: in sys.modules with __spec__ None
        return False


def as_hwc_hwio(image: Any, kernel: Any, groups: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """`image` as (H, W, C) and `kernel` as (kh, kw, C / groups, C_out), checking they fit."""
    image = np.asarray(image)
    kernel = np.asarray(kernel)
    if image.ndim == 2:
        image = image[:, :, None]
    if kernel.ndim == 2:
        kernel = kernel[:, :, None, None]
    if image.ndim != 3:
        raise InputError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
    if kernel.ndim != 4:
        raise InputError(f"kernel must be (kh, kw) or (kh, kw, C_in, C_out), got shape {kernel.shape}")
    if image.shape[2] != kernel.shape[2] * groups:
        raise InputError(f"image has {image.shape[2]} channels but the kernel expects "
                         f"{kernel.shape[2] * groups} input channels (kernel shape {kernel.shape}, HWIO, "
                         f"groups={groups})")
    if kernel.shape[3] % groups:
        raise InputError(f"the kernel's {kernel.shape[3]} output channels do not split into {groups} groups")
    if 0 in image.shape or 0 in kernel.shape:
        raise InputError(f"empty image {image.shape} or kernel {kernel.shape}")
    return image, kernel


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype for a convcheck dtype name ('bfloat16' is `ml_dtypes.bfloat16`)."""
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def cast_inputs(image: np.ndarray, kernel: np.ndarray, dtype: str
                ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Both arrays rounded to `dtype` (part of computing in it), and a note on overflow."""
    target = numpy_dtype(dtype)
    notes = []
    cast = []
    for label, array in (("image", image), ("kernel", kernel)):
        if array.dtype == target:
            cast.append(array)
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            rounded = array.astype(target)
        # float16 tops out at 65504: say so rather than let an inf look like a bug.
        if (np.isfinite(array.astype(np.float64)).all()
                and not np.isfinite(rounded.astype(np.float64)).all()):
            notes.append(f"the {label} overflows {dtype}: some values became inf when rounded to it")
        cast.append(rounded)
    return cast[0], cast[1], tuple(notes)


def dtype_name(dtype: Any) -> str:
    """A dtype's plain name: 'float32', 'bfloat16', 'int64' (numpy, ml_dtypes, TF or str)."""
    if isinstance(dtype, str):
        return dtype
    name = getattr(dtype, "name", None)
    if isinstance(name, str):
        return name
    return np.dtype(dtype).name


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message as one informative line (first real line, ANSI codes removed)."""
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines()]
    # Keras wraps every layer error in "Exception encountered when calling X.call()." and
    # puts the real reason on a later line.
    useful = [line for line in lines
              if line and not line.startswith("Exception encountered when calling")]
    text = useful[0] if useful else (lines[0] if lines and lines[0] else type(exc).__name__)
    return text if len(text) <= limit else text[: limit - 3] + "..."
