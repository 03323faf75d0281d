"""algorithm = winograd: the Winograd F(m x m, 3 x 3) bound (convcheck/winograd.py) holds on real
NNPACK outputs (PyTorch's CPU build with oneDNN off) and on float32 Winograd computations of
every tile size; NNPACK's Winograd outputs are explained by it, its FFT outputs by the FFT,
direct outputs stay direct, and corrupted outputs stay unexplained under every algorithm."""

import json
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner

import convcheck
from convcheck.engine import winograd
from convcheck.cli import main
from convcheck.engine.plausibility import pattern_ratio
from convcheck.formats import render_explain
from convcheck.formats.check_text import diagnosis_lines
from convcheck.engine.reference import correlate
from convcheck.engine.windows import extended_image
from convcheck.vocabulary import Explanation, Verdict, cause_for

U32 = 2.0 ** -24


def data(kind: str, shape, rng) -> np.ndarray:
    """float32 test data: normal, uniform in [0, 1), 8-bit pixel values, or high dynamic range
    (a tenth of the values 1e4 times larger)."""
    if kind == "normal":
        values = rng.standard_normal(shape)
    elif kind == "uniform":
        values = rng.random(shape)
    elif kind == "8bit":
        values = np.round(rng.random(shape) * 255)
    else:
        values = rng.standard_normal(shape) * np.where(rng.random(shape) < 0.1, 1e4, 1.0)
    return values.astype(np.float32)


def exact(image_nhwc: np.ndarray, kernel_hwio: np.ndarray, padding: str) -> np.ndarray:
    return correlate(image_nhwc.astype(np.float64), kernel_hwio.astype(np.float64), padding=padding)[0]


def bounds(image_nhwc: np.ndarray, kernel_hwio: np.ndarray, padding: str) -> dict:
    """winograd.error_bounds of every tile size, float32, for a 3x3 kernel."""
    image = image_nhwc.astype(np.float64)
    out_hw = exact(image_nhwc[:1], kernel_hwio, padding).shape[1:3]
    origin = (-1, -1) if padding == "same" else (0, 0)
    regions = np.stack([extended_image(sample, "zero", origin, out_hw, (3, 3)) for sample in image])
    return winograd.error_bounds(regions, kernel_hwio.astype(np.float64), out_hw, u=U32, tiny=2.0 ** -126,
                                 channels=kernel_hwio.shape[2])


def changed(d):
    return {f: getattr(d.explanation, f) for f in d.explanation.changed_fields(d.baseline)}


# ----------------------------------------------------------------------------- the transforms


@pytest.mark.parametrize("tile", list(winograd.TRANSFORMS))
def test_each_transform_computes_the_cross_correlation_exactly(tile):
    """In exact rational arithmetic, A^T [(G g) . (B^T d)] is the 1-D correlation of d with g."""
    at, g, bt = ([[Fraction(v).limit_denominator(1000) for v in row] for row in m] for m in winograd.TRANSFORMS[tile])
    m, size = len(at), len(bt)
    rng = np.random.default_rng(9)
    for _ in range(20):
        taps = [Fraction(int(v)) for v in rng.integers(-9, 10, 3)]
        signal = [Fraction(int(v)) for v in rng.integers(-9, 10, size)]
        kernel_t = [sum(g[i][k] * taps[k] for k in range(3)) for i in range(size)]
        signal_t = [sum(bt[i][k] * signal[k] for k in range(size)) for i in range(size)]
        result = [sum(at[r][i] * kernel_t[i] * signal_t[i] for i in range(size)) for r in range(m)]
        assert result == [sum(taps[k] * signal[r + k] for k in range(3)) for r in range(m)]


def test_rounding_counts_follow_the_transforms():
    """K = 2 kG + 2 kB + C + 2 kA + 1 with k = the most nonzeros in a row + 2."""
    assert winograd.rounding_count("F(6x6,3x3)", 1) == 2 * 5 + 2 * 8 + 1 + 2 * 9 + 1
    assert winograd.rounding_count("F(4x4,3x3)", 3) == 2 * 5 + 2 * 6 + 3 + 2 * 7 + 1
    assert winograd.rounding_count("F(2x2,3x3)", 16) == 2 * 5 + 2 * 4 + 16 + 2 * 5 + 1


