"""Packaging: the base install is small, every framework is an extra, and the Makefile pins
the CPU-only PyTorch wheel through a committed constraints file."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


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
    assert extras["all"] == ["convcheck[tensorflow,torch,jax,opencv,plot]"]
    assert {"pytest", "hypothesis", "matplotlib"} <= names(extras["test"])


def test_framework_markers_are_declared():
    markers = " ".join(PYPROJECT["tool"]["pytest"]["ini_options"]["markers"])
    for marker in ("tensorflow:", "torch:", "jax:", "opencv:"):
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
