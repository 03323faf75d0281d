"""keras.layers.Conv2D on JAX and on PyTorch, in a child process (skipped without them)."""

from __future__ import annotations

import pytest

from convcheck.backends import get_backend

from .conftest import (DTYPES, PADDINGS, changed_fields, check_consistent_run, defaults_case,
                       explain_defaults)

pytestmark = [pytest.mark.tensorflow]  # Keras comes with the tensorflow extra

KERAS_BACKENDS = [pytest.param("keras.layers.Conv2D[jax]", marks=pytest.mark.jax, id="jax"),
                  pytest.param("keras.layers.Conv2D[torch]", marks=pytest.mark.torch, id="torch")]


@pytest.fixture(params=KERAS_BACKENDS)
def backend(request):
    backend = get_backend(request.param)
    available, reason = backend.availability()
    if not available:
        pytest.skip(f"{backend.name} cannot run here: {reason}")
    return backend


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_consistent_settings_are_equal(backend, case, padding, dtype):
    run = check_consistent_run(backend, case, padding, dtype)
    assert run.output.dtype.name == dtype
    framework = backend.name[len("keras.layers.Conv2D["):-1]
    assert (f"Keras ran in a subprocess with KERAS_BACKEND={framework} (Keras picks its backend "
            f"once per process); arrays exchanged as .npy files") in run.notes
    x64 = any("jax_enable_x64 was turned on" in note for note in run.notes)
    assert x64 == (framework == "jax" and dtype == "float64")


def test_library_defaults_valid_and_float32(backend):
    image, kernel = defaults_case(kernel_size=4)
    run, diagnosis = explain_defaults(backend, image, kernel)
    assert run.padding == "valid" and run.compute_dtype == "float32"
    assert run.notes[0] == "library defaults: Keras float32 dtype policy, padding='valid'"
    assert changed_fields(diagnosis) == {"padding": "valid", "precision": "float32"}


def test_an_error_in_the_child_is_a_one_line_failure(backend, monkeypatch):
    import numpy as np

    from convcheck.backends import keras_other
    from convcheck.errors import BackendError

    real_save = keras_other.save_array
    monkeypatch.setattr(keras_other, "save_array",
                        lambda folder, label, array: real_save(folder, label, array)
                        if label != "image" else (real_save(folder, label, array), "no-such-dtype")[1])
    with pytest.raises(BackendError) as info:
        backend.run(np.ones((4, 4, 1)), np.ones((3, 3, 1, 1)), padding="valid", dtype="float32")
    assert info.value.backend == backend.name
    assert "no-such-dtype" in info.value.reason and "\n" not in info.value.reason


def test_a_dead_child_is_restarted(backend):
    backend.warm_up()
    backend._worker.process.kill()
    backend._worker.process.wait()
    image, kernel = defaults_case(kernel_size=3, channels=1, outputs=1)
    run = backend.run(image, kernel, padding="same", dtype="float32")
    assert run.output.shape == (9, 10, 1)
