"""`convcheck.testing.assert_conv_matches`: passes, raises with a torch.testing-style message, never imports TF."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

from convcheck.errors import InputError
from convcheck.testing import assert_conv_matches

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(3).standard_normal((8, 8))


@pytest.fixture(scope="module")
def kernel():
    return np.array([[1.0, 2.0, 0.0], [-1.0, 0.5, 3.0], [0.25, -2.0, 1.0]])


def test_equal_passes(image, kernel):
    diagnosis = assert_conv_matches(scipy.signal.correlate2d(image, kernel, mode="same"), image, kernel)
    assert diagnosis.verdict.value == "equal"


def test_allowed_causes_pass(image, kernel):
    ported = scipy.signal.convolve2d(image.astype(np.float32), kernel.astype(np.float32), mode="same")
    assert_conv_matches(ported, image, kernel, allow=["kernel_transform=rot180", "precision=float32"])
    assert_conv_matches(ported, image, kernel, allow=("kernel_transform", "precision"))
    assert_conv_matches(scipy.ndimage.correlate(image, kernel), image, kernel, allow=["boundary=symmetric"])
    full = scipy.signal.correlate2d(image, kernel, mode="full")
    assert_conv_matches(full, image, kernel, padding="full")


def test_disallowed_cause_raises_with_the_cause_first(image, kernel):
    output = scipy.signal.convolve2d(image, kernel, mode="same")
    with pytest.raises(AssertionError) as info:
        assert_conv_matches(output, image, kernel)
    message = str(info.value)
    lines = message.splitlines()
    # The first line is what pytest's short test summary shows: verdict and cause in plain words.
    assert lines[0] == ("output is explained by kernel flipped 180° (true convolution), not equal "
                        "(kernel_transform=rot180 is not in allow)")
    assert lines[1] == ""
    assert lines[2].startswith("Mismatched elements: ") and lines[2].endswith("%)")
    mismatched, total = lines[2].split(": ")[1].split(" (")[0].split(" / ")
    assert int(total) == 64 and 0 < int(mismatched) <= 64
    reference = scipy.signal.correlate2d(image, kernel, mode="same")
    delta = np.abs(output - reference)
    worst = np.unravel_index(np.argmax(delta), delta.shape)
    assert lines[3].startswith(f"Greatest absolute difference: {delta[worst]:.3g} at index {tuple(int(i) for i in worst)} (up to ")
    assert lines[3].endswith(" allowed)")
    assert lines[4].startswith("Greatest relative difference: ")
    assert lines[5].startswith("Values where they differ most (output vs reference")
    first = lines[6].strip()
    assert first.startswith(f"{tuple(int(i) for i in worst)}: output {output[worst]:.6g}, reference {reference[worst]:.6g}")
    assert sum(1 for line in lines if line.startswith("  (")) == 5
    assert "convcheck: explained by kernel flipped 180° (true convolution), but kernel_transform=rot180 is not in allow." in message
    assert "the kernel was flipped 180 degrees" in message
    assert "fix: use scipy.signal.correlate2d, or pass kernel[::-1, ::-1]" in message
    assert "pass allow=['kernel_transform=rot180']" in message


def test_msg_starts_the_first_line(image, kernel):
    output = scipy.signal.convolve2d(image, kernel, mode="same")
    with pytest.raises(AssertionError) as info:
        assert_conv_matches(output, image, kernel, msg="layer conv1 after porting")
    assert str(info.value).splitlines()[0].startswith("layer conv1 after porting: output is explained by kernel")


def test_values_show_enough_digits_to_see_the_difference(image, kernel):
    reference = scipy.signal.correlate2d(image, kernel, mode="same")
    output = reference.copy()
    output[3, 3] += 1e-9 * abs(output[3, 3])  # far beyond float64 rounding, invisible at 6 digits
    with pytest.raises(AssertionError) as info:
        assert_conv_matches(output, image, kernel)
    line = next(line for line in str(info.value).splitlines() if line.startswith("  (3, 3): "))
    actual, expected = line.split("output ")[1].split(", reference ")
    expected = expected.split(" (")[0]
    assert actual != expected and float(actual) != float(expected)


def test_the_message_quotes_one_bound_the_one_the_verdict_used():
    # Issue 21: float32 inputs, an output computed from float16-rounded inputs and a flipped kernel: the
    # expected (float32) computation's bound and the explanation's (float16) are 100x apart; the
    # message quotes the bound each element was held to against the reference, and no other.
    rng = np.random.default_rng(3)
    image, kernel = rng.standard_normal((8, 8)).astype(np.float32), rng.standard_normal((3, 3)).astype(np.float32)
    half = [a.astype(np.float16).astype(np.float32) for a in (image, kernel)]
    output = scipy.signal.convolve2d(*half, mode="same").astype(np.float16)
    with pytest.raises(AssertionError) as info:
        assert_conv_matches(output, image, kernel)
    message = str(info.value)
    import re
    from convcheck.engine import explain
    diagnosis = explain(image, kernel, output, keep_arrays=True)
    arrays = diagnosis.arrays
    bound = arrays.bound_before[:, :, 0]
    delta = np.abs(arrays.output - arrays.reference)[:, :, 0]
    worst = tuple(int(i) for i in np.unravel_index(np.argmax(delta), delta.shape))
    assert f"at index {worst} (up to {bound[worst]:.2g} allowed)" in message
    reference = arrays.reference[:, :, 0]
    quoted = [float(value) for value in re.findall(r"(?:bound|up to) ([0-9.]+(?:e[-+][0-9]+)?)", message)]
    allowed = {float(f"{b:.2g}") for b in bound.reshape(-1)} | {float(f"{b:.2g}") for b in
                                                                 (bound / np.abs(reference)).reshape(-1)}
    assert quoted and set(quoted) <= allowed, quoted
    assert "error bound " + f"{diagnosis.stats.error_bound:.3g}" not in message
    assert "residual after the explanation" in message and "within its own error bound at every element" in message


def test_pytest_hides_convcheck_frames(tmp_path):
    test = tmp_path / "test_hidden.py"
    test.write_text("import numpy as np, scipy.signal\n"
                    "from convcheck.testing import assert_conv_matches\n"
                    "def test_port():\n"
                    "    image = np.arange(25.0).reshape(5, 5); kernel = np.arange(9.0).reshape(3, 3)\n"
                    "    assert_conv_matches(scipy.signal.convolve2d(image, kernel, mode='same'), image, kernel)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env["COLUMNS"] = "300"  # the short summary is cut to the terminal width
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout
    assert "convcheck/testing.py" not in done.stdout and "def assert_conv_matches" not in done.stdout
    assert "test_hidden.py:5" in done.stdout
    summary = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
    assert summary and "explained by kernel flipped 180° (true convolution), not equal" in summary[0]


def test_partly_allowed_names_only_the_missing_cause(image, kernel):
    ported = scipy.signal.convolve2d(image.astype(np.float32), kernel.astype(np.float32), mode="same")
    with pytest.raises(AssertionError, match=r"precision=float32 is not in allow") as info:
        assert_conv_matches(ported, image, kernel, allow=["kernel_transform=rot180"])
    assert "pass allow=['kernel_transform=rot180', 'precision=float32']" in str(info.value)


def test_unexplained_always_raises(image, kernel):
    output = scipy.signal.correlate2d(image, kernel, mode="same")
    output[2, 5] += 0.5
    with pytest.raises(AssertionError) as info:
        assert_conv_matches(output, image, kernel, allow=["kernel_transform", "padding", "boundary", "offset",
                                                          "precision", "bias", "scale"])
    message = str(info.value)
    assert "Mismatched elements: 1 / 64 (1.6%)" in message
    assert "Greatest absolute difference: 0.5 at index (2, 5)" in message
    assert "convcheck: unexplained: 1 of 64 elements differ from the reference" in message
    assert message.splitlines()[0].startswith("output is unexplained, not equal: no known cause reproduces it "
                                              "(1 of 64 elements differ")


def test_index_is_in_the_callers_shape(image, kernel):
    output = scipy.signal.correlate2d(image, kernel, mode="same")
    output[6, 1] -= 2.0
    with pytest.raises(AssertionError, match=r"at index \(0, 6, 1, 0\)"):
        assert_conv_matches(output[None, :, :, None], image, kernel)


def test_wrong_shape_reads_like_torch(image, kernel):
    valid = scipy.signal.correlate2d(image, kernel, mode="valid")
    with pytest.raises(AssertionError, match=r"The values for attribute 'shape' do not match: \(6, 6\) != \(8, 8\)"):
        assert_conv_matches(valid, image, kernel)
    assert_conv_matches(valid, image, kernel, allow=["padding=valid"])


def test_bad_allow_is_an_input_error(image, kernel):
    with pytest.raises(InputError, match="allow: 'precision=float8'"):
        assert_conv_matches(image, image, kernel, allow=["precision=float8"])


def test_never_imports_tensorflow():
    code = ("import sys, numpy as np, scipy.signal\n"
            "from convcheck.testing import assert_conv_matches\n"
            "image = np.arange(25.0).reshape(5, 5); kernel = np.eye(3)\n"
            "assert_conv_matches(scipy.signal.correlate2d(image, kernel, mode='same'), image, kernel)\n"
            "try:\n"
            "    assert_conv_matches(scipy.signal.convolve2d(image, kernel[:, ::-1], mode='same'), image, kernel)\n"
            "except AssertionError:\n"
            "    pass\n"
            "bad = [m for m in ('tensorflow', 'keras', 'torch', 'jax') if m in sys.modules]\n"
            "assert not bad, bad\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ----------------------------------------------------------------------------- geometry (CONTRACT v2)


@pytest.fixture(scope="module")
def nchw_batch():
    """An NCHW batch, its OIHW weights and the stride-2 'same' output, made from the reference."""
    from convcheck.engine.reference import reference

    rng = np.random.default_rng(9)
    batch = rng.standard_normal((2, 7, 7, 3))
    hwio = rng.standard_normal((3, 3, 3, 4))
    output = reference(batch, hwio, "same", stride=(2, 2))  # (2, 4, 4, 4) NHWC
    return batch.transpose(0, 3, 1, 2), hwio.transpose(3, 2, 0, 1), output.transpose(0, 3, 1, 2)


def test_stride_keyword(image, kernel):
    odd = np.random.default_rng(4).standard_normal((9, 9))
    strided = scipy.signal.correlate2d(odd, kernel, mode="same")[::2, ::2]
    from convcheck.engine.reference import reference
    np.testing.assert_allclose(strided, reference(odd, kernel, "same", stride=(2, 2)), rtol=0, atol=1e-12)
    assert assert_conv_matches(strided, odd, kernel, stride=2).verdict.value == "equal"
    assert assert_conv_matches(strided, odd, kernel, stride=(2, 2)).explanation.stride == (2, 2)
    with pytest.raises(AssertionError) as info:
        assert_conv_matches(strided, odd, kernel)
    message = str(info.value)
    assert message.splitlines()[0].endswith("(stride=[2, 2] is not in allow)")
    assert "The values for attribute 'shape' do not match: (5, 5) != (9, 9)" in message
    assert "pass allow=['stride=[2, 2]']" in message
    assert_conv_matches(strided, odd, kernel, allow=["stride=[2, 2]"])
    assert_conv_matches(strided, odd, kernel, allow=["stride=2"])
    with pytest.raises(InputError, match="stride"):
        assert_conv_matches(strided, odd, kernel, stride=0)


def test_shape_line_uses_the_declared_stride_and_dilation(image, kernel):
    valid = scipy.signal.correlate2d(image, kernel, mode="valid")  # (6, 6): not the stride-2 'same' (4, 4)
    with pytest.raises(AssertionError) as info:
        assert_conv_matches(valid, image, kernel, stride=2)
    assert ("The values for attribute 'shape' do not match: (6, 6) != (4, 4) (the 'same' output, stride [2, 2] "
            "of a (8, 8) image with a (3, 3) kernel") in str(info.value)


def test_dilation_keyword(image, kernel):
    from convcheck.engine.reference import reference

    dilated = reference(image, kernel, "same", dilation=(2, 2))
    assert assert_conv_matches(dilated, image, kernel, dilation=2).verdict.value == "equal"
    with pytest.raises(AssertionError, match="dilation"):
        assert_conv_matches(dilated, image, kernel)


def test_nchw_batch_passes_and_indexes_the_callers_array(nchw_batch):
    image, weight, output = nchw_batch
    assert assert_conv_matches(output, image, weight, layout="nchw", stride=2).verdict.value == "equal"
    corrupted = output.copy()
    corrupted[1, 2, 3, 1] += 1.0  # sample 1, channel 2, row 3, column 1
    with pytest.raises(AssertionError) as info:
        assert_conv_matches(corrupted, image, weight, layout="nchw", stride=2)
    message = str(info.value)
    lines = message.splitlines()
    assert "Mismatched elements: 1 / 128 (0.8%)" in lines
    assert "Values below are from sample 1 of the batch of 2" in message
    assert any(line.startswith("Greatest absolute difference: 1 at index (1, 2, 3, 1) (up to ") for line in lines)
    shown = [line for line in lines if line.startswith("  (")]
    assert len(shown) == 1
    assert shown[0].startswith(f"  (1, 2, 3, 1): output {corrupted[1, 2, 3, 1]:.6g}, reference {output[1, 2, 3, 1]:.6g}")


def test_nchw_batch_worst_sample_zero(nchw_batch):
    image, weight, output = nchw_batch
    corrupted = output.copy()
    corrupted[0, 3, 0, 2] -= 2.0
    corrupted[0, 1, 1, 1] -= 0.5
    with pytest.raises(AssertionError) as info:
        assert_conv_matches(corrupted, image, weight, layout="nchw", kernel_layout="oihw", stride=(2, 2))
    message = str(info.value)
    assert "sample 0 of the batch of 2" in message
    assert "Greatest absolute difference: 2 at index (0, 3, 0, 2)" in message
    assert "  (0, 1, 1, 1): output " in message


def test_depthwise_kernel_layout_and_groups():
    from convcheck.engine.reference import reference

    rng = np.random.default_rng(2)
    image = rng.standard_normal((7, 7, 3))
    depthwise = rng.standard_normal((3, 3, 3, 2))  # (kh, kw, C_in, multiplier): output channel c * 2 + m
    output = reference(image, depthwise.reshape(3, 3, 1, 6), "same", groups=3)
    diagnosis = assert_conv_matches(output, image, depthwise, kernel_layout="depthwise")
    assert diagnosis.verdict.value == "equal" and diagnosis.explanation.groups == 3
    assert_conv_matches(output, image, depthwise, kernel_layout="depthwise", groups=3)
    with pytest.raises(AssertionError, match=r"groups=3 is not in allow"):
        assert_conv_matches(output, image, depthwise, kernel_layout="depthwise", groups=1)
    assert_conv_matches(output, image, depthwise, kernel_layout="depthwise", groups=1, allow=["groups=3"])


# ----------------------------------------------------------------------------- declared computations (issue 21)


def _declared_layer(size=12, seed=4):
    """An NCHW float32 layer with padding 1, stride 2, a bias and a ReLU, made by the float64 reference."""
    from convcheck.engine.reference import reference

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 3, size, size)).astype(np.float32)
    w = (rng.standard_normal((4, 3, 3, 3)) / 3).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, 4).astype(np.float32)
    out = reference(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), ((1, 1), (1, 1)), stride=(2, 2)) + b
    return x, w, b, np.maximum(out, 0.0).transpose(0, 3, 1, 2).astype(np.float32)


def test_declared_layer_passes_with_padding_amounts_and_expected():
    x, w, b, y = _declared_layer()
    for padding in (1, (1, 1), (1, 1, 1, 1), ((1, 1), (1, 1))):
        diagnosis = assert_conv_matches(y, x, w, padding, stride=2, layout="nchw",
                                        expected={"bias": b, "activation": "relu"})
        assert diagnosis.verdict.value == "equal"
    assert_conv_matches(y, x, w, stride=2, layout="nchw", expected={"padding": 1, "bias": b, "activation": "relu"})


def test_declared_bias_off_in_one_channel_fails_naming_the_bias():
    x, w, b, y = _declared_layer()
    off = b.astype(np.float64)
    off[1] += 0.3
    with pytest.raises(AssertionError) as info:
        assert_conv_matches(y, x, w, 1, stride=2, layout="nchw", expected={"bias": off, "activation": "relu"},
                            msg="conv1")
    first = str(info.value).splitlines()[0]
    assert first.startswith("conv1: output is explained by a bias per channel") and "(bias is not in allow)" in first


def test_declared_activation_the_output_lacks_fails():
    x, w, b, y = _declared_layer()
    with pytest.raises(AssertionError, match="activation=relu is not in allow"):
        assert_conv_matches(y, x, w, 1, stride=2, layout="nchw", expected={"bias": b})


def test_declared_uncertainty_covers_a_converters_rounding():
    x, w, b, y = _declared_layer()
    nudged = b.astype(np.float64) + 2e-4
    with pytest.raises(AssertionError):
        assert_conv_matches(y, x, w, 1, stride=2, layout="nchw", expected={"bias": nudged, "activation": "relu"})
    assert_conv_matches(y, x, w, 1, stride=2, layout="nchw", expected={"bias": nudged, "activation": "relu"},
                        declared_uncertainty={"bias": 1e-3})


def test_padding_declared_twice_or_bad_is_an_input_error():
    x, w, b, y = _declared_layer()
    with pytest.raises(InputError, match="padding is declared twice"):
        assert_conv_matches(y, x, w, 1, stride=2, layout="nchw", expected={"padding": "valid"})
    with pytest.raises(InputError, match="padding"):
        assert_conv_matches(y, x, w, (1, 2, 3), stride=2, layout="nchw")
    with pytest.raises(InputError, match="not a field"):
        assert_conv_matches(y, x, w, 1, stride=2, layout="nchw", expected={"activaton": "relu"})


def test_shape_line_names_the_padding_amounts():
    x, w, b, y = _declared_layer()
    with pytest.raises(AssertionError) as info:
        assert_conv_matches(y, x, w, (0, 0, 0, 0), layout="nchw", expected={"bias": b, "activation": "relu"})
    assert "the output padded by [[0, 0], [0, 0]] of a (12, 12) image with a (3, 3) kernel has 10 x 10" in str(info.value)
