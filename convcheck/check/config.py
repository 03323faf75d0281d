"""Finding a check config (`convcheck.toml`, or `[tool.convcheck]` in a `pyproject.toml`) and
reading it into a validated `Suite` of `Case`s; no arrays are read here.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import InputError
from ..files import archive_member
from .allow import AllowRule
from .settings import DEFAULT_SETTINGS, read_settings

CONFIG_NAME = "convcheck.toml"
PYPROJECT_NAME = "pyproject.toml"

# Settings a case inherits from the top level unless it sets its own. Keys are the
# canonical (hyphenated) spelling; the underscore spelling is accepted as well.
_SETTINGS = ("padding", "stride", "dilation", "groups", "layout", "dtype", "backends", "kernel-layout",
             "library-defaults", "strict", "allow")
_TOP_KEYS = _SETTINGS + ("case", "model")
_CASE_KEYS = ("name", "image", "kernel", "output", "expect") + _SETTINGS
# The fields a case's own keys declare: the same field in its `expect` table is declared twice.
_KEY_FIELDS = {"padding": "padding", "stride": "stride", "dilation": "dilation", "groups": "groups",
               "kernel-layout": "kernel_layout"}


@dataclass(frozen=True)
class Case:
    """One validated case of a suite; paths are absolute (resolved against the config's folder).

    `output` set: explain that saved output. Otherwise: compare `backends`. `raw` keeps
    the paths as written in the config, for reports. `padding` is a convention's name or
    explicit ((top, bottom), (left, right)) amounts; `stride` and `dilation` are pairs;
    `groups` (saved outputs only) is the declared groups, None for what the kernel layout
    declares; `kernel_layout` None means oihw with `layout` 'nchw', else hwio. `expect`
    (saved outputs only) holds the case's other declared fields as (field, value) pairs
    (CONTRACT section 2a; a bias or scale file as a `convcheck.check.expect.ChannelFile`, read
    with the arrays), of which `precision`, `output_precision` and `algorithm` are also kept
    as their own attributes (what `diagnose` takes as options).
    """

    name: str
    image: Path
    kernel: Path
    output: Optional[Path]
    backends: Optional[tuple[str, ...]]
    allow: tuple[AllowRule, ...]
    padding: Any = "same"
    dtype: Optional[str] = None
    kernel_layout: Optional[str] = None
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    groups: Optional[int] = None
    layout: str = "nhwc"
    library_defaults: bool = False
    strict: bool = False
    line: Optional[int] = None
    raw: dict = field(default_factory=dict, compare=False)
    expect: tuple = ()
    precision: Optional[str] = None
    output_precision: Optional[str] = None
    algorithm: str = "direct"

    @property
    def kind(self) -> str:
        """'explain' for a saved output, 'compare' for backends."""
        return "explain" if self.output is not None else "compare"

    @property
    def expected(self) -> dict:
        """The declared fields besides the options, as `diagnose`'s `expected=` (files still unread)."""
        return dict(self.expect)


@dataclass(frozen=True)
class Suite:
    """A parsed config: where it came from, its top-level strictness, its cases and its model
    cases (`[[model]]` tables, `convcheck.check.model_cases.ModelCase`)."""

    config: Path
    cases: tuple[Case, ...]
    strict: bool = False
    models: tuple = ()


# ----------------------------------------------------------------------------- finding


def _has_tool_table(path: Path) -> bool:
    try:
        data = _parse_toml(path)
    except InputError:
        # A broken pyproject.toml that mentions us is still ours: load_suite reports it.
        try:
            return "[tool.convcheck" in path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    return isinstance(data.get("tool"), dict) and "convcheck" in data["tool"]


def find_config(start: Optional[os.PathLike] = None) -> Path:
    """The config file to use: `start` itself when it is a file, else the nearest one upwards.

    From the directory `start` (default: the current directory) up to the filesystem root,
    the first directory holding `convcheck.toml`, or a `pyproject.toml` with a
    `[tool.convcheck]` table, wins; `convcheck.toml` wins over `pyproject.toml` in the same
    directory. Raises `InputError` saying what to create when none is found, or when an
    explicit file does not exist.
    """
    start_path = Path(start) if start is not None else Path.cwd()
    if start_path.is_file():
        return start_path
    if start is not None and os.path.lexists(start_path) and not start_path.is_dir():
        from ..inputs import check_regular_file  # a FIFO, a device, a link loop: say what it is
        check_regular_file(os.fspath(start_path), f"config file '{start_path}'", "a TOML file",
                           "give the path of a convcheck.toml or pyproject.toml")
    if not start_path.exists():
        raise InputError(f"config file '{start_path}': no such file; give the path of a convcheck.toml "
                         "(or of a pyproject.toml with a [tool.convcheck] table)")
    directory = start_path.resolve()
    for folder in (directory, *directory.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
        candidate = folder / PYPROJECT_NAME
        if candidate.is_file() and _has_tool_table(candidate):
            return candidate
    raise InputError(f"no convcheck config found in '{directory}' or any folder above it; create a "
                     f"{CONFIG_NAME} with [[case]] tables (name, image, kernel, and backends or output), "
                     "add a [tool.convcheck] table to your pyproject.toml, or pass the file: "
                     "convcheck check path/to/convcheck.toml")


# ----------------------------------------------------------------------------- reading


def _parse_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise InputError(f"config file '{path}': reading TOML on Python < 3.11 needs tomli: "
                             "pip install tomli") from None
    try:
        with open(path, "rb") as fp:
            return tomllib.load(fp)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config file '{path}': is not valid TOML ({exc}); fix the syntax") from None
    except RecursionError:
        raise InputError(f"config file '{path}': nests arrays or tables too deeply to read (thousands of "
                         "levels); a convcheck config needs two levels, see convcheck check --help") from None
    except UnicodeDecodeError:
        raise InputError(f"config file '{path}': is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise InputError(f"config file '{path}': cannot be read ({exc.strerror or exc})") from None


class _Where:
    """Builds the 'file: case 'x': key 'y':' prefix every config message starts with."""

    def __init__(self, config: Path, table: str):
        self.config = config
        self.table = table  # '' for convcheck.toml, '[tool.convcheck] ' for pyproject

    def top(self, key: Optional[str] = None) -> str:
        where = f"{self.config}: {self.table}".rstrip()
        return f"{where} key '{key}'" if key else where

    def case(self, label: str, key: Optional[str] = None) -> str:
        where = f"{self.config}: case {label}"
        return f"{where}: key '{key}'" if key else where


def _canonical_keys(table: dict, allowed: tuple[str, ...], say: Callable[[Optional[str]], str]) -> dict:
    """`table` with underscore spellings turned into hyphenated ones; unknown keys refused."""
    result: dict[str, Any] = {}
    for key, value in table.items():
        canonical = key.replace("_", "-")
        if canonical not in allowed:
            close = difflib.get_close_matches(canonical, allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise InputError(f"{say(key)}: unknown key{hint}; known keys are {', '.join(allowed)}")
        if canonical in result:
            raise InputError(f"{say(key)}: given twice (as '{canonical}' and '{canonical.replace('-', '_')}'); "
                             "keep one")
        result[canonical] = value
    return result


def _case_lines(text: str) -> list[tuple[int, str]]:
    """(line number, name) of each `name = "..."` line, to point annotations at a case."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = re.match(r"""\s*name\s*=\s*(?:"([^"]*)"|'([^']*)')""", line)
        if match:
            found.append((number, match.group(1) if match.group(1) is not None else match.group(2)))
    return found


def _path(value: Any, base: Path, say: str, role: str) -> Path:
    """A file the config names, relative to its folder, checked to exist; `FILE.npz:KEY` names an
    array of an archive (the archive is checked here, the key when it is read)."""
    if not isinstance(value, str) or not value:
        raise InputError(f"{say}: {value!r} is not a path; write the {role} file's path as a string, "
                         "relative to the config file")
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    target = Path(archive_member(os.fspath(path))[0])
    if not os.path.lexists(target):
        raise InputError(f"{say}: '{value}' does not exist (looked for {target}); paths are relative to "
                         "the config file's folder")
    if target.is_dir():
        raise InputError(f"{say}: '{value}' is a directory; give a .npy file")
    from ..inputs import check_regular_file  # a FIFO or device named here would hang the run
    check_regular_file(os.fspath(target), f"{say}: '{value}'", "a .npy file", "give a .npy file saved with np.save")
    return path


def load_suite(path: os.PathLike) -> Suite:
    """Parse and validate a config file into a `Suite` (no arrays are read here).

    `convcheck.toml` is read from its top level, `pyproject.toml` from `[tool.convcheck]`.
    Every problem (unknown key, bad value, missing file, duplicate name) raises
    `InputError` naming the file, the case and the key.
    """
    config = Path(path)
    table, where, case_table = _convcheck_table(config, _parse_toml(config))
    top = _canonical_keys(table, _TOP_KEYS, where.top)
    defaults = read_settings(top, where.top, DEFAULT_SETTINGS)
    raw_cases = _raw_cases(top, where, case_table)
    try:
        lines = _case_lines(config.read_text(encoding="utf-8"))
    except OSError:
        lines = []
    base = config.resolve().parent
    seen: dict[str, int] = {}
    cases = tuple(_read_case(index, raw, where, defaults, base, lines, seen)
                  for index, raw in enumerate(raw_cases, start=1))
    from .model_cases import read_model_case
    models = tuple(read_model_case(index, raw, where, defaults, base, lines, seen)
                   for index, raw in enumerate(_raw_tables(top, where, "model"), start=len(cases) + 1))
    if not cases and not models:
        raise InputError(f"{where.top()}: defines no cases; add a {case_table} table with name, image, kernel, "
                         f"and backends or output (or a {case_table.replace('case', 'model')} table with name, "
                         "original and port)")
    return Suite(config=config, cases=cases, strict=defaults["strict"], models=models)


def _convcheck_table(config: Path, data: dict) -> tuple[dict, _Where, str]:
    """The table convcheck reads in a parsed config file, where messages say it is, and what
    its case tables are called."""
    if config.name == PYPROJECT_NAME:
        tool = data.get("tool", {}).get("convcheck") if isinstance(data.get("tool"), dict) else None
        if not isinstance(tool, dict):
            raise InputError(f"config file '{config}': has no [tool.convcheck] table; add one with "
                             "[[tool.convcheck.case]] tables, or use a convcheck.toml")
        return tool, _Where(config, "[tool.convcheck]"), "[[tool.convcheck.case]]"
    return data, _Where(config, ""), "[[case]]"


def _raw_cases(top: dict, where: _Where, case_table: str) -> list[dict]:
    """The config's case tables, as parsed (the caller refuses a config with no case and no model)."""
    return _raw_tables(top, where, "case")


def _raw_tables(top: dict, where: _Where, key: str) -> list[dict]:
    """The config's `[[key]]` tables, as parsed."""
    tables = top.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(c, dict) for c in tables):
        table = f"[[tool.convcheck.{key}]]" if where.table else f"[[{key}]]"
        raise InputError(f"{where.top(key)}: must be an array of tables; write each as a {table} table")
    return tables


def case_name(raw: dict, index: int, say_case: Callable[..., str], seen: dict[str, int], what: str = "case") -> str:
    """A case table's `name`, checked: present, and not the name of a case (or model case) before it."""
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{say_case('name')}: missing or empty; give every {what} a unique name, "
                         "e.g. name = \"blur-3x3\"")
    if name in seen:
        raise InputError(f"{say_case('name')}: duplicate name (case #{seen[name]} is also named "
                         f"'{name}'); give every case a unique name")
    seen[name] = index
    return name


