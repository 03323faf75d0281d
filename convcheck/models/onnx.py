"""ONNX models (`.onnx`) for `convcheck model`, run by ONNX Runtime on the CPU (CONTRACT section 6).

`inspect` reads what a model declares; `capture` runs it once and records every 2-D
convolution layer. By default the graph is judged as written: ONNX Runtime runs it with its
graph optimisations off (each node computed as the graph writes it; even its basic level
would fold a BatchNormalization into the conv's weights) and with each layer's input and
output added as graph outputs. With `as_run=True` the layers are those ONNX Runtime really
runs: the graph it optimises for the CPU (BatchNorm folded, activations and residual adds
fused, NCHWc blocked kernels) is saved, reloaded and run with its convolutions exposed.

onnx and onnxruntime (the `onnx` extra) are imported inside functions only, after the file
itself has been checked.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Optional

import numpy as np

from ..errors import InputError, MissingDependency
from ._onnx_graph import NCHWC, GraphIndex, LayerPlan, chain_from, plan_layers, unique_names
from ._onnx_tensors import NotTwoD, RunTensors, build_layer
from .layers import CapturedModel, ConvLayer, ModelInfo, keep_activations

FORMAT = "onnx"
SUFFIXES = (".onnx",)

# Leading bytes of the files most often given in an ONNX model's place (a protobuf has no
# magic number of its own, so only these can be told apart before parsing).
_OTHER_FORMATS = ((0, b"PK\x03\x04", "a zip archive (a Keras .keras or PyTorch .pt / .pt2 file?)"),
                  (0, b"\x89HDF\r\n\x1a\n", "an HDF5 file (a Keras .h5 model?)"),
                  (4, b"TFL3", "a TFLite model"),
                  (0, b"\x93NUMPY", "a NumPy .npy array"))
_PROTOBUF_LIMIT = 2 ** 31 - 2 ** 24   # a ModelProto larger than 2 GiB cannot be serialised whole
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_CAST_PREFIX = "InsertedPrecisionFreeCast_"   # ONNX Runtime's name for tensors around inserted Casts
_block_sizes: dict[str, int] = {}


def inspect(path: str) -> ModelInfo:
    """Validate the model file and read what it declares (layout, input shape, dtype) without running it.

    `input_shape` includes the batch: an open batch dimension is 1; any other open
    dimension makes the whole shape None (the user must pass `--input`). The layout is
    'nhwc' when the input feeds only Transposes to NCHW (tf2onnx exports), else 'nchw'.
    Raises `InputError` for a missing, empty, corrupt or foreign file, `MissingDependency`
    when onnx or onnxruntime is not installed.
    """
    _check_file(path)
    onnx = _import_onnx(path)
    _import_runtime(path)
    model = _load(path, onnx, external_data=False)
    _, dims, dtype, layout = _declared_input(path, model)
    shape = None
    if dims is not None and all(d is not None for d in dims[1:]):
        shape = tuple([dims[0] or 1] + list(dims[1:]))
    return ModelInfo(path=path, format=FORMAT, layout=layout, input_shape=shape, input_dtype=dtype)


def capture(path: str, x: np.ndarray, *, as_run: bool = False, keep=None) -> CapturedModel:
    """Run the model once on `x` (in the model's own layout and dtype: ModelInfo.layout/input_dtype)
    and capture every 2-D convolution layer in execution order (see ConvLayer).

    `as_run=False` judges the graph as written; `as_run=True` captures the convolutions ONNX
    Runtime's CPU optimiser made of it (falling back, with a note, when it cannot). Tensors are
    the runtime's own, NHWC; a tensor that is one layer's output and the next one's input is
    one array. `keep`: see `layers.keep_activations` (ONNX Runtime returns all of a run's tensors
    at once: they are handed over group by group, see `_run`). Raises `InputError` for a bad
    file, an `x` of the wrong shape or dtype, a model without any 2-D convolution, or a run
    ONNX Runtime refuses.
    """
    _check_file(path)
    onnx = _import_onnx(path)
    _import_runtime(path)   # the extra is there before any work (exit 3 names it)
    model = _load(path, onnx, external_data=True)
    input_name, dims, dtype, layout = _declared_input(path, model)
    _check_x(path, x, dims, dtype, layout)
    written, notes = plan_layers(model, {input_name: x})
    if not written:
        raise InputError(f"'{path}' has no 2-D convolution layer: nothing to walk")
    with tempfile.TemporaryDirectory(prefix="convcheck-onnx-") as scratch:
        layers = None
        if as_run:
            layers = _capture_as_run(path, model, x, input_name, written, notes, scratch, keep)
        if layers is None:
            layers = _capture_as_written(path, model, x, input_name, written, notes, scratch, keep)
    uncaptured = sum("conv" in node.op_type.lower() for node in model.graph.node) - len(written)
    return CapturedModel(path=path, format=FORMAT, layout=layout, input_shape=tuple(x.shape),
                         input_dtype=dtype, layers=keep_activations(layers, keep), notes=notes,
                         uncaptured=max(0, uncaptured))


def _check_file(path: str) -> None:
    """Refuse, before any framework loads, a path that cannot be an ONNX model file."""
    if not os.path.exists(path):
        raise InputError(f"'{path}' does not exist: give the path of an ONNX model file (.onnx)")
    if os.path.isdir(path):
        raise InputError(f"'{path}' is a directory, not an ONNX model file: give the path of the .onnx file")
    if not os.path.isfile(path):
        raise InputError(f"'{path}' is not a regular file: give the path of an ONNX model file (.onnx)")
    try:
        with open(path, "rb") as stream:
            head = stream.read(16)
    except OSError as exc:
        raise InputError(f"'{path}' cannot be read ({exc.strerror or exc}): check its permissions") from exc
    if not head:
        raise InputError(f"'{path}' is empty: export the model again (e.g. torch.onnx.export) and give that file")
    for offset, magic, kind in _OTHER_FORMATS:
        if head[offset:offset + len(magic)] == magic:
            raise InputError(f"'{path}' is {kind}, not an ONNX model: give an ONNX model file (.onnx), "
                             "or name the file with its own format's suffix")


def _import_onnx(path: str):
    try:
        import onnx
        import onnx.checker  # noqa: F401  (submodules used below)
        import onnx.helper  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(f"Reading the ONNX model '{path}'", "onnx", "onnx") from exc
    return onnx


def _import_runtime(path: str):
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependency(f"Running the ONNX model '{path}'", "onnx", "onnxruntime") from exc
    return onnxruntime


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's first line, without ONNX Runtime's status prefix, cut to `limit` characters."""
    text = _ORT_PREFIX.sub("", str(exc).strip())
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _load(path: str, onnx, external_data: bool):
    """The parsed, checked ModelProto; any refusal becomes one `InputError` line."""
    try:
        model = onnx.load(path, load_external_data=external_data)
        onnx.checker.check_model(path)   # by path: models over 2 GiB and external data included
    except Exception as exc:   # protobuf DecodeError, ValidationError, OSError, ...: all say the same
        raise InputError(f"'{path}' is not a valid ONNX model ({_first_line(exc)}): export it again, "
                         "or check that the file is complete") from exc
    return model


def _declared_input(path: str, model) -> tuple[str, Optional[list], str, str]:
    """The model's one input: name, dimensions (None where open; None for no shape at all),
    numpy dtype name and layout."""
    from onnx import helper
    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if len(inputs) != 1:
        listed = ", ".join(value.name for value in inputs) or "none"
        raise InputError(f"'{path}' has {len(inputs)} inputs ({listed}): convcheck model runs models "
                         "with exactly one input tensor")
    value = inputs[0]
    tensor_type = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor_type.elem_type:
        raise InputError(f"'{path}': its input '{value.name}' is not a typed tensor: "
                         "export the model with a tensor input")
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
    dims = None
    if tensor_type.HasField("shape"):
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor_type.shape.dim]
    return value.name, dims, dtype, _layout(graph, value.name)


