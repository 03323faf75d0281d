"""torch.nn.functional.conv2d backend on real calls (skipped without PyTorch)."""

from __future__ import annotations

import numpy as np
import pytest

from convcheck.backends import get_backend

from .conftest import (DTYPES, PADDINGS, changed_fields, check_consistent_run, defaults_case,
                       explain_defaults)

pytestmark = pytest.mark.torch

BACKEND = get_backend("torch.nn.functional.conv2d")


@pytest.fixture(scope="module", autouse=True)
def torch():
    """Import torch once for the module (in a fixture: `-m 'not torch'` never pays)."""
    return pytest.importorskip("torch", reason="PyTorch is not installed: "
                                               "pip install 'convcheck[torch]'")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_consistent_settings_are_equal(case, padding, dtype):
    run = check_consistent_run(BACKEND, case, padding, dtype)
    assert run.output.dtype.name == dtype  # bfloat16 comes back as ml_dtypes.bfloat16
    assert any("'full' padding passed as padding=" in note for note in run.notes) == (padding == "full")


def test_even_kernel_same_raises_no_warning(recwarn):
    image, kernel = defaults_case(kernel_size=4)
    BACKEND.run(image, kernel, padding="same", dtype="float64")
    assert not [w for w in recwarn if "padding='same'" in str(w.message)]


def test_tf32_is_off(torch):
    BACKEND.warm_up()
    assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cuda.matmul.allow_tf32 is False


def test_library_defaults_padding_zero_is_valid():
    image, kernel = defaults_case(kernel_size=4)
    run, diagnosis = explain_defaults(BACKEND, image, kernel)
    assert run.padding == "valid" and run.compute_dtype == "float64"
    assert run.output.shape == (6, 7, 2)
    assert run.notes[0].startswith("library defaults: padding=0 ('valid')")
    assert changed_fields(diagnosis) == {"padding": "valid"}


def test_library_defaults_integers_become_float32():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (6, 7, 1)).astype(np.uint8)
    kernel = rng.integers(-2, 3, (3, 3, 1, 1))
    run = BACKEND.run(image, kernel, padding="same", dtype="float32", library_defaults=True)
    assert run.compute_dtype == "float32"
    assert "cast to float32 (torch's default dtype)" in run.notes[0]
