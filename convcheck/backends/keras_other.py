"""`keras.layers.Conv2D` on JAX and on PyTorch: Keras in a helper subprocess.

Keras 3 picks its backend once per process, when it is first imported (KERAS_BACKEND),
and convcheck's own process runs Keras on TensorFlow. So these rows run Keras in a
child Python (`python -m convcheck.backends._keras_worker`) started with
KERAS_BACKEND=jax or torch; the arrays go both ways as .npy files in a temporary
folder, and the child runs the very same `KerasConv2D` code as the TensorFlow row.

The child is started by `warm_up`, so its imports overlap with convcheck's other work,
and it serves every later run of this process (one request line, one answer line);
it exits when convcheck does (its stdin closes).
"""

from __future__ import annotations

import atexit
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..errors import BackendError
from ..geometry import normalize_padding
from .base import Backend, BackendRun, dtype_name, numpy_dtype

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_TIMEOUT = 600.0


def save_array(folder: str, label: str, array: np.ndarray) -> str:
    """Save `array` as folder/label.npy; bfloat16 (unknown to .npy) goes as float32 (exact)."""
    name = dtype_name(array.dtype)
    if name == "bfloat16":
        array = array.astype(np.float32)
    np.save(os.path.join(folder, f"{label}.npy"), array, allow_pickle=False)
    return name


def load_array(folder: str, label: str, dtype: str) -> np.ndarray:
    """The array `save_array` saved, back in its own dtype."""
    array = np.load(os.path.join(folder, f"{label}.npy"), allow_pickle=False)
    return array.astype(numpy_dtype(dtype)) if dtype_name(array.dtype) != dtype else array


class _Worker:
    """One child Python running Keras on `backend`; requests are served one at a time."""

    def __init__(self, backend: str):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                   PYTHONPATH=os.pathsep.join(
                       p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p))
        # The child's stderr (framework chatter) goes to a file, read back only on failure.
        self.log = tempfile.TemporaryFile(mode="w+b")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "convcheck.backends._keras_worker"], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            text=True, bufsize=1)

    def alive(self) -> bool:
        return self.process.poll() is None

    def request(self, message: dict) -> dict:
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=_TIMEOUT)
            raise RuntimeError(f"the Keras subprocess exited (code {self.process.returncode})"
                               f"{self._last_error()}")
        return json.loads(line)

    def _last_error(self) -> str:
        self.log.seek(0)
        lines = [line.strip() for line in self.log.read().decode("utf-8", "replace").splitlines()
                 if line.strip()]
        return f": {lines[-1]}" if lines else ""

    def close(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()
        self.log.close()


class KerasSubprocessConv2D(Backend):
    """`keras.layers.Conv2D` with KERAS_BACKEND=`keras_backend`, in a child process."""

    module = "keras"
    package = "keras"
    extra = "tensorflow"  # Keras comes with the tensorflow extra
    keras_backend: str
    native_geometry = True  # the child's KerasConv2D takes strides, dilation_rate and groups

    def __init__(self):
        self._worker: _Worker | None = None
        self._lock = threading.Lock()

    def required_modules(self):
        return (("keras", "tensorflow"), (self.keras_backend, self.keras_backend))

    def version(self) -> str | None:
        """Keras's version and the framework's: '3.15.1 (jax 0.10.2)'."""
        keras = super().version()
        try:
            framework = importlib.metadata.version(self.keras_backend)
        except importlib.metadata.PackageNotFoundError:
            return keras
        return f"{keras} ({self.keras_backend} {framework})" if keras else None

    def _ensure_worker(self) -> _Worker:
        with self._lock:
            if self._worker is None or not self._worker.alive():
                if self._worker is not None:
                    self._worker.close()
                self._worker = _Worker(self.keras_backend)
                atexit.register(self._worker.close)
            return self._worker

    def warm_up(self) -> None:
        # Start the child now: its Keras/framework import overlaps with the other rows.
        self._ensure_worker()

    def _run(self, image, kernel, *, padding, dtype, library_defaults, stride=(1, 1), dilation=(1, 1),
             groups=1):
        worker = self._ensure_worker()
        with tempfile.TemporaryDirectory(prefix="convcheck-keras-") as folder:
            message = {"folder": folder, "padding": padding, "dtype": dtype,
                       "library_defaults": library_defaults, "stride": list(stride),
                       "dilation": list(dilation), "groups": int(groups),
                       "image_dtype": save_array(folder, "image", image),
                       "kernel_dtype": save_array(folder, "kernel", np.ascontiguousarray(kernel))}
            with self._lock:
                answer = worker.request(message)
            if "error" in answer:
                raise BackendError(self.name, answer["error"])
            output = load_array(folder, "output", answer["output_dtype"])
        notes = [note for note in answer["notes"] if not note.startswith("Keras ran on its")]
        notes.append(f"Keras ran in a subprocess with KERAS_BACKEND={self.keras_backend} "
                     f"(Keras picks its backend once per process); arrays exchanged as .npy "
                     f"files")
        return BackendRun(output=output, compute_dtype=answer["compute_dtype"],
                          padding=normalize_padding(answer["padding"]), seconds=answer["seconds"],
                          notes=tuple(notes))


class KerasJaxConv2D(KerasSubprocessConv2D):
    name = "keras.layers.Conv2D[jax]"
    keras_backend = "jax"


class KerasTorchConv2D(KerasSubprocessConv2D):
    name = "keras.layers.Conv2D[torch]"
    keras_backend = "torch"
