"""The offset's why, summary and fix fit the case (issue 21): a stride's padding (PyTorch's symmetric
padding against TensorFlow's SAME) whatever the kernel's size, an even kernel's centring only for
an even (dilated) kernel, and something else for an odd kernel at stride 1. Real outputs: the
README's examples (a torch.nn.functional.conv2d call, scipy.signal.convolve2d) and np.roll."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from convcheck.engine import explain
from convcheck.inputs import load_inputs
from convcheck.vocabulary import Explanation, cause_for
from convcheck.vocabulary.geometry_fields import offset_case

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _offset(diagnosis):
    (cause,) = [c for c in diagnosis.causes if c.field == "offset"]
    return cause


def test_pytorch_stride2_on_a_3x3_kernel_speaks_of_the_stride_not_an_even_kernel():
    from convcheck.engine import diagnose

    folder = EXAMPLES / "pytorch_stride2"
    inputs = load_inputs(*(str(folder / f"{name}.npy") for name in ("image", "kernel", "output")), layout="nchw",
                         kernel_layout=None, padding="same")
    assert inputs.kernel.shape[:2] == (3, 3)
    cause = _offset(diagnose(inputs, padding="same", stride=(2, 2)))
    assert cause.value == (-1, -1)
    assert "even-sized kernel" not in cause.why and "no centre pixel" not in cause.why
    assert cause.why.startswith("At a stride above 1, where the first window starts depends on the padding")
    assert "PyTorch's padding=p" in cause.why
    assert cause.summary.startswith("every window starts [-1, -1] input pixels from those of TensorFlow's SAME at "
                                    "stride [2, 2] (a symmetric padding such as PyTorch's padding=1")
    assert "even kernel" not in cause.summary and "F.pad(x, (0, 1, 0, 1))" in cause.fix


def test_an_even_kernel_at_stride_1_speaks_of_its_centre():
    folder = EXAMPLES / "even_kernel_offset"
    image, kernel, output = (np.load(folder / f"{name}.npy") for name in ("image", "kernel", "output"))
    assert kernel.shape == (4, 4)
    cause = _offset(explain(image, kernel, output))
    assert cause.why.startswith("With an even-sized kernel there is no centre pixel")
    assert cause.summary.endswith("(an even kernel centred differently from TensorFlow's SAME)")


def test_an_odd_kernel_at_stride_1_does_not_blame_an_even_kernel():
    rng = np.random.default_rng(2)
    image, kernel = rng.standard_normal((10, 10)), rng.standard_normal((3, 3))
    rolled = np.roll(scipy.signal.correlate2d(image, kernel, mode="same"), 1, axis=1)
    cause = _offset(explain(image, kernel, rolled))
    assert cause.value == (0, -1)
    assert "even" not in cause.why and "even" not in cause.summary
    assert cause.why.startswith("An odd-sized kernel has a centre pixel")
    assert "np.roll" in cause.fix and "off by one" in cause.fix


@pytest.mark.parametrize("value, explanation, kernel_size, case", [
    ((-1, -1), Explanation(stride=(2, 2)), (3, 3), "stride"),
    ((-1, -1), Explanation(stride=(2, 2)), (4, 4), "stride"),        # a stride's padding, whatever the kernel
    ((0, -1), Explanation(stride=(2, 1)), (3, 3), "odd"),             # the moved axis has stride 1
    ((-1, -1), Explanation(), (4, 4), "even"),
    ((-1, 0), Explanation(), (2, 3), "even"),                          # only the moved axis counts
    ((-1, 0), Explanation(), (3, 2), "odd"),
    ((-1, 0), Explanation(kernel_transform="transpose"), (3, 2), "even"),   # its rows are the kernel's columns
    ((-1, -1), Explanation(dilation=(2, 2)), (4, 4), "odd"),          # dilated: 7 taps wide, a centre pixel
    ((-1, -1), Explanation(), (3, 4), "unknown"),                     # the axes disagree
    ((-1, -1), Explanation(), None, "unknown"),                       # kernel not known
    ((-1, -1), None, None, "unknown"),
])
def test_offset_case(value, explanation, kernel_size, case):
    assert offset_case(value, explanation, kernel_size) == case


def test_without_the_kernel_size_the_why_names_both_reasons():
    cause = cause_for("offset", (-1, -1), Explanation())
    assert "even-sized kernel" in cause.why and "stride above 1" in cause.why
    assert "(an even kernel" not in cause.summary   # nothing the data did not show


def test_offset_from_declared_pads_counts_from_them():
    # A model walk: the original declares PyTorch's pads, the port ran TensorFlow's SAME at stride 2.
    pads = ((1, 1), (1, 1))
    baseline = Explanation(padding=pads, stride=(2, 2))
    cause = cause_for("offset", (1, 1), baseline, baseline.with_(offset=(1, 1)), kernel_size=(3, 3))
    assert cause.summary.startswith("every window starts [1, 1] input pixels from those of the pads [[1, 1], [1, 1]] "
                                    "at stride [2, 2] (TensorFlow's SAME pads only what the stride needs")
    assert "TensorFlow SAME's" not in cause.summary and "ZeroPadding2D(((1, 1), (1, 1)))" in cause.fix
    assert cause.why.startswith("At a stride above 1")
