"""`convcheck check`: config discovery, validation (exit 2 naming file/case/key), allow
semantics, strictness and exit codes. Real outputs from scipy; no TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from convcheck.check import (CheckReport, find_config, load_suite, parse_allow, run_suite)
from convcheck.cli.check import check as check_command
from convcheck.errors import InputError
from convcheck.results import CHECK_SCHEMA
from convcheck.vocabulary import FIELD_TABLE

from .check_data import case, write_config, write_data

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data(tmp_path):
    return write_data(tmp_path / "repo")


def run_cli(args, cwd: Path, env=None):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(check_command, args, env=env, catch_exceptions=False)
    finally:
        os.chdir(old)


# ----------------------------------------------------------------------------- discovery


def test_finds_convcheck_toml_upwards(data, monkeypatch):
    config = write_config(data, case("a", "correlated"))
    deep = data / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_config() == config.resolve()


def test_finds_pyproject_with_tool_table_and_skips_one_without(data, monkeypatch):
    config = write_config(data, case("a", "correlated", table="[[tool.convcheck.case]]"),
                          top="[tool.convcheck]\npadding = 'same'", name="pyproject.toml")
    inner = data / "sub"
    inner.mkdir()
    (inner / "pyproject.toml").write_text("[project]\nname = 'other'\n")  # no [tool.convcheck]
    monkeypatch.chdir(inner)
    assert find_config() == config.resolve()
    suite = load_suite(find_config())
    assert [c.name for c in suite.cases] == ["a"]


def test_convcheck_toml_wins_over_pyproject_in_the_same_folder(data):
    write_config(data, case("from-pyproject", "correlated", table="[[tool.convcheck.case]]"),
                 top="[tool.convcheck]", name="pyproject.toml")
    toml = write_config(data, case("from-toml", "correlated"))
    assert find_config(data) == toml.resolve()
    assert load_suite(find_config(data)).cases[0].name == "from-toml"


def test_explicit_file_is_used_as_given(data):
    config = write_config(data, case("a", "correlated"), name="ci.toml")
    assert find_config(config) == config


def test_no_config_says_what_to_create(tmp_path):
    with pytest.raises(InputError, match=r"no convcheck config found .*create a convcheck\.toml"):
        find_config(tmp_path)


def test_missing_explicit_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        find_config(tmp_path / "nope.toml")


def test_cli_without_config_exits_2(tmp_path):
    result = run_cli([], tmp_path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: no convcheck config found")
    assert len(result.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- validation

# (top-level TOML, case TOML, substrings the one-line error must contain)
BAD_CONFIGS = {
    "unknown top key": ("paddng = 'same'", case("a", "correlated"), ["key 'paddng'", "did you mean 'padding'"]),
    "unknown case key": ("", case("a", "correlated", extra="alow = ['precision']"),
                         ["case 'a'", "key 'alow'", "did you mean 'allow'"]),
    "bad padding": ("", case("a", "correlated", extra="padding = 'SAME'"),
                    ["case 'a'", "key 'padding'", "write it in lower case: 'same'"]),
    "bad top padding": ("padding = 'half'", case("a", "correlated"), ["key 'padding'", "'half' is not one of"]),
    "bad dtype": ("", case("a", backends=["scipy.signal.correlate2d"], extra="dtype = 'float8'"),
                  ["case 'a'", "key 'dtype'", "float8"]),
    "bad layout": ("", case("a", "correlated", extra="kernel_layout = 'nchw'"),
                   ["case 'a'", "key 'kernel-layout'", "nchw"]),
    "unknown backend": ("", case("a", backends=["scipy.signal.correlate"]),
                        ["case 'a'", "key 'backends'", "did you mean 'scipy.signal.correlate2d'"]),
    "backend twice": ("", case("a", backends=["tf.nn.conv2d", "tf.nn.conv2d"]),
                      ["case 'a'", "key 'backends'", "listed twice"]),
    "unknown allow field": ("", case("a", "ported", allow=["kernel=rot180"]),
                            ["case 'a'", "key 'allow'", "'kernel=rot180' names no field"]),
    "bad allow value": ("", case("a", "ported", allow=["precision=float8"]),
                        ["case 'a'", "key 'allow'", "float8", "float32"]),
    "bad allow offset": ("", case("a", "ported", allow=["offset=1"]), ["case 'a'", "key 'allow'", "offset"]),
    "allow not a list": ("", case("a", "ported", extra="allow = 3"), ["case 'a'", "key 'allow'", "not a list"]),
    "strict not bool": ("strict = 'yes'", case("a", "correlated"), ["key 'strict'", "not a boolean"]),
    "missing image file": ("", case("a", "correlated").replace("image.npy", "missing.npy"),
                           ["case 'a'", "key 'image'", "'missing.npy' does not exist"]),
    "missing output file": ("", case("a", "nothere"), ["case 'a'", "key 'output'", "'nothere.npy' does not exist"]),
    "duplicate names": ("", case("a", "correlated") + case("a", "ported"),
                        ["case 'a'", "key 'name'", "duplicate name", "case #1"]),
    "missing name": ("", case("a", "correlated").replace('name = "a"\n', ""), ["case #1", "key 'name'"]),
    "missing kernel": ("", case("a", "correlated").replace('kernel = "kernel.npy"\n', ""),
                       ["case 'a'", "key 'kernel'", "missing"]),
    "output and backends": ("", case("a", "correlated", backends=["tf.nn.conv2d"]),
                            ["case 'a'", "key 'output'", "not both"]),
    "neither": ("", case("a"), ["case 'a'", "neither 'output' nor 'backends'"]),
    "no cases": ("padding = 'same'", "", ["defines no cases"]),
    "invalid toml": ("padding = ", case("a", "correlated"), ["is not valid TOML"]),
    "bad array": ("", case("a", "rgb"), ["case 'a'", "output file '", "1 output channel"]),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_bad_config_exits_2_naming_file_case_and_key(name, data):
    top, cases, expected = BAD_CONFIGS[name]
    config = write_config(data, cases, top=top)
    result = run_cli([], data)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert line.startswith("error: ")
    assert config.name in line
    for text in expected:
        assert text in line, (text, line)


def test_pyproject_errors_name_the_tool_table(data):
    write_config(data, case("a", "correlated", table="[[tool.convcheck.case]]"),
                 top="[tool.convcheck]\nbackend = ['tf.nn.conv2d']", name="pyproject.toml")
    with pytest.raises(InputError, match=r"pyproject\.toml: \[tool\.convcheck\] key 'backend'.*'backends'"):
        load_suite(find_config(data))


def test_underscore_and_hyphen_spellings_are_one_key(data):
    write_config(data, case("a", "correlated", extra="kernel-layout = 'hwio'\nkernel_layout = 'hwio'"))
    with pytest.raises(InputError, match="given twice"):
        load_suite(data / "convcheck.toml")


def test_paths_are_relative_to_the_config(data, tmp_path, monkeypatch):
    config = write_config(data, case("a", "correlated"))
    monkeypatch.chdir(tmp_path)
    suite = load_suite(config)
    assert suite.cases[0].image == (data / "image.npy").resolve()


def test_all_files_are_validated_before_any_case_runs(data, monkeypatch):
    (data / "broken.npy").write_bytes(b"not a numpy file")
    config = write_config(data, case("first", backends=["scipy.signal.correlate2d"]), case("last", "broken"))
    calls = []
    import convcheck.comparison
    monkeypatch.setattr(convcheck.comparison, "compare_inputs", lambda *a, **k: calls.append(a))
    with pytest.raises(InputError, match=r"case 'last': output file .*broken\.npy.*not a \.npy file"):
        run_suite(load_suite(config))
    assert calls == []


def test_a_bad_case_costs_no_tensorflow_import(data):
    (data / "broken.npy").write_bytes(b"not a numpy file")
    write_config(data, case("tf", backends=["tf.nn.conv2d", "keras.layers.Conv2D"]), case("bad", "broken"))
    code = ("import sys\nfrom click.testing import CliRunner\nfrom convcheck.cli.check import check\n"
            "r = CliRunner().invoke(check, [])\n"
            "assert r.exit_code == 2, r.output\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=data, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ----------------------------------------------------------------------------- allow semantics


def test_parse_allow_forms():
    rules = parse_allow(["precision=float32", "boundary", "offset=[-1, 0]", "scale=0.5"])
    assert [(r.field, r.value) for r in rules] == [("precision", "float32"), ("boundary", None),
                                                  ("offset", (-1, 0)), ("scale", 0.5)]


# One value of each way a field writes its values (convcheck.vocabulary.Field.written).
_WRITTEN_EXAMPLES = {"offset": ("[1, -1]", (1, -1)), "pair": ("2", (2, 2)), "count": ("3", 3),
                     "number": ("0.5", 0.5), "name": ("transpose", "transpose")}


def test_allow_reads_every_field_and_value_from_the_table():
    for row in FIELD_TABLE:
        assert parse_allow([row.name])[0].value is None
        if row.written == "choice":
            for value in row.names:
                assert parse_allow([f"{row.name}={value}"])[0].value == value
            with pytest.raises(InputError, match="is not one of"):
                parse_allow([f"{row.name}=nonsense"])
        else:
            text, value = _WRITTEN_EXAMPLES[row.written]
            assert parse_allow([f"{row.name}={text}"])[0].value == value


def _statuses(report: CheckReport) -> dict[str, str]:
    return {c.name: c.status for c in report.cases}


def test_allow_semantics(data):
    config = write_config(
        data,
        case("equal", "correlated"),
        case("all-allowed", "ported", allow=["kernel_transform=rot180", "precision=float32"]),
        case("bare-fields", "ported", allow=["kernel_transform", "precision"]),
        case("partly-allowed", "ported", allow=["kernel_transform=rot180"]),
        case("wrong-value", "ported", allow=["kernel_transform=transpose", "precision=float32"]),
        case("boundary", "mirrored", allow=["boundary=symmetric"]),
        case("unexplained", "buggy", allow=list(["kernel_transform", "padding", "boundary", "offset",
                                                 "precision", "bias", "scale"])),
    )
    report = run_suite(load_suite(config))
    assert _statuses(report) == {"equal": "pass", "all-allowed": "pass", "bare-fields": "pass",
                                 "partly-allowed": "warn", "wrong-value": "warn", "boundary": "pass",
                                 "unexplained": "fail"}
    partly = report.cases[3].results[0]
    assert [c.field for c in partly.disallowed] == ["precision"]
    assert "precision=float32 is not in allow" in partly.message
    assert report.exit_code() == 1


def test_warnings_pass_without_strict_and_fail_with_it(data):
    config = write_config(data, case("partly-allowed", "ported", allow=["kernel_transform=rot180"]))
    assert run_suite(load_suite(config)).exit_code() == 0
    strict = run_suite(load_suite(config), strict=True)
    assert strict.cases[0].status == "fail" and strict.exit_code() == 1
    assert strict.strict


def test_strict_in_the_config(data):
    config = write_config(data, case("partly-allowed", "ported", allow=["kernel_transform=rot180"]),
                          top="strict = true")
    assert run_suite(load_suite(config)).exit_code() == 1


def test_compare_case_judges_every_backend(data):
    config = write_config(data, case("scipy", backends=["scipy.signal.correlate2d", "scipy.signal.convolve2d"],
                                     allow=["kernel_transform=rot180"]))
    report = run_suite(load_suite(config), strict=True)
    (only,) = report.cases
    assert [(r.name, r.status, r.verdict.value) for r in only.results] == [
        ("scipy.signal.correlate2d", "pass", "equal"), ("scipy.signal.convolve2d", "pass", "explained")]
    assert report.exit_code() == 0


def test_backend_that_cannot_run_exits_3(data, monkeypatch):
    from convcheck.backends.scipy_signal import ScipyConvolve2D
    monkeypatch.setattr(ScipyConvolve2D, "availability", lambda self: (False, "scipy is not installed: pip install scipy"))
    config = write_config(data, case("scipy", backends=["scipy.signal.correlate2d", "scipy.signal.convolve2d"]),
                          case("equal", "correlated"))
    report = run_suite(load_suite(config))
    assert _statuses(report) == {"scipy": "error", "equal": "pass"}
    assert report.exit_code() == 3
    # an unexplained result elsewhere still wins: exit 1
    config = write_config(data, case("scipy", backends=["scipy.signal.convolve2d"]), case("bug", "buggy"))
    assert run_suite(load_suite(config)).exit_code() == 1


def test_progress_is_reported_per_case(data):
    config = write_config(data, case("a", "correlated"), case("b", "ported"))
    calls = []
    run_suite(load_suite(config), progress=lambda done, total, name: calls.append((done, total, name)))
    assert calls == [(0, 2, "a"), (1, 2, "b"), (2, 2, None)]


# ----------------------------------------------------------------------------- CLI and JSON


def test_json_document(data):
    write_config(data, case("equal", "correlated"), case("bug", "buggy"),
                 case("scipy", backends=["scipy.signal.convolve2d"], allow=["kernel_transform"]))
    result = run_cli(["--format", "json"], data)
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["schema"] == CHECK_SCHEMA == "convcheck/check/2"
    assert doc["config"] == "convcheck.toml"
    assert [(c["name"], c["status"]) for c in doc["cases"]] == [("equal", "pass"), ("bug", "fail"), ("scipy", "pass")]
    explain_result = doc["cases"][1]["results"][0]
    assert explain_result["verdict"] == "unexplained" and explain_result["explanation"] is None
    assert explain_result["outcome"] == "fail"
    compare_row = doc["cases"][2]["results"][0]
    assert compare_row["backend"] == "scipy.signal.convolve2d" and compare_row["status"] == "ok"
    assert compare_row["explanation"]["kernel_transform"] == "rot180"
    assert doc["summary"]["cases"] == 3 and doc["summary"]["fail"] == 1 and doc["summary"]["exit_code"] == 1


@pytest.mark.parametrize("fmt", ["table", "markdown", "junit", "github"])
def test_every_format_renders(fmt, data):
    write_config(data, case("equal", "correlated"), case("warn", "ported", allow=["kernel_transform"]))
    result = run_cli(["--format", fmt], data, env={"GITHUB_STEP_SUMMARY": ""})
    assert result.exit_code == 0, result.output
    assert "warn" in result.stdout or "warning" in result.stdout


def test_output_file_and_step_summary(data, tmp_path):
    write_config(data, case("bug", "buggy"))
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    result = run_cli(["--format", "github", "--strict"], data, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 1
    assert result.stdout.startswith("::error title=convcheck%3A bug/buggy.npy,file=convcheck.toml,line=4::unexplained: ")
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and "| bug | `buggy.npy` | ❌ fail |" in text
    report = tmp_path / "out.xml"
    result = run_cli(["--format", "junit", "--output", str(report)], data)
    assert result.exit_code == 1
    assert report.read_text().startswith('<?xml version="1.0"')


def test_plot_option_writes_a_png(data, tmp_path):
    pytest.importorskip("matplotlib")
    write_config(data, case("bug", "buggy"), case("flip", "ported", allow=["kernel_transform", "precision"]))
    png = tmp_path / "check.png"
    result = run_cli(["--plot", str(png)], data)
    assert result.exit_code == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- geometry keys (CONTRACT v2)


@pytest.fixture
def geometry(tmp_path):
    """A stride-2 output from scipy, a depthwise output and an NCHW batch from the reference."""
    import numpy as np
    import scipy.signal

    from convcheck.engine.reference import reference

    folder = tmp_path / "geo"
    folder.mkdir()
    rng = np.random.default_rng(5)
    image = rng.standard_normal((9, 9))
    kernel = rng.standard_normal((3, 3))
    strided = scipy.signal.correlate2d(image, kernel, mode="same")[::2, ::2]
    np.testing.assert_allclose(strided, reference(image, kernel, "same", stride=(2, 2)), rtol=0, atol=1e-12)
    rgb = rng.standard_normal((7, 7, 3))
    depthwise = rng.standard_normal((3, 3, 3, 2))
    batch = rng.standard_normal((2, 7, 7, 3))
    hwio = rng.standard_normal((3, 3, 3, 4))
    arrays = {
        "image": image, "kernel": kernel, "strided": strided,
        "dilated": reference(image, kernel, "valid", dilation=(2, 1)),
        "rgb": rgb, "depthwise": depthwise,
        "depthwise_out": reference(rgb, depthwise.reshape(3, 3, 1, 6), "same", groups=3),
        "x_nchw": batch.transpose(0, 3, 1, 2), "w_oihw": hwio.transpose(3, 2, 0, 1),
        "y_nchw": reference(batch, hwio, "same", stride=(2, 2)).transpose(0, 3, 1, 2),
    }
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    return folder


def _geo_case(name, image, kernel, output=None, *, backends=None, extra=""):
    text = case(name, output, backends=backends, extra=extra)
    return text.replace('image = "image.npy"', f'image = "{image}.npy"').replace(
        'kernel = "kernel.npy"', f'kernel = "{kernel}.npy"')


def test_geometry_keys_are_parsed_top_level_and_per_case(geometry):
    config = write_config(
        geometry,
        _geo_case("strided", "image", "kernel", "strided"),
        _geo_case("dilated", "image", "kernel", "dilated",
                  extra="stride = 1\ndilation = [2, 1]\npadding = 'valid'"),
        _geo_case("nchw", "x_nchw", "w_oihw", "y_nchw", extra="layout = 'nchw'"),
        _geo_case("depthwise", "rgb", "depthwise", "depthwise_out",
                  extra="kernel_layout = 'depthwise'\ngroups = 3\nstride = [1, 1]"),
        top="stride = 2",
    )
    suite = load_suite(config)
    by_name = {c.name: c for c in suite.cases}
    assert by_name["strided"].stride == (2, 2) and by_name["strided"].dilation == (1, 1)
    assert by_name["strided"].layout == "nhwc" and by_name["strided"].kernel_layout is None
    assert by_name["strided"].groups is None
    assert by_name["dilated"].stride == (1, 1) and by_name["dilated"].dilation == (2, 1)
    assert by_name["nchw"].layout == "nchw" and by_name["nchw"].stride == (2, 2)
    assert by_name["depthwise"].groups == 3 and by_name["depthwise"].kernel_layout == "depthwise"
    report = run_suite(suite, strict=True)
    assert _statuses(report) == {"strided": "pass", "dilated": "pass", "nchw": "pass", "depthwise": "pass"}
    assert all(c.results[0].verdict.value == "equal" for c in report.cases)
    assert report.exit_code() == 0


def test_geometry_cases_in_the_json_document(geometry):
    write_config(geometry,
                 _geo_case("strided", "image", "kernel", "strided", extra="stride = [2, 2]"),
                 _geo_case("undeclared", "image", "kernel", "strided"),
                 _geo_case("allowed", "image", "kernel", "strided", extra='allow = ["stride=[2, 2]"]'),
                 _geo_case("backends", "image", "kernel", backends=["scipy.signal.correlate2d"],
                           extra="stride = 2\ndilation = [1, 2]"),
                 _geo_case("nchw-backends", "x_nchw", "w_oihw", backends=["scipy.signal.correlate2d"],
                           extra="stride = 2\nlayout = 'nchw'"))
    result = run_cli(["--format", "json", "--strict"], geometry)
    assert result.exit_code == 1, result.output  # 'undeclared' is explained by a stride not in allow
    doc = json.loads(result.stdout)
    cases = {c["name"]: c for c in doc["cases"]}
    assert [(name, c["status"]) for name, c in cases.items()] == [
        ("strided", "pass"), ("undeclared", "fail"), ("allowed", "pass"), ("backends", "pass"),
        ("nchw-backends", "pass")]
    strided = cases["strided"]["results"][0]
    assert strided["verdict"] == "equal" and strided["explanation"]["stride"] == [2, 2]
    undeclared = cases["undeclared"]["results"][0]
    assert undeclared["verdict"] == "explained"
    assert undeclared["disallowed"][0]["field"] == "stride" and undeclared["disallowed"][0]["value"] == [2, 2]
    assert cases["allowed"]["results"][0]["disallowed"] == []
    row = cases["backends"]["results"][0]
    assert row["backend"] == "scipy.signal.correlate2d" and row["verdict"] == "equal"
    assert row["explanation"]["stride"] == [2, 2] and row["explanation"]["dilation"] == [1, 2]
    nchw = cases["nchw-backends"]["results"][0]
    assert nchw["verdict"] == "equal" and nchw["shape"] == [2, 4, 4, 4]


GEOMETRY_ERRORS = {
    "stride zero": ("", "stride = 0", ["case 'a'", "key 'stride'", "not a positive integer or a list of two"]),
    "stride three": ("", "stride = [1, 2, 3]", ["case 'a'", "key 'stride'", "stride = [2, 1]"]),
    "stride string": ("stride = '2'", "", ["key 'stride'", "'2'"]),
    "stride bool": ("", "stride = true", ["case 'a'", "key 'stride'"]),
    "dilation float": ("", "dilation = 1.5", ["case 'a'", "key 'dilation'", "dilation = 2"]),
    "groups zero": ("", "groups = 0", ["case 'a'", "key 'groups'", "not a positive integer"]),
    "groups list": ("groups = [1]", "", ["key 'groups'"]),
    "layout": ("", "layout = 'NCHW'", ["case 'a'", "key 'layout'", "write it in lower case: 'nchw'"]),
    "top layout": ("layout = 'chw'", "", ["key 'layout'", "'chw' is not one of nhwc, nchw"]),
    "kernel layout": ("", "kernel-layout = 'dw'", ["case 'a'", "key 'kernel-layout'", "depthwise"]),
}


@pytest.mark.parametrize("name", list(GEOMETRY_ERRORS))
def test_bad_geometry_key_exits_2_naming_file_case_and_key(name, data):
    top, extra, expected = GEOMETRY_ERRORS[name]
    config = write_config(data, case("a", "correlated", extra=extra), top=top)
    result = run_cli([], data)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error: ")
    assert config.name in line
    for text in expected:
        assert text in line, (text, line)


def test_groups_on_a_backends_case_is_refused(data):
    write_config(data, case("a", backends=["scipy.signal.correlate2d"], extra="groups = 1"))
    result = run_cli([], data)
    assert result.exit_code == 2
    assert "case 'a': key 'groups': only applies to cases with a saved 'output'" in result.stderr


def test_top_level_groups_is_used_by_output_cases_only(data):
    config = write_config(data, case("saved", "correlated"), case("scipy", backends=["scipy.signal.correlate2d"]),
                          top="groups = 1")
    suite = load_suite(config)
    assert [(c.name, c.groups) for c in suite.cases] == [("saved", 1), ("scipy", None)]
    assert run_suite(suite, strict=True).exit_code() == 0


def test_layout_mismatch_is_a_one_line_input_error(geometry):
    # NCHW files without layout = "nchw": the OIHW kernel read as HWIO does not fit the image.
    write_config(geometry, _geo_case("a", "x_nchw", "w_oihw", "y_nchw", extra="stride = 2"))
    result = run_cli([], geometry)
    assert result.exit_code == 2
    assert "case 'a'" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_allow_parses_geometry_fields():
    rules = parse_allow(["stride=2", "dilation=[2, 1]", "stride=(1, 3)", "groups=3", "output_layout=chw",
                         "kernel_layout=oihw"])
    assert [(r.field, r.value) for r in rules] == [("stride", (2, 2)), ("dilation", (2, 1)), ("stride", (1, 3)),
                                                  ("groups", 3), ("output_layout", "chw"),
                                                  ("kernel_layout", "oihw")]
    assert [str(r) for r in rules][:4] == ["stride=[2, 2]", "dilation=[2, 1]", "stride=[1, 3]", "groups=3"]
    for bad in ("stride=0", "stride=[2, 0]", "dilation=x", "groups=0", "groups=1.5", "output_layout=nhwc"):
        with pytest.raises(InputError, match="allow"):
            parse_allow([bad])


def test_check_help_lists_the_geometry_keys():
    result = CliRunner().invoke(check_command, ["--help"])
    for key in ("stride = ", "dilation = ", "groups = ", "layout = ", "hwio | oihw | depthwise"):
        assert key in result.stdout, key
