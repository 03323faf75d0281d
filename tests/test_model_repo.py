"""examples/model_repo, run for real: `convcheck check` on its pyproject.toml and its own pytest file.

The default cases use scipy backends and saved outputs only (no TensorFlow); the
TensorFlow/Keras case lives in tf-check.toml and runs in the test marked `tensorflow`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
REPO = ROOT / "examples" / "model_repo"


def _run(args, cwd=REPO, **env):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    environment.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=300)


def test_convcheck_check_passes():
    done = _run(["-m", "convcheck", "check", "--format", "json"])
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["config"] == "pyproject.toml"
    assert report["strict"] is True
    assert {c["name"]: c["status"] for c in report["cases"]} == {
        "scipy-signal": "pass", "ported-layer": "pass", "smoothing": "pass"}
    ported = report["cases"][1]["results"][0]
    assert ported["verdict"] == "explained"
    assert {c["field"]: c["value"] for c in ported["causes"]} == {"kernel_transform": "rot180", "precision": "float32"}
    assert "tensorflow" not in done.stderr.lower()


def test_convcheck_check_junit_from_a_subfolder(tmp_path):
    target = tmp_path / "junit.xml"
    done = _run(["-m", "convcheck", "check", "--format", "junit", "--output", str(target)], cwd=REPO / "tests")
    assert done.returncode == 0, done.stderr
    root = ET.parse(target).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "0", "0")


def test_the_repositorys_own_pytest_passes():
    done = _run(["-m", "pytest", str(REPO / "tests"), "-q", "-p", "no:cacheprovider"], cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout


def test_make_data_reproduces_the_committed_files(tmp_path):
    copy = tmp_path / "model_repo"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns("data", "__pycache__", ".pytest_cache"))
    done = _run([str(copy / "make_data.py")], cwd=copy)
    assert done.returncode == 0, done.stderr
    for name in ("image", "kernel", "ported_output", "smoothed_output"):
        made = np.load(copy / "tests" / "data" / f"{name}.npy")
        committed = np.load(REPO / "tests" / "data" / f"{name}.npy")
        assert made.dtype == committed.dtype and np.array_equal(made, committed), name


def test_a_regression_fails_the_check(tmp_path):
    copy = tmp_path / "model_repo"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    ported = np.load(copy / "tests" / "data" / "ported_output.npy")
    ported[5, 5] += 0.1  # a real bug slips into the ported layer
    np.save(copy / "tests" / "data" / "ported_output.npy", ported)
    done = _run(["-m", "convcheck", "check", "--format", "github"], cwd=copy)
    assert done.returncode == 1
    assert "::error title=convcheck%3A ported-layer/tests/data/ported_output.npy,file=pyproject.toml,line=" in done.stdout


@pytest.mark.tensorflow
def test_tensorflow_and_keras_case():
    done = _run(["-m", "convcheck", "check", "tf-check.toml", "--format", "json"])
    assert done.returncode == 0, done.stdout + done.stderr
    (case,) = json.loads(done.stdout)["cases"]
    assert {r["backend"]: (r["status"], r["verdict"]) for r in case["results"]} == {
        "tf.nn.conv2d": ("ok", "equal"), "keras.layers.Conv2D": ("ok", "equal"),
        "scipy.signal.correlate2d": ("ok", "equal")}