def _layout(graph, name: str) -> str:
    """'nhwc' when every reader of the input is a Transpose to NCHW (tf2onnx's exports), else 'nchw'."""
    from ._onnx_graph import attributes
    readers = [node for node in graph.node if name in node.input]
    to_nchw = [node for node in readers
               if node.op_type == "Transpose" and list(attributes(node).get("perm", [])) == [0, 3, 1, 2]]
    return "nhwc" if readers and len(to_nchw) == len(readers) else "nchw"


def _check_x(path: str, x, dims: Optional[list], dtype: str, layout: str) -> None:
    """Refuse an input the model cannot take: another rank, a fixed dimension that differs, another dtype."""
    shape = getattr(x, "shape", None)
    fits = isinstance(x, np.ndarray) and x.dtype == np.dtype(dtype) and (
        dims is None or (x.ndim == len(dims) and all(d is None or d == s for d, s in zip(dims, x.shape))))
    if fits:
        return
    expected = "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")" if dims is not None else "(any)"
    given = f"{tuple(shape)} {x.dtype}" if isinstance(x, np.ndarray) else f"a {type(x).__name__}"
    raise InputError(f"'{path}' takes an input of shape {expected} {dtype} ({layout}); the input given is "
                     f"{given}: give an array of that shape and dtype")


