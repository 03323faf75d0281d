"""Suite-wide settings: Hypothesis runs derandomized (a fixed example sequence) in CI.

CI systems set CI=true; `.ci/run` sets it too. Locally Hypothesis explores freely.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
