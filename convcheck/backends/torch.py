"""`torch.nn.functional.conv2d` as a backend (NCHW input, OIHW weight), a cross-correlation.

Behaviours checked on torch 2.13 (CPU):
- conv2d accepts float16, bfloat16, float32 and float64 on the CPU; both operands must
  have one dtype; integer inputs raise ("not implemented for 'Long'").
- padding='same' at stride 1 pads (k - 1) // 2 before and the rest after, which is
  TensorFlow 'SAME' (the extra row/column at the bottom/right) — checked against the
  reference for even kernels. For an even kernel torch warns that it copies the input
  (a UserWarning, silenced here: it is about memory, not numbers).
- the default padding is 0 ('valid').
- TensorFloat-32 only exists on CUDA: convcheck turns it off (cudnn.allow_tf32 and
  cuda.matmul.allow_tf32) so float32 stays float32 on a GPU too.
- stride=, dilation= and groups= run natively (strides with dilations included). padding=
  'same' is refused at stride > 1, and TF's SAME is asymmetric there: convcheck pads with
  F.pad by TF's exact amounts (the extra row/column at the bottom/right) and passes
  padding=0; symmetric amounts go as padding=(top, left).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ..geometry import is_explicit
from .base import Backend, BackendRun, cast_inputs, dtype_name, geometry_pads, quiet_stderr

_TORCH_DTYPES = ("float16", "bfloat16", "float32", "float64")


def import_torch():
    """Import torch quietly, with TensorFloat-32 off (it only exists on CUDA)."""
    with quiet_stderr():
        import torch
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return torch


def to_numpy(tensor) -> np.ndarray:
    """A tensor's values as numpy, bfloat16 as `ml_dtypes.bfloat16` (numpy has no bfloat16)."""
    import torch
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        import ml_dtypes
        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def from_numpy(array: np.ndarray):
    """A numpy array (bfloat16 included) as a CPU tensor of the same dtype."""
    import torch
    array = np.ascontiguousarray(array)
    if dtype_name(array.dtype) == "bfloat16":
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def _explicit(padding, notes: list[str]):
    """(F.conv2d's padding=, F.pad's pads or None) for explicit ((top, bottom), (left, right)) amounts:
    padding=(PH, PW) when each axis is padded alike, as PyTorch layers declare it; else F.pad first."""
    (top, bottom), (left, right) = padding
    if (top, left) == (bottom, right):
        return (top, left), None
    notes.append(f"unequal explicit pads: F.pad(x, ({left}, {right}, {top}, {bottom})) then padding=0")
    return 0, (left, right, top, bottom)


class TorchConv2D(Backend):
    """`F.conv2d(x, w, padding=...)` on (1, C, H, W) and (O, C, kh, kw) tensors."""

    name = "torch.nn.functional.conv2d"
    module = "torch"
    package = "torch"
    extra = "torch"
    native_geometry = True

    def warm_up(self) -> None:
        import_torch()

    def _run(self, image, kernel, *, padding, dtype, library_defaults, stride=(1, 1), dilation=(1, 1),
             groups=1):
        torch = import_torch()
        import torch.nn.functional as F

        notes: list[str] = []
        kh, kw = kernel.shape[:2]
        pad_first = None
        if library_defaults:
            used_padding = "valid"  # F.conv2d's padding=0
            torch_padding = 0
            if image.dtype.kind in "iub" or dtype_name(image.dtype) not in _TORCH_DTYPES:
                # conv2d has no integer kernel on the CPU: users cast to torch's default float32.
                image_in, kernel_in = image.astype(np.float32), kernel.astype(np.float32)
                notes.append(f"library defaults: padding=0 ('valid'); the "
                             f"{dtype_name(image.dtype)} inputs were cast to float32 "
                             f"(torch's default dtype), as PyTorch users do")
            else:
                image_in = image
                # conv2d needs one dtype: users cast the weight to the input's (weight.to(x)).
                kernel_in = kernel.astype(image.dtype)
                note = (f"library defaults: padding=0 ('valid'); inputs passed as loaded "
                        f"(torch.from_numpy keeps {dtype_name(image.dtype)})")
                if kernel.dtype != image.dtype:
                    note += (f", the {dtype_name(kernel.dtype)} kernel cast to "
                             f"{dtype_name(image.dtype)} to match")
                notes.append(note)
        else:
            used_padding = padding
            image_in, kernel_in, cast_notes = cast_inputs(image, kernel, dtype)
            notes.extend(cast_notes)
            if padding == "full":
                torch_padding = (kh - 1, kw - 1)
                notes.append(f"'full' padding passed as padding=({kh - 1}, {kw - 1}) "
                             f"(zeros on every side)")
            elif is_explicit(padding):
                torch_padding, pad_first = _explicit(padding, notes)
            else:
                # 'same' at stride 1 is TF 'SAME' (extra at the bottom/right), checked.
                torch_padding = padding

        x = from_numpy(np.transpose(image_in, (2, 0, 1)))[None]        # (1, C, H, W)
        w = from_numpy(np.transpose(kernel_in, (3, 2, 0, 1)))          # (O, C / groups, kh, kw)
        stride, dilation = tuple(stride), tuple(dilation)
        if stride != (1, 1) or dilation != (1, 1) or groups != 1:
            if groups != 1:
                notes.append(f"groups={groups} passed to F.conv2d")
            if not library_defaults and not is_explicit(padding):
                top, bottom, left, right = geometry_pads(padding, image.shape[0], image.shape[1], kh, kw,
                                                         stride, dilation)
                if (top, left) == (bottom, right):
                    torch_padding = (top, left)
                else:
                    pad_first = (left, right, top, bottom)
                    torch_padding = 0
                    notes.append(f"TF SAME at this stride/dilation pads unevenly: F.pad(x, ({left}, {right}, "
                                 f"{top}, {bottom})) then padding=0")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Using padding='same'")
            start = time.perf_counter()
            with torch.no_grad():
                if pad_first is not None:
                    x = F.pad(x, pad_first)
                y = F.conv2d(x, w, stride=stride, dilation=dilation, groups=groups, padding=torch_padding)
            output = np.transpose(to_numpy(y[0]), (1, 2, 0))
            seconds = time.perf_counter() - start
        return BackendRun(output=np.ascontiguousarray(output),
                          compute_dtype=str(y.dtype).replace("torch.", ""),
                          padding=used_padding, seconds=seconds, notes=tuple(notes))