def _read_case(index: int, raw: dict, where: _Where, defaults: dict, base: Path, lines: list[tuple[int, str]],
               seen: dict[str, int]) -> Case:
    """Case number `index` of the config, validated; `seen` holds the names of the cases before it."""
    name = raw.get("name")
    label = f"'{name}'" if isinstance(name, str) and name else f"#{index}"
    say_case = lambda key=None, label=label: where.case(label, key)  # noqa: E731
    name = case_name(raw, index, say_case, seen)
    keys = _case_keys(raw, say_case)
    settings = read_settings(keys, say_case, defaults)
    declared = _read_expect(keys, say_case, base)
    settings.update(declared.options())   # padding, stride, ... declared in `expect`: the case's settings
    output = _path(keys["output"], base, say_case("output"), "output") if "output" in keys else None
    if output is None and not settings["backends"]:
        raise InputError(f"{say_case()}: has neither 'output' nor 'backends'; give output = \"saved.npy\" "
                         "to explain a saved output, or backends = [...] (here or at the top level)")
    case_lines = [number for number, named in lines if named == name]
    return Case(
        name=name,
        image=_path(keys["image"], base, say_case("image"), "image"),
        kernel=_path(keys["kernel"], base, say_case("kernel"), "kernel"),
        output=output,
        backends=None if output is not None else settings["backends"],
        allow=settings["allow"],
        padding=settings["padding"],
        dtype=None if output is not None else settings["dtype"],
        kernel_layout=settings["kernel_layout"],
        stride=settings["stride"],
        dilation=settings["dilation"],
        groups=settings["groups"] if output is not None else None,
        layout=settings["layout"],
        library_defaults=settings["library_defaults"],
        strict=settings["strict"],
        line=case_lines[0] if len(case_lines) == 1 else None,
        raw={key: keys[key] for key in ("image", "kernel", "output", "expect") if key in keys},
        expect=tuple(declared.expected().items()),
        precision=settings.get("precision"),
        output_precision=settings.get("output_precision"),
        algorithm=settings.get("algorithm", "direct"),
    )


