"""The backend registry: names, order, availability reasons, and lazy framework imports."""

from __future__ import annotations

import dataclasses
import importlib.util
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
                 "keras.layers.Conv2D", "scipy.signal.fftconvolve", "scipy.ndimage.correlate",
                 "scipy.ndimage.convolve", "torch.nn.functional.conv2d",
                 "jax.lax.conv_general_dilated", "cv2.filter2D", "keras.layers.Conv2D[jax]",
                 "keras.layers.Conv2D[torch]"]


def test_names_and_order():
    assert list(BACKENDS) == MISSION_ORDER
    for name, backend in BACKENDS.items():
        assert isinstance(backend, Backend)
        assert backend.name == name
        assert get_backend(name) is backend
        assert backend.module and backend.package


def test_unknown_backend_lists_the_valid_names():
    with pytest.raises(InputError) as info:
        get_backend("mxnet.conv")
    message = str(info.value)
    assert "'mxnet.conv'" in message
    for name in MISSION_ORDER + ["torch", "tf", "cv2", "ndimage", "fft", "dl", "scipy"]:
        assert name in message
    with pytest.raises(InputError, match="aliases .*groups"):
        backends.resolve_backends(["torch", "nope"])


@pytest.mark.parametrize("alias, name", [
    ("torch", "torch.nn.functional.conv2d"), ("tf", "tf.nn.conv2d"),
    ("keras", "keras.layers.Conv2D"), ("jax", "jax.lax.conv_general_dilated"),
    ("cv2", "cv2.filter2D"), ("ndimage", "scipy.ndimage.correlate"),
    ("fft", "scipy.signal.fftconvolve"), ("keras[jax]", "keras.layers.Conv2D[jax]"),
    ("keras[torch]", "keras.layers.Conv2D[torch]"), ("scipy.convolve2d", "scipy.signal.convolve2d"),
])
def test_aliases(alias, name):
    assert get_backend(alias) is BACKENDS[name]
    assert backends.resolve_backends([alias]) == [name]


def test_groups_expand_in_registry_order_without_repeats():
    assert backends.resolve_backends(["scipy"]) == [
        "scipy.signal.convolve2d", "scipy.signal.correlate2d", "scipy.signal.fftconvolve",
        "scipy.ndimage.correlate", "scipy.ndimage.convolve"]
    dl = backends.resolve_backends(["dl"])
    assert dl == ["tf.nn.conv2d", "keras.layers.Conv2D", "torch.nn.functional.conv2d",
                  "jax.lax.conv_general_dilated", "keras.layers.Conv2D[jax]",
                  "keras.layers.Conv2D[torch]"]
    assert backends.resolve_backends(["torch", "dl", "cv2", "torch.nn.functional.conv2d"]) == (
        ["torch.nn.functional.conv2d"] + [n for n in dl if n != "torch.nn.functional.conv2d"]
        + ["cv2.filter2D"])
    assert backends.resolve_backends(["all"]) == MISSION_ORDER


def without_modules(monkeypatch, *missing):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name in missing:
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.parametrize("name, module, hint", [
    ("scipy.signal.convolve2d", "scipy", "pip install scipy"),
    ("scipy.signal.correlate2d", "scipy", "pip install scipy"),
    ("scipy.signal.fftconvolve", "scipy", "pip install scipy"),
    ("scipy.ndimage.correlate", "scipy", "pip install scipy"),
    ("scipy.ndimage.convolve", "scipy", "pip install scipy"),
    ("tf.nn.conv2d", "tensorflow", "pip install 'convcheck[tensorflow]'"),
    ("keras.layers.Conv2D", "keras", "pip install 'convcheck[tensorflow]'"),
    ("keras.layers.Conv2D", "tensorflow", "pip install 'convcheck[tensorflow]'"),  # Keras's default backend
    ("torch.nn.functional.conv2d", "torch", "pip install 'convcheck[torch]'"),
    ("jax.lax.conv_general_dilated", "jax", "pip install 'convcheck[jax]'"),
    ("cv2.filter2D", "cv2", "pip install 'convcheck[opencv]'"),
    ("keras.layers.Conv2D[jax]", "jax", "pip install 'convcheck[jax]'"),
    ("keras.layers.Conv2D[jax]", "keras", "pip install 'convcheck[tensorflow]'"),
    ("keras.layers.Conv2D[torch]", "torch", "pip install 'convcheck[torch]'"),
])
def test_missing_module_gives_install_hint(monkeypatch, name, module, hint):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    without_modules(monkeypatch, module)
    backend = get_backend(name)
    available, reason = backend.availability()
    assert not available
    assert reason == f"{module} is not installed: {hint}"
    with pytest.raises(BackendError) as info:
        backend.run(np.ones((3, 3, 1)), np.ones((2, 2, 1, 1)), padding="same", dtype="float32")
    assert info.value.backend == name
    assert info.value.reason == reason


def test_keras_on_another_backend_needs_that_framework(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    without_modules(monkeypatch, "jax")
    assert get_backend("keras.layers.Conv2D").availability() == (
        False, "jax is not installed: pip install 'convcheck[jax]'")


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
            "print(sorted(m for m in ('tensorflow', 'keras', 'scipy', 'torch', 'jax', 'cv2')\n"
            "             if m in sys.modules))\n")
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
    assert set(backends.__all__) == {"BACKENDS", "ALIASES", "GROUPS", "Backend", "BackendRun",
                                     "get_backend", "resolve_backends", "valid_names",
                                     "completion_choices"}


def test_keras_on_another_backend_reports_both_versions(monkeypatch):
    import importlib.metadata as metadata

    versions = {"keras": "3.9.0", "jax": "0.4.30"}
    monkeypatch.setattr(metadata, "version", lambda name: versions[name] if name in versions
                        else (_ for _ in ()).throw(metadata.PackageNotFoundError(name)))
    assert get_backend("keras.layers.Conv2D[jax]").version() == "3.9.0 (jax 0.4.30)"
    assert get_backend("keras.layers.Conv2D[torch]").version() == "3.9.0"
