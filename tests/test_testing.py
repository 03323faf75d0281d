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
    assert lines[5].startswith("Values where they differ most (actual = output, expected = float64 reference")
    first = lines[6].strip()
    assert first.startswith(f"{tuple(int(i) for i in worst)}: actual {output[worst]:.6g}, expected {reference[worst]:.6g}")
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
    actual, expected = line.split("actual ")[1].split(", expected ")
    expected = expected.split(" (")[0]
    assert actual != expected and float(actual) != float(expected)


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
