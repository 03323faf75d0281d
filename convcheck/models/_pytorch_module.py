"""PyTorch models named as `package.module:attr` (an nn.Module instance, a class that
needs no arguments, or a function returning a module): imported, exported with
`torch.export` on the input and captured like a `.pt2`, or, when export fails, captured
with forward hooks on the modules.

The hooks see modules only: a conv called as a function (`F.conv2d`) is not seen, and
neither are functional ops between modules (`F.relu`, `F.pad`, `+`), so those are neither
absorbed into a layer nor named in `followed_by`; the capture's notes say so.
"""

from __future__ import annotations

import functools
import importlib
import inspect as pyinspect
import os
import re
import sys
import weakref

from ..backends.base import one_line
from ..errors import InputError
from ._pytorch_capture import CaptureStore, reason
from ._pytorch_fx import capture_graph_module
from ._pytorch_graph import Op, Ref, plan_layers

MODULE_SPEC = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")

# Module classes as the op names the planner and followed_by use.
_MODULE_KINDS = {"LeakyReLU": "leaky_relu", "Sigmoid": "sigmoid", "SiLU": "silu", "Tanh": "tanh", "GELU": "gelu",
                 "ELU": "elu", "SELU": "selu", "Hardswish": "hardswish", "Hardsigmoid": "hardsigmoid", "Mish": "mish",
                 "PReLU": "prelu", "Softplus": "softplus", "MaxPool2d": "max_pool2d", "AvgPool2d": "avg_pool2d"}
_PAD_MODULES = {"ZeroPad2d": "constant", "ConstantPad2d": "constant", "ReflectionPad2d": "reflect",
                "ReplicationPad2d": "replicate", "CircularPad2d": "circular"}


def _import(module_name: str, label: str):
    """Import `module_name` with the current directory on sys.path (as `python -m` would)."""
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InputError(f"{label}: cannot import module '{module_name}' ({one_line(exc, 200)}); run convcheck "
                         "from the folder that holds it, or add that folder to PYTHONPATH") from None
    except Exception as exc:  # noqa: BLE001 - the user's module may raise anything while importing
        raise InputError(f"{label}: importing '{module_name}' raised {reason(exc)}; "
                         "fix the module so that it imports") from None
    finally:
        if added and os.getcwd() in sys.path:
            sys.path.remove(os.getcwd())


def resolve_module(spec: str, label: str):
    """(the nn.Module in eval mode, the Python module it came from) for 'package.module:attr'."""
    import torch
    module_name, attr = spec.split(":")
    python_module = _import(module_name, label)
    try:
        target = functools.reduce(getattr, attr.split("."), python_module)
    except AttributeError:
        raise InputError(f"{label}: module '{module_name}' has no attribute '{attr}'; name an nn.Module, "
                         "a class, or a function returning one") from None
    if isinstance(target, torch.nn.Module):
        model = target
    elif callable(target):
        what = "class" if pyinspect.isclass(target) else "function"
        try:
            model = target()
        except Exception as exc:  # noqa: BLE001 - the user's constructor may raise anything
            raise InputError(f"{label}: calling the {what} '{attr}' with no arguments raised "
                             f"{reason(exc)}; name a module instance or a function that builds one") from None
        if not isinstance(model, torch.nn.Module):
            raise InputError(f"{label}: the {what} '{attr}' returned a {type(model).__name__}, not a "
                             "torch.nn.Module; name a module, a class, or a function returning one")
    else:
        raise InputError(f"{label}: '{attr}' is an object of type {type(target).__name__}, not a "
                         "torch.nn.Module; name a module, a class, or a function returning one")
    return model.eval(), python_module


def example_input(model, python_module):
    """The `example_input` the module (or its Python module) declares: a tensor, an array
    or a shape tuple; None when neither has one."""
    for owner in (model, python_module):
        value = getattr(owner, "example_input", None)
        if value is not None:
            return value
    return None


def capture_module(model, image, keep=None) -> tuple:
    """Export `model` on `image` and capture its graph; fall back to forward hooks when
    `torch.export` fails. Returns (layers, notes). `keep`: see `CaptureStore`."""
    import torch
    try:
        program = torch.export.export(model, (image,), strict=False)
    except Exception as exc:  # noqa: BLE001 - export fails in many ways on dynamic Python code
        layers, notes = capture_hooks(model, image, keep)
        return layers, [f"torch.export failed ({reason(exc)}); the layers were "
                        "captured with forward hooks on the modules instead: convs called as functions "
                        "(F.conv2d) are not seen, and ops between modules (F.relu, F.pad, +) are neither "
                        "absorbed nor named in followed_by"] + notes
    layers, notes = capture_graph_module(program.module(), image, keep)
    return layers, ["the module was exported with torch.export (strict=False) on this input"] + notes


class _Keys:
    """A key for each tensor value seen: (a serial number for the tensor object, its
    in-place version), so an in-place op's result is a new value of the same tensor."""

    def __init__(self):
        self._objects: dict = {}
        self._serial = 0

    def __call__(self, tensor):
        entry = self._objects.get(id(tensor))
        if entry is None or entry[0]() is not tensor:
            self._serial += 1
            entry = (weakref.ref(tensor), self._serial)
            self._objects[id(tensor)] = entry
        return entry[1], tensor._version


