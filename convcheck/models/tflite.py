"""The TFLite loader of `convcheck model`: a .tflite file run by LiteRT (`ai-edge-litert`).

The graph and the conv options are read from the file (`_tflite_graph`), the layers planned
from it (`_tflite_layers`), then the model runs once in LiteRT with every tensor preserved
and each layer's input and output are read back by tensor index: the tensors LiteRT
computed, never recomputed here. TensorFlow is not needed.

By default the model runs on TFLite's built-in CPU kernels with the XNNPACK delegate off:
the graph as written, each op alone. `as_run=True` runs it with the default XNNPACK
delegate, as a deployment does.
"""

from __future__ import annotations

import warnings
from collections import defaultdict

import numpy as np

from ..errors import InputError, MissingDependency
from .layers import CapturedModel, ModelInfo, keep_activations
from ._tflite_graph import Graph, Tensor, first_line, label, read_graph
from ._tflite_layers import build_layer
from ._tflite_plan import CONVS, plan_layers

FORMAT = "tflite"
SUFFIXES = (".tflite",)
LAYOUT = "nhwc"


def inspect(path: str) -> ModelInfo:
    """Validate the model file and read what it declares (layout, input shape, dtype) without running it.

    An open batch dimension is reported as 1; any other open dimension makes the whole
    shape None (the user must pass `--input`). Raises `InputError` for a file that is not a
    readable TFLite model and `MissingDependency` when LiteRT is not installed.
    """
    graph = read_graph(path)
    tensor = _model_input(graph)
    return ModelInfo(path=path, format=FORMAT, layout=LAYOUT, input_shape=_declared_shape(tensor),
                     input_dtype=tensor.dtype)


def capture(path: str, x: np.ndarray, *, as_run: bool = False, keep=None) -> CapturedModel:
    """Run the model once on `x` (in the model's own layout and dtype: ModelInfo.layout/input_dtype)
    and capture every 2-D convolution layer in execution order (see ConvLayer).

    `as_run=False` runs TFLite's built-in kernels (XNNPACK off); `as_run=True` the default
    XNNPACK delegate, falling back to the built-in kernels (with a note) where the delegate
    does not keep a tensor a layer needs. Quantized convs are skipped and listed in the notes.
    `keep`: see `layers.keep_activations` (LiteRT keeps every tensor of the run, so they are
    handed over after it). Raises `InputError` for a bad file, an `x` of the wrong shape or
    dtype, a model LiteRT cannot run or one without a float 2-D convolution.
    """
    graph = read_graph(path)
    tensor = _model_input(graph)
    x = _check_input(graph, tensor, x)
    plans, notes = plan_layers(graph)
    needed = set().union(*(plan.tensors(graph) for plan in plans))
    interpreter = _run(graph, x, builtin_only=not as_run)
    if as_run:
        missing, ran = _delegation(interpreter, graph, needed)
        if missing:
            del interpreter
            interpreter = _run(graph, x, builtin_only=True)
            notes.insert(0, f"as_run: LiteRT {_version()} did not show that the XNNPACK delegate kept "
                            f"{len(missing)} tensor(s) the layers need (a delegate keeps none inside ops it "
                            "fuses), so the model ran on TFLite's built-in kernels instead (XNNPACK off)")
        else:
            notes.insert(0, ran)
    else:
        notes.insert(0, f"ran by LiteRT {_version()} on TFLite's built-in CPU kernels, XNNPACK delegate off "
                        "(the graph as written: each op alone, every tensor kept); a deployment's default "
                        "XNNPACK delegate may round differently (as_run=True runs it)")
    tensors = _Tensors(interpreter, graph)
    layers, sources = [], defaultdict(list)
    for plan in plans:
        layer, source = build_layer(plan, graph, tensors.get, tensors.shape, notes)
        layers.append(layer)
        if source:
            sources[source].append(plan.name)
    notes.extend(f"{source}: {', '.join(names)}" for source, names in sources.items())
    return CapturedModel(path=path, format=FORMAT, layout=LAYOUT, input_shape=tuple(x.shape),
                         input_dtype=tensor.dtype, layers=keep_activations(layers, keep), notes=notes,
                         uncaptured=sum(op.name in CONVS for op in graph.ops) - len(plans))


def _model_input(graph: Graph) -> Tensor:
    if len(graph.inputs) != 1:
        names = ", ".join(f"'{graph.tensors[t].name}'" for t in graph.inputs[:4])
        raise InputError(f"{label(graph.path)}: takes {len(graph.inputs)} inputs ({names}); convcheck model "
                         "runs models that take one image")
    return graph.tensors[graph.inputs[0]]


def _declared_shape(tensor: Tensor):
    signature = tensor.signature
    if not signature:
        return None
    if signature[0] == -1:
        signature = (1,) + signature[1:]
    return None if any(d < 0 for d in signature) else tuple(signature)


def _shape_text(signature: tuple[int, ...]) -> str:
    return "(" + ", ".join("?" if d < 0 else str(d) for d in signature) + ("," if len(signature) == 1 else "") + ")"


