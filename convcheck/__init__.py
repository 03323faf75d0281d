"""convcheck: explain why convolution outputs disagree.

Python API (numpy is imported on first use, TensorFlow only by backends that need it):

    import convcheck
    diagnosis = convcheck.explain(image, kernel, output)      # -> convcheck.Diagnosis
    report = convcheck.compare(image, kernel)                 # -> convcheck.CompareReport

`Diagnosis.verdict` is one of "equal", "explained", "unexplained"; `Diagnosis.explanation`
names the kernel transform, padding, boundary, offset, precision, bias and scale that
reproduce the output (see CONTRACT section 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .errors import BackendError, InputError

if TYPE_CHECKING:  # for type checkers and IDEs only: at run time these load lazily
    from .results import BackendResult, CompareReport, Diagnosis, Stats  # noqa: F401
    from .vocabulary import Cause, Explanation, Verdict  # noqa: F401

__version__ = "0.1.0"

__all__ = ["explain", "compare", "Diagnosis", "CompareReport", "BackendResult", "Stats",
           "Explanation", "Cause", "Verdict", "InputError", "BackendError", "__version__"]


def explain(image, kernel, output, *, padding: str = "same", precision: Optional[str] = None,
            stride=(1, 1), dilation=(1, 1), groups: Optional[int] = None, layout: str = "nhwc",
            kernel_layout: Optional[str] = None, algorithm: str = "direct",
            keep_arrays: bool = False, output_precision: Optional[str] = None,
            expected: Optional[dict] = None, declared_uncertainty: Optional[dict] = None) -> "Diagnosis":
    """Which computation produced `output` from `image` and `kernel`? Returns a `Diagnosis`.

    Layouts (CONTRACT section 1): image (H, W), (H, W, C) or a batch (N, H, W, C), or with
    `layout="nchw"` (C, H, W) / (N, C, H, W); kernel (kh, kw), HWIO (kh, kw, C_in / groups,
    C_out), OIHW with `kernel_layout="oihw"` (the default with layout "nchw"), or
    (kh, kw, C, multiplier) with `kernel_layout="depthwise"`, or any other order of the letters
    h, w, i, o (e.g. "ohwi"); output in the image's layout.
    `padding` ('same', 'valid', 'full', or amounts as PyTorch and ONNX give them: 1, (PH, PW),
    (top, bottom, left, right), ((top, bottom), (left, right))), `stride`, `dilation` and
    `groups` are what you expected; `precision` the precision you expected (default: the
    inputs' own, e.g. float64 for float64 data);
    `algorithm` 'fft' when the output came from an FFT convolution, 'winograd' from Winograd
    F(m x m, 3 x 3) tiles (3x3 kernels at stride 1); `output_precision` the type you expected the
    result stored in (default: the precision's own, e.g. 'float32' for bfloat16 inputs summed and
    kept in float32); `keep_arrays` keeps the arrays on the diagnosis for plots. `expected`
    declares any other field of CONTRACT section 2 (section 2a: {"bias": layer.bias,
    "activation": "relu", "offset": (-1, -1), ...}): a declared bias or scale is applied as
    given, never fitted; `declared_uncertainty` ({"scale": relative, "bias": absolute}) is how
    far a runtime's own values of them may be (a BatchNorm folded in float32). Bad arrays and
    values raise `convcheck.InputError`. Never imports TensorFlow.
    """
    from .engine import explain as _explain
    return _explain(image, kernel, output, padding=padding, precision=precision, stride=stride,
                    dilation=dilation, groups=groups, layout=layout, kernel_layout=kernel_layout,
                    algorithm=algorithm, keep_arrays=keep_arrays, output_precision=output_precision,
                    expected=expected, declared_uncertainty=declared_uncertainty)


def compare(image, kernel, *, padding: str = "same", dtype: Optional[str] = None,
            backends: Optional[list] = None, kernel_layout: Optional[str] = None,
            library_defaults: bool = False, keep_arrays: bool = False, stride=(1, 1), dilation=(1, 1),
            layout: str = "nhwc") -> "CompareReport":
    """Run `image` and `kernel` through every backend and diagnose each output.

    `dtype` is what every backend computes in (default: the wider of the inputs' float
    dtypes); `backends` names the backends to run (default: all; see `convcheck backends`);
    `library_defaults` calls each library with its own defaults instead; `stride` and
    `dilation` are held the same for every backend. Layouts as in `explain`. Returns a
    `CompareReport` (`report.ok`, one `BackendResult` per backend). Bad arrays raise
    `convcheck.InputError` before any framework is imported.
    """
    from .comparison import compare as _compare
    return _compare(image, kernel, padding=padding, dtype=dtype, backends=backends, kernel_layout=kernel_layout,
                    library_defaults=library_defaults, keep_arrays=keep_arrays, stride=stride,
                    dilation=dilation, layout=layout)


_LAZY = {"Diagnosis": "results", "CompareReport": "results", "BackendResult": "results", "Stats": "results",
         "Explanation": "vocabulary", "Cause": "vocabulary", "Verdict": "vocabulary"}


def __getattr__(name):
    # Loaded on first use, so `convcheck --help` does not pay for dataclasses and enums.
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'convcheck' has no attribute {name!r}")


def __dir__():
    # The lazily loaded names are part of the package: list them for dir(), tab completion and IDEs.
    return sorted((set(globals()) - {"annotations", "TYPE_CHECKING", "Optional"}) | set(_LAZY))
