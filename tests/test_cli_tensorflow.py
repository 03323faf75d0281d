"""End-to-end CLI runs that import TensorFlow/Keras (slow start-up): the four seed backends."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from convcheck.backends import BACKENDS
from convcheck.cli import main
from convcheck.comparison import demo_paths

pytestmark = pytest.mark.tensorflow

ALL = list(BACKENDS)[:4]


@pytest.fixture(autouse=True)
def _needs_tensorflow():
    for name in ("tf.nn.conv2d", "keras.layers.Conv2D"):
        available, reason = BACKENDS[name].availability()
        if not available:
            pytest.skip(f"{name} cannot run here: {reason}")


@pytest.fixture
def runner():
    return CliRunner(env={"NO_COLOR": None, "FORCE_COLOR": None, "COLUMNS": "160"})


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    image_path, kernel_path = demo_paths()
    np.save(tmp_path / "image.npy", np.load(image_path))
    np.save(tmp_path / "kernel.npy", np.load(kernel_path))
    return tmp_path


def test_compare_all_four_backends(runner, files):
    result = runner.invoke(main, ["compare", "image.npy", "kernel.npy", "--format", "json"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)  # TensorFlow's chatter stayed off stdout
    rows = {row["backend"]: row for row in document["results"]}
    assert set(ALL) <= set(rows)
    assert all(rows[name]["status"] == "ok" for name in ALL)
    assert rows["scipy.signal.convolve2d"]["verdict"] == "explained"
    assert rows["scipy.signal.convolve2d"]["explanation"]["kernel_transform"] == "rot180"
    for name in ("scipy.signal.correlate2d", "tf.nn.conv2d", "keras.layers.Conv2D"):
        assert rows[name]["verdict"] == "equal", rows[name]


def test_demo_tells_the_story(runner):
    result = runner.invoke(main, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    for name in ALL:
        assert name in result.stdout
    assert "scipy.signal.convolve2d, scipy.signal.fftconvolve and scipy.ndimage.convolve differ from the " \
           "reference only because the kernel was flipped" in " ".join(result.stdout.split())
    story = " ".join(result.stdout.split())
    agree = story[story.index("scipy.signal.correlate2d, tf.nn.conv2d"):]
    agree = agree[:agree.index("compute the cross-correlation that deep-learning frameworks call "
                               "convolution, and agree with the reference")]
    assert "keras.layers.Conv2D" in agree


def test_library_defaults_show_which_default_bites(runner, files):
    result = runner.invoke(main, ["compare", "image.npy", "kernel.npy", "--library-defaults",
                                  "--format", "json"], catch_exceptions=False)
    assert result.exit_code in (0, 1), result.stderr
    document = json.loads(result.stdout)
    assert document["settings"]["library_defaults"] is True
    rows = {row["backend"]: row for row in document["results"]}
    # scipy.signal's default mode is 'full', Keras's default padding 'valid': both are causes.
    assert rows["scipy.signal.correlate2d"]["explanation"]["padding"] == "full"
    assert rows["keras.layers.Conv2D"]["explanation"]["padding"] == "valid"
    table = runner.invoke(main, ["compare", "image.npy", "kernel.npy", "--library-defaults"],
                          catch_exceptions=False)
    assert "'full' padding" in table.stdout and "'valid' padding" in table.stdout  # plain words in the table


def test_the_command_leaves_with_every_file_complete(files):
    # The console script leaves without TensorFlow's teardown (convcheck.cli.entry): what it
    # printed and wrote must be whole, and the exit code the command's.
    import os
    import subprocess
    import sys
    import xml.etree.ElementTree as ElementTree
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-m", "convcheck", "compare", "image.npy", "kernel.npy", "--backends",
                           "tf.nn.conv2d,scipy.signal.correlate2d", "--format", "json",
                           "--report", "junit=report.xml", "--report", "markdown=report.md"],
                          capture_output=True, text=True, cwd=files, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [row["status"] for row in json.loads(done.stdout)["results"]] == ["ok", "ok"]
    assert ElementTree.parse(files / "report.xml").getroot().tag in ("testsuites", "testsuite")
    assert "tf.nn.conv2d" in (files / "report.md").read_text()
