"""Test-suite settings shared by every test folder.

Hypothesis runs derandomized (a fixed example sequence) everywhere by default, so neither
CI nor a newcomer's first `make test` can fail by chance on an example no one can replay.
Set CONVCHECK_HYPOTHESIS_EXPLORE=1 to let it draw new examples on every run while
hunting for counterexamples.

Under pytest-xdist (`make test` runs `-n auto --dist loadgroup`) each framework's marked
tests run on one worker: the hooks imported from tests/framework_groups.py. A worker runs
only some of a module's tests, in an order that depends on timing, so a module's shared
`RNG = np.random.default_rng(seed)` starts afresh for every test (`pytest_runtest_setup`):
what a test draws depends on the module's seed and the test's name, never on what ran first.
"""

import os
import zlib

import numpy as np
import pytest
from hypothesis import settings

from tests.framework_groups import (  # noqa: F401  (pytest finds hooks by name here)
    pytest_collection_modifyitems,
    pytest_configure_node,
    pytest_unconfigure,
    pytest_xdist_make_scheduler,
)

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", derandomize=False, deadline=None, print_blob=True)
settings.load_profile("explore" if os.environ.get("CONVCHECK_HYPOTHESIS_EXPLORE") else "ci")


_SHARED_RNG = pytest.StashKey[tuple]()


@pytest.hookimpl(tryfirst=True)  # before the test's fixtures, which may draw from it too
def pytest_runtest_setup(item):
    """Give the test's module a fresh `RNG`, seeded from the module's seed and the test's name."""
    module = getattr(item, "module", None)
    shared = getattr(module, "RNG", None)
    if not isinstance(shared, np.random.Generator):
        return
    entropy = shared.bit_generator.seed_seq.entropy
    seed = [*entropy] if isinstance(entropy, (list, tuple)) else [entropy]
    item.stash[_SHARED_RNG] = (module, shared)
    module.RNG = np.random.default_rng(seed + [zlib.crc32(item.name.encode("utf-8"))])


def pytest_runtest_teardown(item):
    """Put the module's own `RNG` back."""
    saved = item.stash.get(_SHARED_RNG, None)
    if saved is not None:
        module, shared = saved
        module.RNG = shared
