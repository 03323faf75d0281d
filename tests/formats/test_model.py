"""`convcheck model` in every format: markdown, JUnit, GitHub annotations and the drift plot, on a
synthetic walk (no framework: `model_report` in conftest.py), then one real walk of a tiny ONNX
pair from the command line (marked onnx)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from convcheck.formats import FORMATS, render_model
from convcheck.formats.model_text import MODEL_COLUMNS
from convcheck.models.report import parse_model_allow

from .test_junit import _check_counts


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.replace("\\|", "\x00").strip("|").split("|")]


def _single(report):
    """The same walk as the single-model form (no port, no weights, no drift)."""
    layers = tuple(replace(layer, port=None, match=None, weights=None, input_drift=None, output_drift=None)
                   for layer in report.layers)
    return replace(report, models={**report.models, "port": None}, layers=layers, unmatched_original=(),
                   unmatched_port=())


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_a_walk(fmt, model_report):
    text = render_model(model_report, fmt, color=False, width=160)
    assert isinstance(text, str) and "block1.conv1" in text
    if fmt == "json":
        assert json.loads(text)["schema"] == "convcheck/model/1"


# ----------------------------------------------------------------------------- markdown


def test_markdown_is_a_gfm_table_with_one_row_per_layer(model_report):
    text = render_model(model_report, "markdown")
    assert text.startswith("### convcheck model\n")
    rows = _table_rows(text)
    header, separator, body = rows[0], rows[1], rows[2:]
    assert _cells(header) == ["\\#"] + list(MODEL_COLUMNS[1:])
    assert separator.count("|") == len(MODEL_COLUMNS) + 1 and separator.endswith("---:|---:|")
    assert len(body) == len(model_report.layers)
    for row, layer in zip(body, model_report.layers):
        cells = _cells(row)
        assert len(cells) == len(MODEL_COLUMNS)   # pipes inside cells are escaped
        assert cells[1] == f"`{layer.original['name']}`" and cells[2] == f"`{layer.port['name']}`"
    marked = [row for row in body if "▶" in row]
    assert marked == [body[1]] and _cells(body[1])[0] == "**▶ 1**"
    assert _cells(body[1])[4] == "**≈ explained**" and "kernel flipped 180°" in body[1]
    assert "kernel\\[::-1, ::-1\\]" in body[1]   # escaped: shown as typed, never as a link
    assert _cells(body[4])[4] == "**– not judged**" and "residual input" in body[4]


def test_markdown_says_the_divergence_unmatched_failures_and_summary(model_report):
    text = render_model(model_report, "markdown")
    assert "**First divergence:** layer 1, block1.conv1 → block1\\_conv1 (kernel\\_transform)" in text
    assert "- original layers with no counterpart in the port: classifier.conv" in text
    assert "- port layers with no counterpart in the original: extra\\_conv" in text
    assert "**Fails**" in text and "- block2.conv1: its output is unexplained" in text
    assert "- head.conv: weights: kernel\\_transform=rot180 is not allowed" in text
    assert "- block2.conv1: the port fused this layer's ReLU" in text
    assert text.rstrip().splitlines()[-1].startswith("**Summary:** 6 layers: 2 equal, 2 explained, 1 unexplained")
    assert text.rstrip().endswith("exit 1 (mismatch)")
    assert "\x1b[" not in text


def test_markdown_of_a_single_model_has_no_port_or_drift_columns(model_report):
    text = render_model(_single(model_report), "markdown")
    header = _cells(_table_rows(text)[0])
    assert header == ["\\#", "original", "kernel", "verdict", "cause", "fix"]
    assert "each layer against its own declared computation" in text


# ----------------------------------------------------------------------------- JUnit


def test_junit_has_a_testcase_per_layer_named_by_both_names(model_report):
    root = ET.fromstring(render_model(model_report, "junit"))
    _check_counts(root)
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "convcheck model: net.pt2 → net.keras"
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert list(cases) == ["stem.conv → stem_conv", "block1.conv1 → block1_conv1", "block1.conv2 → block1_conv2",
                           "block2.conv1 → block2_conv1", "block2.conv2 → block2_conv2", "head.conv → head_conv",
                           "classifier.conv", "extra_conv"]
    assert {case.get("classname") for case in cases.values()} == {"model: net.pt2 → net.keras"}
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("8", "4", "2")


def test_junit_fails_what_the_walk_fails(model_report):
    suite = ET.fromstring(render_model(model_report, "junit")).find("testsuite")
    cases = {case.get("name"): case for case in suite.findall("testcase")}

    def failure(name):
        return cases[name].find("failure")

    assert failure("stem.conv → stem_conv") is None
    assert "verdict: equal" in cases["stem.conv → stem_conv"].find("system-out").text
    flipped = failure("block1.conv1 → block1_conv1")
    assert flipped.get("type") == "not-allowed"
    assert flipped.get("message") == ("block1.conv1 → block1_conv1: kernel_transform=rot180 is not allowed; "
                                      "weights: kernel_transform=rot180 is not allowed")
    assert "[not allowed]" in flipped.text and "fix: use scipy.signal.correlate2d" in flipped.text
    assert "output drift 4.99 (max rel 0.499)" in flipped.text
    # explained by a cause --allow lists: passes, its explanation kept in system-out
    allowed = cases["block1.conv2 → block1_conv2"]
    assert allowed.find("failure") is None and "explained by boundary symmetric" in allowed.find("system-out").text
    assert failure("block2.conv1 → block2_conv1").get("type") == "unexplained"
    assert "note: the port fused this layer's ReLU" in failure("block2.conv1 → block2_conv1").text
    skipped = cases["block2.conv2 → block2_conv2"].find("skipped")
    assert skipped.get("message") == "not judged: the port adds a residual input inside the conv"
    assert failure("head.conv → head_conv").get("type") == "weights"   # its output is equal, its weights are not
    assert failure("classifier.conv").get("type") == "unmatched"
    assert "--allow unmatched" in failure("classifier.conv").text
    assert cases["extra_conv"].find("skipped").get("message") == \
        "port layer extra_conv has no counterpart in the original"


def test_junit_skips_an_unmatched_layer_that_is_allowed(model_report):
    allowed = replace(model_report, allow=parse_model_allow(["boundary", "unmatched", "kernel_transform"]))
    root = ET.fromstring(render_model(allowed, "junit"))
    _check_counts(root)
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert cases["classifier.conv"].find("skipped").get("message").endswith("(allowed: --allow unmatched)")
    failing = [name for name, case in cases.items() if case.find("failure") is not None]
    assert failing == ["block2.conv1 → block2_conv1"]   # the unexplained layer fails whatever --allow says


# ----------------------------------------------------------------------------- GitHub


def test_github_annotates_the_first_divergence_and_every_failing_layer(model_report):
    lines = render_model(model_report, "github").splitlines()
    assert all("\n" not in line and "\r" not in line for line in lines)
    annotations = [line for line in lines if line.startswith("::")]
    assert annotations[0].startswith("::error title=convcheck%3A layer 1 block1.conv1 → block1_conv1%3A first "
                                     "divergence::explained: kernel flipped 180°")
    assert "fix: use scipy.signal.correlate2d" in annotations[0]
    titles = [line.split("::")[1] for line in annotations]
    assert titles == ["error title=convcheck%3A layer 1 block1.conv1 → block1_conv1%3A first divergence",
                      "error title=convcheck%3A layer 3 block2.conv1 → block2_conv1",
                      "warning title=convcheck%3A layer 4 block2.conv2 → block2_conv2",
                      "error title=convcheck%3A layer 5 head.conv → head_conv",
                      "error title=convcheck%3A classifier.conv unmatched"]
    assert "::not judged: the port adds a residual input inside the conv" in annotations[2]
    assert not any("stem.conv" in line or "block1.conv2" in line for line in annotations)   # equal, or allowed
    assert lines[-1].startswith("convcheck model: net.pt2 → net.keras: 6 layers: ")
    assert lines[-1].endswith("exit 1 (mismatch)")


def test_github_first_divergence_that_is_allowed_is_a_warning(model_report):
    allowed = replace(model_report, allow=parse_model_allow(["kernel_transform", "boundary", "unmatched"]),
                      layers=model_report.layers[:3])
    lines = render_model(allowed, "github").splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("::warning title=convcheck%3A layer 1 block1.conv1 → block1_conv1%3A first "
                               "divergence::explained: kernel flipped 180°")
    assert "fails" not in lines[0] and lines[1].endswith("exit 0 (no mismatch)")


# ----------------------------------------------------------------------------- --plot


def test_model_plot_marks_each_layer_and_the_first_divergence(model_report):
    pytest.importorskip("matplotlib")
    from convcheck.plot import _model_figure, _pyplot

    plt, _ = _pyplot()
    fig = _model_figure(model_report, plt)
    try:
        (ax,) = fig.axes
        assert ax.get_yscale() == "log"
        assert [t.get_text() for t in ax.get_xticklabels()] == [
            "0 stem.conv", "1 block1.conv1", "2 block1.conv2", "3 block2.conv1", "4 block2.conv2", "5 head.conv"]
        lines = {line.get_label(): line for line in ax.get_lines()}
        outputs = lines["output drift (max |port - original|)"].get_ydata()
        inputs = lines["input drift (max |port - original|)"].get_ydata()
        floor = 0.5 / 10   # a decade below the least drift: where the zeros are drawn
        np.testing.assert_allclose(outputs, [floor, 4.99, 0.5, 1.0, np.nan, 1.0])
        np.testing.assert_allclose(inputs, [floor, floor, 4.99, 0.5, 1.0, 1.0])
        dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--" and line.get_color() == "firebrick"]
        assert len(dashed) == 1 and list(dashed[0].get_xdata()) == [1, 1]   # the first divergence
        legend = [text.get_text() for text in ax.get_legend().get_texts()]
        for verdict in ("equal", "explained", "unexplained"):
            assert f"layer verdict: {verdict}" in legend
        assert "layer verdict: not judged" not in legend   # its output has no drift to draw
        assert "first divergence: layer 1, block1.conv1 → block1_conv1" in ax.get_title()
    finally:
        plt.close(fig)


def test_model_plot_writes_a_png_and_says_when_there_is_no_drift(model_report, tmp_path):
    pytest.importorskip("matplotlib")
    from convcheck.plot import save_model_plot

    path = tmp_path / "drift.png"
    save_model_plot(model_report, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    single = tmp_path / "single.png"
    save_model_plot(_single(model_report), single)
    assert single.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drift.png", "single.png"]   # no temporary left


def test_single_model_plot_says_there_is_no_drift(model_report):
    pytest.importorskip("matplotlib")
    from convcheck.plot import _model_figure, _pyplot

    plt, _ = _pyplot()
    fig = _model_figure(_single(model_report), plt)
    try:
        assert not fig.axes
        assert "no drift to draw" in " ".join(text.get_text() for text in fig.texts)
    finally:
        plt.close(fig)


# ----------------------------------------------------------------------------- a real walk, from the command line


@pytest.fixture(scope="module")
def onnx_pair(tmp_path_factory):
    """A two-conv ONNX net and its port with the second kernel flipped (made with onnx.helper)."""
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed: pip install 'convcheck[onnx]'")
    from onnx import numpy_helper

    from ..models import _onnx_nets as nets
    folder = tmp_path_factory.mktemp("model_formats")

    def net(flip: bool):
        built = nets.Net((1, 2, 8, 8), seed=3)
        first = built.conv("x", "first", 2, 3, bias=False, pads=[1, 1, 1, 1])
        second = built.conv(first, "second", 3, 2, bias=False, pads=[1, 1, 1, 1])
        if flip:
            index = next(i for i, t in enumerate(built.initializers) if t.name == "second.W")
            flipped = np.ascontiguousarray(built.array("second.W")[:, :, ::-1, ::-1])
            built.initializers[index] = numpy_helper.from_array(flipped, "second.W")
        return built.model([second])

    return {"original": nets.save(net(False), folder, "original"), "port": nets.save(net(True), folder, "port"),
            "folder": folder}


@pytest.mark.onnx
def test_cli_model_writes_every_report_and_the_plot(onnx_pair, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    junit, markdown, plot = tmp_path / "model.xml", tmp_path / "model.md", tmp_path / "drift.png"
    args = ["model", onnx_pair["original"], onnx_pair["port"], "--format", "github", "--report", f"junit={junit}",
            "--report", f"markdown={markdown}"]
    if _has_matplotlib():
        args += ["--plot", str(plot)]
    result = CliRunner().invoke(_main(), args)
    assert result.exit_code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("::error title=convcheck%3A layer 1 second → second%3A first divergence::"
                               "explained: kernel flipped 180°")
    assert len(lines) == 2 and lines[1].endswith("exit 1 (mismatch)")
    suite = ET.parse(junit).getroot().find("testsuite")
    names = [case.get("name") for case in suite.findall("testcase")]
    assert names == ["first → first", "second → second"] and suite.get("failures") == "1"
    assert "**▶ 1**" in markdown.read_text()
    assert summary.read_text().startswith("### convcheck model")   # the github format fills the step summary
    if _has_matplotlib():
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "wrote plot to" in result.stderr


@pytest.mark.onnx
def test_cli_model_refuses_a_report_or_plot_over_an_input(onnx_pair, tmp_path):
    for option in (["--report", f"junit={onnx_pair['port']}"], ["--plot", onnx_pair["original"]]):
        if option[0] == "--plot" and not _has_matplotlib():
            continue
        result = CliRunner().invoke(_main(), ["model", onnx_pair["original"], onnx_pair["port"], *option])
        assert result.exit_code == 2, result.stderr
        assert result.stdout == "" and "Traceback" not in result.stderr
        assert onnx_pair["folder"].joinpath("port.onnx").stat().st_size > 100
    result = CliRunner().invoke(_main(), ["model", onnx_pair["original"], "--report", "yaml=x.txt"])
    assert result.exit_code == 2 and "unknown format 'yaml'" in result.stderr


def _main():
    from convcheck.cli import main
    return main


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_cli_model_plot_without_matplotlib_is_refused_before_any_model_is_read(tmp_path, monkeypatch):
    import convcheck.plot
    from convcheck.errors import InputError

    def missing():
        raise InputError("--plot needs matplotlib: pip install 'convcheck[plot]'")

    monkeypatch.setattr(convcheck.plot, "require_matplotlib", missing)
    report = tmp_path / "model.xml"
    # The model files need not exist: the outputs are checked first, as for every command.
    result = CliRunner().invoke(_main(), ["model", str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx"),
                                          "--plot", str(tmp_path / "drift.png"), "--report", f"junit={report}"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == "error: --plot needs matplotlib: pip install 'convcheck[plot]'"
    assert not report.exists() and not (tmp_path / "drift.png").exists()
