"""Turning one ONNX Runtime run into layer records: NCHW and NCHWc tensors to NHWC, OIHW and
NCHWc filters to grouped HWIO, `auto_pad` to amounts. numpy only.

ONNX Runtime's NCHWc storage (MLAS `reorder.cpp`): an activation of C channels is held as
(N, ceil(C / B), H, W, B), reported with shape (N, C padded to B, H, W); a filter is
(C_out padded to B, C_in, kh, kw) in one of two orders, OIHWBo (output channels innermost)
or OIHWBiBo (B x B blocks of input by output channels). B is MLAS's block size (8 with AVX2,
16 with AVX-512). Padded channels hold zeros and are dropped here.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ._onnx_graph import LayerPlan
from .layers import ConvLayer


class NotTwoD(ValueError):
    """A convolution whose weights turned out not to be 2-D (known only after the run)."""


class RunTensors:
    """The tensors one run returned, by name, each turned into NHWC once: a tensor that is one
    layer's output and the next layer's input is one array, never two copies. An unblocked
    copy is handed to `keep` (see `layers.keep_activations`) as it is made."""

    def __init__(self, arrays: dict[str, np.ndarray], block_size: int, keep=None):
        self.arrays = arrays
        self.block_size = block_size
        self.keep = keep
        self._nhwc: dict[str, np.ndarray] = {}

    def raw(self, name: str) -> np.ndarray:
        """The tensor as the runtime returned it."""
        return self.arrays[name]

    def nhwc(self, name: str, layout: str, channels: Optional[int]) -> np.ndarray:
        """The tensor `name`, stored in `layout` ('nchw', 'nhwc', 'nchwc'), as (N, H, W, C):
        a transposed view of an NCHW one, an unblocked copy of an NCHWc one."""
        if name not in self._nhwc:
            array = self.arrays[name]
            if layout == "nchwc":
                array = unblock_activation(array, channels or array.shape[1], self.block_size)
                if self.keep is not None:
                    array = self.keep(array)
                del self.arrays[name]   # the blocked original is not needed again: one copy
            elif layout == "nchw":
                array = array.transpose(0, 2, 3, 1)
            self._nhwc[name] = array
        return self._nhwc[name]


def unblock_activation(array: np.ndarray, channels: int, block: int) -> np.ndarray:
    """An NCHWc tensor (reported as (N, C padded, H, W)) as NHWC with its `channels` real channels."""
    n, padded, h, w = array.shape
    if block <= 1 or padded % block:
        raise ValueError(f"an NCHWc tensor of {padded} channels in blocks of {block}")
    blocks = np.ascontiguousarray(array).reshape(n, padded // block, h, w, block)
    return blocks.transpose(0, 2, 3, 1, 4).reshape(n, h, w, padded)[..., :channels]


def unblock_kernel(array: np.ndarray, layout: str, block: int) -> np.ndarray:
    """An NCHWc filter (C_out padded, C_in, kh, kw) in `layout` 'OIHWBo' or 'OIHWBiBo', as OIHW
    (padded output channels kept: the caller slices)."""
    padded, channels_in, kh, kw = array.shape
    flat = np.ascontiguousarray(array).reshape(-1)
    if layout == "OIHWBo":   # [out block][in][kh*kw][out in block]
        blocks = flat.reshape(padded // block, channels_in, kh * kw, block).transpose(0, 3, 1, 2)
    elif layout == "OIHWBiBo" and channels_in % block == 0:   # [out block][in block][kh*kw][in][out]
        blocks = flat.reshape(padded // block, channels_in // block, kh * kw, block, block)
        blocks = blocks.transpose(0, 4, 1, 3, 2)
    else:
        raise ValueError(f"an NCHWc filter of shape {array.shape} in order {layout}")
    return blocks.reshape(padded, channels_in, kh, kw)


def same_pads(auto_pad: str, size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """ONNX `auto_pad` SAME_UPPER / SAME_LOWER resolved to (begin, end) for an input `size`:
    output ceil(size / stride), the total padding that needs split evenly, the odd one at the
    end for SAME_UPPER and at the beginning for SAME_LOWER (the ONNX Conv specification)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    small = total // 2
    return (small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small)


def build_layer(plan: LayerPlan, tensors: RunTensors) -> ConvLayer:
    """The record of one planned layer from the run's tensors. Raises `NotTwoD` for weights
    that are not 4-D (a convolution whose dimensionality only the run revealed)."""
    kernel = plan.kernel if plan.kernel is not None else tensors.raw(plan.kernel_name)
    if kernel.ndim != 4:
        raise NotTwoD(plan.name)
    if plan.kernel_layout != "OIHW":
        kernel = unblock_kernel(kernel, plan.kernel_layout, tensors.block_size)
    channels_out = plan.channels_out or kernel.shape[0]
    kernel = kernel[:channels_out]
    channels_in = kernel.shape[1] * plan.groups
    layer_input = tensors.nhwc(plan.input_name, plan.input_layout, channels_in)
    output = tensors.nhwc(plan.output_name, plan.output_layout, channels_out)
    bias = None
    if plan.bias_name:
        bias = plan.bias if plan.bias is not None else tensors.raw(plan.bias_name)
        bias = np.array(bias.reshape(-1)[:channels_out])
    addend = None
    if plan.addend_name:
        addend = tensors.nhwc(plan.addend_name, "nchwc" if plan.op == "NchwcConv" else "nchw", channels_out)
    pads, padding = _resolved_pads(plan, layer_input.shape[1:3], kernel.shape[2:])
    return ConvLayer(
        name=plan.name, op=plan.op, kernel=np.ascontiguousarray(kernel.transpose(2, 3, 1, 0)), bias=bias,
        stride=plan.stride, dilation=plan.dilation, groups=plan.groups, pads=pads, padding=padding,
        input=layer_input, output=output,
        boundary=plan.pad.boundary if plan.pad else "zero", cval=plan.pad.cval if plan.pad else 0.0,
        batchnorm=plan.batchnorm, activation=plan.activation, absorbed=plan.absorbed,
        followed_by=plan.followed_by, dtype=str(kernel.dtype), addend=addend)


def _resolved_pads(plan: LayerPlan, size: tuple[int, int], kernel_hw: tuple[int, int]):
    """((top, bottom), (left, right)) the layer applies to its input, and how it was declared."""
    extra = plan.pad.amounts if plan.pad else ((0, 0), (0, 0))
    if plan.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        conv = tuple(same_pads(plan.auto_pad, size[axis] + sum(extra[axis]), kernel_hw[axis],
                               plan.stride[axis], plan.dilation[axis]) for axis in (0, 1))
        padding = "same"
    elif plan.auto_pad == "VALID":
        conv, padding = ((0, 0), (0, 0)), "valid"
    else:
        conv, padding = plan.conv_pads, "explicit"
    if plan.pad:
        padding = "explicit"
    pads = tuple((int(conv[axis][0] + extra[axis][0]), int(conv[axis][1] + extra[axis][1])) for axis in (0, 1))
    return pads, padding
