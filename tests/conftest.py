"""Test-suite settings shared by every test folder.

Hypothesis runs derandomized (a fixed example sequence) everywhere by default, so neither
CI nor a newcomer's first `make test` can fail by chance on an example no one can replay.
Set CONVCHECK_HYPOTHESIS_EXPLORE=1 to let it draw new examples on every run while
hunting for counterexamples.

Under pytest-xdist (`make test` runs `-n auto --dist loadgroup`) each framework's marked
tests run on one worker: the hooks imported from tests/framework_groups.py.
"""

import os

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
