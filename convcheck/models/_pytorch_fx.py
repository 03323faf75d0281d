"""Exported programs: `.pt2` files from `torch.export.save` (read without unpickling
anything but tensors) and modules exported here, run through an FX interpreter that
captures each conv layer's tensors as they are computed.

Behaviours checked on torch 2.13 (CPU):
- `torch.export.export` keeps `aten.conv2d` (`aten.conv2d.padding` for a 'same'/'valid'
  string), `aten.pad`, `aten.batch_norm(training=False)`, `aten.hardtanh(0, 6)` for ReLU6,
  and in-place ops (`relu_`, `add_` for `out += identity`): a tensor is captured the
  moment it is computed or read, never after the graph finishes.
- `node.meta['nn_module_stack']` ends with the innermost module: ('layer1.0.conv1', type).
- `torch.export.load` unpickles with `weights_only=False` any weight or constant its
  config marks `use_pickle` and falls back to it when the sample inputs fail under
  `weights_only=True`: `check_pt2_archive` and `verify_pickles` refuse such archives first.
"""

from __future__ import annotations

import functools
import io
import json
import re
import zipfile
from collections import defaultdict

from ..backends.base import one_line
from ..errors import InputError
from ._pytorch_capture import CaptureStore, reason
from ._pytorch_graph import Op, Ref, plan_layers, refs_in

_CONFIGS = re.compile(r"data/(weights|constants)/[^/]+_(weights|constants)_config\.json")


def check_pt2_archive(archive: zipfile.ZipFile, root: str, label: str) -> list[str]:
    """Refuse, before torch is imported, a `.pt2` archive that would make `torch.export.load`
    unpickle Python objects; return the members it will unpickle as tensors (to verify
    with `verify_pickles` under `weights_only=True`)."""
    names = set(archive.namelist())
    rel = {name[len(root):] for name in names if name.startswith(root)}
    models = sorted(name for name in rel if name.startswith("models/") and name.endswith(".json"))
    if not models:
        kind = "an AOTInductor package (compiled code)" if any(n.startswith("data/aotinductor/") for n in rel) \
            else "a .pt2 archive without an exported program"
        raise InputError(f"{label}: is {kind}, not an exported program convcheck can run; save the model "
                         "with torch.export.save(torch.export.export(model, (x,)), path)")
    pickled = [name for name in rel if name.startswith("data/sample_inputs/")
               or re.fullmatch(r"data/(weights|constants)/[^/]+\.pt", name)]
    for config_name in (name for name in rel if _CONFIGS.fullmatch(name)):
        try:
            config = json.loads(archive.read(root + config_name)).get("config", {})
        except (ValueError, AttributeError, KeyError, zipfile.BadZipFile, OSError) as exc:
            raise InputError(f"{label}: its {config_name} is not readable JSON ({one_line(exc, 200)}); "
                             "the file is corrupt: save the model again with torch.export.save") from None
        for fqn, meta in config.items():
            path_name = str(meta.get("path_name", "")) if isinstance(meta, dict) else ""
            if path_name.startswith(("custom_obj_", "opaque_obj_")):
                raise InputError(f"{label}: holds the Python object '{fqn}' that torch.export.load would unpickle; "
                                 "convcheck loads only tensors from model files: export a model whose "
                                 "constants are tensors")
            if isinstance(meta, dict) and meta.get("use_pickle"):
                pickled.append(config_name.rsplit("/", 1)[0] + "/" + path_name)
    return [root + name for name in sorted(set(pickled))]


def verify_pickles(archive: zipfile.ZipFile, members: list[str], label: str) -> None:
    """Load each pickled member with `torch.load(weights_only=True)` (tensors and plain
    containers only); refuse the file when one holds anything else."""
    import torch
    for member in members:
        try:
            torch.load(io.BytesIO(archive.read(member)), weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure means: not plain tensors
            raise InputError(f"{label}: its member {member} is not plain tensors ({one_line(exc, 200)}); "
                             "convcheck never unpickles other objects from model files: export the model "
                             "again with torch.export.save") from None


def load_exported(path: str, label: str):
    """`torch.export.load` of an archive already checked, its errors as one InputError line."""
    import torch
    try:
        with open(path, "rb") as stream:   # a stream: no warning for a name not ending in .pt2
            return torch.export.load(stream)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad archive
        raise InputError(f"{label}: torch.export.load cannot read it ({reason(exc)}); save it again with "
                         f"torch.export.save, with this version of torch ({torch.__version__})") from None


def declared_input(program, label: str) -> tuple:
    """(shape with None for each open dimension, dtype name) of an exported program's one input."""
    import torch
    names = list(program.graph_signature.user_inputs)
    if len(names) != 1:
        raise InputError(f"{label}: the exported program takes {len(names)} inputs; convcheck model runs "
                         "models that take one image tensor")
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == names[0])
    value = node.meta.get("val")
    if not isinstance(value, torch.Tensor):
        raise InputError(f"{label}: the exported program's input '{names[0]}' is not a tensor; convcheck model "
                         "runs models that take one image tensor")
    shape = tuple(int(d) if isinstance(d, int) else None for d in value.shape)
    return shape, str(value.dtype).replace("torch.", "")


