"""What a model loader hands the walk: each 2-D convolution layer as its model declares it
and as its runtime computed it (CONTRACT section 6, "What a layer is").

Loaders build these; the walk only reads them. Arrays are numpy (float arrays in the dtype
the runtime used), tensors channels-last whatever the model's own layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