def _read_expect(keys: dict, say_case: Callable[..., str], base: Path):
    """A case's `expect` table (CONTRACT section 2a) as `Declarations`: each value as `--expect` reads
    it (a string) or as TOML gives it (numbers, lists), a bias or scale file relative to the config
    (checked to exist); a field the case's own keys (padding, stride, ...) declare too is declared twice."""
    from .expect import ChannelFile, Declarations, expect_value

    table = keys.get("expect", {})
    say = say_case("expect")
    if not isinstance(table, dict):
        raise InputError(f"{say}: {table!r} is not a table; write e.g. expect = {{activation = \"relu\", "
                         "bias = \"bias.npy\"}}")
    own = {field_name: key for key, field_name in _KEY_FIELDS.items() if key in keys}
    declared = Declarations()
    for name, raw in table.items():
        field_name, value = expect_value(name, raw, f"{say}: {name}", os.fspath(base))
        if field_name in own:
            raise InputError(f"{say}: {field_name} is declared twice (the case's key '{own[field_name]}' and "
                             f"expect.{name}); declare it once")
        if isinstance(value, ChannelFile):
            _path(raw.strip(), base, f"{say}: {name}", f"{field_name}")
        declared.add(field_name, value, f"expect.{name}")
    return declared


def _case_keys(raw: dict, say_case: Callable[..., str]) -> dict:
    """A case table's keys, canonical, with the ones every case needs and none that exclude each other."""
    keys = _canonical_keys(raw, _CASE_KEYS, say_case)
    for required in ("image", "kernel"):
        if required not in keys:
            raise InputError(f"{say_case(required)}: missing; give the {required} .npy file's path")
    if "output" in keys and "backends" in keys:
        raise InputError(f"{say_case('output')}: a case has either 'output' (explain a saved output) "
                         "or 'backends' (compare backends), not both; split it into two cases")
    if "output" in keys and "dtype" in keys:
        raise InputError(f"{say_case('dtype')}: only applies to cases that run backends; a saved "
                         "'output' is diagnosed at the precision of its inputs")
    if "expect" in keys and "output" not in keys:
        raise InputError(f"{say_case('expect')}: only applies to cases with a saved 'output' (what it was computed "
                         "as); a case with backends runs each library plainly and expects the reference")
    if "groups" in keys and "output" not in keys:
        raise InputError(f"{say_case('groups')}: only applies to cases with a saved 'output'; a case "
                         "with backends runs them with the groups the kernel's shape implies (use "
                         "kernel-layout = \"depthwise\" for a depthwise kernel)")
    return keys
