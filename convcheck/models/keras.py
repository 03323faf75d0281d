"""Keras 3 model files (`.keras`, legacy `.h5`) for `convcheck model` (CONTRACT section 6).

The model is loaded with `keras.models.load_model(path, compile=False)` in safe mode (a
Lambda layer's Python code is refused, never run). Its graph is flattened (nested
Functional and Sequential models expanded, `_keras_graph`) and run once through a probe
model whose outputs are every tensor a conv layer reads or writes, with `training=False`.
Keras runs eagerly, layer by layer, exactly the graph as written: `as_run` changes nothing.

Checked on keras 3.15 with tensorflow-cpu 2.21: a `.keras` file is a zip (config.json,
model.weights.h5) and may hold `keras.ops` calls (e.g. `keras.ops.pad`), which `.h5`
cannot; Keras runs grouped `Conv2D`s through XLA on the CPU. A channels_first Conv2D runs
as an NCHW `tf.nn.convolution` (oneDNN; with TF_ENABLE_ONEDNN_OPTS=0 TensorFlow's CPU
kernel refuses NCHW and the run fails), and its bias goes through `keras.ops.add`, whose
`tf.nn.bias_add` shortcut picks NHWC whenever the output's width equals its channel count:
the bias is then added along the width. The loader captures what ran, so such a layer's
output differs from its declared computation, as it really does in that model.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
import zipfile

import numpy as np

from ..errors import InputError, MissingDependency
from .layers import CapturedModel, ModelInfo, keep_activations

FORMAT = "keras"
SUFFIXES = (".keras", ".h5", ".hdf5")

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_REGISTER_HINT = ("custom layers must be registered with @keras.saving.register_keras_serializable() "
                  "in a module imported before loading, or the model saved with built-in layers only")
_CUSTOM_OBJECT = re.compile(r"(?:Could not locate (?:class|function) |Unknown [a-z ]+: )'([^']+)'")
_loaded: dict = {}   # (path, mtime, size) -> model: inspect then capture loads a file once


def inspect(path: str) -> ModelInfo:
    """Validate the model file and read what it declares (layout, input shape, dtype) without running it.

    Loads the model (weights included). `input_shape` has the batch axis: an open batch is 1,
    any other open dimension makes the whole shape None (the user must pass `--input`).
    Raises `InputError` for a file Keras cannot load, `MissingDependency` without Keras.
    """
    model = _load(path)
    keras = _import_keras()
    spec = _single_input(keras, path, model)
    return ModelInfo(path=path, format=FORMAT, layout=_layout(keras, model),
                     input_shape=_declared_shape(spec.shape), input_dtype=_dtype_name(spec.dtype))


def capture(path: str, x: np.ndarray, *, as_run: bool = False, keep=None) -> CapturedModel:
    """Run the model once on `x` (in the model's own layout and dtype: ModelInfo.layout/input_dtype)
    and capture every 2-D convolution layer in execution order (see ConvLayer).

    Conv2D and DepthwiseConv2D are one layer each; a SeparableConv2D is two,
    '<name>/depthwise' and '<name>/pointwise' (see `_keras_layers`). Layers inside nested
    models are named 'submodel/layer', a shared layer's later calls 'layer@1', 'layer@2'.
    Raises `InputError` for a wrong `x` or a model without any 2-D convolution. Keras runs
    its graph as written, so `as_run` (for formats whose runtime rewrites the graph) changes
    nothing here. `keep`: see `layers.keep_activations` (the probe model returns every tensor
    at once, so they are handed over after its run).
    """
    from ._keras_graph import flatten
    from ._keras_layers import build_layers, plan_layers

    model = _load(path)
    keras = _import_keras()
    spec = _single_input(keras, path, model)
    _check_input(path, spec, x)
    graph = flatten(keras, model)
    plans = plan_layers(keras, graph)
    if not plans:
        raise InputError(f"{path} has no 2-D convolution layer: nothing to walk")
    values = _run_probe(keras, path, graph, plans, x)
    transposed: dict = {}

    def value(tensor):
        return x if tensor is graph.input else values[id(tensor)]

    def nhwc(tensor, nchw: bool):
        if not nchw:
            return value(tensor)
        if id(tensor) not in transposed:
            transposed[id(tensor)] = np.ascontiguousarray(np.moveaxis(value(tensor), 1, -1))
        return transposed[id(tensor)]

    layers = _unique_names(build_layers(keras, plans, value, nhwc))
    notes = _notes(keras, graph, plans)
    cast = [f"{layer.name} ({layer.input.dtype.name} -> {layer.dtype})" for layer in layers
            if layer.input.dtype.name != layer.dtype]
    if cast:
        notes.append(f"layers whose dtype policy computes in another dtype than their input's: {', '.join(cast)}; "
                     "the captured input is the tensor before the layer casts it")
    return CapturedModel(path=path, format=FORMAT, layout="nchw" if plans[0].nchw else "nhwc",
                         input_shape=tuple(int(n) for n in x.shape), input_dtype=_dtype_name(spec.dtype),
                         layers=keep_activations(layers, keep), notes=notes)


def _import_keras():
    """Keras 3 (on TensorFlow unless KERAS_BACKEND names another), or `MissingDependency`."""
    from ..backends.keras import import_keras
    try:
        import_keras()  # silences TensorFlow's start-up chatter, once per process
        import keras
    except ImportError as exc:
        raise MissingDependency("Keras models (.keras, .h5)", "tensorflow", exc.name or "keras") from None
    return keras


def _check_file(path: str) -> str:
    """Refuse what is not a readable Keras model file before importing Keras; its kind,
    'zip' (.keras) or 'hdf5' (.h5, .hdf5)."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise InputError(f"{path}: not a Keras model file name (expected {', '.join(SUFFIXES)}); "
                         "save the model with model.save('net.keras')")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check the path and its permissions") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{path}: is not a regular file; give a .keras or .h5 model file")
    if info.st_size == 0:
        raise InputError(f"{path}: is empty; save the model again with model.save('{os.path.basename(path)}')")
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            kind = "zip" if head[:4] == _ZIP_MAGIC else ("hdf5" if _has_hdf5_signature(handle, info.st_size) else "")
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
    expected = "zip" if suffix == ".keras" else "hdf5"
    if kind != expected:
        found = {"zip": "a zip archive (a .keras file?)", "hdf5": "an HDF5 file (a .h5 model?)"}.get(
            kind, "neither a zip archive nor an HDF5 file")
        raise InputError(f"{path}: is {found}, not the {'zip archive' if expected == 'zip' else 'HDF5 file'} "
                         f"a {suffix} Keras model is; give a model saved by Keras (model.save) under its own suffix")
    if kind == "zip":
        _check_zip(path)
    return kind