def _module_path(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = str(list(stack.values())[-1][0])
    # Older exports spell paths as Dynamo sources: L['self'].layer1[0].conv1
    path = re.sub(r"\[(\d+)\]", r".\1", path.replace("L['self'].", "").replace("L['self']", ""))
    return path.strip(".")


def _value(value):
    import torch.fx
    if isinstance(value, torch.fx.Node):
        return Ref(value)
    if isinstance(value, (list, tuple)):
        return [_value(item) for item in value]
    return value


def bind_schema(schema, args, kwargs) -> dict:
    """An op's arguments by schema name, in schema order, defaults filled in."""
    bound = {}
    for position, argument in enumerate(schema.arguments):
        if position < len(args) and not argument.kwarg_only:
            bound[argument.name] = args[position]
        elif argument.name in kwargs:
            bound[argument.name] = kwargs[argument.name]
        else:
            bound[argument.name] = argument.default_value if argument.has_default_value() else None
    return bound


def graph_ops(module) -> tuple:
    """(ops, output keys, static_shape) of an FX GraphModule, for `plan_layers`."""
    import operator
    import torch
    ops, outputs = [], []
    for node in module.graph.nodes:
        if node.op in ("placeholder", "get_attr"):
            continue
        if node.op == "output":
            outputs = [ref.key for ref in refs_in(_value(node.args))]
            continue
        args, kwargs = _value(list(node.args)), {k: _value(v) for k, v in node.kwargs.items()}
        if isinstance(node.target, torch._ops.OpOverload):
            namespace, name = node.target._schema.name.split("::")
            kind = name if namespace == "aten" else f"{namespace}::{name}"
            bound = bind_schema(node.target._schema, args, kwargs)
        elif node.target is operator.getitem:
            kind, bound = "getitem", {"self": args[0], "index": args[1]}
        else:
            kind = str(getattr(node.target, "__name__", node.target))
            bound = {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}
        ops.append(Op(kind=kind, args=bound, out=node, name=node.name, module=_module_path(node), handle=node))

    def static_shape(value):
        if isinstance(value, Ref):
            node = value.key
            if node.op == "get_attr":
                value = functools.reduce(getattr, node.target.split("."), module)
            else:
                value = node.meta.get("val")
        try:
            return tuple(int(d) for d in value.shape) if hasattr(value, "shape") else None
        except (TypeError, ValueError):  # a symbolic size
            return None

    return ops, outputs, static_shape


def capture_graph_module(module, image, keep=None) -> tuple:
    """Run an FX GraphModule once on `image` (a tensor), capturing every conv layer.

    Returns (layers, notes). Each tensor is captured as its op reads or writes it (the
    interpreter frees every other intermediate as soon as it is used); with `keep` (see
    `CaptureStore`) it goes to disk right away, so the run holds one layer's copy at a time.
    """
    import torch
    import torch.fx

    ops, outputs, static_shape = graph_ops(module)
    plans, notes = plan_layers(ops, outputs, static_shape)
    if not plans:
        return [], notes
    store = CaptureStore(plans, keep)
    before, after = defaultdict(list), defaultdict(list)
    for index, plan in enumerate(plans):
        for read in plan.reads:
            before[read.op.handle].append((index, read))
        after[plan.last.handle].append(index)

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            for index, read in before.get(node, ()):
                if isinstance(read.value, Ref):
                    store.put(index, read.role, self.env[read.value.key], read.activation, key=read.value.key)
                else:
                    store.put(index, read.role, read.value, read.activation)
            result = super().run_node(node)
            for index in after.get(node, ()):
                store.put(index, "output", result, True, key=node)
            return result

    with torch.no_grad():
        Recorder(module, garbage_collect_values=True).run(image)
    return store.layers(), notes
