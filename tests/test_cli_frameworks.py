"""`convcheck compare` with every backend, in a real process: verdicts, and a quiet stderr.

Frameworks print start-up chatter straight to file descriptor 2 (TensorFlow's oneDNN and
absl lines, XLA's platform warnings); only a real subprocess shows whether it reaches
the terminal, so this runs the CLI as users do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convcheck.backends import BACKENDS

pytestmark = [pytest.mark.tensorflow, pytest.mark.torch, pytest.mark.jax, pytest.mark.opencv]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    missing = {name: reason for name, (ok, reason) in
               ((name, b.availability()) for name, b in BACKENDS.items()) if not ok}
    if missing:
        pytest.skip(f"not every framework is installed: {missing}")
    folder = tmp_path_factory.mktemp("frameworks")
    rng = np.random.default_rng(11)
    np.save(folder / "image.npy", rng.uniform(-1, 1, (9, 10, 2)).astype(np.float32))
    np.save(folder / "kernel.npy", rng.uniform(-1, 1, (4, 4, 2, 3)).astype(np.float32))
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    result = subprocess.run([sys.executable, "-m", "convcheck", "compare", "image.npy", "kernel.npy",
                             "--format", "json"], capture_output=True, text=True, cwd=folder,
                            env=dict(env, PYTHONPATH=str(Path(__file__).resolve().parents[1])),
                            timeout=300)
    return result


def test_every_backend_runs_and_agrees(compared):
    assert compared.returncode == 0, compared.stderr
    rows = {row["backend"]: row for row in json.loads(compared.stdout)["results"]}
    assert list(rows) == list(BACKENDS)
    for name, row in rows.items():
        assert row["status"] == "ok", row
        if name == "scipy.signal.convolve2d":
            assert row["explanation"]["kernel_transform"] == "rot180"
            assert row["explanation"]["offset"] == [-1, -1]  # its even-kernel centring
        elif name in ("scipy.signal.fftconvolve", "scipy.ndimage.convolve"):   # true convolutions, shown as such
            assert row["verdict"] == "explained" and row["explanation"]["kernel_transform"] == "rot180", row
            assert row["explanation"]["offset"] == [0, 0]   # cropped / placed as TensorFlow's SAME
        else:
            assert row["verdict"] == "equal", row


def test_stderr_carries_no_framework_chatter(compared):
    lines = [line for line in compared.stderr.splitlines() if line.strip()]
    assert lines == ["importing TensorFlow, Keras, PyTorch, JAX, OpenCV for 7 backends "
                     "(this takes a few seconds)..."], compared.stderr


def test_tensorflow_row_says_onednn_once(compared):
    rows = {row["backend"]: row for row in json.loads(compared.stdout)["results"]}
    notes = [note for row in rows.values() for note in row.get("notes", []) if "oneDNN" in note]
    assert len(notes) <= 1
    if notes:
        assert "TF_ENABLE_ONEDNN_OPTS=0 turns them off" in notes[0]
        assert notes[0] in rows["tf.nn.conv2d"]["notes"]
