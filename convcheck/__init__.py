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
            kernel_layout: str = "hwio", keep_arrays: bool = False) -> "Diagnosis":
    """Which computation produced `output` from `image` and `kernel`? Returns a `Diagnosis`.

    Layouts: image (H, W) or (H, W, C); kernel (kh, kw) or HWIO (kh, kw, C_in, C_out), or
    OIHW with `kernel_layout="oihw"`; output (Ho, Wo), (Ho, Wo, C_out) or (1, Ho, Wo, C_out).
    `padding` is the size convention you expected ('same', 'valid', 'full'); `precision`
    the precision you expected (default: the inputs' own, e.g. float64 for float64 data);
    `keep_arrays` keeps the arrays on the diagnosis for plots. Bad arrays raise
    `convcheck.InputError`. Never imports TensorFlow.
    """
    from .engine import explain as _explain
    return _explain(image, kernel, output, padding=padding, precision=precision, kernel_layout=kernel_layout,
                    keep_arrays=keep_arrays)


def compare(image, kernel, *, padding: str = "same", dtype: Optional[str] = None,
            backends: Optional[list] = None, kernel_layout: str = "hwio",
            library_defaults: bool = False, keep_arrays: bool = False) -> "CompareReport":
    """Run `image` and `kernel` through every backend and diagnose each output.

    `dtype` is what every backend computes in (default: the wider of the inputs' float
    dtypes); `backends` names the backends to run (default: all; see `convcheck backends`);
    `library_defaults` calls each library with its own defaults instead. Layouts as in
    `explain`. Returns a `CompareReport` (`report.ok`, one `BackendResult` per backend).
    Bad arrays raise `convcheck.InputError` before any framework is imported.
    """
    from .comparison import compare as _compare
    return _compare(image, kernel, padding=padding, dtype=dtype, backends=backends, kernel_layout=kernel_layout,
                    library_defaults=library_defaults, keep_arrays=keep_arrays)


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
