"""`compare` at --stride / --dilation / grouped kernels (issue 8): native rows equal the reference.

TensorFlow, Keras, PyTorch and JAX run the geometry in their own call; the scipy rows keep
convcheck's exact emulation (and their notes say so). Every row of a float64 compare must
be `equal`, and the JSON must carry the settings.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from convcheck.backends import BACKENDS
from convcheck.cli import main
from convcheck.comparison import compare

EMULATION_NOTE = "stride, dilation and groups emulated exactly"

FRAMEWORK_ROWS = [
    pytest.param("tf.nn.conv2d", "tensorflow", marks=pytest.mark.tensorflow, id="tf"),
    pytest.param("keras.layers.Conv2D", "keras", marks=pytest.mark.tensorflow, id="keras"),
    pytest.param("torch.nn.functional.conv2d", "torch", marks=pytest.mark.torch, id="torch"),
    pytest.param("jax.lax.conv_general_dilated", "jax", marks=pytest.mark.jax, id="jax"),
]


def needs(module):
    pytest.importorskip(module, reason=f"{module} is not installed: its compare row cannot be tested")


def rows_of(report):
    return {row["backend"]: row for row in report.to_json_dict()["results"]}


def assert_equal_up_to_declared_groups(row, groups, kernel_layout):
    """`equal`: every backend ran the grouping the kernel's shape implies, and compare expects it."""
    assert row["verdict"] == "equal", row
    assert row["explanation"]["groups"] == groups


def case(shape=(10, 12, 4), kernel_shape=(3, 3, 4, 2), seed=11):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, shape), rng.uniform(-1, 1, kernel_shape)


@pytest.mark.parametrize("name, module", FRAMEWORK_ROWS)
@pytest.mark.parametrize("kernel_shape, kernel_layout, groups", [
    ((3, 3, 4, 2), None, 1),          # dense
    ((2, 3, 2, 4), None, 2),          # grouped: C_in / G = 2
    ((3, 3, 4, 2), "depthwise", 4),   # depthwise, multiplier 2
], ids=["dense", "groups2", "depthwise"])
def test_compare_stride_2_is_equal_and_native(name, module, kernel_shape, kernel_layout, groups):
    needs(module)
    image, kernel = case(kernel_shape=kernel_shape)
    report = compare(image, kernel, stride=2, dtype="float64", backends=[name, "scipy.signal.correlate2d"],
                     kernel_layout=kernel_layout)
    document = report.to_json_dict()
    assert document["settings"]["stride"] == [2, 2]
    assert document["settings"]["dilation"] == [1, 1]
    rows = rows_of(report)
    row = rows[name]
    assert row["status"] == "ok", row
    assert_equal_up_to_declared_groups(row, groups, kernel_layout)
    assert row["shape"] == [5, 6, kernel_shape[3] * (4 if kernel_layout == "depthwise" else 1)]
    assert not any(EMULATION_NOTE in note for note in row.get("notes", [])), row.get("notes")
    # The scipy row still emulates (it has no stride of its own), and says so.
    scipy_row = rows["scipy.signal.correlate2d"]
    assert_equal_up_to_declared_groups(scipy_row, groups, kernel_layout)
    assert any(EMULATION_NOTE in note for note in scipy_row["notes"])


@pytest.mark.parametrize("name, module", FRAMEWORK_ROWS)
@pytest.mark.parametrize("kernel_shape, kernel_layout", [((3, 2, 4, 3), None), ((2, 3, 4, 2), "depthwise")],
                         ids=["dense", "depthwise"])
@pytest.mark.parametrize("stride, dilation, padding", [
    ((2, 2), (2, 2), "same"), ((3, 1), (1, 3), "valid"), ((3, 3), (2, 1), "same"), ((1, 1), (3, 3), "same"),
])
def test_compare_stride_and_dilation_odd_image(name, module, kernel_shape, kernel_layout, stride, dilation,
                                               padding):
    needs(module)
    image, kernel = case(shape=(2, 11, 13, 4), kernel_shape=kernel_shape)  # a batch of two
    report = compare(image, kernel, stride=stride, dilation=dilation, padding=padding, dtype="float64",
                     backends=[name], kernel_layout=kernel_layout)
    document = report.to_json_dict()
    assert document["settings"]["stride"] == list(stride)
    assert document["settings"]["dilation"] == list(dilation)
    row = rows_of(report)[name]
    assert row["status"] == "ok", row
    assert row["verdict"] == "equal", row


@pytest.mark.parametrize("name, module", FRAMEWORK_ROWS)
def test_compare_float32_geometry_is_equal(name, module):
    needs(module)
    image, kernel = case(kernel_shape=(3, 3, 4, 2))
    report = compare(image.astype(np.float32), kernel.astype(np.float32), stride=(2, 3), dilation=2,
                     backends=[name], kernel_layout="depthwise")
    row = rows_of(report)[name]
    assert row["status"] == "ok", row
    assert row["compute_dtype"] == "float32"
    assert row["verdict"] == "equal", row