def _has_hdf5_signature(handle, size: int) -> bool:
    """HDF5's signature at offset 0, 512, 1024, 2048, ... (a user block may precede it)."""
    offset = 0
    while offset + 8 <= size:
        handle.seek(offset)
        if handle.read(8) == _HDF5_MAGIC:
            return True
        offset = 512 if offset == 0 else offset * 2
    return False


def _check_zip(path: str) -> None:
    """A .keras archive must be a whole zip holding config.json (checked with zipfile: no Keras)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"{path}: is not a complete zip archive ({_first_line(exc)}); the file is truncated "
                         "or corrupt: save the model again") from None
    if "config.json" not in names:
        raise InputError(f"{path}: is a zip archive without config.json, not a Keras model; "
                         "give a model saved by Keras 3 (model.save('net.keras'))")


def _load(path: str):
    """The model in `path` (validated first), loaded once per file version."""
    _check_file(path)
    info = os.stat(path)
    key = (os.path.realpath(path), info.st_mtime_ns, info.st_size)
    if key not in _loaded:
        model = _load_model(_import_keras(), path)
        while len(_loaded) >= 2:  # an original and its port: no more models than that held
            _loaded.pop(next(iter(_loaded)))
        _loaded[key] = model
    return _loaded[key]


def _load_model(keras, path: str):
    """keras.models.load_model(path, compile=False), every failure one `InputError` line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras, h5py and TF raise many types for one bad file
        text = f"{exc} {exc.__cause__ or ''} {exc.__context__ or ''}"
        if "Lambda" in text and "safe_mode" in text:
            raise InputError(f"{path}: has a Lambda layer (Python code), which Keras refuses to load in safe mode "
                             "and convcheck does not run; rebuild the model with built-in layers") from None
        custom = _CUSTOM_OBJECT.search(text)
        if custom:
            name = custom.group(1).split(">")[-1]
            raise InputError(f"{path}: uses '{name}', which is not a built-in Keras object and is not registered "
                             f"here; {_REGISTER_HINT}") from None
        raise InputError(f"{path}: Keras cannot load it ({_first_line(exc)}); give a model saved by "
                         "Keras 3 with model.save, whole and unmodified") from None


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's first real line (Keras puts its reason first), shortened to `limit`."""
    from ..backends.base import one_line
    return one_line(exc, limit)


def _single_input(keras, path: str, model):
    """The model's one input tensor, or `InputError` (a subclassed model, no declared input,
    several inputs)."""
    from ._keras_graph import is_expandable
    if not is_expandable(keras, model):
        raise InputError(f"{path}: is a subclassed Keras model ({type(model).__name__}), whose layers no graph "
                         "records; save it as a functional model (keras.Model(inputs, outputs)) to walk it")
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError):  # a Sequential saved before it was built
        inputs = []
    if len(inputs) != 1:
        what = "declares no input" if not inputs else f"has {len(inputs)} inputs"
        raise InputError(f"{path}: {what}; convcheck model runs models with one image input "
                         "(save it with keras.Input(shape=...) as its only input)")
    return inputs[0]


