"""What a hunt for false verdicts on real library outputs found (session of 2026-12-06), each
case made by a real call and seeded:

- the geometry search was skipped whenever the expected computation held at half the
  elements, and on a zero background or a constant image that is every flat window: a true
  convolution was "a genuine mismatch", a Sobel kernel's flip was named 'scale -1';
- a 256-channel layer run in float16 was `equal` to its float32 declaration (a float32 bound
  of 2304 taps spans float16's spacing), though every output value was a float16 value;
- a dead channel's declared bias was reported as another value (its bound);
- PyTorch's padding=1 at stride 2 was never tried as explicit pads when a named padding gave
  the output's size at another stride;
- groups that do not divide the channels, and an image whose sums overflow float64 were
  verdicts, not bad input (a stride larger than the image is not: with padding it gives a
  window, see test_a_stride_larger_than_the_image_still_applies).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as sig
from click.testing import CliRunner

import convcheck
from convcheck.cli import main
from convcheck.results import Verdict

SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=np.float32)


def _sparse_image(seed: int) -> np.ndarray:
    """An MNIST-like 28x28 image: zero but for an 8x10 patch."""
    rng = np.random.default_rng(seed)
    image = np.zeros((28, 28), np.float32)
    image[10:18, 9:19] = rng.uniform(0.2, 1.0, (8, 10)).astype(np.float32)
    return image


def test_a_true_convolution_on_a_zero_background_is_the_flip():
    image = _sparse_image(11)
    kernel = np.random.default_rng(11).standard_normal((3, 3)).astype(np.float32)
    d = convcheck.explain(image, kernel, sig.convolve2d(image, kernel, "same").astype(np.float32))
    assert d.verdict is Verdict.EXPLAINED and not d.cannot_decide
    assert d.explanation.changed_fields(d.baseline) == ("kernel_transform",)
    assert d.explanation.kernel_transform == "rot180"


def test_a_sobel_flip_on_a_zero_background_names_the_flip_not_a_scale():
    """rot180(sobel) == -sobel: 'scale -1' computes the same values, so it may be listed as an
    alternative, but the flip (structural, what scipy did) is the answer."""
    image = _sparse_image(12)
    d = convcheck.explain(image, SOBEL_X, sig.convolve2d(image, SOBEL_X, "same").astype(np.float32))
    assert d.verdict is Verdict.EXPLAINED
    assert d.explanation.changed_fields(d.baseline) == ("kernel_transform",)
    assert d.explanation.kernel_transform in ("rot180", "flip_lr")


@pytest.mark.parametrize("size", [7, 12])
def test_a_true_convolution_on_a_constant_image_is_the_flip(size):
    image = np.full((size, size), 2.0)
    kernel = np.random.default_rng(9).standard_normal((3, 3))
    d = convcheck.explain(image, kernel, sig.convolve2d(image, kernel, "same"))
    assert d.verdict is Verdict.EXPLAINED
    assert d.explanation.kernel_transform == "rot180"


def test_one_corrupted_element_on_a_dense_image_is_still_unexplained():
    """The other side of the rule: where the windows are not flat, a few mismatches are not a
    geometry (the search keeps its own geometry and the verdict stays honest)."""
    rng = np.random.default_rng(5)
    image = rng.standard_normal((20, 20)).astype(np.float32)
    kernel = rng.standard_normal((3, 3)).astype(np.float32)
    output = sig.correlate2d(image.astype(np.float64), kernel.astype(np.float64), "same").astype(np.float32)
    output[7, 9] += 0.01 * np.abs(output).max()
    d = convcheck.explain(image, kernel, output)
    assert d.verdict is Verdict.UNEXPLAINED


def _wide_layer(seed: int, channels: int = 256):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((1, 8, 8, channels)).astype(np.float32)
    kernel = (rng.standard_normal((3, 3, channels, 4)) / np.sqrt(9 * channels)).astype(np.float32)
    return image, kernel


def _exact_float32(image, kernel):
    """The float32 inputs summed exactly and stored in float32 (a faithful float32 conv's values
    within its rounding), NHWC 'same'."""
    out = np.stack([sum(sig.correlate2d(image[0, :, :, c].astype(np.float64), kernel[:, :, c, o].astype(np.float64),
                                        "same") for c in range(image.shape[3])) for o in range(kernel.shape[3])],
                   axis=-1)
    return out[None].astype(np.float32)


@pytest.mark.parametrize("channels", [16, 64, 256])
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_a_float32_result_stored_in_a_half_format_is_named_so(channels, half):
    """The float32 result rounded to float16 or bfloat16 (kept in a float32 array): on a wide
    layer its float32 bound covers the rounding, its values do not; 'output_precision' is named
    (as the answer, or beside 'precision', which reads the same values there), never the other
    half format (bfloat16 values are float16 values too)."""
    import ml_dtypes
    image, kernel = _wide_layer(16, channels=channels)
    kind = np.float16 if half == "float16" else ml_dtypes.bfloat16
    output = _exact_float32(image, kernel).astype(kind).astype(np.float32)
    d = convcheck.explain(image, kernel, output)
    assert d.verdict is Verdict.EXPLAINED
    readings = [d.explanation] + list(d.alternatives)
    assert any(r.changed_fields(d.baseline) == ("output_precision",) and r.output_precision == half
               for r in readings)
    assert all(half in (r.precision, r.output_precision) for r in readings)


def test_the_same_layer_in_float32_is_equal():
    image, kernel = _wide_layer(16)
    assert convcheck.explain(image, kernel, _exact_float32(image, kernel)).verdict is Verdict.EQUAL


def test_an_exact_output_that_happens_to_be_float16_values_is_equal():
    """Small integers sum exactly in any format: float16 values by arithmetic, not storage."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 4, (1, 8, 8, 64)).astype(np.float32)
    kernel = rng.integers(-2, 3, (3, 3, 64, 4)).astype(np.float32)
    output = _exact_float32(image, kernel)
    assert np.array_equal(output.astype(np.float16).astype(np.float32), output)
    assert convcheck.explain(image, kernel, output).verdict is Verdict.EQUAL


