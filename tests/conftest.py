"""Test-suite settings shared by every test folder.

Hypothesis draws new examples on every run by default. Under CI (the `CI` environment
variable, set by GitHub Actions, GitLab and most others) the "ci" profile derandomizes it,
so a CI run is reproducible and never fails by chance on an example no one can replay.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
