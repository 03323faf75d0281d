"""The rows of CONTRACT section 2's Values fields: what happened to the numbers.

precision, output_precision, bias, scale, activation and algorithm, each its sentences,
its (summary, fix) function and its `Field` row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ..choices import ACTIVATIONS, ALGORITHMS, OUTPUT_PRECISIONS, PRECISIONS
from .row import Field, label_of, number_text, per_channel, plain_default

if TYPE_CHECKING:
    from . import Explanation


# --- precision and output_precision

_PRECISION_TEXT = {
    "float64": ("the computation ran in float64", "nothing to fix"),
    "float32": ("the inputs were rounded to float32 before the convolution (e.g. Keras's default "
                "float32 dtype policy casting float64 data)",
                "compute in float64: give the layer dtype='float64' (or "
                "keras.config.set_floatx('float64')), or cast your reference to float32 too"),
    "tfloat32": ("the inputs were rounded to TF32 (10-bit mantissa) and accumulated in float32, "
                 "as NVIDIA tensor cores do for float32 convolutions",
                 "turn TF32 off with tf.config.experimental.enable_tensor_float_32_execution(False) "
                 "(torch.backends.cudnn.allow_tf32 = False in PyTorch)"),
    "bfloat16": ("the inputs were rounded to bfloat16 (8-bit mantissa): a mixed-precision policy "
                 "such as 'mixed_bfloat16'",
                 "compute this layer in float32: dtype='float32', or "
                 "keras.mixed_precision.set_global_policy('float32')"),
    "float16": ("the inputs were rounded to float16: a mixed-precision policy such as 'mixed_float16'",
                "compute this layer in float32: dtype='float32', or "
                "keras.mixed_precision.set_global_policy('float32')"),
}


def _precision_cause(value: str, baseline: Explanation, explanation: Optional[Explanation]) -> tuple[str, str]:
    if value == "float64":
        return (f"the computation ran in float64, not {baseline.precision}",
                f"compute in {baseline.precision} to reproduce the expected rounding")
    return _PRECISION_TEXT[value]


_PRECISION = Field(
    "precision", "values", PRECISIONS, "float64",
    enumerated="the inputs' own precision, then each narrower one whose values the output is stored in exactly",
    written="choice",
    why=("Rounding the inputs to a narrower float type (Keras's float32 dtype policy, "
         "mixed precision, TF32 on NVIDIA tensor cores) changes results in the last "
         "digits that type can hold."),
    cause=_precision_cause,
    label=label_of("precision", {
        "float64": "float64 computation", "float32": "float32 rounding", "tfloat32": "TF32 rounding (tensor cores)",
        "bfloat16": "bfloat16 rounding", "float16": "float16 rounding"}))

_INTEGER_RANGES = {"uint8": "[0, 255]", "int8": "[-128, 127]", "uint16": "[0, 65535]", "int16": "[-32768, 32767]"}
_CV_DEPTHS = {"uint8": "cv2.CV_8U", "int8": "cv2.CV_8S", "uint16": "cv2.CV_16U", "int16": "cv2.CV_16S"}


def _output_precision_cause(value: str, baseline: Explanation, explanation: Optional[Explanation]) -> tuple[str, str]:
    if value in _INTEGER_RANGES:
        return (f"the result was rounded to the nearest integer and saturated to {value}'s range "
                f"{_INTEGER_RANGES[value]} (OpenCV's saturate_cast: cv2.filter2D(image, -1, kernel) on a "
                f"{value} image keeps its type, ddepth=-1 = {_CV_DEPTHS[value]})",
                "pass ddepth=cv2.CV_32F to cv2.filter2D (or convert the image with image.astype(np.float32) "
                "first) to keep the unrounded result, or round and clip your reference the same way")
    precision = explanation.precision if explanation is not None else "bfloat16"
    declared = baseline.output_precision
    widths = ("bfloat16", "float16", "float32", "float64")   # fewest significand bits first
    if declared in widths and value in widths and widths.index(value) > widths.index(declared):
        # A declared storage the output's values refute (engine/verdict.py `_storage_not_declared`).
        return (f"the result was stored in {value}, not in {declared} as declared: its values are not all "
                f"{declared} values",
                f"declare --output-precision {value} (output_precision='{value}'), or cast the result to {declared} "
                "where the original does")
    return (f"the {precision} products were accumulated and stored in {value}, not rounded back to "
            f"{precision} (jax.lax.conv_general_dilated(..., preferred_element_type=jnp.{value}), "
            "tensor-core convolutions with a wide output)",
            f"drop preferred_element_type=jnp.{value} from jax.lax.conv_general_dilated (or cast its output "
            f"with .astype(jnp.{precision})) for a {precision} result, or expect the more accurate {value} sum")


_OUTPUT_PRECISION = Field(
    "output_precision", "values", (None,) + OUTPUT_PRECISIONS, None,
    enumerated=("the precision's own format; an integer output's own type (rounded and saturated); the float32 "
                "or float64 sum of half-precision inputs when the output cannot be stored in the half type"),
    written="choice",
    why=("The type a result is stored in is a choice of its own: JAX and tensor cores can "
         "accumulate half-precision products in float32 and keep the float32 sum "
         "(preferred_element_type), and OpenCV gives an 8-bit image back for an 8-bit image "
         "(ddepth=-1), rounded and saturated to its range."),
    cause=_output_precision_cause,
    label=label_of("output_precision", {
        "float64": "result kept in float64", "float32": "result kept in float32",
        "uint8": "rounded and saturated to uint8", "int8": "rounded and saturated to int8",
        "uint16": "rounded and saturated to uint16", "int16": "rounded and saturated to int16"}))

# --- bias and scale


def _bias_cause(value, baseline: Explanation, explanation: Optional[Explanation]) -> tuple[str, str]:
    declared = baseline.bias
    if per_channel(declared) or (isinstance(declared, (int, float)) and declared != 0.0):
        # A declared bias the output does not have (a port that dropped or changed it): the
        # advice is to use the declared one, not to remove a bias.
        return (f"the output's bias is {number_text(value)}, not the declared {number_text(declared)} (a bias "
                "left out, or other values copied)",
                "give the layer the declared bias (the original's, one value per output channel): check that "
                "its bias was copied, and that use_bias / bias=True is set")
    if per_channel(value):
        return (f"a constant was added to each output channel, one per channel: {number_text(value)} "
                "(a layer's bias vector: Conv2D(use_bias=True), nn.Conv2d(bias=True))",
                "pass use_bias=False (bias=False in PyTorch), or add the layer's bias (layer.bias, one value per "
                "output channel) to your reference before comparing")
    return (f"a constant {number_text(value)} was added to every output element (a bias term)",
            "pass use_bias=False, or subtract the layer's bias before comparing")


def _bias_label(value: Any) -> str:
    if isinstance(value, (int, float)):
        return f"{number_text(value)} added (a bias)"
    if per_channel(value):
        return f"a bias per channel {number_text(value)}"
    return plain_default("bias", value)


_BIAS = Field(
    "bias", "values", None, 0.0,
    enumerated="fitted in closed form with the scale: one number, or one per output channel",
    written="number",
    why=("A constant added to every output is a bias term, usually a layer's use_bias=True: "
         "one number per output channel (filter), so the channels may differ."),
    cause=_bias_cause,
    label=_bias_label)


def _scale_cause(value, baseline: Explanation, explanation: Optional[Explanation]) -> tuple[str, str]:
    if per_channel(value):
        return (f"each output channel was multiplied by its own factor: {number_text(value)} "
                "(each filter normalised on its own, or a batch normalisation folded into the weights)",
                "multiply each channel of your reference by its factor, or stop normalising the filters one by "
                "one (kernel / kernel.sum(axis=(0, 1, 2)))")
    return (f"every output element was multiplied by {number_text(value)} "
            "(e.g. a kernel normalised to sum 1)",
            f"multiply the reference by {number_text(value)}, or stop normalising the kernel "
            "(kernel / kernel.sum())")


def _scale_label(value: Any) -> str:
    if isinstance(value, (int, float)):
        return f"scaled by {number_text(value)}"
    if per_channel(value):
        return f"scaled per channel by {number_text(value)}"
    return plain_default("scale", value)


_SCALE = Field(
    "scale", "values", None, 1.0,
    enumerated="fitted in closed form with the bias: one number, or one per output channel",
    written="number",
    why=("A constant factor on every output usually means the kernel was normalised "
         "(e.g. divided by its sum) or the output rescaled; a factor per output channel, a bank of "
         "filters each normalised on its own or a batch normalisation folded into the weights."),
    cause=_scale_cause,
    label=_scale_label)

# --- activation

_ACTIVATION_TEXT = {
    # A declared activation (CONTRACT 2a: a layer that declares a ReLU) that the output does not have.
    "linear": ("the output went through no activation: negative sums were kept, where the declared computation "
               "applies its activation (a ReLU left out, or another activation applied after the output)",
               "apply the declared activation (Keras activation='relu' or a ReLU layer, torch.relu), or declare "
               "activation linear if the layer has none"),
    "relu": ("the output went through a ReLU, max(x, 0), after the bias: negative sums were clipped to 0 "
             "(Keras Conv2D(activation='relu'), a fused conv + ReLU)",
             "compare the pre-activation output: build the layer with activation=None (Keras) or take the "
             "output of conv2d before F.relu / torch.relu (PyTorch), or apply the same ReLU to your reference"),
    "relu6": ("the output went through a ReLU6, min(max(x, 0), 6), after the bias: sums were clipped to "
              "[0, 6] (Keras Conv2D(activation='relu6'), MobileNet's fused conv + ReLU6)",
              "compare the pre-activation output: build the layer with activation=None (Keras) or take the "
              "output of conv2d before F.relu6 (PyTorch), or apply the same ReLU6 to your reference"),
}

_ACTIVATION = Field(
    "activation", "values", ACTIVATIONS, "linear",
    enumerated="the output's values: ReLU when none is negative and some are 0, ReLU6 when they also stay in [0, 6] and reach 6",
    written="choice",
    why=("Keras layers apply their activation inside the layer (Conv2D(activation='relu')) and "
         "inference engines fuse conv + ReLU, so the saved output is already clipped: an element "
         "clipped to 0 (or 6) only says the sum was beyond the limit, so the verdict rests on the "
         "unclipped elements."),
    cause=lambda value, baseline, explanation: _ACTIVATION_TEXT[value],
    label=label_of("activation", {"relu": "ReLU applied (negatives clipped to 0)",
                                   "relu6": "ReLU6 applied (clipped to [0, 6])",
                                   "linear": "no activation applied (negatives kept)"}))

# --- algorithm


def _algorithm_cause(value: str, baseline: Explanation, explanation: Optional[Explanation]) -> tuple[str, str]:
    if value == "winograd":
        return ("the sums were computed with Winograd's minimal filtering (F(m x m, 3 x 3) tiles, as cuDNN "
                "and NNPACK do for 3x3 kernels), whose transforms amplify rounding beyond a direct sum's",
                "for a direct sum, keep Winograd out: in PyTorch on CPU leave oneDNN on (torch.backends.mkldnn) or "
                "turn NNPACK off (torch.backends.nnpack.set_flags(False)); on GPU torch.backends.cudnn.enabled = "
                "False; or judge it by Winograd's bound (explain --algorithm winograd)")
    if value == "direct":
        return ("the sums were computed directly, products summed, with a direct sum's elementwise rounding",
                f"expect algorithm='direct' (explain --algorithm direct), or compute with {baseline.algorithm}")
    return (f"the sums were computed through the FFT ({value}), whose rounding error is normwise "
            "(spread over the whole output), not by direct summation",
            "use scipy.signal.correlate2d / convolve2d or convolve(..., method='direct') for elementwise "
            "accuracy, or expect errors relative to the output's largest values")


_ALGORITHM = Field(
    "algorithm", "values", ALGORITHMS, "direct",
    enumerated=("the declared algorithm; after a direct pass, Winograd (3x3 kernels at stride 1) and the FFT, "
                "each with zero padding"),
    written="name",
    why=("An FFT convolution (scipy.signal.fftconvolve, convolve(method='fft'), OpenCV's DFT path "
         "for large kernels) rounds normwise: each element's error is relative to the largest "
         "values, so small outputs next to large ones carry relatively large errors."),
    why_by_value={"winograd": (
        "Winograd's minimal filtering (cuDNN and NNPACK for 3x3 kernels at stride 1) "
        "computes each tile through transforms with large coefficients (up to 32 in "
        "F(6x6,3x3)) that amplify rounding errors: each element's error is relative to its "
        "whole tile's values, and larger at the tile's corners.")},
    cause=_algorithm_cause,
    label=label_of("algorithm"))


VALUE_FIELDS = (_PRECISION, _OUTPUT_PRECISION, _BIAS, _SCALE, _ACTIVATION, _ALGORITHM)