@pytest.mark.torch
def test_a_wide_layer_run_in_float16_by_torch_is_not_equal_to_float32():
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(16)
    x = rng.standard_normal((1, 256, 8, 8)).astype(np.float32)
    w = (rng.standard_normal((4, 256, 3, 3)) / np.sqrt(9 * 256)).astype(np.float32)
    with torch.no_grad():
        half = F.conv2d(torch.from_numpy(x).half(), torch.from_numpy(w).half(), padding=1).float().numpy()
        full = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy()
    d = convcheck.explain(x, w, half, layout="nchw", padding=1)
    assert d.verdict is not Verdict.EQUAL
    if d.verdict is Verdict.EXPLAINED:
        assert d.explanation.changed_fields(d.baseline) == ("precision",)
        assert d.explanation.precision == "float16"
    assert convcheck.explain(x, w, full, layout="nchw", padding=1).verdict is Verdict.EQUAL


def test_a_dead_channels_declared_bias_is_kept_when_the_data_allow_it():
    """Declared bias off in channel 0, channel 1 dead under its declared -100: the cause names
    channel 0's bias and keeps channel 1's declared value (not its bound)."""
    rng = np.random.default_rng(8)
    image = rng.standard_normal((9, 9, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    bias = np.array([0.1, -100.0, 0.2, 0.3], np.float32)
    sums = np.stack([sum(sig.correlate2d(image[:, :, c].astype(np.float64), kernel[:, :, c, o].astype(np.float64),
                                         "same") for c in range(3)) for o in range(4)], axis=-1)
    output = np.maximum(sums + bias, 0.0).astype(np.float32)
    declared = bias.copy()
    declared[0] = 0.101
    d = convcheck.explain(image, kernel, output, expected={"bias": declared, "activation": "relu"})
    assert d.verdict is Verdict.EXPLAINED
    assert d.explanation.changed_fields(d.baseline) == ("bias",)
    fitted = np.asarray(d.explanation.bias)
    assert fitted[1] == pytest.approx(-100.0) and fitted[0] == pytest.approx(0.1, abs=1e-6)
    assert any("as declared" in note or "the expected one" in note for note in d.notes)
    declared[1] = -5.0   # a declared bias the dead channel contradicts: the bound is reported
    d = convcheck.explain(image, kernel, output, expected={"bias": declared, "activation": "relu"})
    assert np.asarray(d.explanation.bias)[1] < -5.0


@pytest.mark.torch
@pytest.mark.parametrize("size,k", [(9, 4), (10, 5), (11, 5)])
def test_pytorch_padding_1_at_stride_2_is_found_as_explicit_pads(size, k):
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(13)
    x = rng.standard_normal((1, 2, size, size)).astype(np.float32)
    w = rng.standard_normal((3, 2, k, k)).astype(np.float32)
    with torch.no_grad():
        y = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1).numpy()
    d = convcheck.explain(x, w, y, layout="nchw", stride=2)
    assert d.verdict is Verdict.EXPLAINED
    assert d.explanation.changed_fields(d.baseline) == ("padding",)
    assert d.explanation.padding == ((1, 1), (1, 1))
    assert convcheck.explain(x, w, y, layout="nchw", stride=2, padding=1).verdict is Verdict.EQUAL


def test_declared_values_that_cannot_apply_are_bad_input(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.standard_normal((6, 6)).astype(np.float32)
    kernel = rng.standard_normal((3, 3)).astype(np.float32)
    output = sig.correlate2d(image, kernel, "same").astype(np.float32)
    for name, array in (("img", image), ("k", kernel), ("out", output), ("big", np.full((6, 6), 1e308))):
        np.save(tmp_path / f"{name}.npy", array)
    files = [str(tmp_path / f"{n}.npy") for n in ("img", "k", "out")]
    runner = CliRunner(env={"NO_COLOR": None, "FORCE_COLOR": None, "COLUMNS": "160"})

    def refused(*args: str) -> str:
        result = runner.invoke(main, ["explain", *args], catch_exceptions=False)
        assert result.exit_code == 2 and result.stdout == "", (args, result.stdout, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        return lines[0]

    assert "groups 2 must divide" in refused(*files, "--groups", "2")
    assert "groups 3 must divide" in refused(*files, "--expect", "groups=3")
    assert "beyond float64's range" in refused(str(tmp_path / "big.npy"), files[1], files[2])


def test_a_stride_larger_than_the_image_still_applies():
    """TensorFlow's SAME at stride 4 on a 3x3 map: one window, the whole map (a real layer; CONTRACT
    section 2a's "a stride larger than the image is bad input" would refuse it)."""
    rng = np.random.default_rng(3)
    image = rng.standard_normal((3, 3, 2)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 2, 3)).astype(np.float32)
    output = np.einsum("hwc,hwco->o", image.astype(np.float64), kernel.astype(np.float64)).astype(np.float32)
    d = convcheck.explain(image, kernel, output[None, None], stride=4)
    assert d.verdict is Verdict.EQUAL


def test_a_stride_on_a_one_pixel_axis_still_applies():
    """One window along an axis at any stride: a stride-2 layer on a 1x1 map is judged."""
    rng = np.random.default_rng(2)
    image = rng.standard_normal((1, 1, 4)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 4, 2)).astype(np.float32)
    output = np.einsum("c,co->o", image[0, 0].astype(np.float64), kernel[1, 1].astype(np.float64))
    d = convcheck.explain(image, kernel, output.astype(np.float32)[None, None], stride=2)
    assert d.verdict is Verdict.EQUAL


# ----------------------------------------------------------------------------- found by a hunt on model ports


def test_a_dead_channel_takes_the_declared_scale_in_a_scale_fit():
    """A kernel 1% off under a folded BatchNorm (declared scale and bias) and a ReLU6, one channel
    dead: 'scale' per channel names it, the dead channel keeping its declared scale (a hunt
    found 'cannot decide' through a bias invented for the dead channel)."""
    rng = np.random.default_rng(21)
    image = rng.standard_normal((12, 12, 4)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 4, 6)).astype(np.float32)
    scale = rng.uniform(0.5, 1.5, 6)
    bias = rng.uniform(-0.5, 0.5, 6)
    bias[4] = -200.0   # dead after the ReLU6
    sums = np.stack([sum(sig.correlate2d(image[:, :, c].astype(np.float64), kernel[:, :, c, o].astype(np.float64),
                                         "same") for c in range(4)) for o in range(6)], axis=-1)
    output = np.clip(1.01 * sums * scale + bias, 0.0, 6.0).astype(np.float32)
    d = convcheck.explain(image, kernel, output, expected={"scale": scale, "bias": bias, "activation": "relu6"})
    assert d.verdict is Verdict.EXPLAINED and d.explanation.changed_fields(d.baseline) == ("scale",)
    fitted = np.asarray(d.explanation.scale)
    assert fitted[4] == pytest.approx(scale[4])
    live = [c for c in range(6) if c != 4]
    assert np.allclose(fitted[live] / scale[live], 1.01, rtol=1e-4)


