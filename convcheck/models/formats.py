"""Which loader reads a model: by its file name's suffix, or `package.module:attr` for PyTorch.

Each format's loader (`onnx`, `pytorch`, `keras`, `tflite`) has the same small interface:
`FORMAT`, `SUFFIXES`, `inspect(path) -> ModelInfo` and `capture(path, x, *, as_run=False, keep=None)
-> CapturedModel` (`keep` takes each captured tensor and the layer holds what it returns: the
walk's maps on disk, `spill`). `loader_for` picks one from the name alone; `check_model_file` refuses a
path its loader cannot read without importing any framework, so both models of a walk are
checked before the first framework import (seconds) happens.
"""

from __future__ import annotations

import importlib
import os
import re
from types import ModuleType

from ..errors import InputError

# format -> the loader module under convcheck.models; imported on first use (numpy only).
LOADERS = {"onnx": "onnx", "pytorch": "pytorch", "keras": "keras", "tflite": "tflite"}
SUFFIXES = {".onnx": "onnx", ".pt2": "pytorch", ".pt": "pytorch", ".pth": "pytorch", ".keras": "keras",
            ".h5": "keras", ".hdf5": "keras", ".tflite": "tflite"}
# The PyTorch loader's `package.module:attr` spelling (the loader checks it the same way).
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
FORMATS_TEXT = ("ONNX (.onnx), PyTorch (.pt2 from torch.export.save, TorchScript .pt/.pth, or "
                "package.module:attr), Keras (.keras, .h5, .hdf5), TFLite (.tflite)")


def format_of(path, role: str = "model") -> str:
    """The format name ('onnx', 'pytorch', 'keras', 'tflite') of a model path or module name.

    A name that is no file and reads `package.module:attr` is a PyTorch module; anything
    else goes by its suffix (any case). An unknown suffix is an `InputError` listing the
    formats. `role` ('original model', 'port') starts the message.
    """
    name = model_name(path, role, f"give a model file: {FORMATS_TEXT}")
    if not os.path.lexists(name) and _MODULE_NAME.fullmatch(name):
        return "pytorch"
    suffix = os.path.splitext(name)[1].lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if not os.path.lexists(name):
        raise InputError(f"{role} '{name}': no such file; check the path (model files: {FORMATS_TEXT})")
    told = f"its suffix '{suffix}'" if suffix else "it has no suffix"
    raise InputError(f"{role} '{name}': cannot tell its format ({told}); convcheck reads {FORMATS_TEXT}: "
                     "give the file its format's suffix")


def loader_for(path, role: str = "model") -> ModuleType:
    """The loader module for `path` (see `format_of`); importing it imports no framework."""
    return importlib.import_module(f"{__package__}.{LOADERS[format_of(path, role)]}")


def check_model_file(path, role: str = "model") -> ModuleType:
    """Refuse a model path its loader cannot read (missing, not a regular file, empty, another
    format's magic bytes, a truncated zip) with one `InputError` line, importing no framework;
    returns its loader."""
    loader = loader_for(path, role)
    name = os.fsdecode(os.fspath(path))
    if loader.FORMAT == "pytorch":
        loader._source(name)
    elif loader.FORMAT == "onnx":
        loader._check_file(name)
    elif loader.FORMAT == "keras":
        loader._check_file(name)
    else:
        from ._tflite_graph import check_file
        check_file(name)
    return loader


__all__ = ["LOADERS", "SUFFIXES", "FORMATS_TEXT", "format_of", "loader_for", "check_model_file"]


def model_name(path, role: str, todo: str) -> str:
    """`path` (str, bytes or os.PathLike) as a str; anything else is an `InputError` that
    starts with `role` and ends with `todo` (what to give instead)."""
    try:
        name = os.fspath(path)
    except TypeError:
        raise InputError(f"{role}: expected a path or a package.module:attr name, got {type(path).__name__}; "
                         f"{todo}") from None
    return os.fsdecode(name) if isinstance(name, bytes) else name
