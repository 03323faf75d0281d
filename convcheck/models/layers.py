"""What a model loader hands the walk: each 2-D convolution layer as its model declares it
and as its runtime computed it (CONTRACT section 6, "What a layer is").

Loaders build these; the walk only reads them. Arrays are numpy (float arrays in the dtype
the runtime used), tensors channels-last whatever the model's own layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class BatchNorm:
    """An inference BatchNorm applied right after a conv: y = (x - mean) / sqrt(var + eps) * weight + bias,
    one value per output channel."""

    mean: np.ndarray
    var: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    eps: float

    def scale(self) -> np.ndarray:
        """weight / sqrt(var + eps), in float64: the per-channel factor the BatchNorm applies."""
        return np.asarray(self.weight, np.float64) / np.sqrt(np.asarray(self.var, np.float64) + float(self.eps))

    def shift(self) -> np.ndarray:
        """bias - mean * scale, in float64: the per-channel constant the BatchNorm adds."""
        return np.asarray(self.bias, np.float64) - np.asarray(self.mean, np.float64) * self.scale()


@dataclass
class ConvLayer:
    """One 2-D convolution of a model, with what belongs to it (CONTRACT section 6).

    Declared:
    - `name`: the user's name for it (PyTorch module path 'layer1.0.conv1', ONNX node name,
      Keras layer name, TFLite output tensor name); `op` the operator that ran ('Conv2d',
      'Conv', 'FusedConv', 'Conv2D', 'DepthwiseConv2D', 'CONV_2D', 'DEPTHWISE_CONV_2D', ...).
    - `kernel`: grouped HWIO (kh, kw, C_in / groups, C_out), values exactly as the model
      stores them (a depthwise kernel with multiplier m: (kh, kw, 1, C_in * m), output
      channel c * m + j). `bias`: the conv's own bias (C_out,), or None.
    - `stride`, `dilation`: (rows, columns). `groups`: 1, C_in for depthwise, or G.
    - `pads`: ((top, bottom), (left, right)), the explicit zero/border amounts the layer
      applies to its input at the captured size: a 'same' or auto_pad resolved to amounts,
      plus those of an absorbed pad op. `padding` how the model declares it: 'same',
      'valid' or 'explicit' (for reports only).
    - `boundary` / `cval`: what lies outside the image: 'zero', or an absorbed pad op's
      mode ('constant' with `cval`, 'reflect', 'symmetric', 'edge', 'wrap' as numpy.pad
      names them).
    - `batchnorm`: an inference BatchNorm applied right after the conv (absorbed), or None.
    - `activation`: 'linear', 'relu' or 'relu6' (fused into the conv or a separate op right
      after it: absorbed); any other activation the runtime fused *inseparably* into the conv
      op (ONNX Runtime FusedConv with LeakyRelu, TFLite's fused TANH, ...) is named here as
      the runtime names it (e.g. 'leaky_relu(alpha=0.1)'), since the output cannot be taken
      before it. An activation that is a separate op and not ReLU/ReLU6 is NOT absorbed: it
      is named in `followed_by` and the output is taken before it.
    - `absorbed`: the names of the ops taken into this layer (pad, BatchNorm, activation).
    - `followed_by`: the op applied right after the layer's output that was not absorbed
      ('LeakyRelu', 'Sigmoid', 'SiLU', 'Add', ...; '' when none or several consumers).
    - `dtype`: the dtype the conv ran in ('float32', 'float16', 'bfloat16', 'float64').
    Computed (as captured at run time, NHWC):
    - `input`: (N, H, W, C_in) what the layer read: the absorbed pad op's input if any.
    - `output`: (N, Ho, Wo, C_out) after the absorbed BatchNorm and activation.
    - `addend`: (N, Ho, Wo, C_out), or None: a tensor the runtime fused into the conv's sum
      (ONNX Runtime's FusedConv `Z` input, an NCHWc Conv's fused residual `Sum`), as the
      runtime produced it: output = activation(batchnorm(conv + bias + addend)).
    """

    name: str
    op: str
    kernel: np.ndarray
    bias: Optional[np.ndarray]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    pads: tuple[tuple[int, int], tuple[int, int]]
    padding: str
    input: np.ndarray = field(repr=False)
    output: np.ndarray = field(repr=False)
    boundary: str = "zero"
    cval: float = 0.0
    batchnorm: Optional[BatchNorm] = None
    activation: str = "linear"
    absorbed: tuple[str, ...] = ()
    followed_by: str = ""
    dtype: str = "float32"
    addend: Optional[np.ndarray] = field(default=None, repr=False)
    block_diagonal: bool = False   # a dense conv read as the grouped one its kernel is (`regroup`)


def regroup(layer: ConvLayer, groups: int) -> Optional[ConvLayer]:
    """A dense conv (groups 1) as the grouped conv with `groups` groups that it computes, when
    its kernel is block-diagonal: every weight joining an input channel of one group to an
    output channel of another is zero, and every group's block holds a nonzero weight (a
    converter that writes a grouped conv as a dense one: onnx2tf-style exports). The zeros add
    exact zeros to every sum, so the grouped conv computes the same values (summed in another
    order at most: within the same bound). None when it is not such a kernel."""
    kh, kw, channels, outs = layer.kernel.shape
    if layer.groups != 1 or groups < 2 or channels % groups or outs % groups:
        return None
    kernel = np.asarray(layer.kernel)
    per_in, per_out = channels // groups, outs // groups
    blocks = kernel.reshape(kh, kw, groups, per_in, groups, per_out)
    inside = np.eye(groups, dtype=bool)[None, None, :, None, :, None]
    if np.any(np.where(inside, 0, blocks) != 0):
        return None
    compact = np.stack([blocks[:, :, g, :, g, :] for g in range(groups)], axis=3).reshape(kh, kw, per_in, outs)
    if not all(np.any(compact[..., g * per_out:(g + 1) * per_out] != 0) for g in range(groups)):
        return None
    return replace(layer, kernel=np.ascontiguousarray(compact), groups=groups, block_diagonal=True)


def regroup_to_match(layers: list[ConvLayer], others: list[ConvLayer]) -> list[ConvLayer]:
    """`layers`, each dense one whose kernel is block-diagonal read as grouped (`regroup`) where
    the other model has a grouped layer of that shape (kh, kw, C / G, C_out) and G; the rest as
    they are. Only then: a dense conv is read otherwise only to pair it with its counterpart."""
    wanted = {(o.kernel.shape[0], o.kernel.shape[1], o.kernel.shape[2] * o.groups, o.kernel.shape[3], o.groups)
              for o in others if o.groups > 1}
    if not wanted:
        return layers
    out = []
    for layer in layers:
        kh, kw, channels, outs = layer.kernel.shape
        regrouped = None
        if layer.groups == 1:
            for groups in sorted({g for (h, w, c, o, g) in wanted if (h, w, c, o) == (kh, kw, channels, outs)},
                                 reverse=True):
                regrouped = regroup(layer, groups)
                if regrouped is not None:
                    break
        out.append(regrouped if regrouped is not None else layer)
    return out


@dataclass
class CapturedModel:
    """A model run once on one input, every conv layer captured in execution order.

    `layout` is the model input's own layout ('nchw' for PyTorch and most ONNX models,
    'nhwc' for Keras and TFLite); `input_shape` / `input_dtype` its declared input (batch
    included; dimensions the model leaves open are filled from the input it ran on).
    `notes` say what the loader did that a reader should know (ops fused by the runtime,
    tensors unblocked, a graph rewritten to expose outputs).
    """

    path: str
    format: str
    layout: str
    input_shape: tuple[int, ...]
    input_dtype: str
    layers: list[ConvLayer]
    notes: list[str] = field(default_factory=list)
    uncaptured: int = 0   # conv ops the loader saw but could not capture (quantized, transposed: see `notes`)


@dataclass(frozen=True)
class ModelInfo:
    """What a model file declares before anything runs: its format, its input's layout,
    shape (None where a dimension is open and cannot be defaulted: `--input` needed) and
    dtype."""

    path: str
    format: str
    layout: str
    input_shape: Optional[tuple[int, ...]]
    input_dtype: str


def keep_activations(layers: list[ConvLayer], keep) -> list[ConvLayer]:
    """`layers` with each captured tensor (input, output, addend) replaced, in place, by what
    `keep` returns for it (`convcheck.models.spill.Spill.keep`: a map of it on disk); a tensor
    two layers share (one's output, the next one's input) is handed over once. With `keep`
    None, `layers` as they are. For the loaders whose runtime returns all tensors at once."""
    if keep is None:
        return layers
    kept: dict[int, np.ndarray] = {}
    held = []   # the originals stay alive meanwhile, so that no id is reused
    for layer in layers:
        for role in ("input", "output", "addend"):
            array = getattr(layer, role)
            if array is None:
                continue
            if id(array) not in kept:
                held.append(array)
                kept[id(array)] = keep(array)
            setattr(layer, role, kept[id(array)])
    return layers
