"""The yardstick for `convcheck model ORIGINAL.pt2 PORT.onnx`: what a user writes by hand.

Both models' forward passes with per-layer capture (forward hooks on the eager PyTorch model,
rebuilt from its source around the .pt2's weights; every Conv's input and output marked as an
ONNX graph output for ONNX Runtime, as Polygraphy's `--onnx-outputs mark all` does), then for
every conv, in order, a float64 check: the ONNX conv's own input through the PyTorch layer's
weights, stride and padding by im2col and one matrix product, its bias and its BatchNorm
applied in float64 (the exporter folded it into the ONNX conv), compared elementwise with the
ONNX conv's output; and the drift between the two models' conv outputs. Prints one line per
layer.

Usage: python benchmarks/handwritten_model.py MODEL.pt2 MODEL.onnx INPUT.npy [resnet18|plain]
(the model's source: benchmarks/resnet18.py, the default, or benchmarks/plainnet.py)
"""
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plainnet import plainnet  # noqa: E402
from resnet18 import resnet18  # noqa: E402

pt2, onnx_path, input_path = sys.argv[1:4]
kind = sys.argv[4] if len(sys.argv) > 4 else "resnet18"
x = np.load(input_path, allow_pickle=False)


def batchnorm_of(name: str):
    """The BatchNorm after a conv, by torchvision's names (conv1 -> bn1, downsample.0 -> downsample.1),
    or None (the plain net has none)."""
    if kind != "resnet18":
        return None
    return modules[name.replace("conv", "bn") if "conv" in name else name[:-1] + "1"]


# PyTorch: the eager model with the .pt2's weights, a forward hook on every conv's BatchNorm
# (the ONNX conv's output is after the BatchNorm the exporter folded into it), or on the conv
# itself, copied before an in-place ReLU overwrites it.
model = resnet18() if kind == "resnet18" else plainnet()
model.load_state_dict(torch.export.load(pt2).state_dict)
convs = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
modules = dict(model.named_modules())
captured = {}
for name, conv in convs:
    (batchnorm_of(name) or conv).register_forward_hook(
        lambda m, inp, out, name=name: captured.__setitem__(name, out.detach().numpy().copy()))
with torch.no_grad():
    model(torch.from_numpy(x))

# ONNX Runtime: every Conv's input and output as graph outputs, one run.
graph = onnx.load(onnx_path)
nodes = [n for n in graph.graph.node if n.op_type == "Conv"]
for node in nodes:
    for tensor in (node.input[0], node.output[0]):
        graph.graph.output.append(onnx.ValueInfoProto(name=tensor))
session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
names = [o.name for o in session.get_outputs()]
values = dict(zip(names, session.run(None, {session.get_inputs()[0].name: x})))


def conv2d_float64(image, weight, stride, padding):
    """NCHW image, OIHW weight, zero padding: im2col and one matrix product in float64."""
    image = np.pad(image.astype(np.float64), ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    c_out, c_in, kh, kw = weight.shape
    windows = np.lib.stride_tricks.sliding_window_view(image, (kh, kw), axis=(2, 3))[:, :, ::stride[0], ::stride[1]]
    n, _, ho, wo = windows.shape[:4]
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c_in * kh * kw)
    out = cols @ weight.astype(np.float64).reshape(c_out, -1).T
    return out.reshape(n, ho, wo, c_out).transpose(0, 3, 1, 2)


# Every conv in the same order in both (the user checked that once): judge it.
for (name, conv), node in zip(convs, nodes):
    reference = conv2d_float64(values[node.input[0]], conv.weight.detach().numpy(), conv.stride, conv.padding)
    if conv.bias is not None:
        reference = reference + conv.bias.detach().double().numpy()[:, None, None]
    bn = batchnorm_of(name)
    if bn is not None:
        scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
        shift = bn.bias.detach().double().numpy() - bn.running_mean.detach().double().numpy() * scale
        reference = reference * scale[:, None, None] + shift[:, None, None]
    port = values[node.output[0]]
    close = np.abs(port - reference) <= 1e-5 + 1e-4 * np.abs(reference)
    drift = float(np.max(np.abs(port - captured[name])))
    print(f"{name:24s} {node.name:45s} max|diff| {np.max(np.abs(port - reference)):.3g} "
          f"mismatched {int(np.size(close) - np.count_nonzero(close))} drift {drift:.3g}")
