"""PyTorch models for `convcheck model` (CONTRACT section 6).

Three sources, one layout (NCHW):
- `.pt2` files written by `torch.export.save`: loaded with `torch.export.load` (after
  checking that nothing in the archive but tensors would be unpickled) and run through an
  FX interpreter that captures each conv layer's tensors as they are computed;
- TorchScript files (`torch.jit.save` of a scripted or traced module, usually `.pt`):
  frozen, and their graph rewritten to also return each conv layer's tensors;
- `package.module:attr`, naming an importable nn.Module, a class that needs no arguments
  or a function returning a module: exported with `torch.export` on the input and run like
  a `.pt2`, or captured with forward hooks when export fails.

A layer is a conv (`aten.conv2d`, `aten.convolution`, `aten._convolution`, also for a
'same'/'valid' string padding) with the pad op feeding only it, and the inference
BatchNorm and ReLU/ReLU6 (`relu`, `hardtanh(0, 6)`, `clamp(0, 6)`) right after it.
Files are checked (a regular, non-empty zip archive that torch.export.save or
torch.jit.save wrote) before torch is imported; `torch.save` checkpoints are refused,
never unpickled.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, MissingDependency
from ..inputs import check_regular_file
from .layers import CapturedModel, ModelInfo

FORMAT = "pytorch"
SUFFIXES = (".pt2", ".pt", ".pth")
LAYOUT = "nchw"

_TODO = ("give a .pt2 file from torch.export.save, a TorchScript file from torch.jit.save, "
         "or a package.module:attr name")
_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True)
class _Source:
    """A validated model reference: kind 'exported', 'script' or 'module'."""

    kind: str
    path: str
    label: str
    pickled: tuple = ()


def _label(name: str) -> str:
    return f"PyTorch model '{name}'"


def _not_zip(label: str, head: bytes) -> InputError:
    """The error for a file that is no zip archive, naming what it looks like."""
    if head.startswith(b"\x89HDF"):
        what = "an HDF5 file (a Keras .h5 model?)"
    elif head[4:8] == b"TFL3":
        what = "a TFLite flatbuffer"
    elif head[:1] == b"\x80":
        what = ("a pickle (an old-style torch.save file?), which convcheck never unpickles: save the model with "
                "torch.export.save or torch.jit.save")
    elif head[:1] == b"\x08":
        what = "a protobuf file (an ONNX model?)"
    else:
        what = "not a zip archive (torch.export.save and torch.jit.save write zip archives)"
    return InputError(f"{label}: is {what}; {_TODO}")


def _archive_kind(name: str, label: str) -> tuple:
    """('exported' or 'script', members to verify) of a zip archive, or InputError."""
    from ._pytorch_fx import check_pt2_archive
    try:
        with zipfile.ZipFile(name) as archive:
            names = archive.namelist()
            damaged = archive.testzip()
            if damaged is not None:
                raise InputError(f"{label}: is corrupt: its member {damaged} fails its CRC check; copy or save "
                                 "the model again")
            top = {entry.split("/", 1)[0] for entry in names}
            root = f"{top.pop()}/" if len(top) == 1 and all("/" in entry for entry in names) else ""
            rel = {entry[len(root):] for entry in names}
            if "archive_format" in rel or any(r.startswith("models/") and r.endswith(".json") for r in rel):
                return "exported", tuple(check_pt2_archive(archive, root, label))
    except InputError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise InputError(f"{label}: is truncated or corrupt (not a readable zip archive: {exc}); copy or save "
                         "the model again") from None
    if "data.pkl" in rel and any(r.startswith("code/") for r in rel):
        return "script", ()
    if "data.pkl" in rel:
        raise InputError(f"{label}: is a torch.save checkpoint (a pickled state_dict or module), not an exported "
                         "or TorchScript model, and convcheck never unpickles checkpoints; save the model with "
                         "torch.export.save or torch.jit.save, or name it as package.module:attr")
    shown = ", ".join(sorted(rel)[:3]) + (", ..." if len(rel) > 3 else "")
    raise InputError(f"{label}: is a zip archive but not one torch.export.save or torch.jit.save writes "
                     f"(it holds {shown or 'nothing'}); {_TODO}")


def _source(path) -> _Source:
    """Validate `path` without importing torch: a module name, or a readable model archive."""
    from ._pytorch_module import MODULE_SPEC
    from .formats import model_name
    name = model_name(path, "PyTorch model", _TODO)
    if not os.path.lexists(name) and MODULE_SPEC.fullmatch(name):
        return _Source("module", name, f"PyTorch module '{name}'")
    label = _label(name)
    if not os.path.lexists(name) and ":" in name:
        raise InputError(f"{label}: no such file, and not a package.module:attr name either "
                         "(like models.resnet:model); check the spelling")
    check_regular_file(name, label, "a PyTorch model file", _TODO)
    try:
        with open(name, "rb") as stream:
            head = stream.read(8)
    except OSError as exc:
        raise InputError(f"{label}: cannot be read ({exc.strerror or exc}); check that it is readable") from None
    if not head:
        raise InputError(f"{label}: is empty (0 bytes); save the model again")
    if not head.startswith(b"PK\x03\x04"):
        raise _not_zip(label, head)
    kind, pickled = _archive_kind(name, label)
    return _Source(kind, name, label, pickled)


def _torch(label: str):
    """torch, imported quietly; MissingDependency when it is not installed."""
    try:
        from ..backends.torch import import_torch
        return import_torch()
    except ImportError:
        raise MissingDependency(label, "torch", "torch") from None


def _with_batch(shape):
    """A declared shape for ModelInfo: an open batch dimension becomes 1; any other open
    dimension makes the whole shape None (the user passes --input)."""
    if shape is None:
        return None
    shape = list(shape)
    if len(shape) == 4 and shape[0] is None:
        shape[0] = 1
    return None if any(d is None for d in shape) else tuple(shape)


def _example_declared(example, model) -> tuple:
    """(shape, dtype) from a module's `example_input`: a tensor, an array or a shape tuple."""
    from ._pytorch_script import parameter_dtype
    if hasattr(example, "shape") and hasattr(example, "dtype"):
        return tuple(int(d) for d in example.shape), str(example.dtype).replace("torch.", "")
    if isinstance(example, (tuple, list)) and example and all(isinstance(d, int) for d in example):
        return tuple(example), parameter_dtype(model)
    return None, parameter_dtype(model)


