"""`compare`: run one image and kernel through every backend, then diagnose each output.

"Run each backend, then `explain` each output": backends never diagnose, and every row's
diagnosis comes from the one engine (`convcheck.engine.diagnose`) that `explain` uses.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from .backends import BACKENDS, get_backend, resolve_backends, valid_names
from .backends.keras_other import KerasSubprocessConv2D
from .engine import diagnose, native_precision
from .errors import BackendError, InputError
from .geometry import dense_kernel, dilate_kernel, geometry_pair, normalize_padding, output_size, pad_before
from .results import BackendResult, CompareReport
from .vocabulary import DTYPES


def default_dtype(image_dtype, kernel_dtype) -> str:
    """`--dtype`'s default: the wider of the inputs' float dtypes; float32 for integers."""
    return native_precision(image_dtype, kernel_dtype)


def demo_paths() -> tuple[Path, Path]:
    """The packaged demo case: the 8x8 image and 3x3 kernel of the well-known question
    "Different 2D convolution results between keras and scipy"."""
    data = resources.files("convcheck") / "data"
    return Path(str(data / "demo_image.npy")), Path(str(data / "demo_kernel.npy"))


def backend_table() -> list[dict]:
    """Every backend: whether it can run here, its library version, and why not."""
    rows = []
    for name, backend in BACKENDS.items():
        available, reason = backend.availability()
        rows.append({"backend": name, "available": available,
                     "version": backend.version() if available else None, "reason": reason})
    return rows


class _WarmUp:
    """Import the heavy frameworks in a background thread while the cheap rows run.

    The frameworks' imports (seconds each) dominate a compare; overlapping them with the
    scipy calls and their diagnoses is what lets `compare` beat a hand-written script.
    Only the backends asked for are warmed (the Keras-on-JAX/PyTorch rows start their
    child process here).
    """

    def __init__(self, backends):
        # Child processes first (starting one is instant, its imports run beside ours).
        backends = sorted(backends, key=lambda b: not isinstance(b, KerasSubprocessConv2D))
        self._ready = {backend.name: threading.Event() for backend in backends}
        self._thread = threading.Thread(target=self._run, args=(backends,), daemon=True)
        self._thread.start()

    def _run(self, backends):
        for backend in backends:
            try:
                backend.warm_up()
                if not isinstance(backend, KerasSubprocessConv2D):
                    _WARM.add(backend.name)   # imported for good: later compares need no thread
            except BaseException:  # reported by the backend's own run()
                pass
            finally:
                self._ready[backend.name].set()

    def wait(self, name: str):
        """Until `name`'s framework is imported (or failed to be); at once for others."""
        event = self._ready.get(name)
        if event is not None:
            event.wait()


_WARM: set[str] = set()   # backends whose framework this process has imported


def _library_defaults_hint(names: Iterable[str], padding: str, dtype: str) -> Optional[str]:
    """One line saying which library defaults would change this table, if any would."""
    names = set(names)
    differences = []
    if names & {"scipy.signal.convolve2d", "scipy.signal.correlate2d", "scipy.signal.fftconvolve"}:
        if padding != "full":
            differences.append("scipy.signal uses mode='full'")
    keras_rows = names & {"keras.layers.Conv2D", "keras.layers.Conv2D[jax]", "keras.layers.Conv2D[torch]"}
    if keras_rows:
        keras = []
        if padding != "valid":
            keras.append("padding='valid'")
        if dtype != "float32":
            keras.append(f"a float32 dtype policy (this run computes in {dtype})")
        if keras:
            differences.append("Keras uses " + " and ".join(keras))
    if "torch.nn.functional.conv2d" in names and padding != "valid":
        differences.append("PyTorch uses padding=0")
    if "jax.lax.conv_general_dilated" in names and dtype == "float64":
        differences.append("JAX computes float64 arrays in float32 unless x64 is on")
    if "cv2.filter2D" in names:
        differences.append("OpenCV reflects the border (reflect-101) and works in float32")
    if names & {"scipy.ndimage.correlate", "scipy.ndimage.convolve"}:
        differences.append("scipy.ndimage reflects the border (mode='reflect')")
    if not differences:
        return None
    return ("With their own defaults these libraries would disagree further ("
            + "; ".join(differences) + "): run with --library-defaults to see which default bites.")


def _digest(array) -> bytes:
    """A 256-bit BLAKE2 digest of an array's bytes (C order)."""
    import hashlib
    return hashlib.blake2b(np.ascontiguousarray(array).reshape(-1).view(np.uint8), digest_size=32).digest()


