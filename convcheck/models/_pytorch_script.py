"""TorchScript models (`torch.jit.save` of a scripted or traced module): the frozen graph
rewritten to also return each conv layer's tensors, run once.

Behaviours checked on torch 2.13 (CPU):
- Forward hooks do not run on ScriptModules, so the graph itself is changed: after
  `torch.jit.freeze(optimize_numerics=False)` (True would fold each BatchNorm into its
  conv's weights) every submodule is inlined and every weight is a constant.
- Scripted modules call `aten::conv2d` (a str padding for 'same'/'valid'); traced ones
  `aten::_convolution` (13 arguments) or `aten::_convolution_mode` for a str padding.
- `node.getModuleHierarchy()` names the module an inlined node came from:
  'layer1(Sequential).0(Block).conv1(Conv2d).SELF(Conv2d)'.
- In-place ops (`relu_`, `add_` for `out += identity`) mutate a tensor after the node that
  computed it: a value mutated after the point it is captured is returned as a clone taken
  at that point.
- Freezing pools equal constants: two layers with identical weights share one constant.
"""

from __future__ import annotations

import re

from ..errors import InputError
from ._pytorch_capture import CaptureStore, reason
from ._pytorch_fx import bind_schema
from ._pytorch_graph import CONV_KINDS, Op, Ref, plan_layers

_HIERARCHY = re.compile(r"([^.()]+)\(([^()]*)\)")


def load_script(path: str, label: str):
    """`torch.jit.load` on the CPU, its errors as one InputError line."""
    import torch
    try:
        return torch.jit.load(path, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError and others for a bad archive
        raise InputError(f"{label}: torch.jit.load cannot read it ({reason(exc)}); "
                         "save it again with torch.jit.save, or export it with torch.export.save") from None


def parameter_dtype(module) -> str:
    """The dtype of a module's first floating-point parameter ('float32' when it has none)."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point():
            return str(tensor.dtype).replace("torch.", "")
    return "float32"


def _module_path(node) -> str:
    try:
        hierarchy = node.getModuleHierarchy()
    except Exception:  # noqa: BLE001 - older builds lack call-stack information
        return ""
    names = [name for name, _ in _HIERARCHY.findall(hierarchy) if name not in ("SELF", "UNKNOWN_INSTANCE")]
    return ".".join(names)


def _block_values(node) -> list:
    """Every value the nodes inside `node`'s blocks read (they count as `node`'s reads)."""
    values = []
    for block in node.blocks():
        for inner in block.nodes():
            values.extend(inner.inputs())
            values.extend(_block_values(inner))
        values.extend(block.returnNode().inputs())
    return values


def _op_kind(kind: str) -> str:
    """'aten::conv2d' -> 'conv2d'; other namespaces keep theirs ('quantized::conv2d')."""
    return kind[len("aten::"):] if kind.startswith("aten::") else kind


def _contains_conv(node) -> bool:
    return any(_op_kind(inner.kind()) in CONV_KINDS or _contains_conv(inner)
               for block in node.blocks() for inner in block.nodes())


def graph_ops(graph, label: str) -> tuple:
    """(ops, output keys, static_shape, values by key) of a frozen TorchScript graph."""
    import torch

    values = {}

    def arg(value):
        values[value.unique()] = value
        if value.node().kind() == "prim::Constant":
            return value.toIValue()
        return Ref(value.unique())

    ops = []
    for node in graph.nodes():
        kind = node.kind()
        if kind == "prim::Constant":
            continue
        if _contains_conv(node):
            raise InputError(f"{label}: runs a convolution inside TorchScript control flow ({kind}), which "
                             "convcheck cannot capture; export the model with torch.export instead")
        inputs = [arg(value) for value in node.inputs()]
        schema = node.schema()
        if kind.startswith("aten::") and schema != "(no schema)":
            bound = bind_schema(torch._C.parse_schema(schema), inputs, {})
        else:
            bound = {f"arg{i}": a for i, a in enumerate(inputs + [arg(v) for v in _block_values(node)])}
        output = node.outputsAt(0) if node.outputsSize() else None
        if output is not None:
            values[output.unique()] = output
        name = output.debugName() if output is not None else ""
        ops.append(Op(kind=_op_kind(kind), args=bound, out=output.unique() if output is not None else id(node),
                      name="" if name.isdigit() else re.sub(r"\.\d+$", "", name), module=_module_path(node),
                      handle=node))
    outputs = [value.unique() for value in graph.outputs()]

    def static_shape(value):
        if isinstance(value, Ref):
            try:
                sizes = values[value.key].type().sizes()
            except (RuntimeError, AttributeError):
                return None
            return tuple(sizes) if sizes is not None and None not in sizes else None
        return tuple(value.shape) if hasattr(value, "shape") else None

    return ops, outputs, static_shape, values


def _in_place(node) -> bool:
    name = node.kind().split("::")[-1]
    return node.kind().startswith("aten::") and name.endswith("_") and not name.startswith("__")


def _aliases(value) -> list:
    """`value` and every value an in-place op chains to it (x, relu_(x), relu_(x).add_(y), ...)."""
    seen, stack = {value.unique(): value}, [value]
    while stack:
        current = stack.pop()
        linked = []
        if _in_place(current.node()) and current.node().inputsSize():
            linked.append(current.node().inputsAt(0))
        linked += [use.user.outputsAt(0) for use in current.uses()
                   if use.offset == 0 and _in_place(use.user) and use.user.outputsSize()]
        for other in linked:
            if other.unique() not in seen:
                seen[other.unique()] = other
                stack.append(other)
    return list(seen.values())


def _top_level(node):
    while True:
        owner = node.owningBlock().owningNode()
        if owner is None:
            return node
        node = owner


def _mutated_after(value, point) -> bool:
    """Whether an in-place op changes `value`'s tensor after the node `point` runs."""
    return any(_in_place(use.user) and use.offset == 0 and _top_level(use.user).isAfter(point)
               for alias in _aliases(value) for use in alias.uses())


