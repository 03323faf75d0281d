"""One pytest-xdist worker per framework: `make test` runs `pytest -n auto --dist loadgroup`,
and every test marked with a framework (`@pytest.mark.tensorflow`, `torch`, `jax`, `onnx`,
`tflite`, `opencv`) runs on the worker that holds that framework's group, so TensorFlow
(about 5 s of CPU to import on the 2-core machine) is imported by one worker, not by each.

The group comes from the markers alone: a new test needs only its framework marker. A test
marked for several frameworks joins the group of the one dearest to import (the order of
FRAMEWORK_GROUPS); a test's own `xdist_group` marks win, joined as pytest-xdist joins them.

Why not just add `xdist_group` marks: pytest-xdist's loadgroup passes a test's group from the
worker to the scheduler by appending "@group" to the node id on the worker, and with pytest
9.2 (structured node ids) that rename no longer takes effect: every test is then scheduled on
its own, silently (pytest-xdist issue #1386, tested with pytest-xdist 3.8.0). So the groups
travel beside the node ids: the controller names a file per worker in the worker's
`workerinput`, each worker writes {node id: group} there once it has collected, and the
controller's scheduler (loadgroup's own, with the scope read from that file) reads it after
every worker has collected and before it hands out the first test. On a pytest where
xdist's rename still works the ids arrive as "id@group" and loadgroup's own rule applies:
the same groups either way.

Groups decide only which worker runs a test: nothing here changes what a test does, and a
test must pass whichever worker runs it and in whatever order.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

# Dearest import first, CPU seconds on the 2-core machine: TensorFlow/Keras 4.8, PyTorch 1.6,
# JAX 1.3, onnx 0.8, LiteRT and OpenCV 0.1-0.2.
FRAMEWORK_GROUPS = ("tensorflow", "torch", "jax", "onnx", "tflite", "opencv")
WORKERINPUT_KEY = "convcheck_framework_groups"
_FOLDER = pytest.StashKey[Path]()


def group_of(item: pytest.Item) -> str | None:
    """The xdist group `item` runs in: its own `xdist_group` marks joined, else its dearest
    framework marker, else None (the test is scheduled on its own)."""
    own = {str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
           for mark in item.iter_markers("xdist_group")}
    if own:
        return "_".join(sorted(own))
    marks = {mark.name for mark in item.iter_markers()}
    return next((name for name in FRAMEWORK_GROUPS if name in marks), None)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker, mark each framework test with its group and write the groups
    to the file the controller named (see the module docstring)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or WORKERINPUT_KEY not in workerinput:
        return
    groups = {}
    for item in items:
        group = group_of(item)
        if group is None:
            continue
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group))
        groups[item.nodeid] = group
    Path(workerinput[WORKERINPUT_KEY]).write_text(json.dumps(groups), encoding="utf-8")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """On the controller, before a worker starts: name the file it writes its groups to."""
    config = node.config
    if config.getvalue("dist") != "loadgroup":
        return
    if _FOLDER not in config.stash:
        config.stash[_FOLDER] = Path(tempfile.mkdtemp(prefix="convcheck-xdist-groups-"))
    node.workerinput[WORKERINPUT_KEY] = str(config.stash[_FOLDER] / f"{node.gateway.id}.json")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """For --dist loadgroup: loadgroup's scheduler with each test's scope read from the
    workers' group files; any other --dist keeps pytest-xdist's own."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class FrameworkGroupScheduling(LoadGroupScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # first called once every worker has collected
                self.groups = read_groups(config)
            return self.groups.get(nodeid) or super()._split_scope(nodeid)

    return FrameworkGroupScheduling(config, log)


def read_groups(config: pytest.Config) -> dict[str, str]:
    """{node id: group} as the first worker wrote it ({} if no worker did): every worker
    collects the same tests, and xdist stops the run if their collections differ."""
    folder = config.stash.get(_FOLDER, None)
    files = sorted(folder.glob("*.json")) if folder is not None else []
    return json.loads(files[0].read_text(encoding="utf-8")) if files else {}


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the controller's folder of group files."""
    folder = config.stash.get(_FOLDER, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