def _run_backend(backend, inputs, *, padding: str, dtype: str, library_defaults: bool,
                 stride: tuple[int, int], dilation: tuple[int, int]):
    """One backend on every sample of the batch: (output (N, Ho, Wo, C_out), compute dtype,
    seconds, notes, algorithm).

    At stride and dilation 1 with dense channels each library gets the plain call. A
    backend whose library takes stride, dilation and groups itself (`native_geometry`:
    TensorFlow, Keras, PyTorch, JAX) gets them and the grouped kernel. For the others
    any other geometry runs as the same exact computation every library can do: the kernel
    made dense (zeros outside each group) and dilated (zeros between taps; both exact),
    the image zero-padded as CONTRACT section 1 pads it, a 'valid' correlation, every
    stride-th row and column kept. The row's notes say so.
    """
    kernel, notes = inputs.kernel, []
    plain = stride == (1, 1) and dilation == (1, 1) and inputs.groups == 1
    native = bool(getattr(backend, "native_geometry", False))
    if not plain:
        if library_defaults:
            raise InputError("--library-defaults runs each library's own call; with --stride, --dilation or "
                             "grouped channels convcheck emulates the geometry instead: drop one of them")
        if not native:
            kernel = dilate_kernel(dense_kernel(np.asarray(kernel), inputs.groups), dilation)
            notes.append("stride, dilation and groups emulated exactly: dense dilated kernel, zero-padded image, "
                         "'valid' call, every stride-th output kept")
    outputs, seconds, compute = [], 0.0, None
    height, width = inputs.image.shape[1:3]
    kh, kw = inputs.kernel.shape[:2]
    out_h, out_w = output_size(padding, height, width, kh, kw, stride, dilation)
    top, left = pad_before(padding, kh, kw, height, width, stride, dilation)
    for sample in inputs.image:
        if plain:
            run = backend.run(sample, kernel, padding=padding, dtype=dtype, library_defaults=library_defaults)
            out = run.output
        elif native:
            run = backend.run(sample, kernel, padding=padding, dtype=dtype, library_defaults=False,
                              stride=stride, dilation=dilation, groups=inputs.groups)
            out = run.output
        else:
            rows = (out_h - 1) * stride[0] + kernel.shape[0]
            cols = (out_w - 1) * stride[1] + kernel.shape[1]
            padded = np.zeros((max(rows, height + top), max(cols, width + left), sample.shape[2]), sample.dtype)
            padded[top:top + height, left:left + width] = sample
            run = backend.run(padded[:rows, :cols], kernel, padding="valid", dtype=dtype, library_defaults=False)
            out = run.output[::stride[0], ::stride[1]][:out_h, :out_w]
        outputs.append(out)
        seconds += run.seconds
        compute = run.compute_dtype
        notes = notes + [n for n in run.notes if n not in notes]
    return np.stack(outputs), compute, seconds, notes, run.algorithm


def _user_reading(inputs) -> str:
    """How a backend's output is shown to the user: the image's own layout and rank."""
    flat = len(inputs.image_shape) == 2 and len(inputs.kernel_shape) == 2
    batch = len(inputs.image_shape) == 4
    if flat:
        return "hw"
    if inputs.layout == "nchw":
        return "nchw" if batch else "chw"
    return "nhwc" if batch else "hwc"


def compare_inputs(inputs, *, padding: str = "same", dtype: Optional[str] = None,
                   backends: Optional[list[str]] = None, library_defaults: bool = False,
                   keep_arrays: bool = False, stride=(1, 1), dilation=(1, 1), diagnoser=None) -> CompareReport:
    """Run `inputs` (a validated `convcheck.inputs.Inputs`) through each backend and diagnose each output.

    `dtype` is what every backend is asked to compute in (default: the wider of the
    inputs' float dtypes, float32 for integers); the diagnosis expects that precision,
    so a row is `explained` by precision only when a library computed in less. With
    `library_defaults`, each library is called with its own defaults instead and rows
    are diagnosed against what the inputs carry, so the defaults that bite show up as
    causes. `backends` names the backends to run (all by default); a named backend
    that cannot run makes its row `skipped`/`failed` with `requested=True`. `stride`
    and `dilation` (and the groups the kernel's shape implies) are held the same for
    every backend (see `_run_backend`). `diagnoser` diagnoses each output in place of
    `engine.diagnose` (same arguments); what it returns may be a `convcheck.worker.Pending`
    (`check`'s pipeline passes a worker's `submit`), which the rows hold until
    `settled(report)`.
    """
    stride, dilation = geometry_pair(stride, "stride"), geometry_pair(dilation, "dilation")
    padding = normalize_padding(padding)
    if inputs.kernel_axis is not None:
        raise InputError(f"kernel {inputs.kernel_name!r} is 1-D: explain accepts one (and says along which axis "
                         "it ran), compare needs a 2-D (kh, kw) or 4-D kernel, e.g. kernel[None, :] for a row")
    dtype = _compute_dtype(inputs, dtype)
    names = _backend_names(backends)
    rows = _Rows(inputs, padding=padding, dtype=dtype, library_defaults=library_defaults, keep_arrays=keep_arrays,
                 stride=stride, dilation=dilation, diagnose=diagnoser or diagnose, requested=backends is not None)
    results = rows.run([get_backend(name) for name in names])
    order = {name: i for i, name in enumerate(names)}
    results.sort(key=lambda r: order[r.backend])
    return _report(inputs, results, names, padding=padding, dtype=dtype, library_defaults=library_defaults,
                   stride=stride, dilation=dilation)