class _Returns:
    """The values the rewritten graph returns besides its own outputs."""

    def __init__(self, graph):
        import torch
        self.graph = graph
        self.values = list(graph.outputs())
        self._positions: dict = {}
        none = graph.create("prim::Constant")
        none.output().setType(torch._C.NoneType.get())
        none.insertBefore(next(iter(graph.nodes())))
        self._none = none.output()

    def add(self, value, clone_before=None, clone_after=None) -> int:
        """The position of `value` among the returns: itself, or a clone taken right
        before / after the given node when an in-place op changes it later."""
        if clone_before is None and clone_after is None:
            if value.unique() not in self._positions:
                self._positions[value.unique()] = len(self.values)
                self.values.append(value)
            return self._positions[value.unique()]
        clone = self.graph.create("aten::clone", [value, self._none])
        clone.output().setType(value.type())
        if clone_before is not None:
            clone.insertBefore(clone_before)
        else:
            clone.insertAfter(clone_after)
        self.values.append(clone.output())
        return len(self.values) - 1

    def function(self):
        """The graph, now returning one tuple of every value, as a callable function."""
        import torch
        ret = self.graph.return_node()
        bundle = self.graph.create("prim::TupleConstruct", self.values)
        bundle.output().setType(torch._C.TupleType([value.type() for value in self.values]))
        bundle.insertBefore(ret)
        for _ in range(len(list(self.graph.outputs()))):
            self.graph.eraseOutput(0)
        self.graph.registerOutput(bundle.output())
        return torch._C._create_function_from_graph("convcheck_capture", self.graph)


def capture_script(module, image, label: str, keep=None) -> tuple:
    """Freeze a TorchScript module, make its graph also return each conv layer's tensors,
    run it once on `image` (a tensor). Returns (layers, notes). `keep`: see `CaptureStore`
    (the graph returns every tensor at once, so they go to disk one by one after the run)."""
    import torch
    frozen = torch.jit.freeze(module.eval(), optimize_numerics=False)
    graph = frozen.graph.copy()
    ops, outputs, static_shape, values = graph_ops(graph, label)
    plans, notes = plan_layers(ops, outputs, static_shape)
    if not plans:
        return [], notes
    store = CaptureStore(plans, keep)
    returns = _Returns(graph)
    jobs = []   # (position among the returns, plan index, role, activation)
    for index, plan in enumerate(plans):
        for read in plan.reads:
            if not isinstance(read.value, Ref):
                store.put(index, read.role, read.value, read.activation)
                continue
            value, at = values[read.value.key], read.op.handle
            position = returns.add(value, clone_before=at if _mutated_after(value, at) else None)
            jobs.append((position, index, read.role, read.activation))
        value, at = values[plan.last.out], plan.last.handle
        jobs.append((returns.add(value, clone_after=at if _mutated_after(value, at) else None), index, "output", True))
    function = returns.function()
    with torch.no_grad():
        results = list(function(frozen._c, image))
    jobs.sort(key=lambda job: job[0])
    for number, (position, index, role, activation) in enumerate(jobs):
        store.put(index, role, results[position], activation, key=position)
        if number + 1 == len(jobs) or jobs[number + 1][0] != position:
            results[position] = None   # converted: let torch free it
    notes.append("the TorchScript graph was frozen (BatchNorm kept apart) and rewritten to also return each "
                 "conv layer's input and output")
    return store.layers(), notes
