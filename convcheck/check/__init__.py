"""`check`: run a suite of convolution cases from a config file, as CI does in a model repository.

The config is `convcheck.toml` (top-level keys and `[[case]]` tables) or a `pyproject.toml`
with a `[tool.convcheck]` table (and `[[tool.convcheck.case]]`), found upwards from the
current directory as pytest and ruff find theirs. Each case either compares `backends` on
an image and kernel, or explains a saved `output` against what its `expect` table declares
(CONTRACT section 2a); `allow` lists the causes a case may have (CONTRACT section 2 fields,
`field=value` or a bare field for any value). Each `[[model]]` table walks a model and its
port conv layer by conv layer (CONTRACT section 6), one result per layer.

Every case is parsed, and every file loaded and validated, before the first case runs,
so a typo in the last case costs milliseconds, not a TensorFlow import. Then each case
runs (loaded again unless kept from that first pass, up to 32 MiB of them) and is
released after it: a suite's memory does not grow with the number of its cases. No click here: the CLI
(`convcheck.cli.check`) turns `InputError` into exit 2.

One job a module, each importing only those above it in this list:

    allow        the allow rules: AllowRule, parse_allow (fields and values from the field table)
    expect       declared values as written (--expect, --bias/--scale, a case's expect table)
    settings     one config table's settings, validated
    config       finding the config and reading it into a Suite of Cases
    report       ResultOutcome, CaseResult, CheckReport: what a run found
    judging      judge(): pass, warn or fail one diagnosis against a case's allow rules
    model_cases  [[model]] tables: read, validated, walked into one result per layer
    run          running a suite: validate every case, run each, judge its results
"""

import importlib

# The public names and the modules that define them, imported on first use (PEP 562):
# `convcheck explain --expect` reads its declarations without the suite machinery (config,
# reports, model cases, run). `judge` lives in `judging`: a module of the function's name
# would replace the function as the package's attribute once imported.
_WHERE = {"AllowRule": "allow", "parse_allow": "allow", "parse_allow_entry": "allow",
          "Case": "config", "Suite": "config", "find_config": "config", "load_suite": "config",
          "ModelCase": "model_cases", "CaseResult": "report", "CheckReport": "report",
          "ResultOutcome": "report", "check": "run", "run_suite": "run", "judge": "judging",
          "unexplained_message": "judging"}

__all__ = ["AllowRule", "Case", "CaseResult", "ModelCase", "CheckReport", "ResultOutcome", "Suite", "check",
           "find_config", "judge", "load_suite", "parse_allow", "parse_allow_entry", "run_suite"]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
