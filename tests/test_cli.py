"""The command line, driven with click's CliRunner: exit codes (CONTRACT section 4),
stdout carrying only the report, one-line errors on stderr. Nothing here imports
TensorFlow: compare runs only the scipy backends (see test_cli_tensorflow.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal
from click.testing import CliRunner

from convcheck.backends import BACKENDS
from convcheck.cli import main
from convcheck.cli.compare import compare_exit_code
from convcheck.comparison import demo_paths
from convcheck.results import BackendResult, CompareReport

SCIPY = "scipy.signal.convolve2d,scipy.signal.correlate2d"
ANSI = re.compile(r"\x1b\[")
STATS_KEYS = {"max_abs_diff", "max_rel_diff", "mismatched", "total", "worst_index", "residual_after",
              "error_bound"}


@pytest.fixture
def runner():
    # Colour and width must not depend on the environment the tests run in.
    return CliRunner(env={"NO_COLOR": None, "FORCE_COLOR": None, "COLUMNS": "160"})


@pytest.fixture
def files(tmp_path, monkeypatch):
    """The demo image and kernel as float64 .npy files plus outputs made with scipy."""
    monkeypatch.chdir(tmp_path)
    image_path, kernel_path = demo_paths()
    image = np.load(image_path).astype(np.float64)
    kernel = np.load(kernel_path).astype(np.float64)
    corrupted = scipy.signal.correlate2d(image, kernel, mode="same")
    corrupted[2, 5] += 0.5
    arrays = {
        "image.npy": image,
        "kernel.npy": kernel,
        "convolved.npy": scipy.signal.convolve2d(image, kernel, mode="same"),
        "correlated.npy": scipy.signal.correlate2d(image, kernel, mode="same"),
        "corrupted.npy": corrupted,
    }
    for name, array in arrays.items():
        np.save(tmp_path / name, array)
    return tmp_path


def invoke(runner, *args):
    return runner.invoke(main, list(args), catch_exceptions=False)


def assert_input_error(result, *, mentions: str):
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert mentions in lines[0]
    assert "Traceback" not in result.stderr


# ----------------------------------------------------------------------------- explain


def test_explain_convolve2d_is_explained_by_rot180(runner, files):
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "convolved.npy")
    assert result.exit_code == 0
    assert result.stdout.startswith("≈ explained: convolved.npy differs from the reference")
    assert "kernel_transform: the kernel was flipped 180 degrees" in result.stdout
    assert "fix: use scipy.signal.correlate2d" in result.stdout
    assert result.stderr == ""


def test_explain_correlate2d_is_equal(runner, files):
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "correlated.npy")
    assert result.exit_code == 0
    assert result.stdout.startswith("✓ equal: correlated.npy matches the reference")


def test_explain_corrupted_output_is_unexplained_exit_1(runner, files):
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "corrupted.npy")
    assert result.exit_code == 1
    assert result.stdout.startswith("✗ unexplained")
    assert "closest candidate (does NOT match)" in result.stdout
    assert "[2, 5]" in result.stdout


@pytest.mark.parametrize("output, code", [("convolved.npy", 1), ("correlated.npy", 0)])
def test_explain_strict_fails_anything_not_equal(runner, files, output, code):
    result = invoke(runner, "explain", "image.npy", "kernel.npy", output, "--strict")
    assert result.exit_code == code


def test_explain_json_is_the_contract_document(runner, files):
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "convolved.npy", "--format", "json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)  # nothing but the report on stdout
    assert {"schema", "verdict", "explanation", "causes", "stats"} <= set(document)
    assert document["schema"] == "convcheck/explain/2"
    assert document["verdict"] == "explained"
    assert document["explanation"]["kernel_transform"] == "rot180"
    assert [c["field"] for c in document["causes"]] == ["kernel_transform"]
    assert set(document["causes"][0]) == {"field", "value", "summary", "fix", "why"}
    assert STATS_KEYS <= set(document["stats"])
    assert document["stats"]["total"] == 64 and document["stats"]["mismatched"] == 64


def test_explain_unexplained_json_has_null_explanation(runner, files):
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "corrupted.npy", "--format", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["verdict"] == "unexplained" and document["explanation"] is None


@pytest.mark.parametrize("fmt", ["markdown", "junit", "github"])
def test_explain_other_formats(runner, files, fmt):
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "convolved.npy", "--format", fmt)
    assert result.exit_code == 0
    assert result.stdout.strip()


def test_explain_precision_and_padding_options(runner, files):
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "correlated.npy",
                    "--precision", "float64", "--padding", "same", "--kernel-layout", "hwio",
                    "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["verdict"] == "equal"


def test_output_file_gets_the_report_and_the_terminal_the_table(runner, files):
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "convolved.npy",
                    "--format", "json", "--output", "report.json")
    assert result.exit_code == 0
    assert json.loads((files / "report.json").read_text())["verdict"] == "explained"
    assert result.stdout.startswith("≈ explained")
    assert "report.json" in result.stderr


# ----------------------------------------------------------------------------- bad input


def test_missing_file(runner, files):
    assert_input_error(invoke(runner, "explain", "image.npy", "nope.npy", "correlated.npy"),
                       mentions="nope.npy")


def test_pickled_object_array(runner, files):
    np.save(files / "objects.npy", np.array([[{"a": 1}, None]], dtype=object), allow_pickle=True)
    assert_input_error(invoke(runner, "explain", "objects.npy", "kernel.npy", "correlated.npy"),
                       mentions="objects.npy")


def test_nan_in_output(runner, files):
    bad = np.load(files / "correlated.npy")
    bad[1, 1] = np.nan
    np.save(files / "nan.npy", bad)
    assert_input_error(invoke(runner, "explain", "image.npy", "kernel.npy", "nan.npy"), mentions="NaN")


def test_wrong_shape_for_compare(runner, files):
    np.save(files / "flat.npy", np.arange(5.0))
    assert_input_error(invoke(runner, "compare", "flat.npy", "kernel.npy", "--backends", SCIPY),
                       mentions="flat.npy")


def test_unknown_backend(runner, files):
    assert_input_error(invoke(runner, "compare", "image.npy", "kernel.npy", "--backends", "torch.conv"),
                       mentions="torch.conv")


def test_bad_input_writes_no_report(runner, files):
    result = invoke(runner, "explain", "image.npy", "nope.npy", "correlated.npy",
                    "--format", "json", "--output", "report.json")
    assert_input_error(result, mentions="nope.npy")
    assert not (files / "report.json").exists()


def test_output_into_missing_folder_is_refused_before_work(runner, files):
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "correlated.npy",
                    "--output", "no/such/folder/report.json")
    assert_input_error(result, mentions="--output")


def test_click_usage_errors_exit_2(runner, files):
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "correlated.npy", "--padding", "wide")
    assert result.exit_code == 2
    assert result.stdout == ""
    result = invoke(runner, "explain", "image.npy")
    assert result.exit_code == 2


# ----------------------------------------------------------------------------- colour


def test_no_color_is_honoured(files):
    args = ["explain", "image.npy", "kernel.npy", "convolved.npy"]
    forced = CliRunner(env={"FORCE_COLOR": "1", "NO_COLOR": None}).invoke(main, args)
    assert ANSI.search(forced.stdout)
    plain = CliRunner(env={"FORCE_COLOR": "1", "NO_COLOR": "1"}).invoke(main, args)
    assert plain.exit_code == 0
    assert not ANSI.search(plain.stdout)
    piped = CliRunner(env={"FORCE_COLOR": None, "NO_COLOR": None}).invoke(main, args)
    assert not ANSI.search(piped.stdout)


def test_report_file_is_never_coloured(files):
    CliRunner(env={"FORCE_COLOR": "1", "NO_COLOR": None}).invoke(
        main, ["explain", "image.npy", "kernel.npy", "convolved.npy", "--output", "report.txt"])
    assert not ANSI.search((files / "report.txt").read_text())


# ----------------------------------------------------------------------------- compare


def test_compare_scipy_backends(runner, files):
    result = invoke(runner, "compare", "image.npy", "kernel.npy", "--backends", SCIPY)
    assert result.exit_code == 0
    assert "scipy.signal.convolve2d" in result.stdout and "scipy.signal.correlate2d" in result.stdout
    assert "≈ explained" in result.stdout and "✓ equal" in result.stdout
    assert "kernel flipped" in result.stdout and "180° (true" in result.stdout, result.stdout  # a wrapped cell
    assert "kernel rot180" not in result.stdout
    assert result.stdout.count("Why: ") == 1
    assert "--library-defaults" in result.stdout  # the report's note


def test_compare_json(runner, files):
    result = invoke(runner, "compare", "image.npy", "kernel.npy", "--backends", SCIPY, "--format", "json",
                    "--dtype", "float64", "--padding", "same")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["schema"] == "convcheck/compare/2"
    assert document["settings"]["dtype"] == "float64"
    rows = {row["backend"]: row for row in document["results"]}
    assert rows["scipy.signal.convolve2d"]["verdict"] == "explained"
    assert rows["scipy.signal.correlate2d"]["verdict"] == "equal"
    assert STATS_KEYS <= set(rows["scipy.signal.correlate2d"]["stats"])


def test_compare_strict_fails_the_flip(runner, files):
    result = invoke(runner, "compare", "image.npy", "kernel.npy", "--backends", SCIPY, "--strict")
    assert result.exit_code == 1


def test_compare_markdown(runner, files):
    result = invoke(runner, "compare", "image.npy", "kernel.npy", "--backends", SCIPY, "--format", "markdown")
    assert result.exit_code == 0
    assert "| `scipy.signal.convolve2d` |" in result.stdout


@pytest.fixture
def tensorflow_missing(monkeypatch):
    backend = BACKENDS["tf.nn.conv2d"]
    monkeypatch.setattr(backend, "availability",
                        lambda: (False, "tensorflow is not installed: pip install tensorflow-cpu"))
    return backend


def test_requested_backend_missing_exits_3(runner, files, tensorflow_missing):
    result = invoke(runner, "compare", "image.npy", "kernel.npy",
                    "--backends", "scipy.signal.correlate2d,tf.nn.conv2d")
    assert result.exit_code == 3
    assert "skipped" in result.stdout and "tensorflow is not installed" in result.stdout
    assert "✓ equal" in result.stdout  # the other rows are still reported


def test_requested_backend_missing_json_row(runner, files, tensorflow_missing):
    result = invoke(runner, "compare", "image.npy", "kernel.npy",
                    "--backends", "scipy.signal.correlate2d,tf.nn.conv2d", "--format", "json")
    assert result.exit_code == 3
    rows = {row["backend"]: row for row in json.loads(result.stdout)["results"]}
    assert rows["tf.nn.conv2d"]["status"] == "skipped"
    assert "pip install" in rows["tf.nn.conv2d"]["reason"]


def test_mismatch_beats_missing_backend(runner, files, tensorflow_missing):
    result = invoke(runner, "compare", "image.npy", "kernel.npy",
                    "--backends", "scipy.signal.convolve2d,tf.nn.conv2d", "--strict")
    assert result.exit_code == 1


def test_failed_backend_exits_3(runner, files, monkeypatch):
    backend = BACKENDS["scipy.signal.correlate2d"]

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(backend, "_run", broken)
    result = invoke(runner, "compare", "image.npy", "kernel.npy", "--backends", SCIPY)
    assert result.exit_code == 3
    assert "failed" in result.stdout and "RuntimeError: boom" in result.stdout


def test_compare_exit_code_rules(files):
    from convcheck.engine import explain

    image = np.load(files / "image.npy")
    kernel = np.load(files / "kernel.npy")
    equal = explain(image, kernel, np.load(files / "correlated.npy"))
    unexplained = explain(image, kernel, np.load(files / "corrupted.npy"))

    def report(*rows):
        return CompareReport({}, {}, tuple(rows))

    ok = BackendResult("a", "ok", diagnosis=equal)
    bad = BackendResult("b", "ok", diagnosis=unexplained)
    skipped = BackendResult("c", "skipped", reason="not installed")
    skipped_requested = BackendResult("c", "skipped", reason="not installed", requested=True)
    failed = BackendResult("d", "failed", reason="boom")
    assert compare_exit_code(report(ok, skipped)) == 0      # not asked for by name
    assert compare_exit_code(report(ok, skipped_requested)) == 3
    assert compare_exit_code(report(ok, failed)) == 3       # failed outright, asked or not
    assert compare_exit_code(report(bad, failed)) == 1      # 1 beats 3
    assert compare_exit_code(report(ok), strict=True) == 0


# ----------------------------------------------------------------------------- demo, backends


def test_demo_with_scipy_backends_tells_its_story(runner):
    result = invoke(runner, "demo", "--backends", SCIPY)
    assert result.exit_code == 0
    assert "scipy.signal.convolve2d differs from the reference only because the kernel was flipped " \
           "180 degrees" in result.stdout
    assert "scipy.signal.correlate2d computes the cross-correlation that deep-learning frameworks call " \
           "convolution, and agrees with the reference within float32 rounding." in result.stdout


def test_demo_json_keeps_stdout_parseable(runner):
    result = invoke(runner, "demo", "--backends", SCIPY, "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["schema"] == "convcheck/compare/2"
    assert "flipped 180 degrees" in result.stderr


def test_backends_lists_every_backend(runner, tensorflow_missing):
    result = invoke(runner, "backends")
    assert result.exit_code == 0
    for name in BACKENDS:
        assert name in result.stdout
    assert "tensorflow is not installed" in result.stdout
    rows = json.loads(invoke(runner, "backends", "--format", "json").stdout)["backends"]
    assert [row["backend"] for row in rows] == list(BACKENDS)
    tf = next(row for row in rows if row["backend"] == "tf.nn.conv2d")
    assert tf["available"] is False and tf["version"] is None and "pip install" in tf["reason"]


# ----------------------------------------------------------------------------- plot


def test_plot_writes_a_png(runner, files):
    pytest.importorskip("matplotlib")
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "convolved.npy", "--plot", "diff.png")
    assert result.exit_code == 0
    assert (files / "diff.png").read_bytes().startswith(b"\x89PNG")
    assert "diff.png" in result.stderr


def test_plot_without_matplotlib_is_exit_2_before_any_work(runner, files, monkeypatch):
    import convcheck.plot
    from convcheck.errors import InputError

    def missing():
        raise InputError("--plot needs matplotlib: pip install 'convcheck[plot]'")

    monkeypatch.setattr(convcheck.plot, "require_matplotlib", missing)
    result = invoke(runner, "compare", "image.npy", "kernel.npy", "--backends", SCIPY, "--plot", "diff.png")
    assert_input_error(result, mentions="pip install")
    assert not (files / "diff.png").exists()


# ----------------------------------------------------------------------------- imports


def _run_python(code: str, cwd=None) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_help_imports_no_numeric_stack():
    code = ("import sys\n"
            "from convcheck.cli import main\n"
            "try:\n    main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('numpy', 'scipy', 'tensorflow') if m in sys.modules))")
    assert _run_python(code).splitlines()[-1] == "HEAVY []"


def test_explain_never_imports_tensorflow(files):
    code = ("import sys\n"
            "from convcheck.cli import main\n"
            "code = main(['explain', 'image.npy', 'kernel.npy', 'convolved.npy', '--format', 'json'],"
            " standalone_mode=False)\n"
            "print('TF', 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    assert _run_python(code, cwd=files).splitlines()[-1] == "TF False False"


def test_compare_with_scipy_backends_never_imports_tensorflow(files):
    code = ("import sys\n"
            "from convcheck.cli import main\n"
            f"main(['compare', 'image.npy', 'kernel.npy', '--backends', '{SCIPY}', '--format', 'json'],"
            " standalone_mode=False)\n"
            "print('TF', 'tensorflow' in sys.modules)")
    assert _run_python(code, cwd=files).splitlines()[-1] == "TF False"


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "convcheck", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0
    assert "explain" in result.stdout and "compare" in result.stdout and "demo" in result.stdout


def test_cli_default_max_elements_matches_the_library():
    from convcheck.cli.options import DEFAULT_MAX_ELEMENTS
    from convcheck.inputs import DEFAULT_MAX_ELEMENTS as LIBRARY_DEFAULT
    assert DEFAULT_MAX_ELEMENTS == LIBRARY_DEFAULT


# ----------------------------------------------------------------------------- --backends names


def test_backends_aliases_and_groups(runner, files):
    result = invoke(runner, "compare", "image.npy", "kernel.npy", "--backends",
                    "ndimage,correlate2d,scipy.convolve2d", "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = [row["backend"] for row in json.loads(result.stdout)["results"]]
    assert rows == ["scipy.ndimage.correlate", "scipy.signal.correlate2d", "scipy.signal.convolve2d"]
    assert json.loads(result.stdout)["settings"]["backends"] == rows
    result = invoke(runner, "compare", "image.npy", "kernel.npy", "--backends", "scipy",
                    "--format", "json")
    rows = [row["backend"] for row in json.loads(result.stdout)["results"]]
    assert rows == [name for name in BACKENDS if name.startswith("scipy.")]


def test_unknown_backend_lists_names_aliases_and_groups(runner, files):
    result = invoke(runner, "compare", "image.npy", "kernel.npy", "--backends", "scipy,pytorch2")
    assert_input_error(result, mentions="'pytorch2'")
    for word in ("torch.nn.functional.conv2d", "aliases", "cv2", "groups", "dl"):
        assert word in result.stderr


def test_backends_shell_completion():
    from convcheck.cli.options import _complete_backends

    assert [c.value for c in _complete_backends(None, None, "tor")] == [
        "torch.nn.functional.conv2d", "torch"]
    assert [c.value for c in _complete_backends(None, None, "tf,d")] == ["tf,dl"]


def test_import_message_names_the_frameworks(files, monkeypatch):
    from convcheck.cli import compare as cli_compare

    said = []
    monkeypatch.setattr(cli_compare, "talk", said.append)
    monkeypatch.setattr(cli_compare, "compare_inputs", None, raising=False)
    import convcheck.comparison as comparison
    monkeypatch.setattr(comparison, "compare_inputs", lambda *a, **k: None)
    for name in ("torch", "cv2"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(BACKENDS["torch.nn.functional.conv2d"], "availability", lambda: (True, None))
    monkeypatch.setattr(BACKENDS["cv2.filter2D"], "availability", lambda: (True, None))
    cli_compare.run_compare(None, padding="same", dtype=None,
                     backends=["scipy.signal.correlate2d", "torch.nn.functional.conv2d", "cv2.filter2D"],
                     library_defaults=False, keep_arrays=False)
    assert said == ["importing PyTorch, OpenCV for 2 backends (this takes a few seconds)..."]


# ----------------------------------------------------------------------------- geometry (CONTRACT v2)


@pytest.fixture
def geometry(tmp_path, monkeypatch):
    """Strided, dilated, NCHW-batch and depthwise inputs with outputs from scipy and the reference."""
    from convcheck.engine.reference import reference

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(11)
    image = rng.standard_normal((9, 9))  # odd: TF SAME at stride 2 pads 1 on each side, as scipy does
    kernel = rng.standard_normal((3, 3))
    strided = scipy.signal.correlate2d(image, kernel, mode="same")[::2, ::2]
    np.testing.assert_allclose(strided, reference(image, kernel, "same", stride=(2, 2)), rtol=0, atol=1e-12)
    dilated = reference(image, kernel, "same", dilation=(2, 2))
    batch = rng.standard_normal((2, 7, 7, 3))
    hwio = rng.standard_normal((3, 3, 3, 4))
    batch_out = reference(batch, hwio, "same", stride=(2, 2))  # (2, 4, 4, 4)
    rgb = rng.standard_normal((7, 7, 3))
    depthwise = rng.standard_normal((3, 3, 3, 2))  # (kh, kw, C_in, multiplier)
    # Output channel c * multiplier + m: the grouped HWIO kernel (kh, kw, 1, C_in * multiplier).
    depthwise_out = reference(rgb, depthwise.reshape(3, 3, 1, 6), "same", groups=3)
    arrays = {
        "image.npy": image, "kernel.npy": kernel, "strided.npy": strided, "dilated.npy": dilated,
        "x_nchw.npy": batch.transpose(0, 3, 1, 2), "w_oihw.npy": hwio.transpose(3, 2, 0, 1),
        "y_nchw.npy": batch_out.transpose(0, 3, 1, 2),
        "rgb.npy": rgb, "depthwise.npy": depthwise, "depthwise_out.npy": depthwise_out,
    }
    for name, array in arrays.items():
        np.save(tmp_path / name, array)
    return tmp_path


def _json(result):
    return json.loads(result.stdout)


def test_explain_stride_option_sets_the_expected_stride(runner, geometry):
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "strided.npy", "--stride", "2", "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = _json(result)
    assert document["verdict"] == "equal"
    assert document["explanation"]["stride"] == [2, 2]
    assert document["causes"] == []
    # Without --stride the same output is explained by the stride it ran with.
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "strided.npy", "--format", "json")
    assert result.exit_code == 0
    document = _json(result)
    assert document["verdict"] == "explained"
    assert document["explanation"]["stride"] == [2, 2]
    assert [cause["field"] for cause in document["causes"]] == ["stride"]
    assert document["causes"][0]["value"] == [2, 2]
    # --strict: an explained stride fails; the declared one passes.
    assert invoke(runner, "explain", "image.npy", "kernel.npy", "strided.npy", "--strict").exit_code == 1
    assert invoke(runner, "explain", "image.npy", "kernel.npy", "strided.npy", "--strict",
                  "--stride", "2,2").exit_code == 0


def test_explain_dilation_option(runner, geometry):
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "dilated.npy", "--dilation", "2",
                    "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = _json(result)
    assert document["verdict"] == "equal"
    assert document["explanation"]["dilation"] == [2, 2]
    assert document["explanation"]["stride"] == [1, 1]


def test_explain_nchw_batch_with_oihw_default(runner, geometry):
    result = invoke(runner, "explain", "x_nchw.npy", "w_oihw.npy", "y_nchw.npy", "--layout", "nchw",
                    "--stride", "2", "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = _json(result)
    assert document["verdict"] == "equal"
    explanation = document["explanation"]
    assert explanation["stride"] == [2, 2]
    assert explanation["kernel_layout"] == "oihw"   # the default with --layout nchw
    assert explanation["output_layout"] == "chw"
    assert document["stats"]["total"] == 2 * 4 * 4 * 4
    assert len(document["stats"]["worst_index"]) == 4  # an index into the (N, C, H, W) output
    # Spelling the kernel layout out changes nothing; --layout is case-insensitive.
    again = invoke(runner, "explain", "x_nchw.npy", "w_oihw.npy", "y_nchw.npy", "--layout", "NCHW",
                   "--kernel-layout", "oihw", "--stride", "2", "--format", "json")
    assert again.exit_code == 0 and _json(again)["verdict"] == "equal"


def test_explain_nchw_output_read_channels_last_is_refused_one_line(runner, geometry):
    # The same NCHW files without --layout nchw: the 4-D kernel is read as HWIO and does not fit.
    result = invoke(runner, "explain", "x_nchw.npy", "w_oihw.npy", "y_nchw.npy", "--stride", "2")
    assert_input_error(result, mentions="kernel")


def test_explain_depthwise_kernel_layout_and_groups(runner, geometry):
    result = invoke(runner, "explain", "rgb.npy", "depthwise.npy", "depthwise_out.npy",
                    "--kernel-layout", "depthwise", "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = _json(result)
    assert document["verdict"] == "equal"
    assert document["explanation"]["groups"] == 3
    assert document["explanation"]["kernel_layout"] == "depthwise"
    assert invoke(runner, "explain", "rgb.npy", "depthwise.npy", "depthwise_out.npy", "--kernel-layout",
                  "depthwise", "--groups", "3", "--strict").exit_code == 0
    # Declaring dense groups: the groups the output shows are the cause.
    result = invoke(runner, "explain", "rgb.npy", "depthwise.npy", "depthwise_out.npy",
                    "--kernel-layout", "depthwise", "--groups", "1", "--format", "json")
    assert result.exit_code == 0
    document = _json(result)
    assert document["verdict"] == "explained"
    assert [(c["field"], c["value"]) for c in document["causes"]] == [("groups", 3)]


def test_compare_stride_and_dilation_reach_every_backend(runner, geometry):
    result = invoke(runner, "compare", "image.npy", "kernel.npy", "--backends", SCIPY, "--stride", "2",
                    "--dilation", "1,2", "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = _json(result)
    assert document["settings"]["stride"] == [2, 2]
    assert document["settings"]["dilation"] == [1, 2]
    assert document["settings"]["groups"] == 1
    rows = {row["backend"]: row for row in document["results"]}
    assert rows["scipy.signal.correlate2d"]["verdict"] == "equal"
    assert rows["scipy.signal.correlate2d"]["shape"] == [5, 5]
    assert rows["scipy.signal.convolve2d"]["verdict"] == "explained"
    for row in rows.values():
        assert row["explanation"]["stride"] == [2, 2]
        assert row["explanation"]["dilation"] == [1, 2]


def test_compare_nchw_batch_and_depthwise(runner, geometry):
    result = invoke(runner, "compare", "x_nchw.npy", "w_oihw.npy", "--layout", "nchw", "--stride", "2",
                    "--backends", "scipy.signal.correlate2d", "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = _json(result)
    assert document["settings"]["stride"] == [2, 2]
    assert document["settings"]["layout"] == "nchw"
    assert document["inputs"]["image"]["shape"] == [2, 3, 7, 7]
    (row,) = document["results"]
    assert row["verdict"] == "equal" and row["shape"] == [2, 4, 4, 4]
    result = invoke(runner, "compare", "rgb.npy", "depthwise.npy", "--kernel-layout", "depthwise",
                    "--backends", "scipy.signal.correlate2d", "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = _json(result)
    assert document["settings"]["groups"] == 3
    assert document["results"][0]["verdict"] == "equal"


@pytest.mark.parametrize("option, value", [("--stride", "0"), ("--stride", "2,0"), ("--stride", "a"),
                                           ("--stride", "1,2,3"), ("--stride", "2,"), ("--stride", "-1"),
                                           ("--dilation", "1.5"), ("--dilation", "")])
def test_bad_stride_or_dilation_exits_2_with_one_line(runner, geometry, option, value):
    for command in (["explain", "image.npy", "kernel.npy", "strided.npy"], ["compare", "image.npy", "kernel.npy"]):
        result = invoke(runner, *command, option, value)
        assert_input_error(result, mentions=f"{option} '{value}'")
        assert "e.g." in result.stderr


@pytest.mark.parametrize("value", ["0", "two", "-3"])
def test_bad_groups_exits_2_with_one_line(runner, geometry, value):
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "strided.npy", "--groups", value)
    assert_input_error(result, mentions=f"--groups '{value}'")


def test_groups_is_an_explain_option_only(runner, geometry):
    result = invoke(runner, "compare", "image.npy", "kernel.npy", "--groups", "1")
    assert result.exit_code == 2
    assert "--groups" in result.stderr


def test_bad_layout_is_a_usage_error(runner, geometry):
    result = invoke(runner, "explain", "image.npy", "kernel.npy", "strided.npy", "--layout", "chw")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "nhwc" in result.stderr and "Traceback" not in result.stderr


def test_geometry_options_have_help_and_examples(runner):
    for command in ("compare", "explain"):
        text = invoke(runner, command, "--help").stdout
        for option in ("--stride SY[,SX]", "--dilation DY[,DX]", "--layout [nhwc|nchw]",
                       "--kernel-layout [hwio|oihw|depthwise|ORDER]"):
            assert option in text, (command, option)
        assert "--layout nchw --stride 2" in text.split("Example:")[1]
    assert "--groups G" in invoke(runner, "explain", "--help").stdout
    assert "--groups" not in invoke(runner, "compare", "--help").stdout


def test_parse_pair():
    from convcheck.cli.options import parse_pair

    assert parse_pair(None, "--stride") == (1, 1)
    assert parse_pair("3", "--stride") == (3, 3)
    assert parse_pair(" 2 , 1 ", "--dilation") == (2, 1)
