"""The backends `compare` can run, by public name, in the order reports list them.

Importing this package imports numpy but no framework: each backend imports its own
(scipy, TensorFlow, Keras) only in `warm_up` / `run`. Adding a backend is one module
implementing `Backend` plus one line in `BACKENDS`.
"""

from __future__ import annotations

from ..errors import InputError
from .base import Backend, BackendRun
from .keras import KerasConv2D
from .scipy_signal import ScipyConvolve2D, ScipyCorrelate2D
from .tensorflow import TensorFlowConv2D

BACKENDS: dict[str, Backend] = {backend.name: backend for backend in (
    ScipyConvolve2D(),
    ScipyCorrelate2D(),
    TensorFlowConv2D(),
    KerasConv2D(),
)}


def get_backend(name: str) -> Backend:
    """The backend with public name `name`; `InputError` listing the valid names otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise InputError(f"unknown backend {name!r}: choose from {', '.join(BACKENDS)}") from None


__all__ = ["BACKENDS", "Backend", "BackendRun", "get_backend"]
