"""`convcheck weights` and `convcheck.engine.weights.relate`: naming how one conv kernel was made from another.

Three parts: real weights ported by real framework calls (PyTorch -> Keras, a BatchNorm folded
by torch, float16 casts; marked torch/tensorflow), framework-free Hypothesis properties over
random shapes (every mapping the module claims is found and named, near misses and unrelated
kernels are unexplained, symmetric kernels give alternatives, degenerate kernels name no
layout), and the command line (exit codes, JSON, bad files).

The test builds ports with its own code (numpy transposes, flips, rot90), independent of
`convcheck.engine.weights`, and checks every claimed mapping by reading the port back with it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convcheck.cli import main
from convcheck.errors import InputError
from convcheck.vocabulary import Verdict
from convcheck.engine.weights import SCHEMA, relate

ORDERS = tuple(h + w + i + o for h in "hwio" for w in "hwio" for i in "hwio" for o in "hwio"
               if len({h, w, i, o}) == 4)
TRANSFORMS = ("identity", "rot180", "transpose", "anti_transpose", "flip_ud", "flip_lr", "rot90", "rot270")
U = {"float32": 2.0 ** -24, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}
ETA = {"float32": 2.0 ** -150, "float16": 2.0 ** -25, "bfloat16": 2.0 ** -134}
PROPERTY = settings(derandomize=True, max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- the test's own mappings


def transform(kernel: np.ndarray, name: str) -> np.ndarray:
    """CONTRACT section 2's kernel_transform on the (kh, kw) axes, written here independently."""
    swap = (1, 0, 2, 3)
    return {"identity": kernel, "rot180": kernel[::-1, ::-1], "transpose": kernel.transpose(swap),
            "anti_transpose": kernel[::-1, ::-1].transpose(swap), "flip_ud": kernel[::-1], "flip_lr": kernel[:, ::-1],
            "rot90": np.rot90(kernel, 1, axes=(0, 1)), "rot270": np.rot90(kernel, -1, axes=(0, 1))}[name]


def store(hwio: np.ndarray, layout: str) -> np.ndarray:
    """An HWIO kernel stored with its axes in `layout`, or OIHW values reshaped to the HWIO shape."""
    if layout == "oihw-reshaped":
        return np.ascontiguousarray(hwio.transpose(3, 2, 0, 1)).reshape(hwio.shape)
    return np.ascontiguousarray(hwio.transpose(["hwio".index(axis) for axis in layout]))


def read_back(port: np.ndarray, layout: str, shape) -> np.ndarray:
    """The inverse of `store`: the port read as HWIO."""
    if layout == "oihw-reshaped":
        kh, kw, c_in, c_out = shape
        return port.reshape(c_out, c_in, kh, kw).transpose(2, 3, 1, 0)
    return port.transpose([layout.index(axis) for axis in "hwio"])


def rounded(values: np.ndarray, precision: str) -> np.ndarray:
    if precision == "bfloat16":
        return values.astype(ml_dtypes.bfloat16).astype(np.float32)
    return values.astype(np.float16 if precision == "float16" else np.float32)


def make_port(original: np.ndarray, layout="hwio", kernel_transform="identity", factors=None, precision=None):
    """The port: transform, a float32 product with the factors, a rounding, then the storage layout."""
    kernel = transform(original, kernel_transform)
    if factors is not None:
        kernel = (kernel * np.asarray(factors, np.float32)).astype(np.float32)
    if precision is not None:
        kernel = rounded(kernel, precision)
    return store(kernel, layout)


def holds(original: np.ndarray, port: np.ndarray, mapping: dict) -> bool:
    """Whether `mapping` (a relation's) maps original to port: exactly, or for a factor within one
    rounding of each product in the port's precision (after one in float32)."""
    layout = mapping.get("kernel_layout", "hwio")
    expected = transform(original, mapping.get("kernel_transform", "identity")).astype(np.float64)
    actual = read_back(port, layout, original.shape).astype(np.float64)
    if actual.shape != expected.shape:
        return False
    precision = mapping.get("precision")
    if "scale" not in mapping:
        return np.array_equal(actual, rounded(expected, precision) if precision else expected)
    product = expected * np.asarray(mapping["scale"], np.float64)
    u = U["float32"] + (U[precision] * (1 + U["float32"]) if precision else 0.0)
    u *= 1 + 2.0 ** -40   # the float64 evaluation of this check and of the claimed factor
    return bool(np.all(np.abs(actual - product) <= u * np.abs(product) + 2 * ETA[precision or "float32"]))