def _compute_dtype(inputs, dtype: Optional[str]) -> str:
    """The dtype every backend computes in: `dtype`, checked, or the inputs' own."""
    if dtype is None:
        dtype = default_dtype(inputs.image.dtype, inputs.kernel.dtype)
    if dtype not in DTYPES:
        raise InputError(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}; pass one of them")
    return dtype


def _backend_names(backends) -> list[str]:
    """The public names of the backends to run: every one for None; names, aliases (torch,
    tf, ...) and groups (dl, scipy) resolved, anything else an `InputError`."""
    if isinstance(backends, str):
        raise InputError(f"backends: {backends!r} is a string; pass a list of names, e.g. "
                         f"backends=[{backends!r}] (see convcheck backends)")
    if backends is not None:
        try:
            backends = list(backends)
        except TypeError:
            raise InputError(f"backends: {backends!r} is not a list of backend names") from None
        if not backends:
            raise InputError("backends: the list is empty; name at least one backend, or pass None for all")
        for name in backends:
            if not isinstance(name, str):
                raise InputError(f"backends: {name!r} is not a backend name; {valid_names()}")
    # Names, aliases (torch, tf, ...) and groups (dl, scipy) become public names.
    return resolve_backends(backends) if backends else list(BACKENDS)


class _Rows:
    """The rows of one compare: each backend run on the same inputs and settings, its output diagnosed."""

    def __init__(self, inputs, *, padding: str, dtype: str, library_defaults: bool, keep_arrays: bool,
                 stride: tuple[int, int], dilation: tuple[int, int], diagnose, requested: bool):
        self.inputs, self.padding, self.dtype = inputs, padding, dtype
        self.library_defaults, self.keep_arrays = library_defaults, keep_arrays
        self.stride, self.dilation, self.diagnose, self.requested = stride, dilation, diagnose, requested
        self.expected_precision = (default_dtype(inputs.image.dtype, inputs.kernel.dtype) if library_defaults
                                   else dtype)
        self.diagnosed: dict = {}   # (dtype, shape, algorithm, kept, digest of the output): its diagnosis

    def run(self, chosen: list) -> list[BackendResult]:
        """A row per backend, the cheap (scipy) ones first while the frameworks import beside them."""
        availability = {b.name: b.availability() for b in chosen}
        heavy = [b for b in chosen if availability[b.name][0] and b.module != "scipy" and b.name not in _WARM]
        warm = _WarmUp(heavy) if heavy else None
        rows: list[BackendResult] = []
        for backend in sorted(chosen, key=lambda b: b.module != "scipy"):  # cheap rows first
            available, reason = availability[backend.name]
            if not available:
                rows.append(BackendResult(backend.name, "skipped", reason=reason, requested=self.requested))
                continue
            if warm is not None:
                warm.wait(backend.name)
            rows.append(self.row(backend))
        return rows

    def row(self, backend) -> BackendResult:
        """One available backend's row: its output and the output's diagnosis, or why it failed."""
        inputs = self.inputs
        try:
            output, compute_dtype, seconds, run_notes, algorithm = _run_backend(
                backend, inputs, padding=self.padding, dtype=self.dtype, library_defaults=self.library_defaults,
                stride=self.stride, dilation=self.dilation)
        except BackendError as exc:
            return BackendResult(backend.name, "failed", reason=exc.reason, requested=self.requested,
                                 version=backend.version())
        # Index back into the output as the user would hold it: the image's layout and rank.
        reading = _user_reading(inputs)
        by_axis = dict(zip("nhwc", output.shape))
        shape = tuple(by_axis[axis] for axis in reading)
        row_inputs = replace(inputs, output=output, output_shape=shape, output_name=backend.name,
                             output_reading=reading, output_layout=inputs.declared_output_layout)
        # The row is judged by the bound of the algorithm the library uses (an FFT's is normwise).
        # Every backend ran the grouping the kernel's shape implies: that is what is expected.
        # A library without half precision (scipy, OpenCV) sums the rounded inputs in float32
        # and returns float32: that row's result is expected in float32, not rounded back.
        kept = compute_dtype if (not self.library_defaults and self.dtype in ("bfloat16", "float16")
                                 and compute_dtype in ("float32", "float64")) else None
        diagnosis = self.diagnosis(row_inputs, algorithm, kept)
        return BackendResult(backend.name, "ok", version=backend.version(),
                             compute_dtype=compute_dtype, shape=shape,
                             seconds=round(seconds, 6), notes=tuple(run_notes),
                             diagnosis=diagnosis, requested=self.requested)

    def diagnosis(self, row_inputs, algorithm: str, kept: Optional[str]):
        """The diagnosis of a row's output (`row_inputs.output`), made once for outputs of the same bytes."""
        output = row_inputs.output
        # Backends often return the very same bits (Keras on TensorFlow calls tf.nn.conv2d):
        # a diagnosis is a function of the inputs, the settings and the output's bytes, so
        # such rows share one. The bytes are known by a 256-bit BLAKE2 digest, not kept
        # (a collision, odds 2^-128, would only repeat a diagnosis).
        key = (output.dtype.str, output.shape, algorithm, kept, _digest(output))
        diagnosis = self.diagnosed.get(key)
        if diagnosis is None:
            diagnosis = self.diagnosed[key] = self.diagnose(
                row_inputs, padding=self.padding, precision=self.expected_precision, stride=self.stride,
                dilation=self.dilation, groups=self.inputs.groups, algorithm=algorithm, keep_arrays=self.keep_arrays,
                output_precision=kept)
        return diagnosis


