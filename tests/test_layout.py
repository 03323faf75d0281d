"""CONTRACT v2 Layout fields `kernel_layout` and `channel_order`: weights given with their axes
in another order, PyTorch weights reshaped instead of transposed, images fed BGR for RGB.
Real PyTorch and TensorFlow outputs (marked), scipy outputs, and the negatives: a corrupted
element stays unexplained under every reading, and a kernel permutation is never explained by
the wrong one."""

import json

import numpy as np
import pytest
import scipy.ndimage as ndi

import convcheck
from convcheck.check import parse_allow
from convcheck.choices import KERNEL_AXIS_ORDERS
from convcheck.errors import InputError
from convcheck.formats import render_explain
from convcheck.inputs import other_readings, prepare_inputs, read_kernel_as
from convcheck.testing import assert_conv_matches
from convcheck.vocabulary import Verdict

NAMES = {"image": "image.npy", "kernel": "kernel.npy", "output": "output.npy"}


def changed(d):
    return {f: getattr(d.explanation, f) for f in d.explanation.changed_fields(d.baseline)}


def corrupt(out, index):
    out = np.array(out, copy=True)
    out[index] += 1e-3 * (1 + abs(out[index]))
    return out


def per_channel_correlate(image, kernel):
    """A 'same' zero-padded cross-correlation of an (H, W, C) image with an HWIO kernel, summed
    from scipy.ndimage.correlate over each input channel (scipy's own arithmetic)."""
    return np.stack([sum(ndi.correlate(image[:, :, c], kernel[:, :, c, o], mode="constant")
                         for c in range(image.shape[2])) for o in range(kernel.shape[3])], -1)


# --- which readings exist ---------------------------------------------------------------------

def test_other_readings_are_the_fitting_orders_likeliest_first_then_reversed_channels():
    rng = np.random.default_rng(1)
    inputs = prepare_inputs(rng.standard_normal((6, 6, 8)), rng.standard_normal((3, 3, 8, 8)),
                            np.zeros((6, 6, 8)))
    readings = [(r.kernel_reading, r.channel_order) for r in other_readings(inputs)]
    # Only h and w fit the two 3-long axes (w before h would be kernel_transform 'transpose');
    # 8 feature channels are not a colour image, so their order is not searched.
    # OIHW reshaped into HWIO is read both ways: the original's weights with the port's
    # output, and the port's weights with the original's output (two different kernels).
    assert readings == [("hwoi", "as_given"), ("oihw-reshaped", "as_given"), ("oihw-reshaped", "as_given")]
    reshaped = [r.kernel for r in other_readings(inputs) if r.kernel_reading == "oihw-reshaped"]
    assert not np.array_equal(reshaped[0], reshaped[1])
    square = prepare_inputs(rng.standard_normal((6, 6, 3)), rng.standard_normal((3, 3, 3, 3)),
                            np.zeros((6, 6, 3)))
    orders = [r.kernel_reading for r in other_readings(square) if r.channel_order == "as_given"]
    # With every axis 3 long, one way of reshaping OIHW into HWIO moves nothing (it reads as
    # 'oihw'), and is left out; the other way is kept, last.
    assert orders[:2] == ["oihw", "hwoi"] and orders[-1] == "oihw-reshaped" and len(orders) == 12
    assert orders.count("oihw-reshaped") == 1
    assert all(o.index("h") < o.index("w") for o in orders[:-1])
    flipped = [r.kernel_reading for r in other_readings(square) if r.channel_order == "reversed"]
    assert flipped == [None] + orders   # the colours reversed alone first, then with each order


def test_readings_that_give_the_same_arrays_are_left_out():
    symmetric = np.ones((3, 3, 2, 2))           # every order reads the same kernel
    gray = np.repeat(np.random.default_rng(2).standard_normal((6, 6, 1)), 3, axis=2)  # R = G = B
    inputs = prepare_inputs(gray[..., :2], symmetric, np.zeros((6, 6, 2)))
    assert other_readings(inputs) == []
    assert other_readings(prepare_inputs(gray, np.ones((3, 3, 3, 1)), np.zeros((6, 6, 1)))) == []


