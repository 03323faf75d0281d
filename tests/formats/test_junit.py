"""`--format junit`: parsed back with xml.etree; structure, attributes and counts as GitLab/Jenkins read them."""

from __future__ import annotations

import dataclasses
import os
import re
import xml.etree.ElementTree as ET

import pytest

from convcheck.check import CaseResult, CheckReport, load_suite, run_suite
from convcheck.formats import junit
from convcheck.results import BackendResult

from ..check_data import case, write_config, write_data

TESTCASE_ATTRIBUTES = {"classname", "name", "time"}


def _check_counts(root: ET.Element) -> None:
    """Every suite's counts match its testcases, and the root's match the sum of the suites."""
    assert root.tag == "testsuites"
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        counts = {"tests": len(cases),
                  "failures": sum(1 for c in cases if c.find("failure") is not None),
                  "errors": sum(1 for c in cases if c.find("error") is not None),
                  "skipped": sum(1 for c in cases if c.find("skipped") is not None)}
        for key, value in counts.items():
            assert suite.get(key) == str(value), key
            totals[key] += value
        assert float(suite.get("time")) >= 0
        assert suite.get("name")
        for testcase in cases:
            assert TESTCASE_ATTRIBUTES <= set(testcase.attrib)
    for key, value in totals.items():
        if key != "skipped":  # junit-10.xsd has no 'skipped' on <testsuites>
            assert root.get(key) == str(value)
    assert_valid_junit_10(root)


# The constraints of Jenkins' JUnit schema (jenkinsci/xunit-plugin, junit-10.xsd), which
# GitLab's parser also accepts: which attributes and children each element may have.
_SUREFIRE_TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?")
_SCHEMA = {
    "testsuites": ({"name", "time", "tests", "failures", "errors"}, set(), {"testsuite"}),
    "testsuite": ({"name", "tests", "failures", "errors", "group", "time", "skipped", "timestamp", "hostname",
                   "id", "package", "file", "log", "url"}, {"name", "tests", "failures", "errors"},
                  {"testsuite", "properties", "testcase", "system-out", "system-err"}),
    "testcase": ({"name", "time", "classname", "group"}, {"name"},
                 {"skipped", "error", "failure", "rerunFailure", "rerunError", "flakyFailure", "flakyError",
                  "system-out", "system-err"}),
    "failure": ({"type", "message"}, set(), set()),
    "error": ({"type", "message"}, set(), set()),
    "skipped": ({"type", "message"}, set(), set()),
    "system-out": (set(), set(), set()),
    "system-err": (set(), set(), set()),
}


def assert_valid_junit_10(element: ET.Element) -> None:
    """Raise AssertionError where `element` (recursively) breaks junit-10.xsd."""
    allowed, required, children = _SCHEMA[element.tag]
    assert set(element.attrib) <= allowed, (element.tag, set(element.attrib) - allowed)
    assert required <= set(element.attrib), (element.tag, required - set(element.attrib))
    if element.tag in ("testsuites", "testsuite") and "time" in element.attrib:
        assert _SUREFIRE_TIME.fullmatch(element.get("time")), element.get("time")
    for child in element:
        assert child.tag in children, (element.tag, child.tag)
        assert_valid_junit_10(child)


@pytest.fixture(scope="module")
def check_report(tmp_path_factory):
    """A real check with a pass, a warning, a strict-disallowed failure, an unexplained
    failure, plus a hand-built case whose backends were skipped and failed."""
    data = write_data(tmp_path_factory.mktemp("junit") / "repo")
    config = write_config(
        data,
        case("scipy", backends=["scipy.signal.correlate2d", "scipy.signal.convolve2d"],
             allow=["kernel_transform=rot180"]),
        case("ported", "ported", allow=["kernel_transform=rot180"]),
        case("strict-ported", "ported", allow=["kernel_transform=rot180"], extra="strict = true"),
        case("bug", "buggy"),
    )
    report = run_suite(load_suite(config))
    template = report.cases[0].case
    from convcheck.check import ResultOutcome
    rows = (BackendResult("tf.nn.conv2d", "skipped", reason="tensorflow is not installed: pip install tensorflow-cpu",
                          requested=True),
            BackendResult("keras.layers.Conv2D", "failed", reason="ValueError: bad <thing> & \x01 more", requested=True))
    broken = CaseResult(dataclasses.replace(template, name="frameworks"), "error",
                        tuple(ResultOutcome(r.backend, "error", backend_result=r, message=f"{r.backend}: {r.reason}")
                              for r in rows))
    return CheckReport(report.config, report.strict, report.cases + (broken,), report.seconds)