def index_map(shape, mapping: dict) -> np.ndarray:
    """Where each port element comes from, under `mapping`'s layout and transform (values aside)."""
    probe = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    return make_port(probe, mapping.get("kernel_layout", "hwio"), mapping.get("kernel_transform", "identity"))


def changes(mapping: dict) -> int:
    return len(mapping)


# ----------------------------------------------------------------------------- strategies


@st.composite
def kernels(draw, least_per_channel: int = 1):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    c_in = draw(st.integers(1, 4))
    if kh * kw * c_in < least_per_channel:
        c_in = -(-least_per_channel // (kh * kw))
    c_out = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    return np.random.default_rng(seed).standard_normal((kh, kw, c_in, c_out)).astype(np.float32)


# Which fields a mapping changes (kernel_transform, kernel_layout, precision, scale): every combination.
COMBINATIONS = [(t, k, p, f) for t in (0, 1) for k in (0, 1) for p in (0, 1) for f in (0, 1)]
EACH = settings(PROPERTY, max_examples=12)


@st.composite
def mappings(draw, original: np.ndarray, changed):
    """A mapping this module claims to detect, for `original`'s shape: a layout (h before w for
    square kernels: there the other order is the transform 'transpose'), a shape-keeping
    transform, a factor (one, or one per channel away from 1) and a rounding."""
    kh, kw = original.shape[:2]
    layouts = ["hwio", "oihw-reshaped"] + [o for o in ORDERS if kh != kw or o.index("h") < o.index("w")]
    transforms = [t for t in TRANSFORMS if kh == kw or t in ("identity", "rot180", "flip_ud", "flip_lr")]
    mapping = {}
    if changed[0]:
        mapping["kernel_transform"] = draw(st.sampled_from(transforms[1:]))
    if changed[1]:
        mapping["kernel_layout"] = draw(st.sampled_from(layouts[1:]))
    if changed[2]:
        mapping["precision"] = draw(st.sampled_from(["float16", "bfloat16"]))
    factors = None
    if changed[3]:
        magnitudes = np.random.default_rng(draw(st.integers(0, 999))).uniform(1.1, 3.0, original.shape[-1])
        signs = draw(st.sampled_from([1.0, -1.0]))
        factors = (signs * magnitudes if draw(st.booleans()) else np.full(original.shape[-1], signs * 0.45))
        mapping["scale"] = factors.astype(np.float32)
    return mapping, factors


def port_for(original, mapping, factors):
    return make_port(original, mapping.get("kernel_layout", "hwio"), mapping.get("kernel_transform", "identity"),
                     factors, mapping.get("precision"))


# ----------------------------------------------------------------------------- properties


@pytest.mark.parametrize("changed", COMBINATIONS)
@EACH
@given(data=st.data())
def test_every_mapping_it_claims_is_found_and_named(changed, data):
    original = data.draw(kernels(least_per_channel=4))
    applied, factors = data.draw(mappings(original, changed))
    port = port_for(original, applied, factors)
    relation = relate(original, port)
    assert relation.verdict is not Verdict.UNEXPLAINED, relation.reason
    listed = [relation.mapping, *relation.alternatives]
    for mapping in listed:                       # sound: each claim maps original to port
        assert holds(original, port, mapping), mapping
    assert changes(relation.mapping) <= changes(applied)
    if changes(relation.mapping) == changes(applied):   # named: the applied map, or one moving every element alike
        wanted = {k: v for k, v in applied.items() if k != "scale"}
        assert any({k: v for k, v in m.items() if k != "scale"} == wanted
                   or np.array_equal(index_map(original.shape, m), index_map(original.shape, applied))
                   for m in listed if ("scale" in m) == ("scale" in applied)), (applied, listed)
    assert (relation.verdict is Verdict.EQUAL) == (not relation.mapping)


@PROPERTY
@given(kernels(), st.integers(0, 2 ** 32 - 1))
def test_a_random_unrelated_kernel_is_unexplained(original, seed):
    # [seed, 1]: not the stream the kernel was drawn from, whatever the seeds
    port = np.random.default_rng([seed, 1]).standard_normal(original.shape).astype(np.float32)
    relation = relate(original, port)
    assert relation.verdict is Verdict.UNEXPLAINED
    assert relation.mapping == {} and relation.causes == () and relation.reason


@pytest.mark.parametrize("changed", COMBINATIONS)
@EACH
@given(data=st.data())
def test_a_single_changed_weight_breaks_every_claim(changed, data):
    original = data.draw(kernels(least_per_channel=4))
    applied, factors = data.draw(mappings(original, changed))
    port = port_for(original, applied, factors)
    index = data.draw(st.integers(0, port.size - 1))
    # A factor's own rounding lets a weight sit up to ~2 ulps from where another weight puts the
    # factor (|d| <= u at each), so its near miss is 5 ulps; an exact claim's is 1 ulp.
    steps = 5 if "scale" in applied else 1
    nudged = port.copy()
    flat = nudged.reshape(-1)
    for _ in range(steps):
        flat[index] = np.nextafter(flat[index], np.array(np.inf, dtype=port.dtype))
    assert relate(original, nudged).verdict is Verdict.UNEXPLAINED
    scaled = port.astype(np.float64)
    scaled.reshape(-1)[index] = scaled.reshape(-1)[index] * 1.01 + (0.01 if scaled.reshape(-1)[index] == 0 else 0)
    assert relate(original, scaled.astype(port.dtype)).verdict is Verdict.UNEXPLAINED


@PROPERTY
@given(st.integers(2, 4), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2 ** 32 - 1))
def test_symmetric_kernels_give_alternatives(size, c_in, c_out, seed):
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((size, size, c_in, c_out)).astype(np.float32)
    symmetric = kernel + kernel.transpose(1, 0, 2, 3)          # k == k.T: rot180 == anti_transpose
    relation = relate(symmetric, make_port(symmetric, kernel_transform="rot180"))
    assert relation.mapping == {"kernel_transform": "rot180"}
    assert {"kernel_transform": "anti_transpose"} in relation.alternatives
    mirrored = kernel + kernel[:, ::-1]                       # left-right symmetric: flip_ud == rot180
    relation = relate(mirrored, make_port(mirrored, kernel_transform="flip_ud"))
    assert relation.mapping == {"kernel_transform": "rot180"}
    assert {"kernel_transform": "flip_ud"} in relation.alternatives


