"""`make test`'s xdist groups (tests/framework_groups.py): a test's framework markers decide
its group, and under `-n 2 --dist loadgroup` each group's tests run on one worker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

from tests.framework_groups import group_of

ROOT = Path(__file__).resolve().parent.parent


class Marked:
    """Just enough of a pytest item for group_of: its marks."""

    def __init__(self, *marks):
        self.marks = [mark.mark for mark in marks]

    def iter_markers(self, name=None):
        return [mark for mark in self.marks if name is None or mark.name == name]


@pytest.mark.parametrize("marks, group", [
    ((), None),
    ((pytest.mark.parametrize("x", [1]),), None),
    ((pytest.mark.opencv,), "opencv"),
    ((pytest.mark.torch, pytest.mark.tensorflow), "tensorflow"),  # the dearer import decides
    ((pytest.mark.opencv, pytest.mark.jax, pytest.mark.torch), "torch"),
    ((pytest.mark.tflite, pytest.mark.onnx), "onnx"),
    ((pytest.mark.torch, pytest.mark.xdist_group("serial")), "serial"),  # a test's own group wins
    ((pytest.mark.xdist_group(name="b"), pytest.mark.xdist_group("a")), "a_b"),  # as xdist joins them
])
def test_the_markers_decide_the_group(marks, group):
    assert group_of(Marked(*marks)) == group


SUITE = textwrap.dedent("""
    import pytest

    @pytest.mark.torch
    @pytest.mark.parametrize("i", range(8))
    def test_torch(i):
        pass

    @pytest.mark.torch
    @pytest.mark.tensorflow
    @pytest.mark.parametrize("i", range(8))
    def test_torch_and_tensorflow(i):
        pass

    @pytest.mark.parametrize("i", range(8))
    def test_plain(i):
        pass

    @pytest.mark.jax
    @pytest.mark.xdist_group("own")
    @pytest.mark.parametrize("i", range(4))
    def test_own_group(i):
        pass
""")


def test_each_group_runs_on_one_worker(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    torch\n    tensorflow\n    jax\n")
    (tmp_path / "conftest.py").write_text(
        "from tests.framework_groups import (pytest_collection_modifyitems, pytest_configure_node,\n"
        "                                    pytest_unconfigure, pytest_xdist_make_scheduler)\n")
    (tmp_path / "test_suite.py").write_text(SUITE)
    # The outer run may itself be an xdist worker: its PYTEST_* variables stay out.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v",
                           "-p", "no:cacheprovider", "test_suite.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    workers = defaultdict(set)
    for worker, test in re.findall(r"^\[(gw\d+)\] .*PASSED test_suite\.py::(\w+)\[", done.stdout, re.M):
        workers[test].add(worker)
    ran = sum(len(re.findall(rf"PASSED test_suite\.py::{test}\[", done.stdout)) for test in workers)
    assert ran == 28, done.stdout
    assert workers["test_torch"] and len(workers["test_torch"]) == 1, done.stdout
    assert len(workers["test_torch_and_tensorflow"]) == 1, done.stdout
    assert len(workers["test_own_group"]) == 1, done.stdout


def test_make_test_runs_the_groups_on_a_worker_per_core():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "PYTEST := $(BIN)/python -m pytest -q -n $(WORKERS) --dist loadgroup" in makefile
    assert "WORKERS ?= auto" in makefile
    assert "\ntest: $(STAMP)\n\t$(PYTEST)\n" in makefile
    assert "CI=true make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