def _model_source(model, scratch: str):
    """What an InferenceSession is built from: the serialised model, or a file beside its
    external data when it is too large for one protobuf message. Saving with external data
    moves the weights out of `model`; they are read back, so that `model` serves again (the
    next group's session, the as-written fallback)."""
    if model.ByteSize() < _PROTOBUF_LIMIT:
        return model.SerializeToString()
    import onnx
    from onnx.external_data_helper import load_external_data_for_model
    target = os.path.join(scratch, f"model{len(os.listdir(scratch))}.onnx")
    onnx.save_model(model, target, save_as_external_data=True, location=os.path.basename(target) + ".data")
    load_external_data_for_model(model, scratch)
    return target


def _session(model, scratch: str, level: str, optimized_path: str = ""):
    """An ONNX Runtime CPU session at optimisation `level` ('ORT_DISABLE_ALL', 'ORT_ENABLE_ALL');
    the framework's exceptions pass through (callers word them)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.log_severity_level = 4   # failures reach the caller as exceptions, worded there
    if optimized_path:
        options.optimized_model_filepath = optimized_path
    return ort.InferenceSession(_model_source(model, scratch), options, providers=["CPUExecutionProvider"])


def _mark_outputs(model, names: list[str]) -> None:
    """Add `names` as graph outputs (untyped: ONNX Runtime infers their types)."""
    from onnx import helper
    existing = {value.name for value in model.graph.output}
    for name in names:
        if name not in existing:
            model.graph.output.append(helper.make_empty_tensor_value_info(name))
            existing.add(name)


def _fetch_names(plans: list[LayerPlan], input_name: str) -> list[str]:
    names = dict.fromkeys(name for plan in plans for name in plan.fetches())
    names.pop(input_name, None)
    return list(names)


def _run(path: str, model, make_session, input_name: str, x: np.ndarray, names: list[str],
         keep=None) -> tuple[dict[str, np.ndarray], int]:
    """The named tensors of `model` run on `x` (`make_session(model)` makes its session), plus
    the input itself, and how many runs that took.

    The tensors are made graph outputs, and ONNX Runtime keeps a buffer of its own for every
    graph output of a run, asked for or not (a plain 16-conv net at 384x384 took 620 MiB
    with all its tensors marked, 110 MiB marked a few at a time). So with `keep` (see
    `layers.keep_activations`) they are marked in groups of at most `RUN_BYTES`
    (`_fetch_groups`), a session and a run each, and each group is handed to `keep` before
    the next: memory holds one group, not the model's tensors. The model's outputs are as
    they were afterwards."""
    import onnxruntime as ort
    options = ort.RunOptions()
    options.log_severity_level = 4
    outputs = len(model.graph.output)
    arrays = {}
    try:
        _mark_outputs(model, names)
        session = make_session(model)
        groups = [names] if keep is None else _fetch_groups(session, names, x)
        for group in groups:
            if len(groups) > 1:
                session = None
                del model.graph.output[outputs:]
                _mark_outputs(model, group)
                session = make_session(model)
            try:
                values = session.run(group, {input_name: x}, options)
            except Exception as exc:
                raise InputError(f"ONNX Runtime could not run '{path}' on an input of shape {tuple(x.shape)} "
                                 f"({_first_line(exc)}): check that the input suits the model") from exc
            values.reverse()
            for name in group:
                value = values.pop()
                arrays[name] = value if keep is None else keep(value)
    finally:
        del model.graph.output[outputs:]
    arrays[input_name] = x
    return arrays, len(groups)


def _runs_text(runs: int) -> str:
    """How the tensors were fetched, for the notes: '' for one run."""
    if runs == 1:
        return ""
    return (f", in {runs} runs with a group of them marked each (ONNX Runtime keeps a buffer for every marked "
            f"output; a group holds at most {RUN_BYTES / 2 ** 20:g} MiB or {RUN_TENSORS} of the largest tensors)")


# What one run may return at most when the tensors go to disk (`_run`): runs of the model are
# traded for memory only beyond this (a ResNet-18's 20 convs at 224x224 take 14 MiB), or
# beyond RUN_TENSORS of its largest tensors (each run is a whole run of the model: a run per
# tensor made a 16-conv net at 640x640, 50 MiB a tensor, take 26 s to capture instead of 3).
RUN_BYTES = 64 << 20
RUN_TENSORS = 4
_ITEM_BYTES = {"tensor(float)": 4, "tensor(double)": 8, "tensor(float16)": 2, "tensor(bfloat16)": 2}


def _fetch_groups(session, names: list[str], x: np.ndarray) -> list[list[str]]:
    """`names` (in the graph's order) cut into consecutive groups of at most `RUN_BYTES` of
    tensors each, or `RUN_TENSORS` times the largest, whichever is more, by the shapes ONNX
    Runtime inferred for its outputs, a leading open dimension being the input's batch; one
    group when a size is unknown (another open dimension, a dtype not listed)."""
    known = {arg.name: (arg.shape, arg.type) for arg in session.get_outputs()}
    sizes = []
    for name in names:
        shape, kind = known.get(name, (None, None))
        if shape is None or kind not in _ITEM_BYTES:
            return [names]
        dims = [x.shape[0] if i == 0 and not isinstance(d, int) else d for i, d in enumerate(shape)]
        if not all(isinstance(d, int) and d >= 0 for d in dims):
            return [names]
        sizes.append(_ITEM_BYTES[kind] * int(np.prod(dims, dtype=np.int64)))
    budget = max(RUN_BYTES, RUN_TENSORS * max(sizes, default=0))
    groups, total = [[]], 0
    for name, size in zip(names, sizes):
        if groups[-1] and total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(name)
        total += size
    return groups


def _build(plans: list[LayerPlan], tensors: RunTensors, notes: list[str]) -> list[ConvLayer]:
    layers = []
    for plan in plans:
        try:
            layers.append(build_layer(plan, tensors))
        except NotTwoD:
            notes.append(f"'{plan.name}' not captured: its weights are not those of a 2-D convolution")
    return layers


def _capture_as_written(path, model, x, input_name, plans, notes, scratch, keep=None) -> list[ConvLayer]:
    """Every layer from one unoptimised run with the layers' tensors as graph outputs."""
    import onnxruntime as ort
    names = _fetch_names(plans, input_name)
    half = any(plan.kernel is not None and plan.kernel.dtype == np.float16 for plan in plans)
    saved = os.path.join(scratch, "as-written.onnx") if half else ""

    def make_session(marked):
        try:
            return _session(marked, scratch, "ORT_DISABLE_ALL", saved)
        except Exception as exc:
            raise InputError(f"'{path}' is not a valid ONNX model for ONNX Runtime {ort.__version__} "
                             f"({_first_line(exc)}): export it again with operators and an opset this "
                             "ONNX Runtime supports, or update onnxruntime") from exc

    arrays, runs = _run(path, model, make_session, input_name, x, names, keep)
    tensors = RunTensors(arrays, 0)
    notes.append(f"as written: ONNX Runtime {ort.__version__} (CPU) ran the graph with its optimisations off "
                 f"and {len(names)} tensor{'s' if len(names) != 1 else ''} added as graph outputs{_runs_text(runs)}")
    if half and _casts_around_convs(saved):
        notes.append("as written: this ONNX Runtime has no float16 Conv on this CPU: it computed the float16 "
                     "convolutions in float32 between Casts it inserted (inputs widened exactly, outputs "
                     "rounded to float16)")
    return _build(plans, tensors, notes)


def _casts_around_convs(saved: str) -> bool:
    """Whether the graph ONNX Runtime ran (saved at `saved`) feeds a Conv through a Cast it inserted."""
    import onnx
    try:
        graph = onnx.load(saved, load_external_data=False).graph
    except Exception:   # no saved graph: nothing to say
        return False
    return any(node.op_type == "Conv" and node.input[0].startswith(_CAST_PREFIX) for node in graph.node)


def _capture_as_run(path, model, x, input_name, written, notes, scratch, keep=None) -> Optional[list[ConvLayer]]:
    """Every convolution of the graph ONNX Runtime optimises for the CPU, or None (after a
    note) when that graph cannot be saved, read or run."""
    import onnx
    import onnxruntime as ort
    optimized_path = os.path.join(scratch, "optimized.onnx")
    fallback = "as run: {}: the layers are captured as written instead"
    try:
        _session(model, scratch, "ORT_ENABLE_ALL", optimized_path)
        optimized = onnx.load(optimized_path)
        nchwc = any(node.domain == NCHWC for node in optimized.graph.node)
        block = _block_size(scratch) if nchwc else 0
        plans, plan_notes = plan_layers(optimized, {input_name: x}, block)
    except Exception as exc:
        notes.append(fallback.format(f"ONNX Runtime's optimised graph could not be saved or read ({_first_line(exc)})"))
        return None
    origins = _origins(plans, written, model.graph)
    names = _fetch_names(plans, input_name)
    try:
        arrays, runs = _run(path, optimized, lambda marked: _session(marked, scratch, "ORT_DISABLE_ALL"),
                            input_name, x, names, keep)
        tensors = RunTensors(arrays, block, keep)
        layers = _build(plans, tensors, plan_notes)
    except Exception as exc:
        notes.append(fallback.format(f"ONNX Runtime could not run its own optimised graph ({_first_line(exc)})"))
        return None
    notes.append(f"as run: ONNX Runtime {ort.__version__} optimised the graph for the CPU (level ALL); "
                 f"that graph ran with its optimisations off and its convolutions' tensors as graph outputs"
                 f"{_runs_text(runs)}")
    if block:
        notes.append(f"as run: NCHWc tensors and filters (blocks of {block} channels) unblocked to NHWC and HWIO")
    notes.extend(note for note in plan_notes if note not in notes)
    notes.extend(_fused_notes(layers, plans, origins, len(written)))
    return layers


def _block_size(scratch: str) -> int:
    """MLAS's NCHWc block (8 with AVX2, 16 with AVX-512): the channels a ReorderInput pads 4 to."""
    if "block" not in _block_sizes:
        from onnx import TensorProto, helper
        node = helper.make_node("ReorderInput", ["x"], ["y"], domain=NCHWC)
        graph = helper.make_graph([node], "probe",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 1, 1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        probe = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(NCHWC, 1)])
        session = _session(probe, scratch, "ORT_DISABLE_ALL")
        _block_sizes["block"] = int(session.run(None, {"x": np.zeros((1, 4, 1, 1), np.float32)})[0].shape[1])
    return _block_sizes["block"]


