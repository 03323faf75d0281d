"""The base install (`pip install convcheck`: no TensorFlow, Keras, PyTorch, JAX, OpenCV or
matplotlib) runs `explain`, `check` and the pytest helper, and `compare` shows skipped rows
that name the extra to install.

The frameworks are installed in the test venv, so each run here is a fresh interpreter
whose `sitecustomize` hides them: a meta-path finder makes their import raise
ImportError and `importlib.util.find_spec` return None, as on a machine without them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .check_data import case, write_config, write_data

ROOT = Path(__file__).resolve().parent.parent
HIDDEN = ("tensorflow", "keras", "torch", "jax", "jaxlib", "cv2", "matplotlib")

SITECUSTOMIZE = textwrap.dedent(f"""
    import importlib.abc, importlib.util, sys

    HIDDEN = {HIDDEN!r}

    def _hidden(name):
        return name.split(".")[0] in HIDDEN

    class _Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if _hidden(name):
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, _Hide())
    _real_find_spec = importlib.util.find_spec

    def _find_spec(name, package=None):
        return None if _hidden(name) else _real_find_spec(name, package)

    importlib.util.find_spec = _find_spec
""")

HELPER = textwrap.dedent("""
    import sys
    import numpy as np, scipy.signal
    from convcheck.testing import assert_conv_matches
    image = np.load("image.npy"); kernel = np.load("kernel.npy")
    assert_conv_matches(scipy.signal.correlate2d(image, kernel, mode="same"), image, kernel)
    try:
        assert_conv_matches(np.load("buggy.npy"), image, kernel)
    except AssertionError as exc:
        print("caught:", str(exc).splitlines()[0])
    hidden = sorted(m for m in sys.modules if m.split(".")[0] in %r)
    print("imported:", hidden)
""" % (HIDDEN,))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """(run, folder): `run(args)` runs Python in the base-install world, in `folder`."""
    folder = write_data(tmp_path_factory.mktemp("base") / "repo")
    site = folder.parent / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    write_config(folder, case("correlated", "correlated"),
                 case("ported", "ported", allow=["kernel_transform=rot180", "precision=float32"]),
                 case("frameworks", backends=["torch", "tf"], allow=["kernel_transform=rot180"]))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]), NO_COLOR="1",
               COLUMNS="160")

    def run(*args):
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=folder,
                              env=env, timeout=300)
    return run, folder


def test_the_frameworks_really_are_hidden(base):
    run, _ = base
    result = run("-c", "import importlib.util as u\n"
                       "print([u.find_spec(m) for m in ('torch', 'cv2')])\n"
                       "import torch\n")
    assert result.stdout.strip() == "[None, None]"
    assert "ModuleNotFoundError: No module named 'torch'" in result.stderr


def test_explain_works(base):
    run, _ = base
    result = run("-m", "convcheck", "explain", "image.npy", "kernel.npy", "ported.npy",
                 "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["verdict"] == "explained"
    assert document["explanation"]["kernel_transform"] == "rot180"


def test_check_works_and_a_framework_case_exits_3(base):
    run, _ = base
    result = run("-m", "convcheck", "check", "--format", "json")
    assert result.returncode == 3, result.stderr  # the framework case's backends cannot run
    document = json.loads(result.stdout)
    by_name = {c["name"]: c for c in document["cases"]}
    assert by_name["correlated"]["status"] == "pass"
    assert by_name["ported"]["status"] == "pass"
    text = json.dumps(by_name["frameworks"])
    assert "pip install 'convcheck[torch]'" in text
    assert "pip install 'convcheck[tensorflow]'" in text


def test_pytest_helper_works(base):
    run, _ = base
    result = run("-c", HELPER)
    assert result.returncode == 0, result.stderr
    assert "caught:" in result.stdout
    assert "imported: []" in result.stdout


def test_compare_shows_skipped_rows_with_install_hints(base):
    run, _ = base
    result = run("-m", "convcheck", "compare", "image.npy", "kernel.npy", "--format", "json")
    assert result.returncode == 0, result.stderr  # rows nobody asked for: skipped, not an error
    rows = {row["backend"]: row for row in json.loads(result.stdout)["results"]}
    hints = {"tf.nn.conv2d": "convcheck[tensorflow]", "keras.layers.Conv2D": "convcheck[tensorflow]",
             "torch.nn.functional.conv2d": "convcheck[torch]",
             "jax.lax.conv_general_dilated": "convcheck[jax]", "cv2.filter2D": "convcheck[opencv]",
             "keras.layers.Conv2D[jax]": "convcheck[tensorflow]",
             "keras.layers.Conv2D[torch]": "convcheck[tensorflow]"}
    for name, extra in hints.items():
        assert rows[name]["status"] == "skipped", rows[name]
        assert rows[name]["reason"].endswith(f"pip install '{extra}'"), rows[name]
    for name in ("scipy.signal.correlate2d", "scipy.ndimage.correlate", "scipy.signal.fftconvolve"):
        assert rows[name]["status"] == "ok"
    assert "importing" not in result.stderr  # nothing to import


def test_backends_lists_install_hints(base):
    run, _ = base
    result = run("-m", "convcheck", "backends")
    assert result.returncode == 0, result.stderr
    assert "pip install 'convcheck[torch]'" in result.stdout
    assert "pip install 'convcheck[opencv]'" in result.stdout