def test_check_report_structure(check_report):
    text = junit.render_check(check_report)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites')
    root = ET.fromstring(text.split("\n", 1)[1])
    _check_counts(root)
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "convcheck check: convcheck.toml"  # no absolute path
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("7", "2", "1")
    assert root.get("skipped") is None  # not allowed there by junit-10.xsd
    cases = {(c.get("classname"), c.get("name")): c for c in suite.findall("testcase")}
    assert set(cases) == {("scipy", "scipy.signal.correlate2d"), ("scipy", "scipy.signal.convolve2d"),
                          ("ported", "ported.npy"), ("strict-ported", "ported.npy"), ("bug", "buggy.npy"),
                          ("frameworks", "tf.nn.conv2d"), ("frameworks", "keras.layers.Conv2D")}

    assert list(cases[("scipy", "scipy.signal.correlate2d")]) == [cases[("scipy", "scipy.signal.correlate2d")][0]]
    assert cases[("scipy", "scipy.signal.convolve2d")].find("failure") is None

    warning = cases[("ported", "ported.npy")]
    assert warning.find("failure") is None
    assert warning.find("system-out").text.startswith("warning: explained by kernel flipped 180° (true convolution) + float32 rounding")

    strict = cases[("strict-ported", "ported.npy")].find("failure")
    assert strict.get("type") == "not-allowed"
    assert "precision=float32 is not in allow" in strict.get("message")
    assert "[not allowed]" in strict.text and "fix: compute in float64" in strict.text

    failure = cases[("bug", "buggy.npy")].find("failure")
    assert failure.get("type") == "unexplained"
    assert failure.get("message").startswith("unexplained: 1 of 100 elements differ from the reference")
    assert "stats: 1 of 100 elements beyond the error bound" in failure.text
    assert "verdict: unexplained" in failure.text

    assert cases[("frameworks", "tf.nn.conv2d")].find("skipped").get("message").endswith("pip install tensorflow-cpu")
    error = cases[("frameworks", "keras.layers.Conv2D")].find("error")
    assert error.get("type") == "BackendError"
    assert error.get("message") == "keras.layers.Conv2D failed: ValueError: bad <thing> & ? more"


def test_compare_report(report):
    root = ET.fromstring(junit.render_compare(report).split("\n", 1)[1])
    _check_counts(root)
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "convcheck compare"
    names = [c.get("name") for c in suite.findall("testcase")]
    assert names == [r.backend for r in report.results]
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("1", "1", "1")
    assert {c.get("classname") for c in suite.findall("testcase")} == {"compare image.npy * kernel.npy"}


@pytest.mark.parametrize("kind, failures", [("equal", "0"), ("explained", "0"), ("unexplained", "1"), ("shape", "1")])
def test_explain(diagnoses, kind, failures):
    names = {"image": "image.npy", "kernel": "kernel.npy", "output": "output.npy"}
    root = ET.fromstring(junit.render_explain(diagnoses[kind], names).split("\n", 1)[1])
    _check_counts(root)
    testcase = root.find("testsuite/testcase")
    assert testcase.get("name") == "output.npy"
    assert root.get("failures") == failures
    if kind == "shape":
        assert "fits no padding" in testcase.find("failure").get("message")


def test_junit_10_checker_catches_the_old_skipped_attribute():
    root = ET.fromstring('<testsuites skipped="1"><testsuite name="s" tests="0" failures="0" errors="0"/></testsuites>')
    with pytest.raises(AssertionError):
        assert_valid_junit_10(root)


def test_classnames_and_suite_names_carry_no_absolute_paths(tmp_path, monkeypatch):
    from convcheck.results import CompareReport
    monkeypatch.chdir(tmp_path)
    inside = os.path.join(str(tmp_path), "data", "image.npy")
    report = CompareReport(inputs={"image": {"path": inside}, "kernel": {"path": "/elsewhere/k.npy"}},
                           settings={}, results=(BackendResult("scipy.signal.correlate2d", "skipped", reason="x"),))
    root = ET.fromstring(junit.render_compare(report))
    classname = root.find("testsuite/testcase").get("classname")
    assert classname == "compare data/image.npy * k.npy"
    assert str(tmp_path) not in junit.render_compare(report)
    assert_valid_junit_10(root)
