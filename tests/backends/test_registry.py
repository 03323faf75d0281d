"""The backend registry: names, order, availability reasons, and lazy framework imports."""

from __future__ import annotations

import dataclasses
import importlib.util
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convcheck.backends as backends
from convcheck.backends import BACKENDS, Backend, BackendRun, get_backend
from convcheck.errors import BackendError, InputError

ROOT = Path(__file__).resolve().parents[2]

MISSION_ORDER = ["scipy.signal.convolve2d", "scipy.signal.correlate2d", "tf.nn.conv2d",
                 "keras.layers.Conv2D"]


def test_names_and_order():
    assert list(BACKENDS) == MISSION_ORDER
    for name, backend in BACKENDS.items():
        assert isinstance(backend, Backend)
        assert backend.name == name
        assert get_backend(name) is backend
        assert backend.module and backend.package


def test_unknown_backend_lists_the_valid_names():
    with pytest.raises(InputError) as info:
        get_backend("torch.nn.functional.conv2d")
    message = str(info.value)
    assert "torch.nn.functional.conv2d" in message
    for name in MISSION_ORDER:
        assert name in message


def without_modules(monkeypatch, *missing):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name in missing:
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.parametrize("name, module, package_prefix", [
    ("scipy.signal.convolve2d", "scipy", "scipy"),
    ("scipy.signal.correlate2d", "scipy", "scipy"),
    ("tf.nn.conv2d", "tensorflow", "tensorflow"),
    ("keras.layers.Conv2D", "keras", "keras"),
    ("keras.layers.Conv2D", "tensorflow", "tensorflow"),  # Keras's default backend
])
def test_missing_module_gives_install_hint(monkeypatch, name, module, package_prefix):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    without_modules(monkeypatch, module)
    backend = get_backend(name)
    available, reason = backend.availability()
    assert not available
    assert reason.startswith(f"{module} is not installed: pip install {package_prefix}")
    with pytest.raises(BackendError) as info:
        backend.run(np.ones((3, 3, 1)), np.ones((2, 2, 1, 1)), padding="same", dtype="float32")
    assert info.value.backend == name
    assert info.value.reason == reason


def test_tensorflow_install_hint_names_the_cpu_wheel_on_x86(monkeypatch):
    without_modules(monkeypatch, "tensorflow")
    reason = get_backend("tf.nn.conv2d").availability()[1]
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert reason == "tensorflow is not installed: pip install tensorflow-cpu"
    else:
        assert reason == "tensorflow is not installed: pip install tensorflow"


def test_keras_on_another_backend_needs_that_framework(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    without_modules(monkeypatch, "jax")
    assert get_backend("keras.layers.Conv2D").availability() == (
        False, "jax is not installed: pip install jax")


def test_backend_run_is_frozen():
    run = BackendRun(output=np.zeros((1, 1, 1)), compute_dtype="float32", padding="same",
                     seconds=0.0)
    assert run.notes == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.padding = "valid"


def test_importing_backends_imports_no_framework():
    # A fresh interpreter: this session may already have imported them.
    code = ("import sys\n"
            "import convcheck.backends as b\n"
            "for backend in b.BACKENDS.values():\n"
            "    backend.availability(); backend.version()\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'scipy') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_versions_of_installed_frameworks():
    for backend in BACKENDS.values():
        available, reason = backend.availability()
        if available:
            assert backend.version(), backend.name
        else:
            assert "pip install" in reason


def test_registry_module_exports():
    assert set(backends.__all__) == {"BACKENDS", "Backend", "BackendRun", "get_backend"}