def _call_ops(path: str, module, inputs: list, output, keys, event: int) -> list[Op]:
    """The ops one module call stands for, in the planner's terms (see `plan_layers`).

    `inputs` are the keys of its tensor arguments as they were when it was called (an
    in-place ReLU changes its input's version)."""
    import torch
    from torch import nn
    source = Ref(inputs[0]) if inputs else None
    out = keys(output) if isinstance(output, torch.Tensor) else ("call", event)
    name = type(module).__name__

    def op(kind, arguments, key=out):
        return Op(kind=kind, args=arguments, out=key, name=path, module=path, handle=event)

    if isinstance(module, nn.Conv2d):
        padding, ops = module.padding, []
        if module.padding_mode != "zeros":   # the module pads with F.pad itself, then convolves with padding 0
            ops.append(op("pad", {"self": source, "pad": list(module._reversed_padding_repeated_twice),
                                  "mode": module.padding_mode, "value": None}, key=("pad", event)))
            source, padding = Ref(("pad", event)), (0, 0)
        return ops + [op("conv2d", {"input": source, "weight": module.weight, "bias": module.bias,
                                    "stride": list(module.stride),
                                    "padding": padding if isinstance(padding, str) else list(padding),
                                    "dilation": list(module.dilation), "groups": module.groups})]
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return [op("batch_norm", {"input": source, "weight": module.weight, "bias": module.bias,
                                  "running_mean": module.running_mean, "running_var": module.running_var,
                                  "training": bool(module.training), "momentum": module.momentum,
                                  "eps": module.eps})]
    if isinstance(module, nn.ReLU):
        return [op("relu", {"self": source})]
    if isinstance(module, nn.Hardtanh):   # ReLU6 is Hardtanh(0, 6)
        return [op("hardtanh", {"self": source, "min_val": module.min_val, "max_val": module.max_val})]
    if name in _PAD_MODULES:
        return [op("pad", {"self": source, "pad": list(module.padding), "mode": _PAD_MODULES[name],
                           "value": getattr(module, "value", None)})]
    return [op(_MODULE_KINDS.get(name, name), {f"arg{i}": Ref(key) for i, key in enumerate(inputs)})]


def _run_hooked(model, image, before, after):
    """Run `model` on `image` calling `before(path, module, args)` and `after(path, module,
    args, output)` around every leaf module call."""
    import torch
    handles = []
    for path, module in model.named_modules():
        if not any(True for _ in module.children()):
            handles.append(module.register_forward_pre_hook(functools.partial(before, path)))
            handles.append(module.register_forward_hook(functools.partial(after, path)))
    try:
        with torch.no_grad():
            return model(image)
    finally:
        for handle in handles:
            handle.remove()


def _tensors_in(value) -> list:
    import torch
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors_in(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors_in(item)]
    return []


def _record(model, image) -> tuple:
    """Run once, describing every leaf module call as ops: (ops, output keys, call paths),
    calls numbered in the order they start."""
    calls, paths, keys, pending = [], [], _Keys(), []

    def before(path, module, args):
        paths.append(path)
        pending.append((len(paths) - 1, [keys(t) for t in _tensors_in(list(args))]))

    def after(path, module, args, output):
        event, inputs = pending.pop()
        calls.append((event, _call_ops(path, module, inputs, output, keys, event)))

    result = _run_hooked(model, image, before, after)
    ops = [op for _, call_ops in sorted(calls, key=lambda call: call[0]) for op in call_ops]
    return ops, [keys(t) for t in _tensors_in(result)], paths


def capture_hooks(model, image, keep=None) -> tuple:
    """Capture conv layers with forward hooks: one run to see which module calls make up
    each layer, a second to capture their tensors (inputs before a module runs, outputs
    right after). Returns (layers, notes). `keep`: see `CaptureStore`."""
    ops, outputs, paths = _record(model, image)
    plans, notes = plan_layers(ops, outputs, lambda v: tuple(v.shape) if hasattr(v, "shape") else None)
    if not plans:
        return [], notes
    store = CaptureStore(plans, keep)
    reads, lasts = {}, {}
    for index, plan in enumerate(plans):
        for read in plan.reads:
            reads.setdefault(read.op.handle, []).append((index, read))
        lasts.setdefault(plan.last.handle, []).append(index)
    started, pending, keys = [], [], _Keys()

    def before(path, module, args):
        started.append(path)
        event = len(started) - 1
        pending.append(event)
        if event >= len(paths) or paths[event] != path:
            raise RuntimeError("the model called other modules on a second run with the same input")
        for index, read in reads.get(event, ()):
            if isinstance(read.value, Ref):
                store.put(index, read.role, args[0], read.activation, key=keys(args[0]))
            else:
                store.put(index, read.role, read.value, read.activation)

    def after(path, module, args, output):
        for index in lasts.get(pending.pop(), ()):
            store.put(index, "output", output, True, key=keys(output))

    _run_hooked(model, image, before, after)
    return store.layers(), notes