@PROPERTY
@given(st.tuples(*[st.integers(1, 4)] * 4), st.sampled_from([0.0, 1.0, -0.25, 3.5]),
       st.sampled_from(ORDERS), st.sampled_from([1.0, 1.5]))
def test_degenerate_kernels_never_get_a_layout_named(shape, value, layout, factor):
    original = np.full(shape, value, np.float32)
    port = store(np.full(shape, value * factor, np.float32), layout)
    relation = relate(original, port)
    for mapping in [relation.mapping, *relation.alternatives]:
        assert "kernel_layout" not in mapping and "kernel_transform" not in mapping
    if port.shape != original.shape:
        assert relation.verdict is Verdict.UNEXPLAINED and relation.reason.startswith("cannot decide")
    elif factor == 1.0 or value == 0.0:
        assert relation.verdict is Verdict.EQUAL
    elif original.size >= 4:
        assert relation.mapping == {"scale": pytest.approx(factor)}
    else:
        assert relation.verdict is Verdict.UNEXPLAINED and "cannot decide" in relation.reason


# ----------------------------------------------------------------------------- evidence and details


def test_a_factor_per_channel_needs_enough_weights_to_pin_it():
    rng = np.random.default_rng(3)
    few = rng.standard_normal((1, 1, 3, 4)).astype(np.float32)          # 3 weights per channel
    relation = relate(few, make_port(few, factors=[1.5, 2.0, 0.7, 3.0]))
    assert relation.verdict is Verdict.UNEXPLAINED
    assert relation.reason.startswith("cannot decide") and "fewer than 4 nonzero weights" in relation.reason
    enough = rng.standard_normal((2, 2, 1, 4)).astype(np.float32)      # 4 per channel: pinned
    relation = relate(enough, make_port(enough, factors=[1.5, 2.0, 0.7, 3.0]))
    assert relation.mapping["scale"] == pytest.approx([1.5, 2.0, 0.7, 3.0], rel=1e-6)
    zero_channel = enough.copy()
    zero_channel[..., 2] = 0.0
    relation = relate(zero_channel, make_port(zero_channel, factors=[1.5, 2.0, 0.7, 3.0]))
    assert relation.verdict is Verdict.UNEXPLAINED and "output channel 2 holds fewer" in relation.reason