def _report(inputs, rows: list[BackendResult], names: list[str], *, padding: str, dtype: str,
            library_defaults: bool, stride: tuple[int, int], dilation: tuple[int, int]) -> CompareReport:
    """The `CompareReport` of the rows: the inputs, the settings, and the library-defaults hint."""
    notes = []
    if not library_defaults:
        hint = _library_defaults_hint([r.backend for r in rows if r.status == "ok"], padding, dtype)
        if hint:
            notes.append(hint)
    report_inputs = {
        "image": {"shape": list(inputs.image_shape), "dtype": str(inputs.image.dtype), "path": inputs.image_name},
        "kernel": {"shape": list(inputs.kernel_shape), "dtype": str(inputs.kernel.dtype), "path": inputs.kernel_name},
    }
    shown = padding if isinstance(padding, str) else [list(pair) for pair in padding]   # [[top, bottom], [left, right]]
    settings = {"padding": shown, "stride": list(stride), "dilation": list(dilation),
                "groups": int(inputs.groups), "layout": inputs.layout, "dtype": dtype,
                "library_defaults": library_defaults, "backends": names}
    return CompareReport(report_inputs, settings, tuple(rows), tuple(notes))


def settled(report: CompareReport) -> CompareReport:
    """`report` with every row's `Pending` diagnosis (see `compare_inputs`) made a diagnosis."""
    rows = tuple(replace(row, diagnosis=row.diagnosis.result()) if hasattr(row.diagnosis, "result") else row
                 for row in report.results)
    return replace(report, results=rows)


def compare(image, kernel, *, padding: str = "same", dtype: Optional[str] = None,
            backends: Optional[list[str]] = None, kernel_layout: Optional[str] = None,
            library_defaults: bool = False, keep_arrays: bool = False, stride=(1, 1), dilation=(1, 1),
            layout: str = "nhwc") -> CompareReport:
    """Run numpy arrays through every backend and diagnose each output (Python API of `compare`).

    Layouts as in CONTRACT section 1: image (H, W), (H, W, C) or (N, H, W, C) (channels
    first with `layout="nchw"`); kernel (kh, kw), HWIO, OIHW with `kernel_layout="oihw"`,
    depthwise with `kernel_layout="depthwise"`, or any other order of the letters h, w, i, o
    (e.g. "ohwi"). `padding` is a convention's name or explicit amounts (PyTorch's padding=1,
    (PH, PW), (top, bottom, left, right) or ((top, bottom), (left, right))), which every backend
    is given (as its own explicit padding, or a 'valid' call on an image zero-padded by hand).
    `stride` and `dilation` are held the same for every backend. Bad arrays raise `convcheck.InputError` before any framework
    is imported.
    """
    from .inputs import prepare_inputs
    padding = normalize_padding(padding)
    inputs = prepare_inputs(image, kernel, kernel_layout=kernel_layout, padding=padding, layout=layout)
    return compare_inputs(inputs, padding=padding, dtype=dtype, backends=backends,
                          library_defaults=library_defaults, keep_arrays=keep_arrays, stride=stride,
                          dilation=dilation)
