"""Load and validate the image, kernel and output before anything else runs.

Bad input never produces a traceback: every problem raises `InputError` with one line
that names the file (or, for in-memory arrays, the argument), what is wrong and what to
do. Only numpy is imported here, so a bad file is refused in milliseconds, long before a
backend imports TensorFlow. `.npy` files are always read with `allow_pickle=False`, and
their header is checked (dtype, element count, file size) before any data is read.

One job a module, each importing only those above it in this list:

    arrays     one array: dtype, dimensions, finite values, its canonical layout
    files      one `.npy` file read safely
    pairs      the arrays read together: padding, channels and groups, the output's axes
    readings   the other readings `explain` tries: kernel axes in another order, channels reversed
    bundle     `Inputs`, `load_inputs` (files) and `prepare_inputs` (arrays in memory)
    channels   a declared bias or scale read from a file, one value per output channel
"""

from .arrays import as_image, as_kernel, as_output, read_kernel_as
from .bundle import Inputs, load_inputs, prepare_inputs
from .channels import check_channel_count, read_channel_values
from .files import DEFAULT_MAX_ELEMENTS, check_regular_file, read_npy
from .pairs import check_pair, read_output, resolve_kernel
from .readings import axis_names, other_readings

__all__ = ["DEFAULT_MAX_ELEMENTS", "Inputs", "as_image", "as_kernel", "as_output", "axis_names", "check_channel_count",
           "check_pair",
           "check_regular_file", "load_inputs", "other_readings", "prepare_inputs", "read_channel_values", "read_kernel_as", "read_npy",
           "read_output", "resolve_kernel"]