def _declared_shape(shape) -> tuple[int, ...] | None:
    """The input shape with an open batch as 1; None when another dimension is open."""
    dims = list(shape)
    if dims and dims[0] is None:
        dims[0] = 1
    return None if any(d is None for d in dims) else tuple(int(d) for d in dims)


def _dtype_name(dtype) -> str:
    """A Keras dtype ('float32', a numpy or TF dtype) as its plain name."""
    return str(getattr(dtype, "name", dtype))


def _layout(keras, model) -> str:
    """'nchw' when the model's first 2-D convolution (nested models searched in place) is
    channels_first, else 'nhwc'."""
    from ._keras_graph import is_expandable
    from ._keras_layers import CAPTURED, classes

    def first_format(current):
        for layer in current.layers:
            if isinstance(layer, classes(keras, CAPTURED)):
                return layer.data_format
            found = first_format(layer) if is_expandable(keras, layer) else None
            if found:
                return found
        return None

    return "nchw" if first_format(model) == "channels_first" else "nhwc"


def _check_input(path: str, spec, x) -> None:
    """`x` must be a numpy array of the model's input rank, sizes (where declared) and dtype."""
    expected = tuple(spec.shape)
    shown = "(" + ", ".join("any" if d is None else str(d) for d in expected) + ")"
    if not isinstance(x, np.ndarray):
        raise InputError(f"{path}: the input must be a numpy array of shape {shown}; got {type(x).__name__}")
    if x.ndim != len(expected) or any(d is not None and d != n for d, n in zip(expected, x.shape)):
        raise InputError(f"{path}: expects an input of shape {shown}, got {tuple(x.shape)}; "
                         "give --input in the model's own layout and sizes")
    if x.dtype.name != _dtype_name(spec.dtype):
        raise InputError(f"{path}: expects a {_dtype_name(spec.dtype)} input of shape {shown}, got "
                         f"{x.dtype.name}; give --input as {_dtype_name(spec.dtype)}")


def _run_probe(keras, path: str, graph, plans, x) -> dict:
    """One run of a probe model returning every tensor the plans need: {id(tensor): array}."""
    from ._keras_layers import numpy_of
    wanted: dict = {}
    for plan in plans:
        separable = isinstance(plan.step.op, keras.layers.SeparableConv2D)
        tensors = [plan.input, plan.output] + ([plan.conv_input] if separable else [])
        for tensor in tensors:
            if tensor is not graph.input:
                wanted.setdefault(id(tensor), tensor)
    probe = keras.Model(inputs=graph.input, outputs=list(wanted.values()))
    try:
        outputs = probe(x, training=False)
    except Exception as exc:  # the framework refuses this input (or this model) at run time
        raise InputError(f"{path}: Keras could not run it on the input ({_first_line(exc)})") from None
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    values = {}
    for index, key in enumerate(wanted):
        # Each runtime tensor is let go once copied: one extra tensor held at a time, not all.
        values[key], outputs[index] = numpy_of(keras, outputs[index]), None
    return values


def _unique_names(layers: list) -> list:
    """Layers named uniquely: a clash (a nested model's 'x/depthwise' against a separable
    conv's half) gets '#2', '#3', ... after the later names."""
    seen: dict = {}
    for layer in layers:
        count = seen.get(layer.name, 0)
        seen[layer.name] = count + 1
        if count:
            layer.name = f"{layer.name}#{count + 1}"
    return layers


def _notes(keras, graph, plans) -> list[str]:
    """What a reader should know: nested models flattened, layers not captured, layouts."""
    from ._keras_layers import NOT_2D, classes
    notes = []
    nested = sorted({step.name.rsplit("/", 1)[0] for step in graph.steps if "/" in step.name})
    if nested:
        notes.append(f"nested models flattened ({', '.join(nested)}): their layers are named 'model/layer'")
    for step in graph.opaque:
        notes.append(f"'{step.name}' is a subclassed model ({type(step.op).__name__}): it ran as one "
                     "opaque call, and any convolution inside it is not captured")
    skipped = [f"{step.name} ({type(step.op).__name__})" for step in graph.steps
               if isinstance(step.op, classes(keras, NOT_2D))]
    if skipped:
        notes.append(f"not 2-D convolutions, not captured: {', '.join(skipped)}")
    separable = [plan.step.name for plan in plans if isinstance(plan.step.op, keras.layers.SeparableConv2D)]
    if separable:
        notes.append(f"SeparableConv2D {', '.join(separable)}: captured as two layers, '/depthwise' and "
                     "'/pointwise'; the depthwise half's output is computed by keras.ops.depthwise_conv "
                     "(the call the layer makes inside) on the layer's captured input")
    formats = {plan.nchw for plan in plans}
    if True in formats:
        notes.append("the model's convolutions use data_format='channels_first' (NCHW): their tensors "
                     "are transposed to NHWC" + ("; some use channels_last" if len(formats) == 2 else ""))
    return notes