def _origins(plans: list[LayerPlan], written: list[LayerPlan], graph) -> list[tuple[Optional[LayerPlan], list[str]]]:
    """For each optimised conv, the written layer it came from and the graph's nodes fused into
    it; the plans take that layer's name (and its output channel count where NCHWc padded it)."""
    index = GraphIndex(graph)
    by_tensor: dict[str, tuple[LayerPlan, list[str]]] = {}
    for layer in written:
        for tensor, passed in chain_from(index, layer.conv_output):
            by_tensor.setdefault(tensor, (layer, passed))
    by_node = {layer.node_name: layer for layer in written}
    origins = []
    for plan in plans:
        # ONNX Runtime names an NCHWc conv after the tensor it replaced, and the tensors
        # around the Casts it inserts (float16 models) after the original tensor.
        candidates = [plan.output_name, re.sub(r"_nchwc(_token_\d+)?$", "", plan.node_name), plan.conv_output]
        candidates = [c[len(_CAST_PREFIX):] if c.startswith(_CAST_PREFIX) else c for c in candidates]
        found = next((by_tensor[c] for c in candidates if c in by_tensor), None)
        if found is None and plan.node_name in by_node:
            found = (by_node[plan.node_name], [])
        origin, passed = found if found is not None else (None, [])
        if origin is not None:
            plan.name = origin.name
            if origin.pad is not None and plan.pad is None and plan.input_name == origin.input_name:
                passed = [origin.pad.name] + passed
            plan.absorbed = tuple(dict.fromkeys(passed + list(plan.absorbed)))
            if plan.channels_out is None and origin.kernel is not None:
                plan.channels_out = origin.kernel.shape[0]
        origins.append((origin, passed))
    names = unique_names([plan.name for plan in plans], [plan.node_name for plan in plans])
    for plan, name in zip(plans, names):
        plan.name = name
    return origins


