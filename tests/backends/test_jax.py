"""jax.lax.conv_general_dilated backend on real calls (skipped without JAX)."""

from __future__ import annotations

import pytest

from convcheck.backends import get_backend

from .conftest import (DTYPES, PADDINGS, changed_fields, check_consistent_run, defaults_case,
                       explain_defaults)

pytestmark = pytest.mark.jax

BACKEND = get_backend("jax.lax.conv_general_dilated")


@pytest.fixture(scope="module", autouse=True)
def jax():
    return pytest.importorskip("jax", reason="JAX is not installed: pip install 'convcheck[jax]'")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_consistent_settings_are_equal(jax, case, padding, dtype):
    run = check_consistent_run(BACKEND, case, padding, dtype)
    assert run.output.dtype.name == dtype
    assert any("jax_enable_x64 was turned on" in note for note in run.notes) == (dtype == "float64")
    assert jax.config.jax_enable_x64 is False  # restored after the run


def test_library_defaults_float64_runs_in_float32_without_x64():
    image, kernel = defaults_case(kernel_size=4)
    run, diagnosis = explain_defaults(BACKEND, image, kernel)
    assert run.compute_dtype == "float32"
    assert "x64 is off" in run.notes[0]
    assert changed_fields(diagnosis) == {"precision": "float32"}


def test_library_defaults_with_x64_on_keep_float64(jax):
    image, kernel = defaults_case(kernel_size=3)
    jax.config.update("jax_enable_x64", True)
    try:
        run, diagnosis = explain_defaults(BACKEND, image, kernel)
    finally:
        jax.config.update("jax_enable_x64", False)
    assert run.compute_dtype == "float64"
    assert diagnosis.verdict.value == "equal"