def _check_input(graph: Graph, tensor: Tensor, x) -> np.ndarray:
    """`x` as LiteRT takes it (C-contiguous), or `InputError` naming the expected and the given shape."""
    signature = tensor.signature
    given = (f"a {type(x).__name__}" if not isinstance(x, np.ndarray)
             else f"shape {tuple(x.shape)} and dtype {x.dtype}")
    fits = (isinstance(x, np.ndarray) and x.ndim == len(signature) and str(x.dtype) == tensor.dtype
            and all(n == d or (d == -1 and n > 0) for n, d in zip(x.shape, signature)))
    if not fits:
        raise InputError(f"{label(graph.path)}: takes an input of shape {_shape_text(signature)} and dtype "
                         f"{tensor.dtype} (layout {LAYOUT}); the input given has {given}; give an input of "
                         "that shape and dtype")
    return np.ascontiguousarray(x)


def _litert():
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        raise MissingDependency("running a TFLite model", "tflite", "ai-edge-litert (LiteRT)") from None
    return interpreter


def _version() -> str:
    try:
        import ai_edge_litert
    except ImportError:
        return "?"
    return getattr(ai_edge_litert, "__version__", "?")


def _run(graph: Graph, x: np.ndarray, builtin_only: bool):
    """A LiteRT interpreter that has run the model on `x` with every tensor preserved."""
    litert = _litert()
    resolver = (litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin_only
                else litert.OpResolverType.BUILTIN)
    index = graph.inputs[0]
    try:
        with warnings.catch_warnings():
            # LiteRT warns that preserving every tensor is for debugging and costs memory:
            # reading every layer's tensors back is exactly what is wanted here.
            warnings.simplefilter("ignore")
            interpreter = litert.Interpreter(model_path=graph.path, experimental_op_resolver_type=resolver,
                                             experimental_preserve_all_tensors=True)
        if tuple(x.shape) != graph.tensors[index].shape:
            interpreter.resize_tensor_input(index, list(x.shape), strict=True)
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, x)
        interpreter.invoke()
    except Exception as exc:  # LiteRT raises ValueError or RuntimeError with multi-line messages
        raise InputError(f"{label(graph.path)}: LiteRT cannot run it ({first_line(exc)}); check that the "
                         "model runs in LiteRT on its own (custom or TensorFlow ops need their own runtime)") from None
    return interpreter


def _delegation(interpreter, graph: Graph, needed: set[int]) -> tuple[list[int], str]:
    """The needed tensors XNNPACK did not write (inside a fused partition) and a note on what ran where.

    LiteRT lists the delegate's nodes after the model's own in `_get_ops_details()`, each
    with the partition's outside inputs and outputs; a partition is every op between them.
    """
    try:
        details = interpreter._get_ops_details()[len(graph.ops):]
    except Exception:  # no such view in this LiteRT: nothing can be proved kept
        return sorted(needed), ""
    delegated, written = set(), set()
    for node in details:
        if node.get("op_name") != "DELEGATE":
            continue
        inputs = {int(t) for t in node["inputs"]}
        outputs = [int(t) for t in node["outputs"]]
        written.update(outputs)
        stack = list(outputs)
        while stack:
            t = stack.pop()
            op = graph.producer(t)
            if t in inputs or op is None or op.index in delegated:
                continue
            delegated.add(op.index)
            stack.extend(i for i in op.inputs if i >= 0)
    missing = sorted(t for t in needed if t not in written and graph.producer(t) is not None
                     and graph.producer(t).index in delegated)
    left = [op for op in graph.ops if op.index not in delegated]
    builtin = ", ".join(sorted({op.name for op in left})) or "none"
    convs = [graph.tensors[op.outputs[0]].name for op in left if op.name in CONVS]
    if convs:
        builtin += f" (convs: {', '.join(convs)})"
    ran = (f"ran by LiteRT {_version()} with the XNNPACK delegate (as_run): with every tensor kept LiteRT "
           f"hands XNNPACK one op at a time, so ops a deployment fuses ran separately; ops left to TFLite's "
           f"built-in kernels: {builtin}")
    return missing, ran


class _Tensors:
    """Tensors read back from a finished run, each copied once (a layer's output that is the
    next layer's input is one array)."""

    def __init__(self, interpreter, graph: Graph):
        self._interpreter = interpreter
        self._graph = graph
        self._arrays: dict[int, np.ndarray] = {}

    def get(self, index: int) -> np.ndarray:
        """Tensor `index` as the run left it (a copy LiteRT makes)."""
        if index not in self._arrays:
            self._arrays[index] = self._read(index, self._interpreter.get_tensor)
        return self._arrays[index]

    def shape(self, index: int) -> tuple[int, ...]:
        """The run-time shape of tensor `index`, without copying it."""
        if index in self._arrays:
            return self._arrays[index].shape
        # `tensor(i)()` is a view into LiteRT's memory: its shape is read and the view dropped.
        return self._read(index, lambda i: self._interpreter.tensor(i)().shape)

    def _read(self, index: int, read):
        try:
            return read(index)
        except Exception as exc:  # a tensor of a type numpy lacks, or one LiteRT did not keep
            name = self._graph.tensors[index].name
            raise InputError(f"{label(self._graph.path)}: LiteRT gives no readable value for tensor '{name}' "
                             f"({first_line(exc)}); check that the model runs in LiteRT on its own") from None