def test_oihw_reshaped_undoes_a_reshape():
    oihw = np.arange(2 * 3 * 3 * 4).reshape(4, 2, 3, 3)
    np.testing.assert_array_equal(read_kernel_as(oihw.reshape(3, 3, 2, 4), "oihw-reshaped"),
                                  oihw.transpose(2, 3, 1, 0))


# --- declaring any order ------------------------------------------------------------------------

def test_any_axis_order_can_be_declared_to_explain_compare_and_the_pytest_helper():
    rng = np.random.default_rng(3)
    image, kernel = rng.standard_normal((9, 9, 3)), rng.standard_normal((3, 3, 3, 4))
    ohwi = kernel.transpose(3, 0, 1, 2)   # TFLite's order
    out = per_channel_correlate(image, kernel)
    assert convcheck.explain(image, ohwi, out, kernel_layout="ohwi").verdict is Verdict.EQUAL
    assert_conv_matches(out, image, ohwi, kernel_layout="ohwi")
    report = convcheck.compare(image, ohwi, kernel_layout="ohwi", backends=["scipy.signal.correlate2d"])
    assert report.results[0].diagnosis.verdict is Verdict.EQUAL
    with pytest.raises(InputError, match="another order of the letters h, w, i, o"):
        prepare_inputs(image, ohwi, kernel_layout="ohwx")


def test_allow_rules_take_the_new_values():
    rules = parse_allow(["kernel_layout=oihw-reshaped", "kernel_layout=hwoi", "channel_order=reversed"])
    assert [(r.field, r.value) for r in rules] == [("kernel_layout", "oihw-reshaped"), ("kernel_layout", "hwoi"),
                                                  ("channel_order", "reversed")]
    for bad in ("kernel_layout=hwxx", "channel_order=bgr"):
        with pytest.raises(InputError, match="allow"):
            parse_allow([bad])


# --- found from the values: scipy outputs ----------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_random_permutation_is_found_and_no_other(seed):
    """A (3, 3, 3, 3) kernel fits every order: only the one that was used may explain the output,
    and with one element corrupted none does."""
    rng = np.random.default_rng(seed)
    image, kernel = rng.standard_normal((8, 8, 3)), rng.standard_normal((3, 3, 3, 3))
    orders = [o for o in KERNEL_AXIS_ORDERS if o.index("h") < o.index("w") and o != "hwio"]
    order = orders[int(rng.integers(len(orders)))]
    given = kernel.transpose(["hwio".index(axis) for axis in order])   # axes of `given` are in `order`
    out = per_channel_correlate(image, kernel)
    d = convcheck.explain(image, given, out)
    assert changed(d) == {"kernel_layout": order}, (order, d)
    bad = convcheck.explain(image, given, corrupt(out, (4, 4, 1)))
    assert bad.verdict is Verdict.UNEXPLAINED and not bad.cannot_decide
    assert bad.closest is not None and bad.closest.kernel_layout == order
    assert bad.where == "a few pixels"


def test_an_unrelated_output_is_not_explained_by_any_reading():
    rng = np.random.default_rng(5)
    image, kernel = rng.standard_normal((9, 9, 3)), rng.standard_normal((3, 3, 3, 3))
    d = convcheck.explain(image, kernel, rng.standard_normal((9, 9, 3)))
    assert d.verdict is Verdict.UNEXPLAINED
    assert any("other readings of the kernel's axes" in note for note in d.notes)


def test_a_bgr_image_through_scipy_is_channel_order_reversed_and_a_corrupted_pixel_is_not():
    rng = np.random.default_rng(6)
    rgb, kernel = rng.random((10, 10, 3)), rng.standard_normal((3, 3, 3, 2))
    out = per_channel_correlate(rgb[:, :, ::-1], kernel)
    d = convcheck.explain(rgb, kernel, out)
    assert changed(d) == {"channel_order": "reversed"}
    assert "image[..., ::-1]" in d.causes[0].fix and "cv2.cvtColor" in d.causes[0].fix
    assert d.stats.mismatched == d.stats.total    # the statistics before: against the declared reading
    bad = convcheck.explain(rgb, kernel, corrupt(out, (0, 9, 1)))
    assert bad.verdict is Verdict.UNEXPLAINED and bad.closest.channel_order == "reversed"


