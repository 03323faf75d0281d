"""A Keras model's graph flattened into one list of layer calls, and a probe model over it.

Keras 3 keeps a Functional model's graph as `Node`s (one per layer call) whose tensors
belong to that model alone: the tensors inside a nested model (an applications backbone
inside a Functional, a Sequential block) are not connected to the outer model's input, so
no `keras.Model(inputs=model.inputs, outputs=...)` can ask for them. The graph is
therefore traced again from one fresh `keras.Input`, exactly as `Functional.call` runs it
(nodes by decreasing depth, `node.arguments.fill_in`), with every nested Functional or
Sequential expanded in place. The result is a flat list of calls of the model's own layer
objects (weights shared, nothing copied), whose every tensor a probe model can return.
Numbers are unchanged: the probe runs the same layers with the same arguments, and
`training=False` reaches every layer from the probe as it would from the outer model.

Heavy frameworks are imported by the caller and handed in; this module imports none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Step:
    """One call of a layer (or a `keras.ops` operation) in the flattened graph."""

    op: Any                       # the Layer / Operation object that ran
    name: str                     # unique path name: 'conv1', 'backbone/conv1', 'conv1@1'
    inputs: list                  # the KerasTensors it read (flattened arguments)
    outputs: list                 # the KerasTensors it produced
    arguments: tuple = ((), {})   # the (args, kwargs) it was called with


@dataclass
class Graph:
    """The flattened graph: its input, calls in execution order, outputs, and who reads what."""

    input: Any
    steps: list[Step]
    outputs: list
    opaque: list[Step] = field(default_factory=list)   # models that could not be expanded
    _producer: dict = field(default_factory=dict, repr=False)
    _consumers: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # Tensors are keyed by id: the steps hold them, so no id is reused meanwhile.
        self._producer = {id(t): step for step in self.steps for t in step.outputs}
        for step in self.steps:
            for key in {id(t) for t in step.inputs}:  # Add([x, x]) reads x once
                self._consumers.setdefault(key, []).append(step)

    def producer(self, tensor) -> Step | None:
        """The step that produced `tensor` (None for the graph's input)."""
        return self._producer.get(id(tensor))

    def sole_consumer(self, tensor) -> Step | None:
        """The one step reading `tensor`, or None when several (or none) read it or it is
        also one of the model's outputs."""
        readers = self._consumers.get(id(tensor), [])
        if len(readers) != 1 or any(out is tensor for out in self.outputs):
            return None
        return readers[0]


def is_expandable(keras, op) -> bool:
    """Whether `op` is a model whose graph can be traced through: Sequential or Functional
    (a subclassed model's `call` is Python code no graph records)."""
    if isinstance(op, keras.Sequential):
        return True
    return isinstance(op, keras.Model) and hasattr(op, "_nodes_by_depth")


def flatten(keras, model) -> Graph:
    """Trace `model` (Sequential or Functional, one input) again from a fresh input,
    nested models expanded, as a `Graph`."""
    spec = model.inputs[0]
    fresh = keras.Input(batch_shape=tuple(spec.shape), dtype=spec.dtype)
    tracer = _Tracer(keras)
    outputs = tracer.expand(model, [fresh], "")
    return Graph(input=fresh, steps=tracer.steps, outputs=outputs, opaque=tracer.opaque)


class _Tracer:
    """Calls every layer of a model again on fresh symbolic tensors, recording each call."""

    def __init__(self, keras):
        self.keras = keras
        self.steps: list[Step] = []
        self.opaque: list[Step] = []
        self._calls: dict[str, int] = {}

    def expand(self, model, inputs: list, prefix: str) -> list:
        """Run `model`'s graph on `inputs` (symbolic); returns its flat outputs."""
        if isinstance(model, self.keras.Sequential):
            outputs = inputs
            for layer in model.layers:
                outputs = self.apply(layer, (outputs[0] if len(outputs) == 1 else outputs,), {}, prefix)
            return outputs
        tensors = {id(t): value for t, value in zip(model.inputs, inputs)}
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if not node.operation or node.is_input:
                    continue
                if any(id(t) not in tensors for t in node.input_tensors):
                    continue  # not computable from the inputs: Functional.call skips it too
                args, kwargs = node.arguments.fill_in(tensors)
                outputs = self.apply(node.operation, args, kwargs, prefix)
                for t, value in zip(node.outputs, outputs):
                    tensors[id(t)] = value
        return [tensors[id(t)] for t in model.outputs]

    def apply(self, op, args: tuple, kwargs: dict, prefix: str) -> list:
        """Call `op` on symbolic arguments (a nested model expanded); its flat outputs."""
        tree = self.keras.tree
        if is_expandable(self.keras, op):
            return self.expand(op, tree.flatten(args[0]), f"{prefix}{op.name}/")
        outputs = tree.flatten(op(*args, **kwargs))
        step = Step(op=op, name=self._unique(prefix + op.name),
                    inputs=[t for t in tree.flatten((args, kwargs)) if isinstance(t, self.keras.KerasTensor)],
                    outputs=outputs, arguments=(args, kwargs))
        self.steps.append(step)
        if isinstance(op, self.keras.Model):
            self.opaque.append(step)
        return outputs

    def _unique(self, name: str) -> str:
        """`name` for a layer's first call, `name@k` for its k-th call after that."""
        count = self._calls.get(name, 0)
        self._calls[name] = count + 1
        return name if count == 0 else f"{name}@{count}"
