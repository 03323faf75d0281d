"""The backends `compare` can run, by public name, in the order reports list them.

Importing this package imports numpy but no framework: each backend imports its own
(scipy, TensorFlow, Keras, PyTorch, JAX, OpenCV) only in `warm_up` / `run`. Adding a
backend is one module implementing `Backend` plus one line in `BACKENDS`.

`--backends` also takes short aliases (`torch`, `tf`, `cv2`, ...) and groups (`dl`,
`scipy`): `resolve_backends` turns them into public names.
"""

from __future__ import annotations

from ..errors import InputError
from .base import Backend, BackendRun
from .jax import JaxConvGeneralDilated
from .keras import KerasConv2D
from .keras_other import KerasJaxConv2D, KerasTorchConv2D
from .opencv import OpenCVFilter2D
from .scipy_fft import ScipyFFTConvolve
from .scipy_ndimage import NdimageConvolve, NdimageCorrelate
from .scipy_signal import ScipyConvolve2D, ScipyCorrelate2D
from .tensorflow import TensorFlowConv2D
from .torch import TorchConv2D

BACKENDS: dict[str, Backend] = {backend.name: backend for backend in (
    ScipyConvolve2D(),
    ScipyCorrelate2D(),
    TensorFlowConv2D(),
    KerasConv2D(),
    ScipyFFTConvolve(),
    NdimageCorrelate(),
    NdimageConvolve(),
    TorchConv2D(),
    JaxConvGeneralDilated(),
    OpenCVFilter2D(),
    KerasJaxConv2D(),
    KerasTorchConv2D(),
)}

# Short names people type: each stands for one backend.
ALIASES: dict[str, str] = {
    "convolve2d": "scipy.signal.convolve2d",
    "scipy.convolve2d": "scipy.signal.convolve2d",
    "correlate2d": "scipy.signal.correlate2d",
    "scipy.correlate2d": "scipy.signal.correlate2d",
    "tf": "tf.nn.conv2d",
    "tensorflow": "tf.nn.conv2d",
    "keras": "keras.layers.Conv2D",
    "keras[tensorflow]": "keras.layers.Conv2D",
    "fft": "scipy.signal.fftconvolve",
    "fftconvolve": "scipy.signal.fftconvolve",
    "ndimage": "scipy.ndimage.correlate",
    "ndimage.correlate": "scipy.ndimage.correlate",
    "ndimage.convolve": "scipy.ndimage.convolve",
    "torch": "torch.nn.functional.conv2d",
    "pytorch": "torch.nn.functional.conv2d",
    "jax": "jax.lax.conv_general_dilated",
    "cv2": "cv2.filter2D",
    "opencv": "cv2.filter2D",
    "keras[jax]": "keras.layers.Conv2D[jax]",
    "keras-jax": "keras.layers.Conv2D[jax]",
    "keras[torch]": "keras.layers.Conv2D[torch]",
    "keras-torch": "keras.layers.Conv2D[torch]",
}

# Groups: each stands for several backends, in registry order.
GROUPS: dict[str, tuple[str, ...]] = {
    "all": tuple(BACKENDS),
    "scipy": tuple(name for name in BACKENDS if name.startswith("scipy.")),
    "dl": ("tf.nn.conv2d", "keras.layers.Conv2D", "torch.nn.functional.conv2d",
           "jax.lax.conv_general_dilated", "keras.layers.Conv2D[jax]",
           "keras.layers.Conv2D[torch]"),
}


def get_backend(name: str) -> Backend:
    """The backend with public name (or alias) `name`; `InputError` listing the valid names otherwise."""
    try:
        return BACKENDS[ALIASES.get(name, name)]
    except KeyError:
        raise InputError(f"unknown backend {name!r}: {valid_names()}") from None


def valid_names() -> str:
    """One line naming every backend, alias and group `--backends` accepts."""
    return (f"choose from {', '.join(BACKENDS)}; aliases {', '.join(ALIASES)}; "
            f"groups {', '.join(GROUPS)} (see convcheck backends)")


def resolve_backends(names) -> list[str]:
    """Public backend names for names, aliases and groups, in the order given, without repeats."""
    resolved: list[str] = []
    for name in names:
        key = name.strip()
        if key in GROUPS:
            resolved.extend(GROUPS[key])
        elif key in BACKENDS or key in ALIASES:
            resolved.append(ALIASES.get(key, key))
        else:
            raise InputError(f"unknown backend {key!r}: {valid_names()}")
    return list(dict.fromkeys(resolved))


def completion_choices() -> list[str]:
    """Everything `--backends` accepts, for shell completion."""
    return list(BACKENDS) + list(ALIASES) + list(GROUPS)


__all__ = ["BACKENDS", "ALIASES", "GROUPS", "Backend", "BackendRun", "get_backend",
           "resolve_backends", "valid_names", "completion_choices"]