def test_a_factor_applied_in_two_rounded_steps_is_a_factor():
    """A BatchNorm folded in float32, then the weights multiplied by 1.01 in float32: two
    roundings, still one factor per output channel (a hunt got 'no factor maps')."""
    from convcheck.engine.weights import relate
    rng = np.random.default_rng(22)
    weights = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    factor = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    port = (weights * factor[:, None, None, None]).astype(np.float32) * np.float32(1.01)
    relation = relate(weights, port, original_layout="oihw", port_layout="oihw")
    assert list(relation.mapping) == ["scale"]
    fitted = np.asarray(relation.mapping["scale"])
    assert np.allclose(fitted, factor.astype(np.float64) * np.float64(np.float32(1.01)), rtol=4 * 2.0 ** -24)
    other = port.copy()
    other[0, 0, 0, 0] *= np.float32(1.001)   # one weight off by far more than rounding: no factor
    assert "scale" not in relate(weights, other, original_layout="oihw", port_layout="oihw").mapping


def test_unmatched_layers_beside_convs_the_port_did_not_capture_are_not_called_absent():
    from convcheck.formats.table import render_model
    from convcheck.models.walk import walk_captured
    from tests.models.test_walk import INPUT_INFO, synthetic

    original = synthetic(path="original.onnx")
    port = synthetic(path="port.tflite", drop_last=True)
    text = render_model(walk_captured(original, port, input_info=INPUT_INFO), color=False, width=160)
    assert "original layers with no counterpart in the port: third" in text
    from dataclasses import replace
    skipped = replace(port, uncaptured=1)
    report = walk_captured(original, skipped, input_info=INPUT_INFO)
    text = render_model(report, color=False, width=160)
    assert "no captured counterpart in the port: third" in text and "1 conv op(s) convcheck does not capture" in text
    assert report.exit_code() == 1   # still a port that is not the original, computed otherwise
    assert any("may be their counterparts" in note for note in report.notes["walk"])


