"""Test helpers for the ONNX loader: small real graphs built with onnx.helper, and an
independent float64 recomputation of what a captured layer declares.

onnx is imported inside the builders, so collecting the tests costs nothing without it.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = {"float32": 1, "float16": 10}   # numpy name -> onnx TensorProto element type


class Net:
    """A graph under construction: nodes, initializers and the weights each conv got."""

    def __init__(self, shape, *, opset: int = 17, dtype: str = "float32", seed: int = 0):
        self.shape, self.opset, self.dtype = tuple(shape), opset, dtype
        self.rng = np.random.default_rng(seed)
        self.nodes, self.initializers = [], []
        self.domains: dict[str, int] = {}

    def constant(self, name: str, value, dtype=None) -> str:
        """Add an initializer; returns its name."""
        from onnx import numpy_helper
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype or self.dtype), name))
        return name

    def random(self, name: str, shape, low: float = -1.0, high: float = 1.0) -> str:
        return self.constant(name, self.rng.uniform(low, high, shape))

    def node(self, op: str, inputs, name: str, *, domain: str = "", outputs=None, **attributes) -> str:
        """Add a node (named `name`, output `name + '_out'` unless given); returns its first output."""
        from onnx import helper
        outputs = outputs or [f"{name}_out"]
        self.nodes.append(helper.make_node(op, list(inputs), outputs, name=name, domain=domain, **attributes))
        if domain:
            self.domains[domain] = 1
        return outputs[0]

    def conv(self, source: str, name: str, c_in: int, c_out: int, kernel=(3, 3), *, bias: bool = True,
             groups: int = 1, **attributes) -> str:
        """A Conv with random weights `name + '.W'` (and bias `name + '.B'`)."""
        inputs = [source, self.random(f"{name}.W", (c_out, c_in // groups) + tuple(kernel))]
        if bias:
            inputs.append(self.random(f"{name}.B", (c_out,)))
        return self.node("Conv", inputs, name, group=groups, **attributes)

    def batchnorm(self, source: str, name: str, channels: int, epsilon: float = 1e-3) -> str:
        params = [self.random(f"{name}.scale", channels, 0.5, 1.5), self.random(f"{name}.bias", channels),
                  self.random(f"{name}.mean", channels), self.random(f"{name}.var", channels, 0.5, 2.0)]
        return self.node("BatchNormalization", [source] + params, name, epsilon=epsilon)

    def model(self, outputs, *, input_shape=None, more_inputs=()):
        """The checked ModelProto, its outputs typed by shape inference (`more_inputs`: names of
        further inputs of the input's shape)."""
        import onnx
        from onnx import helper
        element = FLOAT_DTYPES[self.dtype]
        shape = self.shape if input_shape is None else input_shape
        inputs = [helper.make_tensor_value_info(name, element, shape) for name in ("x",) + tuple(more_inputs)]
        graph = helper.make_graph(self.nodes, "net", inputs,
                                  [helper.make_tensor_value_info(name, element, None) for name in outputs],
                                  self.initializers)
        opsets = [helper.make_opsetid("", self.opset)] + [helper.make_opsetid(d, v) for d, v in self.domains.items()]
        model = helper.make_model(graph, opset_imports=opsets)
        inferred = onnx.shape_inference.infer_shapes(model)
        typed = {value.name: value for value in list(inferred.graph.value_info) + list(inferred.graph.output)}
        for value in model.graph.output:
            if typed.get(value.name) is not None and typed[value.name].type.tensor_type.HasField("shape"):
                value.CopyFrom(typed[value.name])
            else:   # a contrib op shape inference does not know: any 4-D tensor
                value.CopyFrom(helper.make_tensor_value_info(value.name, element, ["n", "c", "h", "w"]))
        onnx.checker.check_model(model)
        return model

    def input(self, seed: int = 1) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal(self.shape).astype(self.dtype)

    def array(self, name: str) -> np.ndarray:
        """An initializer's value, as stored."""
        from onnx import numpy_helper
        return next(numpy_helper.to_array(t) for t in self.initializers if t.name == name)


def save(model, folder, name: str) -> str:
    import onnx
    path = str(folder / f"{name}.onnx")
    onnx.save(model, path)
    return path


def reference(layer, *, absolute: bool = False) -> np.ndarray:
    """What `layer` declares it computes, in float64 from its captured input: np.pad by its
    pads and boundary, a sum over the kernel taps, bias, addend, BatchNorm, activation.
    With `absolute`, the same sums of |input| * |kernel| (the scale a rounding error bound
    needs), nothing after the sums but |BatchNorm scale|."""
    image = np.asarray(layer.input, np.float64)
    kernel = np.asarray(layer.kernel, np.float64)
    if absolute:
        image, kernel = np.abs(image), np.abs(kernel)
    (top, bottom), (left, right) = layer.pads
    mode = {"zero": "constant", "constant": "constant"}.get(layer.boundary, layer.boundary)
    options = {"constant_values": layer.cval} if mode == "constant" else {}
    padded = np.pad(image, ((0, 0), (top, bottom), (left, right), (0, 0)), mode=mode, **options)
    kh, kw, group_in, c_out = kernel.shape
    (sy, sx), (dy, dx) = layer.stride, layer.dilation
    rows = (padded.shape[1] - (kh - 1) * dy - 1) // sy + 1
    cols = (padded.shape[2] - (kw - 1) * dx - 1) // sx + 1
    group_out = c_out // layer.groups
    out = np.zeros((image.shape[0], rows, cols, c_out))
    for u in range(kh):
        for v in range(kw):
            window = padded[:, u * dy:u * dy + (rows - 1) * sy + 1:sy, v * dx:v * dx + (cols - 1) * sx + 1:sx]
            for g in range(layer.groups):
                taps = window[..., g * group_in:(g + 1) * group_in]
                out[..., g * group_out:(g + 1) * group_out] += np.einsum(
                    "nhwc,co->nhwo", taps, kernel[u, v, :, g * group_out:(g + 1) * group_out])
    if absolute:
        return out * (np.abs(layer.batchnorm.scale()) if layer.batchnorm else 1.0) + 1.0
    if layer.bias is not None:
        out += np.asarray(layer.bias, np.float64)
    if layer.addend is not None:
        out += np.asarray(layer.addend, np.float64)
    if layer.batchnorm is not None:
        out = out * layer.batchnorm.scale() + layer.batchnorm.shift()
    return activate(out, layer.activation)


def activate(values: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(values, 0.0)
    if activation == "relu6":
        return np.clip(values, 0.0, 6.0)
    if activation.startswith("leaky_relu(alpha="):
        alpha = float(activation[len("leaky_relu(alpha="):-1])
        return np.where(values >= 0, values, values * alpha)
    assert activation == "linear", activation
    return values


def assert_computes(layer, *, ulps: float = 64.0) -> None:
    """The captured output equals the float64 recomputation within `ulps` units of the layer's
    dtype times the size of the sums (a sanity check of the capture, not a verdict)."""
    expected, scale = reference(layer), reference(layer, absolute=True)
    eps = float(np.finfo(np.dtype(str(layer.output.dtype))).eps)
    error = np.abs(np.asarray(layer.output, np.float64) - expected)
    worst = np.unravel_index(np.argmax(error - ulps * eps * scale), error.shape)
    assert np.all(error <= ulps * eps * scale), (layer.name, worst, error[worst], scale[worst])