@pytest.mark.tensorflow
@pytest.mark.parametrize("backend, framework", [("keras.layers.Conv2D[jax]", "jax"),
                                                ("keras.layers.Conv2D[torch]", "torch")])
def test_compare_keras_on_other_backends_native(backend, framework):
    needs("keras")
    needs(framework)
    image, kernel = case(kernel_shape=(3, 3, 4, 2))
    report = compare(image, kernel, stride=2, dilation=1, dtype="float64", backends=[backend],
                     kernel_layout="depthwise")
    row = rows_of(report)[backend]
    assert row["status"] == "ok", row
    assert row["verdict"] == "equal", row
    assert any("DepthwiseConv2D" in note for note in row["notes"]), row["notes"]


@pytest.mark.tensorflow
def test_cli_compare_stride_2_even_image_tf_and_keras_equal(tmp_path, monkeypatch):
    for name in ("tf.nn.conv2d", "keras.layers.Conv2D"):
        available, reason = BACKENDS[name].availability()
        if not available:
            pytest.skip(f"{name} cannot run here: {reason}")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(21)
    np.save("img.npy", rng.uniform(-1, 1, (8, 8)))
    np.save("ker.npy", rng.uniform(-1, 1, (4, 4)))  # even kernel: TF SAME pads 1 before, 2 after
    runner = CliRunner(env={"NO_COLOR": None, "FORCE_COLOR": None, "COLUMNS": "160"})
    result = runner.invoke(main, ["compare", "img.npy", "ker.npy", "--stride", "2", "--backends",
                                  "tf.nn.conv2d,keras.layers.Conv2D,scipy.signal.correlate2d",
                                  "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["settings"]["stride"] == [2, 2]
    rows = {row["backend"]: row for row in document["results"]}
    for name in ("tf.nn.conv2d", "keras.layers.Conv2D", "scipy.signal.correlate2d"):
        assert rows[name]["status"] == "ok", rows[name]
        assert rows[name]["verdict"] == "equal", rows[name]
        assert rows[name]["shape"] == [4, 4]
    assert not any(EMULATION_NOTE in note for note in rows["tf.nn.conv2d"].get("notes", []))

    # The table shows the same rows, both equal.
    table = runner.invoke(main, ["compare", "img.npy", "ker.npy", "--stride", "2", "--backends",
                                 "tf.nn.conv2d,keras.layers.Conv2D"], catch_exceptions=False)
    assert table.exit_code == 0, table.stderr
    lines = [line.strip() for line in table.stdout.splitlines()]
    for name in ("tf.nn.conv2d", "keras.layers.Conv2D"):
        row = [line for line in lines if line.startswith(name + " ")]
        assert len(row) == 1 and "equal" in row[0], table.stdout


SCIPY_ROWS = ["scipy.signal.correlate2d", "scipy.signal.fftconvolve", "scipy.ndimage.correlate"]


@pytest.mark.parametrize("padding, settings", [(1, [[1, 1], [1, 1]]), ((0, 2, 1, 0), [[0, 2], [1, 0]])],
                         ids=["P", "T,B,L,R"])
def test_compare_explicit_pads_at_stride_2_is_equal_on_the_emulated_rows(padding, settings):
    image, kernel = case()
    report = compare(image, kernel, padding=padding, stride=2, dtype="float64", backends=SCIPY_ROWS)
    document = report.to_json_dict()
    assert document["settings"]["padding"] == settings
    for row in document["results"]:
        # fftconvolve is a true convolution, run with the kernel as given: its row is the
        # flip, at the declared pads (the emulation pads the image, not the kernel).
        flipped = row["backend"] == "scipy.signal.fftconvolve"
        assert row["verdict"] == ("explained" if flipped else "equal"), row
        if flipped:
            assert [c["field"] for c in row["causes"]] == ["kernel_transform"], row
            assert row["explanation"]["kernel_transform"] == "rot180", row
        assert row["explanation"]["padding"] == settings, row


@pytest.mark.parametrize("name, module", FRAMEWORK_ROWS)
def test_compare_pytorch_padding_1_at_stride_2_is_equal_on_every_framework(name, module):
    # PyTorch's padding=1 at stride 2 on an even size is what each framework computes when it
    # is declared: no offset, unlike TF SAME.
    needs(module)
    image, kernel = case()
    report = compare(image, kernel, padding=1, stride=2, dtype="float64", backends=[name])
    row = rows_of(report)[name]
    assert row["verdict"] == "equal", row
    assert row["shape"] == [5, 6, 2]
