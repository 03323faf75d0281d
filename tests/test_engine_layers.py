"""The engine's layering (convcheck/engine/__init__.py): imports run one way, from the
verdict down to the reference, and the rest of convcheck uses only the engine's public names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import convcheck.engine

PACKAGE = Path(convcheck.engine.__file__).parent
ROOT = PACKAGE.parent


def _layers() -> list[str]:
    """The modules of the layering in the package docstring, top first, then those beside them."""
    doc = convcheck.engine.__doc__
    order = re.findall(r"^    (\w+)\s{2,}", doc, re.M)
    beside = re.findall(r"`(\w+)`", doc.split("Beside them", 1)[1].split("\n\n", 1)[0])
    return order + beside


def _engine_imports(path: Path) -> set[str]:
    """The engine modules a module imports (at any depth of its code: function-level too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update([node.module.split(".")[0]] if node.module else [alias.name for alias in node.names])
    return found


def test_every_engine_module_has_its_place_in_the_layering():
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert sorted(_layers()) == sorted(modules)


def test_engine_imports_run_one_way():
    order = _layers()
    rank = {name: index for index, name in enumerate(order)}
    upward = []
    for name in order:
        for dependency in _engine_imports(PACKAGE / f"{name}.py") & set(rank):
            if rank[dependency] <= rank[name] and not (name in ("weights", "weight_factors")
                                                        and dependency in ("weight_factors", "precision")):
                upward.append((name, dependency))
    # `weights` and `weight_factors` sit beside the layers, on the precision models alone.
    assert not upward, upward


def test_the_rest_of_convcheck_uses_only_the_engines_public_names():
    public = set(convcheck.engine.__all__)
    offenders = []
    for path in ROOT.rglob("*.py"):
        if PACKAGE in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = node.module or ""
            if node.level:
                package = path.relative_to(ROOT.parent).parent.parts   # ('convcheck', 'backends'), ...
                base = ".".join(package[:len(package) - node.level + 1])
                absolute = f"{base}.{module}" if module else base
            else:
                absolute = module
            if absolute.startswith("convcheck.engine."):
                offenders.append((str(path.relative_to(ROOT)), absolute))
            elif absolute == "convcheck.engine":
                offenders += [(str(path.relative_to(ROOT)), alias.name) for alias in node.names
                              if alias.name not in public]
    assert not offenders, offenders