def test_one_factor_for_all_channels_is_one_number():
    original = np.random.default_rng(4).standard_normal((3, 3, 2, 3)).astype(np.float32)
    relation = relate(original, make_port(original, factors=[0.25] * 3))
    assert relation.mapping == {"scale": pytest.approx(0.25)}
    assert isinstance(relation.mapping["scale"], float)
    assert relation.causes[0].field == "scale"


def test_depthwise_and_declared_layouts():
    rng = np.random.default_rng(5)
    torch_depthwise = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)       # (C, 1, kh, kw)
    keras_right = np.ascontiguousarray(torch_depthwise.transpose(2, 3, 0, 1))   # (kh, kw, C, 1)
    assert relate(torch_depthwise, keras_right, original_layout="oihw",
                  port_layout="depthwise").verdict is Verdict.EQUAL
    relation = relate(torch_depthwise, torch_depthwise.reshape(3, 3, 6, 1), original_layout="oihw",
                      port_layout="depthwise")
    assert relation.mapping == {"kernel_layout": "depthwise-reshaped"}
    assert "reshape instead of transpose" in relation.causes[0].summary
    keras = rng.standard_normal((3, 3, 4, 8)).astype(np.float32)
    relation = relate(keras, keras.reshape(8, 4, 3, 3), port_layout="oihw")     # Keras -> PyTorch by reshape
    assert relation.mapping == {"kernel_layout": "hwio-reshaped"}


def test_json_document_and_max_abs_diff():
    original = np.random.default_rng(6).standard_normal((8, 4, 3, 3)).astype(np.float32)
    relation = relate(original, original.reshape(3, 3, 4, 8), original_layout="oihw")
    document = json.loads(json.dumps(relation.to_json_dict(("a.npy", "b.npy"))))
    assert document["schema"] == SCHEMA == "convcheck/weights/1"
    assert document["verdict"] == "explained" and document["mapping"] == {"kernel_layout": "oihw-reshaped"}
    assert document["original"] == {"path": "a.npy", "shape": [8, 4, 3, 3], "dtype": "float32", "layout": "oihw"}
    assert set(document["causes"][0]) >= {"field", "value", "summary", "fix"}
    hwio = original.transpose(2, 3, 1, 0)
    assert document["max_abs_diff"] == pytest.approx(float(np.abs(original.reshape(3, 3, 4, 8) - hwio).max()))


@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, 3, 2)), "is 3-D"), (np.zeros((0, 3, 2, 2)), "no elements"),
    (np.full((1, 1, 2, 2), np.nan), "NaN"), (np.array([[["a"]]]), "text")])
def test_bad_arrays_are_one_line_input_errors(bad, message):
    with pytest.raises(InputError, match=message) as error:
        relate(np.zeros((1, 1, 2, 2)), bad)
    assert "\n" not in str(error.value)
    with pytest.raises(InputError, match="kernel layout 'xyzw'"):
        relate(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2)), port_layout="xyzw")


# ----------------------------------------------------------------------------- real frameworks


