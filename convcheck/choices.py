"""The choice lists of CONTRACT section 2 as plain tuples.

Imports nothing, so the CLI can build its option choices (and `--help`) without paying
for dataclasses, enums or numpy.
"""

# Orders matter: the first value is the default ("no difference"), and among
# explanations that change the same number of fields the earlier value wins.
KERNEL_TRANSFORMS = ("identity", "rot180", "transpose", "anti_transpose",
                     "flip_ud", "flip_lr", "rot90", "rot270")
PADDINGS = ("same", "valid", "full")
BOUNDARIES = ("zero", "reflect", "symmetric", "wrap", "edge")
PRECISIONS = ("float64", "float32", "tfloat32", "bfloat16", "float16")
DTYPES = ("float16", "bfloat16", "float32", "float64")  # what --dtype offers
KERNEL_LAYOUTS = ("hwio", "oihw", "depthwise")
# Every order of a 4-D kernel's axes (kernel_layout, CONTRACT section 2): any of them may be
# declared, and explain tries the others when the declared one explains nothing.
KERNEL_AXIS_ORDERS = ("hwio", "oihw") + tuple(
    h + w + i + o for h in "hwio" for w in "hwio" for i in "hwio" for o in "hwio"
    if len({h, w, i, o}) == 4 and h + w + i + o not in ("hwio", "oihw"))
# What `kernel_layout` may say: a declared layout, another axis order, PyTorch OIHW weights
# turned into HWIO with reshape instead of transpose (or back), or a PyTorch depthwise kernel
# reshaped into Keras DepthwiseConv2D's layout (or back).
KERNEL_LAYOUT_VALUES = KERNEL_AXIS_ORDERS + ("depthwise", "oihw-reshaped", "depthwise-reshaped")
CHANNEL_ORDERS = ("as_given", "reversed")
OUTPUT_TRANSFORMS = ("identity", "transpose")
KERNEL_AXES = (None, "rows", "columns")   # None: a 2-D kernel; a 1-D kernel along the rows or the columns
LAYOUTS = ("nhwc", "nchw")   # --layout: channels last (TensorFlow) or first (PyTorch)
ALGORITHMS = ("direct", "fft", "winograd")
ACTIVATIONS = ("linear", "relu", "relu6")
# The integer types an output may be rounded and saturated to (OpenCV's saturate_cast).
INTEGER_OUTPUTS = ("uint8", "int8", "uint16", "int16")
OUTPUT_PRECISIONS = ("float64", "float32", "bfloat16", "float16") + INTEGER_OUTPUTS
OUTPUT_LAYOUTS = ("hwc", "chw")
# Every CONTRACT section 2 field, in the order causes are listed.
FIELDS = ("kernel_transform", "padding", "stride", "dilation", "boundary", "cval", "offset", "groups",
          "kernel_axis", "output_layout", "output_transform", "kernel_layout", "channel_order",
          "precision", "output_precision", "bias", "scale", "activation", "algorithm")