def test_a_declared_bias_the_output_lacks_is_named_as_such():
    rng = np.random.default_rng(23)
    image = rng.standard_normal((10, 10, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    bias = rng.uniform(0.2, 1.0, 4)
    sums = np.stack([sum(sig.correlate2d(image[:, :, c].astype(np.float64), kernel[:, :, c, o].astype(np.float64),
                                         "same") for c in range(3)) for o in range(4)], axis=-1)
    d = convcheck.explain(image, kernel, sums.astype(np.float32), expected={"bias": bias})
    assert d.verdict is Verdict.EXPLAINED and d.explanation.changed_fields(d.baseline) == ("bias",)
    cause = d.causes[0]
    assert "not the declared" in cause.summary and "give the layer the declared bias" in cause.fix


def test_an_op_between_convs_that_differs_shows_as_a_drift_note_not_a_verdict():
    """The port's third conv reads its input through another op (the original's second output,
    its channels in another order, as a concatenation swapped): every conv is `equal` on its own
    input and the walk exits 0 (CONTRACT section 6), and the input drift's jump is noted."""
    from convcheck.models.layers import CapturedModel
    from convcheck.models.walk import walk_captured
    from tests.models.test_walk import INPUT_INFO, conv_layer, synthetic

    original = synthetic(path="original.onnx")
    first, second, third = original.layers
    swapped = np.ascontiguousarray(second.output[..., ::-1])
    port_third = conv_layer("third", swapped, third.kernel, third.pads)
    port = CapturedModel(**{**original.__dict__, "path": "port.onnx", "layers": [first, second, port_third]})
    report = walk_captured(original, port, input_info=INPUT_INFO)
    assert [layer.verdict for layer in report.layers] == ["equal"] * 3 and report.exit_code() == 0
    notes = report.layers[2].notes
    assert any("its input differs from the original's" in note and "no conv's verdict shows" in note
               for note in notes)
    faithful = walk_captured(original, synthetic(path="port.onnx"), input_info=INPUT_INFO)
    assert not any("input differs" in note for layer in faithful.layers for note in layer.notes)


def test_a_grouped_conv_written_as_a_dense_block_diagonal_one_is_the_same_layer():
    """A converter that writes groups=2 as a dense conv whose kernel is block-diagonal: the pair
    is matched and equal, with a note (a hunt got both layers unmatched, exit 1); a dense kernel
    whose blocks sit in the wrong groups is not read so."""
    from dataclasses import replace as changed

    from convcheck.models.layers import CapturedModel, ConvLayer, regroup
    from convcheck.models.walk import walk_captured
    from tests.models.test_walk import INPUT_INFO, conv_layer

    rng = np.random.default_rng(24)
    x = rng.standard_normal((1, 8, 8, 4)).astype(np.float32)
    compact = rng.standard_normal((3, 3, 2, 6)).astype(np.float32)   # groups 2: 2 inputs, 3 outputs a group
    dense = np.zeros((3, 3, 4, 6), np.float32)
    dense[:, :, 0:2, 0:3], dense[:, :, 2:4, 3:6] = compact[..., 0:3], compact[..., 3:6]
    same = ((1, 1), (1, 1))
    port_layer = conv_layer("dense", x, dense, same)
    original_layer = ConvLayer(name="grouped", op="Conv", kernel=compact, bias=None, stride=(1, 1), dilation=(1, 1),
                               groups=2, pads=same, padding="explicit", input=x, output=port_layer.output)
    regrouped = regroup(port_layer, 2)
    assert regrouped is not None and regrouped.groups == 2 and np.array_equal(regrouped.kernel, compact)

    def model(path, layer):
        return CapturedModel(path=path, format="onnx", layout="nhwc", input_shape=x.shape, input_dtype="float32",
                             layers=[layer])

    report = walk_captured(model("original.onnx", original_layer), model("port.onnx", port_layer),
                           input_info=INPUT_INFO)
    assert [layer.verdict for layer in report.layers] == ["equal"] and report.exit_code() == 0
    assert any("block-diagonal" in note for note in report.layers[0].notes)
    wrong = dense.copy()
    wrong[:, :, 0:2, 0:3], wrong[:, :, 2:4, 0:3] = 0.0, compact[..., 0:3]   # group 0's block read by group 1
    assert regroup(changed(port_layer, kernel=wrong), 2) is None


def test_a_filter_bank_with_symmetric_kernels_and_one_sobel_is_the_flip():
    """Symmetric kernels do not change under a flip: one channel that fails at most of its
    informative elements is enough to search the geometry (a hunt: 'scale [1, 1, 1, -1]')."""
    rng = np.random.default_rng(31)
    image = rng.standard_normal((16, 16)).astype(np.float32)
    gauss = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16
    laplace = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    box = np.full((3, 3), 1 / 9)
    bank = np.stack([gauss, laplace, box, SOBEL_X], axis=-1).astype(np.float32)   # (3, 3, 4)
    output = np.stack([sig.convolve2d(image, bank[..., o], "same") for o in range(4)], axis=-1).astype(np.float32)
    d = convcheck.explain(image[..., None], bank[:, :, None, :], output)
    assert d.verdict is Verdict.EXPLAINED
    assert d.explanation.changed_fields(d.baseline) == ("kernel_transform",)


@pytest.mark.torch
@pytest.mark.parametrize("step", [2.0 ** -6, 2.0 ** -8])
def test_a_fake_quantised_output_is_not_read_as_half_precision(step):
    """A float32 conv then a per-tensor fake quantisation with a power-of-two step: its values
    are half-format values because of the grid, so no half precision (input or storage) is
    named; float32 storage is refuted all the same."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(16)   # the third hunt's case
    x = rng.standard_normal((1, 256, 8, 8)).astype(np.float32)
    w = (rng.standard_normal((4, 256, 3, 3)) / np.sqrt(9 * 256)).astype(np.float32)
    with torch.no_grad():
        y = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1)
        q = torch.fake_quantize_per_tensor_affine(y, step, 0, -32768, 32767).numpy()
    d = convcheck.explain(x, w, q, layout="nchw", padding=1)
    assert d.verdict is not Verdict.EQUAL
    if d.verdict is Verdict.EXPLAINED:
        for reading in [d.explanation, *d.alternatives]:
            assert reading.precision == "float32" and reading.output_precision in (None, "float32")