# --- the kernel's shape fits only another layout --------------------------------------------

def test_a_kernel_whose_shape_fits_only_as_oihw_is_explained_not_refused(tmp_path):
    from click.testing import CliRunner

    from convcheck.cli import main
    rng = np.random.default_rng(7)
    image, oihw = rng.standard_normal((8, 8, 4)), rng.standard_normal((5, 4, 3, 3))
    out = per_channel_correlate(image, oihw.transpose(2, 3, 1, 0))
    for name, array in (("image", image), ("kernel", oihw), ("output", out)):
        np.save(tmp_path / f"{name}.npy", array)
    runner = CliRunner()
    files = [str(tmp_path / f"{name}.npy") for name in ("image", "kernel", "output")]
    result = runner.invoke(main, ["explain", *files, "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [(c["field"], c["value"]) for c in document["causes"]] == [("kernel_layout", "oihw")]
    assert "--kernel-layout oihw" in document["causes"][0]["fix"]
    assert "np.transpose(w, (2, 3, 1, 0))" in document["causes"][0]["fix"]
    assert document["stats"]["max_abs_diff"] is None   # no reference exists in the declared layout
    assert any("--kernel-layout oihw" in note for note in document["notes"])
    assert runner.invoke(main, ["explain", *files, "--kernel-layout", "oihw"]).exit_code == 0
    # compare has no output to judge by: exit 2, naming the flag.
    result = runner.invoke(main, ["compare", *files[:2], "--backends", "scipy.signal.correlate2d"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "pass --kernel-layout oihw" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_pytest_helper_names_the_cause_and_the_allow_entry():
    rng = np.random.default_rng(8)
    image, kernel = rng.standard_normal((8, 8, 4)), rng.standard_normal((3, 3, 4, 4))
    out = per_channel_correlate(image, kernel)
    swapped = kernel.transpose(0, 1, 3, 2)
    with pytest.raises(AssertionError, match="kernel_layout=hwoi"):
        assert_conv_matches(out, image, swapped)
    assert assert_conv_matches(out, image, swapped, allow=["kernel_layout=hwoi"]).verdict is Verdict.EXPLAINED


# --- every format says what, the fix and why ------------------------------------------------

@pytest.fixture(scope="module")
def layout_diagnoses():
    rng = np.random.default_rng(9)
    image, kernel = rng.standard_normal((8, 8, 4)), rng.standard_normal((3, 3, 4, 4))
    out = per_channel_correlate(image, kernel)
    oihw = kernel.transpose(3, 2, 0, 1)
    return {
        "hwoi": convcheck.explain(image, kernel.transpose(0, 1, 3, 2), out),
        "oihw-reshaped": convcheck.explain(image, oihw.reshape(kernel.shape), out),
        "reversed": convcheck.explain(image[..., ::-1], kernel, out),
    }


@pytest.mark.parametrize("fmt", ["table", "json", "markdown", "github", "junit"])
@pytest.mark.parametrize("case, field, fix_call", [
    ("hwoi", "kernel_layout", "np.transpose(w, (0, 1, 3, 2))"),
    ("oihw-reshaped", "kernel_layout", "weights.permute(2, 3, 1, 0)"),
    ("reversed", "channel_order", "cv2.cvtColor(image, cv2.COLOR"),
])
def test_every_format_gives_the_summary_the_fix_and_why(layout_diagnoses, fmt, case, field, fix_call):
    d = layout_diagnoses[case]
    assert [c.field for c in d.causes] == [field]
    cause = d.causes[0]
    assert cause.summary and cause.why and fix_call in cause.fix
    text = render_explain(d, fmt, names=NAMES, color=False)
    if fmt == "json":
        (entry,) = json.loads(text)["causes"]
        assert (entry["summary"], entry["fix"], entry["why"]) == (cause.summary, cause.fix, cause.why)
        return
    flat = " ".join(text.replace("\\", "").replace("%0A", " ").split())   # markdown escapes, github newlines
    for sentence in (cause.summary, cause.fix, cause.why):
        head = " ".join(sentence.split()[:8])
        assert head in flat, (fmt, head)


# --- real framework outputs -------------------------------------------------------------------

TORCH_CASES = {
    # name: (how the weights were given, layout, expected changed fields, a call the fix names)
    "HWIO given where OIHW is declared": (lambda w: w.permute(2, 3, 1, 0), "nchw", {"kernel_layout": "hwio"},
                                          "weights.permute(3, 2, 0, 1)"),
    "in and out channels swapped": (lambda w: w.transpose(0, 1), "nchw", {"kernel_layout": "iohw"},
                                    "weights.permute(1, 0, 2, 3)"),
    "reshaped instead of transposed": (lambda w: w.reshape(3, 3, 8, 8), "nhwc", {"kernel_layout": "oihw-reshaped"},
                                       "weights.permute(2, 3, 1, 0)"),
    "transposed to the wrong order": (lambda w: w.permute(1, 2, 3, 0), "nhwc", {"kernel_layout": "ihwo"},
                                      "np.transpose(w, (1, 2, 0, 3))"),
    "kh and kw swapped": (lambda w: w.permute(3, 2, 1, 0), "nhwc", {"kernel_transform": "transpose"}, "kernel.T"),
}


@pytest.mark.torch
@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_pytorch_weights_given_in_the_wrong_order(name):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'convcheck[torch]'")
    torch.manual_seed(0)
    x, weights = torch.randn(1, 8, 9, 9), torch.randn(8, 8, 3, 3)
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x, weights, padding=1)
    given, layout, expected, fix_call = TORCH_CASES[name]
    image, out = x.numpy(), y.numpy()
    if layout == "nhwc":
        image, out = image.transpose(0, 2, 3, 1), out.transpose(0, 2, 3, 1)
    kernel = given(weights).contiguous().numpy()
    d = convcheck.explain(image, kernel, out, layout=layout)
    assert changed(d) == expected, d
    assert fix_call in d.causes[0].fix
    if name == "reshaped instead of transposed":   # (the other orders' negatives: the permutation test)
        index = (0, 3, 4, 4) if layout == "nchw" else (0, 4, 4, 3)
        bad = convcheck.explain(image, kernel, corrupt(out, index), layout=layout)
        assert bad.verdict is Verdict.UNEXPLAINED and bad.closest.kernel_layout == expected["kernel_layout"]
        assert bad.stats.worst_index is not None and bad.where == "a few pixels"


@pytest.mark.torch
def test_pytorch_fed_bgr_is_channel_order_reversed_with_a_channels_first_fix():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'convcheck[torch]'")
    torch.manual_seed(1)
    rgb, weights = torch.rand(1, 3, 10, 10), torch.randn(4, 3, 3, 3)
    with torch.no_grad():
        y = torch.nn.functional.conv2d(rgb.flip(1), weights, padding=1)
    d = convcheck.explain(rgb.numpy(), weights.numpy(), y.numpy(), layout="nchw")
    assert changed(d) == {"channel_order": "reversed"}
    assert "x.flip(1)" in d.causes[0].fix


@pytest.mark.tensorflow
def test_tf_conv2d_on_a_bgr_image_is_channel_order_reversed_and_a_corrupted_pixel_is_not():
    tf = pytest.importorskip("tensorflow", reason="TensorFlow is not installed: pip install 'convcheck[tensorflow]'")
    rng = np.random.default_rng(10)
    rgb = rng.random((1, 12, 12, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    out = tf.nn.conv2d(rgb[..., ::-1].copy(), kernel, strides=1, padding="SAME").numpy()
    d = convcheck.explain(rgb, kernel, out)
    assert changed(d) == {"channel_order": "reversed"}, d
    bad = convcheck.explain(rgb, kernel, corrupt(out, (0, 6, 6, 2)))
    assert bad.verdict is Verdict.UNEXPLAINED and bad.closest.channel_order == "reversed"