@pytest.fixture(scope="module")
def ported():
    """A torch Conv2d's and depthwise Conv2d's weights, loaded into Keras layers right and wrong."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    keras = pytest.importorskip("keras", reason="Keras is not installed")
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 4, 3)
    depthwise = torch.nn.Conv2d(4, 4, 3, groups=4)
    weight = conv.weight.detach().numpy()                        # OIHW (4, 4, 3, 3)
    dw_weight = depthwise.weight.detach().numpy()                # (4, 1, 3, 3)

    def keras_kernel(kernel, layer):
        layer.build((None, 8, 8, 4))
        layer.set_weights([kernel, np.zeros(layer.get_weights()[1].shape, np.float32)])
        return layer.get_weights()[0]

    keras_conv = {name: keras_kernel(kernel, keras.layers.Conv2D(4, 3)) for name, kernel in {
        "transpose": weight.transpose(2, 3, 1, 0), "reshape": weight.reshape(3, 3, 4, 4),
        "swapped": weight.transpose(2, 3, 0, 1), "flipped": weight.transpose(2, 3, 1, 0)[::-1, ::-1]}.items()}
    keras_dw = {name: keras_kernel(kernel, keras.layers.DepthwiseConv2D(3)) for name, kernel in {
        "transpose": dw_weight.transpose(2, 3, 0, 1), "reshape": dw_weight.reshape(3, 3, 4, 1)}.items()}
    return weight, dw_weight, keras_conv, keras_dw


@pytest.mark.torch
@pytest.mark.tensorflow
@pytest.mark.parametrize("how, expected", [
    ("transpose", {}), ("reshape", {"kernel_layout": "oihw-reshaped"}), ("swapped", {"kernel_layout": "hwoi"}),
    ("flipped", {"kernel_transform": "rot180"})])
def test_torch_conv_ported_to_keras(ported, how, expected):
    weight, _, keras_conv, _ = ported
    relation = relate(weight, keras_conv[how], original_layout="oihw")
    assert relation.mapping == expected
    assert relation.verdict is (Verdict.EQUAL if not expected else Verdict.EXPLAINED)


@pytest.mark.torch
@pytest.mark.tensorflow
def test_torch_depthwise_ported_to_keras_depthwise(ported):
    _, dw_weight, _, keras_dw = ported
    assert relate(dw_weight, keras_dw["transpose"], original_layout="oihw",
                  port_layout="depthwise").verdict is Verdict.EQUAL
    relation = relate(dw_weight, keras_dw["reshape"], original_layout="oihw", port_layout="depthwise")
    assert relation.mapping == {"kernel_layout": "depthwise-reshaped"}


@pytest.mark.torch
def test_batchnorm_folded_by_torch_is_its_factor_per_channel():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    torch.manual_seed(1)
    conv, bn = torch.nn.Conv2d(3, 6, 3), torch.nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)
    conv.eval(), bn.eval()
    fused = fuse_conv_bn_eval(conv, bn)
    relation = relate(conv.weight.detach().numpy(), fused.weight.detach().numpy(), original_layout="oihw",
                      port_layout="oihw")
    assert list(relation.mapping) == ["scale"]
    factor = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
    # torch computes the factor in float32 (var + eps, rsqrt, * weight: a few roundings) and the
    # fitted interval is ~2u wide: 8u covers both.
    assert np.all(np.abs(np.asarray(relation.mapping["scale"]) - factor) <= 8 * 2.0 ** -24 * np.abs(factor))
    assert relation.causes[0].field == "scale"


@pytest.mark.torch
def test_torch_half_and_bfloat16_casts_are_roundings():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    torch.manual_seed(2)
    weight = torch.nn.Conv2d(3, 5, 3).weight.detach()
    half = relate(weight.numpy(), weight.half().numpy(), original_layout="oihw", port_layout="oihw")
    assert half.mapping == {"precision": "float16"}
    bf16 = relate(weight.numpy(), weight.to(torch.bfloat16).float().numpy(), original_layout="oihw",
                  port_layout="oihw")
    assert bf16.mapping == {"precision": "bfloat16"}


# ----------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    rng = np.random.default_rng(7)
    weight = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    arrays = {"torch.npy": weight, "right.npy": np.ascontiguousarray(weight.transpose(2, 3, 1, 0)),
              "reshaped.npy": weight.reshape(3, 3, 4, 8),
              "other.npy": rng.standard_normal((3, 3, 4, 8)).astype(np.float32),
              "flat.npy": weight.reshape(-1)}
    for name, array in arrays.items():
        np.save(folder / name, array)
    (folder / "empty.npy").write_bytes(b"")
    (folder / "text.npy").write_text("not an array")
    return folder


def invoke(files, *args):
    runner = CliRunner(env={"NO_COLOR": "1", "COLUMNS": "160"})
    return runner.invoke(main, ["weights", *[str(files / a) if a.endswith(".npy") else a for a in args]])


def test_cli_exit_codes_and_table(files):
    result = invoke(files, "torch.npy", "right.npy", "--original-layout", "oihw")
    assert result.exit_code == 0 and "equal" in result.stdout
    result = invoke(files, "torch.npy", "reshaped.npy", "--original-layout", "OIHW")
    assert result.exit_code == 0
    assert "explained: kernel_layout oihw-reshaped" in result.stdout and "fix: " in result.stdout
    result = invoke(files, "torch.npy", "other.npy", "--original-layout", "oihw")
    assert result.exit_code == 1 and "unexplained: " in result.stdout


def test_cli_json_and_output_file(files, tmp_path):
    result = invoke(files, "torch.npy", "reshaped.npy", "--original-layout", "oihw", "--format", "json")
    document = json.loads(result.stdout)
    assert result.exit_code == 0 and document["schema"] == "convcheck/weights/1"
    assert document["mapping"] == {"kernel_layout": "oihw-reshaped"}
    assert document["port"]["path"].endswith("reshaped.npy") and document["alternatives"] == []
    report = tmp_path / "report.json"
    result = invoke(files, "torch.npy", "reshaped.npy", "--original-layout", "oihw", "--format", "json",
                    "--output", str(report))
    assert result.exit_code == 0 and json.loads(report.read_text())["verdict"] == "explained"


@pytest.mark.parametrize("port, message", [
    ("missing.npy", "no such file"), ("empty.npy", "is empty"), ("text.npy", "is not a .npy file"),
    ("flat.npy", "is 1-D")])
def test_cli_bad_files_are_one_line_exit_2(files, port, message):
    result = invoke(files, "torch.npy", port, "--original-layout", "oihw")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert port in result.stderr


def test_cli_refuses_an_unknown_layout_and_overwriting_an_input(files):
    result = invoke(files, "torch.npy", "right.npy", "--port-layout", "nchw")
    assert result.exit_code == 2 and "is not hwio, oihw, depthwise" in result.stderr
    result = invoke(files, "torch.npy", "right.npy", "--output", str(files / "right.npy"))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1


def test_weights_help_imports_no_numpy():
    code = ("import sys\nfrom convcheck.cli import main\n"
            "try:\n    main(['weights', '--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "print('NUMPY', 'numpy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "NUMPY False"


@pytest.mark.parametrize("make, field, words", [
    (lambda w: w[::-1, ::-1], "kernel_transform", "the port's kernel is the original's with its taps rotated"),
    (lambda w: w * np.linspace(0.5, 1.5, w.shape[-1]), "scale", "the port's weights are the original's times"),
    (lambda w: w.astype(ml_dtypes.bfloat16).astype(np.float64), "precision",
     "the port's weights are the original's rounded to bfloat16"),
])
def test_causes_speak_of_weights_not_of_an_output(make, field, words):
    """A hunt: the causes were explain's sentences ("every output element was multiplied by 2",
    "the inputs were rounded to bfloat16", "use scipy.signal.correlate2d")."""
    original = np.random.default_rng(21).standard_normal((3, 3, 4, 8))
    relation = relate(original, make(original))
    assert relation.verdict is Verdict.EXPLAINED
    (cause,) = relation.causes
    assert cause.field == field and cause.summary.startswith(words)
    for phrase in ("output element", "the inputs", "correlate2d", "reference"):
        assert phrase not in cause.summary + cause.fix


def test_a_missing_port_file_is_named_as_the_port(tmp_path):
    np.save(tmp_path / "original.npy", np.ones((3, 3, 1, 1)))
    done = CliRunner().invoke(main, ["weights", str(tmp_path / "original.npy"), str(tmp_path / "port.npy")])
    assert done.exit_code == 2
    assert "port file" in done.output and "kernel file" not in done.output
