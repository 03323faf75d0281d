"""`--format github`: workflow command lines, escaping, and the job summary file."""

from __future__ import annotations

import pytest

from convcheck.check import load_suite, run_suite
from convcheck.formats import github

from ..check_data import case, write_config, write_data


def test_escaping_follows_github_docs():
    assert github.escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert github.escape_property("a: b, c%\n") == "a%3A b%2C c%25%0A"
    line = github.command("error", "convcheck: x, y", "line one\nline two 5%", file="cfg/convcheck.toml", line=3)
    assert line == ("::error title=convcheck%3A x%2C y,file=cfg/convcheck.toml,line=3::"
                    "line one%0Aline two 5%25")


@pytest.fixture(scope="module")
def check_report(tmp_path_factory):
    data = write_data(tmp_path_factory.mktemp("github") / "repo")
    config = write_config(
        data,
        case("scipy", backends=["scipy.signal.correlate2d", "scipy.signal.convolve2d"],
             allow=["kernel_transform=rot180"]),
        case("ported", "ported", allow=["kernel_transform=rot180"]),
        case("bug", "buggy"),
    )
    return run_suite(load_suite(config))


def test_check_lines(check_report):
    lines = github.render_check(check_report).splitlines()
    # Passes get no annotation (GitHub shows 10 per type and step): a warning, an error, a summary.
    assert len(lines) == 3
    for line in lines[:-1]:
        assert line.startswith(("::error ", "::warning ")), line
        assert "\n" not in line and "\r" not in line
    assert not any(line.startswith("::notice") for line in lines)
    ported, bug, summary = lines
    # The title says the causes in plain words; the message keeps the exact field names.
    assert ported.startswith("::warning title=convcheck%3A ported/ported.npy%3A explained by kernel flipped "
                             "180° (true convolution) + float32 rounding,")
    assert "::explained by kernel flipped 180° (true convolution) + float32 rounding, but precision=float32 " \
           "is not in allow%0A" in ported
    assert "%0A- kernel_transform: " in ported and "%0A  fix: compute in float64" in ported
    assert bug.startswith("::error title=convcheck%3A bug/buggy.npy,")
    assert "::unexplained: 1 of 100 elements differ from the reference" in bug
    assert summary == "convcheck check: 3 cases: 1 pass, 1 warn, 1 fail (exit 1)"


def test_annotations_point_at_the_case_line(check_report, monkeypatch):
    config_dir = check_report.config.rsplit("/", 1)[0] if "/" in check_report.config else "."
    monkeypatch.chdir(config_dir)
    lines = github.render_check(check_report).splitlines()
    with open("convcheck.toml") as fp:
        text = fp.read().splitlines()
    for line, name in zip(lines, ["ported", "bug"]):
        properties = line.split("::", 2)[1]
        assert ",file=convcheck.toml," in properties
        number = int(properties.rsplit("line=", 1)[1])
        assert text[number - 1] == f'name = "{name}"'


def test_compare_and_explain(report, diagnoses):
    lines = github.render_compare(report).splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["::warning", "::warning", "::error",
                                                         "::warning", "::error", "convcheck"]
    assert "::tf.nn.conv2d was skipped: tensorflow is not installed" in lines[3]
    assert lines[-1].startswith("convcheck compare: equal to the reference: ")
    explained = github.render_explain(diagnoses["explained"], {"output": "out.npy"})
    assert explained.startswith("::warning title=convcheck%3A out.npy%3A explained by kernel flipped 180° "
                                "(true convolution)::explained by kernel rot180%0A")
    assert github.render_explain(diagnoses["equal"], {"output": "out.npy"}) == \
        "convcheck explain: out.npy is equal to the reference"
    assert github.render_explain(diagnoses["unexplained"], {"output": "out.npy"}).startswith("::error ")


def test_step_summary(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert github.append_step_summary("# nothing") is False
    target = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    assert github.append_step_summary("## one\n") is True
    assert github.append_step_summary("## two") is True
    assert target.read_text() == "## one\n\n## two\n\n"
