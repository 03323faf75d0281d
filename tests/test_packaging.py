"""What a user installing convcheck, or unpacking its sdist, gets: license, typing marker,
a README that starts with what it is and how to install it, examples that install it; the
base install is small, every framework is an extra, and the Makefile pins the CPU-only
PyTorch wheel through a committed constraints file."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


@pytest.fixture(scope="module")
def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_license_is_an_spdx_string_with_its_file(pyproject):
    project = pyproject["project"]
    assert project["license"] == "MIT"  # PEP 639: the table form stops working in setuptools in 2027
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    requires = pyproject["build-system"]["requires"]
    assert any(re.fullmatch(r"setuptools>=(\d+)", r) and int(r.split(">=")[1]) >= 77 for r in requires)


def test_package_is_typed(pyproject):
    assert (ROOT / "convcheck" / "py.typed").exists()
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["convcheck"]


def test_sdist_carries_what_the_tests_need():
    manifest = (ROOT / "MANIFEST.in").read_text().split()
    for folder in ("tests", "examples"):
        assert folder in manifest, folder
    for name in ("LICENSE", "README.md"):
        assert name in manifest, name


def test_readme_opens_with_what_and_pip_install_then_make():
    text = (ROOT / "README.md").read_text()
    assert text.index("pip install convcheck") < text.index("make demo") < text.index("make test")
    assert text.index("Why do my convolutions disagree?") < text.index("pip install convcheck")
    assert "../" not in re.sub(r"```.*?```", "", text, flags=re.S)  # no links out of the repository


def test_readme_lists_every_config_key():
    from convcheck.check.config import _CASE_KEYS, _TOP_KEYS
    text = (ROOT / "README.md").read_text()
    for key in set(_TOP_KEYS + _CASE_KEYS) - {"case"}:
        assert f"`{key}`" in text, key


def test_examples_install_convcheck_from_a_checkout():
    github = (ROOT / "examples" / "ci" / "github-actions.yml").read_text()
    gitlab = (ROOT / "examples" / "ci" / "gitlab-ci.yml").read_text()
    model_repo = (ROOT / "examples" / "model_repo" / "pyproject.toml").read_text()
    assert 'pip install "./convcheck[plot]"' in github and "path: convcheck" in github
    assert "pip install /tmp/convcheck" in gitlab
    assert "pip install -e ../.." in model_repo
    for text in (github, gitlab):
        assert not re.search(r"^\s*-?\s*(run: )?pip install \"?convcheck", text, flags=re.M), text


@pytest.mark.parametrize("explore, derandomized", [(None, True), ("1", False)])
def test_hypothesis_is_derandomized_unless_asked_to_explore(explore, derandomized):
    import os
    import subprocess
    code = ("import runpy; runpy.run_path('tests/conftest.py'); "
            "from hypothesis import settings; print(settings.default.derandomize)")
    env = {key: value for key, value in os.environ.items() if key != "CONVCHECK_HYPOTHESIS_EXPLORE"}
    if explore is not None:
        env["CONVCHECK_HYPOTHESIS_EXPLORE"] = explore
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == str(derandomized), done.stderr


def names(requirements):
    return {re.split(r"[<>=!~; \[]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def test_base_install_is_numpy_scipy_click_rich_ml_dtypes():
    assert names(PYPROJECT["project"]["dependencies"]) == {"numpy", "scipy", "click", "rich", "ml_dtypes"}


def test_every_framework_is_an_extra():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert names(extras["tensorflow"]) == {"tensorflow-cpu", "tensorflow", "keras"}
    assert names(extras["torch"]) == {"torch"}  # users get plain torch; the pin is ours
    assert names(extras["jax"]) == {"jax"}
    assert names(extras["opencv"]) == {"opencv-python-headless"}
    assert names(extras["plot"]) == {"matplotlib"}
    assert names(extras["onnx"]) == {"onnx", "onnxruntime"}          # model formats for `convcheck model`
    assert names(extras["tflite"]) == {"ai-edge-litert"}
    assert extras["all"] == ["convcheck[tensorflow,torch,jax,opencv,plot,onnx,tflite]"]
    assert {"pytest", "hypothesis", "matplotlib"} <= names(extras["test"])


def test_framework_markers_are_declared():
    markers = " ".join(PYPROJECT["tool"]["pytest"]["ini_options"]["markers"])
    for marker in ("tensorflow:", "torch:", "jax:", "opencv:", "onnx:", "tflite:"):
        assert marker in markers


def test_makefile_installs_everything_with_the_cpu_torch_pin():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    constraints = re.search(r"^CONSTRAINTS := (\S+)$", makefile, re.MULTILINE).group(1)
    pins = (ROOT / constraints).read_text(encoding="utf-8").split("\n")
    assert "torch==2.13.0+cpu" in pins
    assert re.search(r"^\$\(STAMP\): pyproject\.toml \$\(CONSTRAINTS\)", makefile, re.MULTILINE)
    assert "pip install --quiet -c $(CONSTRAINTS) -e '.[all,test]'" in makefile
    fast = re.search(r"^test-fast:.*\n\t(.*)$", makefile, re.MULTILINE).group(1)
    assert 'not tensorflow and not torch and not jax and not opencv' in fast