def _fused_notes(layers, plans, origins, written_count: int) -> list[str]:
    """One note per convolution ONNX Runtime changed: what it runs as, what was fused into it."""
    notes = []
    by_name = {layer.name: layer for layer in layers}
    for plan, (origin, passed) in zip(plans, origins):
        layer = by_name.get(plan.name)
        if origin is None:
            notes.append(f"as run: '{plan.name}' ({plan.op}) has no counterpart in the graph as written")
            continue
        parts = []
        if plan.op != origin.op or plan.node_name != origin.node_name:
            parts.append(f"runs as {plan.op} '{plan.node_name}'")
        if passed:
            parts.append(f"with {', '.join(passed)} fused into it")
        if plan.activation != "linear" and plan.activation != origin.activation:
            parts.append(f"activation {plan.activation}")
        if plan.addend_name:
            parts.append("a residual tensor added into its sum (ConvLayer.addend)")
        if layer is not None and origin.kernel is not None and layer.dtype != str(origin.kernel.dtype):
            parts.append(f"in {layer.dtype} where the graph says {origin.kernel.dtype} (Casts inserted)")
        if parts:
            notes.append(f"as run: '{plan.name}' " + ", ".join(parts))
    if len(plans) != written_count:
        notes.append(f"as run: ONNX Runtime runs {len(plans)} convolutions where the graph has {written_count}")
    return notes
