"""The model tests' nets are small: their tensors (a few KiB) would stay in memory, under
`convcheck.models.spill.MIN_BYTES`. Every test here but the spill's own keeps every tensor on
disk instead, so that the walks and captures tested are those of a real model's tensors
(read-only maps of files, given back after each pair)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def every_tensor_on_disk(request, monkeypatch):
    if request.module.__name__.endswith("test_spill"):
        return
    from convcheck.models import spill
    monkeypatch.setattr(spill, "MIN_BYTES", 0)