def inspect(path: str) -> ModelInfo:
    """Validate the model file and read what it declares (layout, input shape, dtype) without running it.

    `.pt2`: the shape and dtype of the exported program's input (an open batch dimension
    given as 1; any other open dimension: shape None). TorchScript: shape None (TorchScript
    declares none), dtype of the first floating-point parameter. `package.module:attr`:
    from an `example_input` attribute of the module or its Python module (a tensor, an
    array or a shape tuple), else None. Raises InputError for a bad file or name,
    MissingDependency when torch is not installed.
    """
    from ._pytorch_capture import quiet_torch
    source = _source(path)
    _torch(source.label)
    with quiet_torch():
        shape, dtype = _declared(source)[1:]
    return ModelInfo(path=source.path, format=FORMAT, layout=LAYOUT, input_shape=_with_batch(shape),
                     input_dtype=dtype)


def _declared(source: _Source) -> tuple:
    """(the loaded model, declared shape or None, dtype name) of a validated source."""
    from . import _pytorch_fx, _pytorch_module, _pytorch_script
    if source.kind == "exported":
        with zipfile.ZipFile(source.path) as archive:
            _pytorch_fx.verify_pickles(archive, list(source.pickled), source.label)
        program = _pytorch_fx.load_exported(source.path, source.label)
        shape, dtype = _pytorch_fx.declared_input(program, source.label)
        return program, shape, dtype
    if source.kind == "script":
        module = _pytorch_script.load_script(source.path, source.label)
        return module, None, _pytorch_script.parameter_dtype(module)
    model, python_module = _pytorch_module.resolve_module(source.path, source.label)
    example = _pytorch_module.example_input(model, python_module)
    return (model,) + _example_declared(example, model)


