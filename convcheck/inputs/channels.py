"""A declared bias or scale read from a file (CONTRACT section 2a): one finite value per output
channel, from a `.npy` or a `FILE.npz:KEY`, checked like every other input file.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .arrays import check_finite
from .files import DEFAULT_MAX_ELEMENTS, read_npy


def read_channel_values(path, field: str, max_elements: int = DEFAULT_MAX_ELEMENTS) -> tuple[float, ...]:
    """The values of a `field` ('bias' or 'scale') file, one per output channel, as Python floats.

    Read safely (`read_npy`: header first, never unpickled), then refused unless it is 1-D,
    non-empty and finite; how many values the output needs is checked by `check_channel_count`
    once the output is known. Messages name the file ("bias file 'b.npy': ...")."""
    array = read_npy(path, field, max_elements)
    label = f"{field} file '{path}'"
    if array.ndim != 1:
        what = "a single number (0-D)" if array.ndim == 0 else f"{array.ndim}-D (shape {array.shape})"
        raise InputError(f"{label}: is {what}; give a 1-D array of one value per output channel "
                         f"(e.g. a PyTorch layer's {field}.detach().numpy()), or the number itself")
    if array.size == 0:
        raise InputError(f"{label}: holds no values; give one value per output channel")
    check_finite(array, label)
    wide = array.astype(np.float32) if array.dtype.kind == "V" else array   # ml_dtypes bfloat16
    return tuple(float(value) for value in np.asarray(wide, dtype=np.float64))


def check_channel_count(values, label: str, outs: int) -> None:
    """Refuse `values` (from the file `label` names) unless there is one per output channel."""
    if len(values) != outs:
        raise InputError(f"{label}: holds {len(values)} value{'s' if len(values) != 1 else ''}, but the output has "
                         f"{outs} channel{'s' if outs != 1 else ''}; give one value per output channel")


__all__ = ["check_channel_count", "read_channel_values"]
