"""convcheck: explain why convolution outputs disagree.

Python API (numpy is imported on first use, TensorFlow only by backends that need it):

    import convcheck
    diagnosis = convcheck.explain(image, kernel, output)      # -> convcheck.Diagnosis
    report = convcheck.compare(image, kernel)                 # -> convcheck.CompareReport

`Diagnosis.verdict` is one of "equal", "explained", "unexplained"; `Diagnosis.explanation`
names the kernel transform, padding, boundary, offset, precision, bias and scale that
reproduce the output (see CONTRACT section 2).
"""

from .errors import BackendError, InputError

__version__ = "0.1.0"

__all__ = ["explain", "compare", "Diagnosis", "CompareReport", "BackendResult", "Stats",
           "Explanation", "Cause", "Verdict", "InputError", "BackendError", "__version__"]


def explain(image, kernel, output, **options):
    """Diagnose `output` against the float64 cross-correlation of `image` with `kernel`.

    See `convcheck.engine.explain` for the options (padding, precision, kernel_layout, ...).
    """
    from .engine import explain as _explain
    return _explain(image, kernel, output, **options)


def compare(image, kernel, **options):
    """Run the image and kernel through every backend and diagnose each output.

    See `convcheck.comparison.compare` for the options (padding, dtype, backends, ...).
    """
    from .comparison import compare as _compare
    return _compare(image, kernel, **options)


_LAZY = {"Diagnosis": "results", "CompareReport": "results", "BackendResult": "results", "Stats": "results",
         "Explanation": "vocabulary", "Cause": "vocabulary", "Verdict": "vocabulary"}


def __getattr__(name):
    # Loaded on first use, so `convcheck --help` does not pay for dataclasses and enums.
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'convcheck' has no attribute {name!r}")