def winograd_float32(image: np.ndarray, kernel: np.ndarray, tile: str) -> np.ndarray:
    """A float32 Winograd computation ('same' padding) from the matrices, as a library would run
    it: constants rounded to float32, every product and sum in float32 (BLAS sgemm)."""
    at, g, bt = (x.astype(np.float32) for x in winograd.TRANSFORMS[tile])
    m, size = at.shape[0], bt.shape[0]
    batch, height, width, _ = image.shape
    tiles_h, tiles_w = -(-height // m), -(-width // m)
    padded = np.zeros((batch, tiles_h * m + 2, tiles_w * m + 2, image.shape[3]), np.float32)
    padded[:, 1:height + 1, 1:width + 1] = image
    u = np.einsum("ip,pqco,jq->coij", g, kernel, g).astype(np.float32)            # (C, O, a, a)
    out = np.zeros((batch, tiles_h * m, tiles_w * m, kernel.shape[3]), np.float32)
    for ti in range(tiles_h):
        for tj in range(tiles_w):
            d = np.moveaxis(padded[:, ti * m:ti * m + size, tj * m:tj * m + size], 3, 1)   # (N, C, a, a)
            v = bt @ d @ bt.T
            acc = np.zeros((batch, kernel.shape[3], size, size), np.float32)
            for c in range(kernel.shape[2]):
                acc += v[:, c, None] * u[c][None]
            y = at @ acc @ at.T                                                       # (N, O, m, m)
            out[:, ti * m:(ti + 1) * m, tj * m:(tj + 1) * m] = np.moveaxis(y, 1, 3)
    return out[:, :height, :width]


@pytest.mark.parametrize("tile", list(winograd.TRANSFORMS))
@pytest.mark.parametrize("kind", ["normal", "hdr"])
def test_the_bound_holds_on_float32_winograd_of_every_tile_size(tile, kind):
    rng = np.random.default_rng(31)
    image, kernel = data(kind, (4, 20, 22, 3), rng), data("normal", (3, 3, 3, 2), rng)
    err = np.abs(winograd_float32(image, kernel, tile) - exact(image, kernel, "same"))
    bound = bounds(image, kernel, "same")[tile]
    assert np.max(err / bound) <= 1.0
    assert np.max(err) > 0   # a real rounding error, not an exact computation


@pytest.mark.parametrize("tile", winograd.RECOGNISABLE)
def test_a_float32_winograd_residual_follows_its_own_tiles(tile):
    """The pattern test of convcheck.engine.plausibility.winograd_tile: the residual of a tile size follows that tile's
    error pattern (ratio below 1), and more closely than the other tile size's (period 6 or 4)."""
    rng = np.random.default_rng(5)
    image, kernel = data("normal", (8, 24, 24, 1), rng), data("normal", (3, 3, 1, 1), rng)
    reference, mags = correlate(image.astype(np.float64), kernel.astype(np.float64), magnitude=True)
    residual = np.abs(winograd_float32(image, kernel, tile) - reference)
    terms = bounds(image, kernel, "same")
    mask = np.ones(residual.shape, dtype=bool)
    ratios = {t: pattern_ratio(residual, terms[t], mags, mask, winograd.tile_size(t)) for t in winograd.RECOGNISABLE}
    assert ratios[tile] < 1.0 and ratios[tile] == min(ratios.values())
    # A direct float32 sum's residual follows neither.
    direct = np.abs(exact(image, kernel, "same").astype(np.float32) - reference)
    assert all(pattern_ratio(direct, terms[t], mags, mask, winograd.tile_size(t)) > 1.0
               for t in winograd.RECOGNISABLE)


def test_only_tile_sizes_with_a_pattern_are_recognised():
    """F(2x2,3x3) amplifies its output positions alike (less than twice apart, relative to the
    direct magnitudes); F(4x4,3x3) and F(6x6,3x3) several times apart."""
    rng = np.random.default_rng(0)
    image, kernel = data("normal", (4, 36, 36, 1), rng), data("normal", (3, 3, 1, 1), rng)
    _, mags = correlate(image.astype(np.float64), kernel.astype(np.float64), magnitude=True)
    for tile, term in bounds(image, kernel, "same").items():
        m = winograd.tile_size(tile)
        group = np.broadcast_to(((np.arange(36) % m)[:, None] * m + np.arange(36) % m)[None, :, :, None],
                                term.shape).ravel()
        pattern = np.bincount(group, weights=(term / mags).ravel()) / np.bincount(group)
        spread = pattern.max() / pattern.min()
        assert (spread > 5.0) if tile in winograd.RECOGNISABLE else (spread < 2.0), (tile, spread)
    assert set(winograd.RECOGNISABLE) == set(winograd.TRANSFORMS) - {"F(2x2,3x3)"}


# ----------------------------------------------------------------------------- the vocabulary


def test_the_winograd_cause_has_its_own_summary_fix_and_why():
    cause = cause_for("algorithm", "winograd", Explanation(precision="float32"))
    assert "Winograd" in cause.summary and "torch.backends.nnpack" in cause.fix and "cudnn" in cause.fix
    assert "tile" in cause.why
    assert cause.why != cause_for("algorithm", "fft", Explanation(precision="float32")).why


def test_declared_winograd_needs_a_3x3_kernel_at_stride_1(tmp_path):
    with pytest.raises(convcheck.InputError, match="3x3 kernels at stride 1"):
        convcheck.explain(np.ones((8, 8)), np.ones((5, 5)), np.ones((8, 8)), algorithm="winograd")
    with pytest.raises(convcheck.InputError, match="3x3 kernels at stride 1"):
        convcheck.explain(np.ones((8, 8)), np.ones((3, 3)), np.ones((4, 4)), stride=2, algorithm="winograd")
    for name, array in (("i.npy", np.ones((8, 8))), ("k.npy", np.ones((5, 5))), ("o.npy", np.ones((8, 8)))):
        np.save(tmp_path / name, array)
    result = CliRunner().invoke(main, ["explain", str(tmp_path / "i.npy"), str(tmp_path / "k.npy"),
                                       str(tmp_path / "o.npy"), "--algorithm", "winograd"])
    assert result.exit_code == 2
    assert "3x3 kernels at stride 1" in result.output and "Traceback" not in result.output


def test_a_direct_output_with_a_3x3_kernel_stays_direct():
    rng = np.random.default_rng(4)
    image, kernel = data("normal", (16, 12, 12, 1), rng), data("normal", (3, 3, 1, 2), rng)
    out = exact(image, kernel, "same").astype(np.float32)
    d = convcheck.explain(image, kernel, out)
    assert d.verdict is Verdict.EQUAL and d.explanation.algorithm == "direct"


def test_a_perturbation_spread_over_the_output_is_not_winograd():
    """A kernel rounded to float16 moves every element by a fraction of the Winograd bound, but
    not along Winograd's tile pattern: never explained as Winograd."""
    rng = np.random.default_rng(12)
    image, kernel = data("normal", (16, 12, 12, 1), rng), data("normal", (3, 3, 1, 4), rng)
    out = exact(image, kernel.astype(np.float16), "same").astype(np.float32)
    d = convcheck.explain(image, kernel, out)
    assert d.explanation is None or d.explanation.algorithm != "winograd"
    assert convcheck.explain(image, kernel, out, algorithm="winograd").verdict is Verdict.UNEXPLAINED


# ----------------------------------------------------------------------------- real NNPACK outputs


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'convcheck[torch]'")
    if not torch.backends.nnpack.is_available():
        pytest.skip("this PyTorch build has no NNPACK: its Winograd and FFT paths cannot be run here")
    return torch


def nnpack(torch, image_nchw: np.ndarray, weight_oihw: np.ndarray, padding: int) -> np.ndarray:
    """F.conv2d as PyTorch's CPU build runs it with oneDNN off, without grad, at batch >= 16:
    through NNPACK (checked against torch._nnpack_spatial_convolution, bit for bit)."""
    x, w = torch.from_numpy(image_nchw), torch.from_numpy(weight_oihw)
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
        out = torch.nn.functional.conv2d(x, w, padding=padding)
        direct_nnpack = torch._nnpack_spatial_convolution(x, w, None, [padding, padding])
    assert torch.equal(out, direct_nnpack)
    return out.numpy()


def nnpack_case(torch, kind, batch, channels, outs, size, padding, seed):
    rng = np.random.default_rng(seed)
    image = data(kind, (batch, channels, size, size), rng)
    weight = data("normal", (outs, channels, 3, 3), rng)
    return image, weight, nnpack(torch, image, weight, padding)


def uses_winograd(size: int, padding: int) -> bool:
    """NNPACK's choice (src/convolution-output.c): 8x8 Winograd tiles when
    ceil(Ho/6) ceil(Wo/6) <= 4 ceil(Ho/14) ceil(Wo/14), else 16x16 FFT tiles."""
    out = size + 2 * padding - 2
    return (-(-out // 6)) ** 2 <= 4 * (-(-out // 14)) ** 2


# (kind, batch, channels, outputs, size, padding); NNPACK picks Winograd F(6x6,3x3) for these.
WINOGRAD_CASES = [("normal", 16, 1, 1, 12, 1), ("hdr", 16, 1, 2, 12, 1), ("normal", 16, 3, 4, 24, 1),
                  ("hdr", 16, 3, 2, 18, 0), ("uniform", 16, 1, 2, 18, 1), ("8bit", 16, 1, 1, 24, 1)]


@pytest.mark.torch
@pytest.mark.parametrize("case", WINOGRAD_CASES)
def test_nnpack_winograd_outputs_are_explained_by_winograd(torch, case):
    kind, batch, channels, outs, size, padding = case
    assert uses_winograd(size, padding)
    image, weight, out = nnpack_case(torch, *case, seed=size + channels)
    pad = "same" if padding else "valid"
    d = convcheck.explain(image, weight, out, layout="nchw", padding=pad)
    assert d.verdict is Verdict.EXPLAINED
    assert changed(d) == {"algorithm": "winograd"}
    assert d.stats.bound_ratio <= 1.0
    assert any("F(6x6,3x3)" in note for note in d.notes)
    declared = convcheck.explain(image, weight, out, layout="nchw", padding=pad, algorithm="winograd")
    assert declared.verdict is Verdict.EQUAL


# A grid of real outputs for the bound itself, Winograd paths only (1 to 64 channels).
BOUND_CASES = [(kind, 16, c, o, s, p) for kind in ("normal", "uniform", "8bit", "hdr")
               for (c, o, s, p) in ((1, 1, 12, 1), (3, 8, 24, 0), (16, 16, 30, 1), (64, 8, 12, 1), (8, 4, 36, 0))]


@pytest.mark.torch
def test_the_winograd_bound_holds_on_real_nnpack_errors(torch):
    """The largest |NNPACK - exact| / bound over the grid stays below 1 (it is below 0.07: the
    bound counts every rounding at its worst; real roundings partly cancel)."""
    worst = 0.0
    for case in BOUND_CASES:
        kind, _, channels, _, size, padding = case
        assert uses_winograd(size, padding)
        image, weight, out = nnpack_case(torch, *case, seed=channels * size)
        pad = "same" if padding else "valid"
        image_nhwc, kernel = image.transpose(0, 2, 3, 1), weight.transpose(2, 3, 1, 0)
        err = np.abs(out.transpose(0, 2, 3, 1) - exact(image_nhwc, kernel, pad))
        worst = max(worst, float(np.max(err / bounds(image_nhwc, kernel, pad)["F(6x6,3x3)"])))
    assert 0.0 < worst <= 1.0


@pytest.mark.torch
@pytest.mark.parametrize("kind, channels, size", [("normal", 1, 13), ("hdr", 1, 13), ("hdr", 1, 40),
                                                  ("normal", 1, 40)])
def test_nnpack_fft_outputs_are_explained_by_the_fft(torch, kind, channels, size):
    assert not uses_winograd(size, 1)
    image, weight, out = nnpack_case(torch, kind, 16, channels, 2, size, 1, seed=size)
    d = convcheck.explain(image, weight, out, layout="nchw")
    assert d.verdict is Verdict.EXPLAINED
    assert changed(d) == {"algorithm": "fft"}


@pytest.mark.torch
def test_direct_pytorch_outputs_and_nnpack_within_the_direct_bound_stay_direct(torch):
    rng = np.random.default_rng(8)
    image, weight = data("normal", (16, 1, 12, 12), rng), data("normal", (2, 1, 3, 3), rng)
    with torch.no_grad():   # oneDNN on (the default): a direct computation
        out = torch.nn.functional.conv2d(torch.from_numpy(image), torch.from_numpy(weight), padding=1).numpy()
    d = convcheck.explain(image, weight, out, layout="nchw")
    assert d.verdict is Verdict.EQUAL and d.explanation.algorithm == "direct"
    # With 64 channels the direct bound (gamma_576) covers NNPACK's Winograd error: direct explains it.
    image, weight, out = nnpack_case(torch, "normal", 16, 64, 4, 12, 1, seed=3)
    d = convcheck.explain(image, weight, out, layout="nchw")
    assert d.verdict is Verdict.EQUAL and d.explanation.algorithm == "direct"


@pytest.mark.torch
def test_winograd_rounding_is_not_taken_for_a_fitted_bias(torch):
    """With 16 channels NNPACK's output exceeds the direct bound at one element of 9216: a bias
    of -1e-4 fitted by the direct pass reproduces it too, but Winograd, which fits nothing, is
    the answer. The bias is not listed as an alternative: that one element alone needs it,
    and a parameter fitted to as many elements as it has is no cause (near-miss case 595)."""
    image, weight, out = nnpack_case(torch, "normal", 16, 16, 4, 12, 1, seed=3)
    d = convcheck.explain(image, weight, out, layout="nchw")
    assert d.verdict is Verdict.EXPLAINED and changed(d) == {"algorithm": "winograd"}
    assert d.alternatives == ()


@pytest.mark.torch
@pytest.mark.parametrize("where", ["peak", "flat"])
@pytest.mark.parametrize("case", [("normal", 16, 1, 2, 12, 1), ("hdr", 16, 3, 2, 24, 1), ("normal", 16, 1, 2, 13, 1)])
def test_corrupted_nnpack_outputs_stay_unexplained_under_every_algorithm(torch, case, where):
    image, weight, out = nnpack_case(torch, *case, seed=77)
    out = out.copy()
    flat = np.argmax(np.abs(out)) if where == "peak" else np.argmin(np.abs(out))
    index = np.unravel_index(flat, out.shape)
    out[index] += 1e-3 * np.max(np.abs(out))
    for algorithm in ("direct", "winograd", "fft"):
        d = convcheck.explain(image, weight, out, layout="nchw", algorithm=algorithm)
        assert d.verdict is Verdict.UNEXPLAINED, algorithm


@pytest.mark.torch
def test_winograd_from_the_cli_and_in_every_format(torch, tmp_path):
    image, weight, out = nnpack_case(torch, "normal", 16, 1, 1, 12, 1, seed=21)
    for name, array in (("x.npy", image), ("w.npy", weight), ("y.npy", out)):
        np.save(tmp_path / name, array)
    paths = [str(tmp_path / n) for n in ("x.npy", "w.npy", "y.npy")]
    runner = CliRunner()
    result = runner.invoke(main, ["explain", *paths, "--layout", "nchw", "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["verdict"] == "explained" and document["explanation"]["algorithm"] == "winograd"
    assert [c["field"] for c in document["causes"]] == ["algorithm"]
    declared = runner.invoke(main, ["explain", *paths, "--layout", "nchw", "--algorithm", "winograd",
                                    "--format", "json"])
    assert declared.exit_code == 0 and json.loads(declared.output)["verdict"] == "equal"
    d = convcheck.explain(image, weight, out, layout="nchw")
    names = {"image": "x.npy", "kernel": "w.npy", "output": "y.npy"}
    for fmt in ("table", "markdown", "junit", "github"):
        text = render_explain(d, fmt, names=names, width=400)
        assert "computed with Winograd" in text, fmt                                    # the summary
        assert "torch.backends.nnpack" in text, fmt                                     # the fix
        assert "computes each tile through transforms with large coefficients" in text, fmt   # the why
    assert any(line.startswith("  because: Winograd") for line in diagnosis_lines(d))