def _shape_text(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _check_input(x, source: _Source, shape, dtype: str) -> str:
    """Refuse an `x` the model cannot take; return its dtype name."""
    from ..backends.base import dtype_name
    if not isinstance(x, np.ndarray):
        raise InputError(f"{source.label}: the input must be a numpy array, not {type(x).__name__}")
    given = dtype_name(x.dtype)
    if given not in _FLOAT_DTYPES:
        raise InputError(f"{source.label}: the input is {given}; PyTorch convolutions take "
                         f"{', '.join(_FLOAT_DTYPES)} (the model declares {dtype})")
    if shape is None:
        return given
    fits = len(shape) == x.ndim and all(d is None or d == g for d, g in zip(shape, x.shape))
    if not fits or given != dtype:
        raise InputError(f"{source.label}: the input has shape {tuple(x.shape)} {given}, but the model expects "
                         f"{_shape_text(shape)} {dtype} (NCHW); pass an input of that shape and dtype")
    return given


def _run(source: _Source, model, image, keep=None) -> tuple:
    """(layers, notes) of one capture run, whichever the source."""
    from . import _pytorch_fx, _pytorch_module, _pytorch_script
    if source.kind == "exported":
        return _pytorch_fx.capture_graph_module(model.module(), image, keep)
    if source.kind == "script":
        return _pytorch_script.capture_script(model, image, source.label, keep)
    return _pytorch_module.capture_module(model, image, keep)


def capture(path: str, x: np.ndarray, *, as_run: bool = False, keep=None) -> CapturedModel:
    """Run the model once on `x` (in the model's own layout and dtype: ModelInfo.layout/input_dtype)
    and capture every 2-D convolution layer in execution order (see ConvLayer).

    `x` is NCHW (a `.pt2` checks it against its declared shape and dtype; TorchScript and
    modules declare none, so a shape they cannot take fails when they run). Each layer's
    input and output are the tensors PyTorch computed, copied NHWC the moment they were
    computed or read; kernels are the conv's own weights, grouped HWIO. `as_run` changes
    nothing: PyTorch on the CPU runs the graph as written (a note says so). `keep`
    (`convcheck.models.spill.Spill.keep`) takes each captured tensor the moment it is copied,
    and the layer holds what it returns. Raises
    InputError (bad file, bad `x`, a run that fails, no 2-D convolution) or
    MissingDependency.
    """
    from ..backends.torch import from_numpy
    from ._pytorch_capture import quiet_torch, reason
    source = _source(path)
    torch = _torch(source.label)
    with quiet_torch():
        model, shape, dtype = _declared(source)
    given = _check_input(x, source, shape if source.kind == "exported" else None, dtype)
    image = from_numpy(np.array(x, copy=True))   # a copy: a model may write into its input in place
    try:
        with quiet_torch():
            layers, notes = _run(source, model, image, keep)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the model or torch raised: one line, no traceback
        if shape is None:
            expected = f"the model declares no input shape (its weights are {dtype})"
        elif source.kind == "module":
            expected = f"its example_input is {_shape_text(shape)} {dtype}"
        else:
            expected = f"the model expects {_shape_text(shape)} {dtype}"
        raise InputError(f"{source.label}: running it on the input of shape {tuple(x.shape)} {given} failed "
                         f"({reason(exc)}); {expected}: pass an NCHW input it takes "
                         f"(torch {torch.__version__})") from None
    if not layers:
        why = f" ({'; '.join(notes)})" if notes else ""
        raise InputError(f"{source.label}: has no 2-D convolution layer: nothing to walk{why}")
    if as_run:
        notes.append("as run: PyTorch runs the graph as written on the CPU (it fuses nothing), so the layers "
                     "are the same")
    return CapturedModel(path=source.path, format=FORMAT, layout=LAYOUT, input_shape=tuple(int(d) for d in x.shape),
                         input_dtype=given, layers=layers, notes=notes)
