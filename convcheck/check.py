"""`check`: run a suite of convolution cases from a config file, as CI does in a model repository.

The config is `convcheck.toml` (top-level keys and `[[case]]` tables) or a `pyproject.toml`
with a `[tool.convcheck]` table (and `[[tool.convcheck.case]]`), found upwards from the
current directory as pytest and ruff find theirs. Each case either compares `backends` on
an image and kernel, or explains a saved `output`; `allow` lists the causes a case may
have (CONTRACT section 2 fields, `field=value` or a bare field for any value).

Every case is parsed, and every file loaded and validated, before the first case runs,
so a typo in the last case costs milliseconds, not a TensorFlow import. Then each case
runs (loaded again unless kept from that first pass, up to 32 MiB of them) and is
released after it: a suite's memory does not grow with the number of its cases. No click here: the CLI
(`convcheck.check_command`) turns `InputError` into exit 2.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional

from .choices import LAYOUTS
from .errors import InputError
from .results import CHECK_SCHEMA, BackendResult, CompareReport, Diagnosis
from .choices import KERNEL_AXIS_ORDERS
from .vocabulary import DTYPES, FIELD_ROWS, FIELDS, KERNEL_LAYOUTS, PADDINGS, Cause, Field, Verdict

CONFIG_NAME = "convcheck.toml"
PYPROJECT_NAME = "pyproject.toml"

STATUSES = ("pass", "warn", "fail", "error")

# Settings a case inherits from the top level unless it sets its own. Keys are the
# canonical (hyphenated) spelling; the underscore spelling is accepted as well.
_SETTINGS = ("padding", "stride", "dilation", "groups", "layout", "dtype", "backends", "kernel-layout",
             "library-defaults", "strict", "allow")
_TOP_KEYS = _SETTINGS + ("case",)
_CASE_KEYS = ("name", "image", "kernel", "output") + _SETTINGS


# ----------------------------------------------------------------------------- config objects


@dataclass(frozen=True)
class AllowRule:
    """One entry of `allow`: a field, and the value it may take (`None`: any value)."""

    field: str
    value: Any = None
    text: str = ""

    def permits(self, cause: Cause) -> bool:
        """True when `cause` changes this rule's field to a value the rule accepts."""
        if cause.field != self.field:
            return False
        if self.value is None:
            return True
        written = FIELD_ROWS[self.field].written
        if written in ("offset", "pair"):
            return tuple(cause.value) == tuple(self.value)
        if written == "number":
            # A per-channel bias or scale is allowed when every channel's value is the rule's.
            values = cause.value if isinstance(cause.value, (tuple, list)) else (cause.value,)
            return all(math.isclose(float(v), float(self.value), rel_tol=1e-6, abs_tol=1e-12) for v in values)
        return cause.value == self.value

    def __str__(self) -> str:
        return self.text or (self.field if self.value is None else f"{self.field}={self.value}")


@dataclass(frozen=True)
class Case:
    """One validated case of a suite; paths are absolute (resolved against the config's folder).

    `output` set: explain that saved output. Otherwise: compare `backends`. `raw` keeps
    the paths as written in the config, for reports. `stride` and `dilation` are pairs;
    `groups` (saved outputs only) is the declared groups, None for what the kernel layout
    declares; `kernel_layout` None means oihw with `layout` 'nchw', else hwio.
    """

    name: str
    image: Path
    kernel: Path
    output: Optional[Path]
    backends: Optional[tuple[str, ...]]
    allow: tuple[AllowRule, ...]
    padding: str = "same"
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

    @property
    def kind(self) -> str:
        """'explain' for a saved output, 'compare' for backends."""
        return "explain" if self.output is not None else "compare"


@dataclass(frozen=True)
class Suite:
    """A parsed config: where it came from, its top-level strictness and its cases."""

    config: Path
    cases: tuple[Case, ...]
    strict: bool = False


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
        from .inputs import check_regular_file  # a FIFO, a device, a link loop: say what it is
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


# ----------------------------------------------------------------------------- parsing


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


def _choice(value: Any, choices: tuple[str, ...], say: str) -> str:
    if isinstance(value, str) and value in choices:
        return value
    hint = ""
    if isinstance(value, str) and value.lower() in choices:
        hint = f" (write it in lower case: '{value.lower()}')"
    raise InputError(f"{say}: {value!r} is not one of {', '.join(choices)}{hint}; use one of them")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _pair(value: Any, say: str, key: str) -> tuple[int, int]:
    """A stride or dilation: a positive integer (both axes) or a list of two."""
    if _positive_int(value):
        return (value, value)
    if isinstance(value, list) and len(value) == 2 and all(_positive_int(v) for v in value):
        return (value[0], value[1])
    raise InputError(f"{say}: {value!r} is not a positive integer or a list of two; write e.g. "
                     f"{key} = 2 or {key} = [2, 1]")


def _groups(value: Any, say: str) -> int:
    if _positive_int(value):
        return value
    raise InputError(f"{say}: {value!r} is not a positive integer; write e.g. groups = 1 (dense) or "
                     "groups = 3 (depthwise on 3 channels)")


def _bool(value: Any, say: str) -> bool:
    if isinstance(value, bool):
        return value
    raise InputError(f"{say}: {value!r} is not a boolean; write true or false (no quotes)")


def _backends(value: Any, say: str) -> tuple[str, ...]:
    from .backends import ALIASES, BACKENDS, GROUPS, resolve_backends, valid_names  # no framework

    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InputError(f"{say}: {value!r} is not a list of backend names; write e.g. "
                         "backends = [\"scipy.signal.correlate2d\", \"tf.nn.conv2d\"]")
    known = list(BACKENDS) + list(ALIASES) + list(GROUPS)
    for name in value:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise InputError(f"{say}: unknown backend {name!r}{hint}; {valid_names()}")
    duplicates = sorted({name for name in value if value.count(name) > 1})
    if duplicates:
        raise InputError(f"{say}: {', '.join(duplicates)} listed twice; list each backend once")
    # Aliases (torch, tf, ...) and groups (dl, scipy) become public names.
    return tuple(resolve_backends(value))


def parse_allow_entry(entry: Any, say: str) -> AllowRule:
    """One `allow` string ('precision=float32', 'boundary', 'offset=[0, -1]', 'stride=2', 'bias=0.5')
    as a rule.

    Raises `InputError` starting with `say` (the file/case/key, or the argument name)
    for an unknown field or a value outside the CONTRACT section 2 vocabulary: the field
    table (`convcheck.vocabulary.FIELD_TABLE`) says which fields there are and how each
    writes its values.
    """
    if not isinstance(entry, str) or not entry.strip():
        raise InputError(f"{say}: {entry!r} is not a string; write entries like \"precision=float32\" "
                         "or a bare field name such as \"boundary\"")
    text = entry.strip()
    name, sep, raw_value = text.partition("=")
    name, raw_value = name.strip(), raw_value.strip()
    row = FIELD_ROWS.get(name)
    if row is None:
        close = difflib.get_close_matches(name, FIELDS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise InputError(f"{say}: {text!r} names no field{hint}; the fields are {', '.join(FIELDS)}")
    if not sep:
        return AllowRule(name, None, text)
    return _VALUE_READERS[row.written](row, raw_value, f"{say}: {text!r}")


def _read_choice(row: Field, raw_value: str, say: str) -> AllowRule:
    value = _choice(raw_value, row.names, f"{say}: {row.name}")
    return AllowRule(row.name, value, f"{row.name}={value}")


def _read_name(row: Field, raw_value: str, say: str) -> AllowRule:
    if not raw_value:
        raise InputError(f"{say}: give a value after '=', or write the bare field \"{row.name}\" "
                         "to allow any value")
    return AllowRule(row.name, raw_value, f"{row.name}={raw_value}")


def _read_offset(row: Field, raw_value: str, say: str) -> AllowRule:
    numbers = re.fullmatch(r"\[?\s*(-?\d+)\s*,\s*(-?\d+)\s*\]?", raw_value)
    if not numbers:
        raise InputError(f"{say}: offset must be two integers, e.g. \"offset=[-1, -1]\"")
    offset = (int(numbers.group(1)), int(numbers.group(2)))
    return AllowRule(row.name, offset, f"offset=[{offset[0]}, {offset[1]}]")


def _read_pair(row: Field, raw_value: str, say: str) -> AllowRule:
    # "stride=2", "stride=[2, 1]" or "stride=(2, 1)": an int means both axes.
    name = row.name
    numbers = re.fullmatch(r"[\[(]?\s*(\d+)\s*(?:,\s*(\d+)\s*)?[\])]?", raw_value)
    pair = (int(numbers.group(1)), int(numbers.group(2) or numbers.group(1))) if numbers else (0, 0)
    if min(pair) < 1:
        raise InputError(f"{say}: {name} must be a positive integer or two of them, "
                         f"e.g. \"{name}=2\" or \"{name}=[2, 1]\"")
    return AllowRule(name, pair, f"{name}=[{pair[0]}, {pair[1]}]")


def _read_count(row: Field, raw_value: str, say: str) -> AllowRule:
    if not re.fullmatch(r"\d+", raw_value) or int(raw_value) < 1:
        raise InputError(f"{say}: {row.name} must be a positive integer, e.g. \"{row.name}=3\"")
    return AllowRule(row.name, int(raw_value), f"{row.name}={int(raw_value)}")


def _read_number(row: Field, raw_value: str, say: str) -> AllowRule:
    name = row.name
    try:
        number = float(raw_value)
    except ValueError:
        raise InputError(f"{say}: {name} must be a number, e.g. \"{name}=0.5\", or write the "
                         f"bare field \"{name}\" to allow any value") from None
    if not math.isfinite(number):
        raise InputError(f"{say}: {name} must be a finite number")
    return AllowRule(name, number, f"{name}={raw_value}")


# How an allow value is read, by the field's `written` (convcheck.vocabulary.Field).
_VALUE_READERS = {"choice": _read_choice, "name": _read_name, "offset": _read_offset, "pair": _read_pair,
                  "count": _read_count, "number": _read_number}


def parse_allow(entries: Any, say: str = "allow") -> tuple[AllowRule, ...]:
    """A whole `allow` list (a single string is taken as a list of one) as rules."""
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, (list, tuple)):
        raise InputError(f"{say}: {entries!r} is not a list; write e.g. "
                         "allow = [\"precision=float32\", \"kernel_transform=rot180\"]")
    return tuple(parse_allow_entry(entry, say) for entry in entries)


def _settings(table: dict, say: Callable[[str], str], defaults: dict) -> dict:
    """The validated settings of one table, on top of `defaults`."""
    settings = dict(defaults)
    if "padding" in table:
        settings["padding"] = _choice(table["padding"], PADDINGS, say("padding"))
    for key in ("stride", "dilation"):
        if key in table:
            settings[key] = _pair(table[key], say(key), key)
    if "groups" in table:
        settings["groups"] = _groups(table["groups"], say("groups"))
    if "layout" in table:
        settings["layout"] = _choice(table["layout"], LAYOUTS, say("layout"))
    if "dtype" in table:
        settings["dtype"] = _choice(table["dtype"], DTYPES, say("dtype"))
    if "kernel-layout" in table:
        settings["kernel_layout"] = _choice(table["kernel-layout"], KERNEL_LAYOUTS + KERNEL_AXIS_ORDERS[2:],
                                            say("kernel-layout"))
    if "backends" in table:
        settings["backends"] = _backends(table["backends"], say("backends"))
    if "library-defaults" in table:
        settings["library_defaults"] = _bool(table["library-defaults"], say("library-defaults"))
    if "strict" in table:
        settings["strict"] = _bool(table["strict"], say("strict"))
    if "allow" in table:
        settings["allow"] = parse_allow(table["allow"], say("allow"))
    return settings


def _case_lines(text: str) -> list[tuple[int, str]]:
    """(line number, name) of each `name = "..."` line, to point annotations at a case."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = re.match(r"""\s*name\s*=\s*(?:"([^"]*)"|'([^']*)')""", line)
        if match:
            found.append((number, match.group(1) if match.group(1) is not None else match.group(2)))
    return found


def _path(value: Any, base: Path, say: str, role: str) -> Path:
    if not isinstance(value, str) or not value:
        raise InputError(f"{say}: {value!r} is not a path; write the {role} file's path as a string, "
                         "relative to the config file")
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    if not os.path.lexists(path):
        raise InputError(f"{say}: '{value}' does not exist (looked for {path}); paths are relative to "
                         "the config file's folder")
    if path.is_dir():
        raise InputError(f"{say}: '{value}' is a directory; give a .npy file")
    from .inputs import check_regular_file  # a FIFO or device named here would hang the run
    check_regular_file(os.fspath(path), f"{say}: '{value}'", "a .npy file", "give a .npy file saved with np.save")
    return path


def load_suite(path: os.PathLike) -> Suite:
    """Parse and validate a config file into a `Suite` (no arrays are read here).

    `convcheck.toml` is read from its top level, `pyproject.toml` from `[tool.convcheck]`.
    Every problem (unknown key, bad value, missing file, duplicate name) raises
    `InputError` naming the file, the case and the key.
    """
    config = Path(path)
    data = _parse_toml(config)
    if config.name == PYPROJECT_NAME:
        tool = data.get("tool", {}).get("convcheck") if isinstance(data.get("tool"), dict) else None
        if not isinstance(tool, dict):
            raise InputError(f"config file '{config}': has no [tool.convcheck] table; add one with "
                             "[[tool.convcheck.case]] tables, or use a convcheck.toml")
        table, where = tool, _Where(config, "[tool.convcheck]")
        case_table = "[[tool.convcheck.case]]"
    else:
        table, where = data, _Where(config, "")
        case_table = "[[case]]"

    top = _canonical_keys(table, _TOP_KEYS, where.top)
    defaults = _settings(top, where.top, {"padding": "same", "stride": (1, 1), "dilation": (1, 1),
                                          "groups": None, "layout": "nhwc", "dtype": None,
                                          "kernel_layout": None, "backends": None, "library_defaults": False,
                                          "strict": False, "allow": ()})
    raw_cases = top.get("case", [])
    if not isinstance(raw_cases, list) or not all(isinstance(c, dict) for c in raw_cases):
        raise InputError(f"{where.top('case')}: must be an array of tables; write each case as a "
                         f"{case_table} table")
    if not raw_cases:
        raise InputError(f"{where.top()}: defines no cases; add a {case_table} table with name, image, "
                         "kernel, and backends or output")

    try:
        lines = _case_lines(config.read_text(encoding="utf-8"))
    except OSError:
        lines = []
    base = config.resolve().parent
    seen: dict[str, int] = {}
    cases = []
    for index, raw in enumerate(raw_cases, start=1):
        name = raw.get("name")
        label = f"'{name}'" if isinstance(name, str) and name else f"#{index}"
        say_case = lambda key=None, label=label: where.case(label, key)  # noqa: E731
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{say_case('name')}: missing or empty; give every case a unique name, "
                             "e.g. name = \"blur-3x3\"")
        if name in seen:
            raise InputError(f"{say_case('name')}: duplicate name (case #{seen[name]} is also named "
                             f"'{name}'); give every case a unique name")
        seen[name] = index
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
        if "groups" in keys and "output" not in keys:
            raise InputError(f"{say_case('groups')}: only applies to cases with a saved 'output'; a case "
                             "with backends runs them with the groups the kernel's shape implies (use "
                             "kernel-layout = \"depthwise\" for a depthwise kernel)")
        settings = _settings(keys, say_case, defaults)
        output = _path(keys["output"], base, say_case("output"), "output") if "output" in keys else None
        if output is None and not settings["backends"]:
            raise InputError(f"{say_case()}: has neither 'output' nor 'backends'; give output = \"saved.npy\" "
                             "to explain a saved output, or backends = [...] (here or at the top level)")
        case_lines = [number for number, case_name in lines if case_name == name]
        cases.append(Case(
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
            raw={key: keys[key] for key in ("image", "kernel", "output") if key in keys},
        ))
    return Suite(config=config, cases=tuple(cases), strict=defaults["strict"])


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ResultOutcome:
    """How one result of a case fared: one backend row, or the saved output's diagnosis.

    `status` is pass / warn / fail / error. `disallowed` are the causes `allow` does not
    cover; `message` one sentence saying why it did not pass (empty when it passed).
    """

    name: str
    status: str
    diagnosis: Optional[Diagnosis] = None
    backend_result: Optional[BackendResult] = None
    disallowed: tuple[Cause, ...] = ()
    message: str = ""

    @property
    def verdict(self) -> Optional[Verdict]:
        """The diagnosis's verdict, `None` for a backend that did not run."""
        return self.diagnosis.verdict if self.diagnosis is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The compare row dict (or explain dict), plus `outcome`, `disallowed` and `message`."""
        if self.backend_result is not None:
            d = self.backend_result.to_dict()
        else:
            d = {"output": self.name}
            if self.diagnosis is not None:
                d.update(self.diagnosis.to_dict())
        d["outcome"] = self.status
        d["disallowed"] = [c.to_dict() for c in self.disallowed]
        if self.message:
            d["message"] = self.message
        return d


@dataclass(frozen=True)
class CaseResult:
    """One case's results. `report` is the `CompareReport` of a compare case (else `None`)."""

    case: Case
    status: str
    results: tuple[ResultOutcome, ...]
    report: Optional[CompareReport] = None
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.case.name

    def to_dict(self) -> dict[str, Any]:
        """One entry of the check JSON's `cases`."""
        d: dict[str, Any] = {"name": self.case.name, "status": self.status, "kind": self.case.kind,
                             "allow": [str(rule) for rule in self.case.allow],
                             "seconds": round(self.seconds, 6)}
        if self.case.line is not None:
            d["line"] = self.case.line
        d["results"] = [r.to_dict() for r in self.results]
        return d


@dataclass(frozen=True)
class CheckReport:
    """Everything a `check` run found: the config, strictness and one `CaseResult` per case."""

    config: str
    strict: bool
    cases: tuple[CaseResult, ...]
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        """How many cases ended in each status (every status present, zeros included)."""
        counts = {status: 0 for status in STATUSES}
        for case in self.cases:
            counts[case.status] += 1
        return counts

    def result_counts(self) -> dict[str, int]:
        """How many results (backend rows and saved outputs) ended in each status."""
        counts = {status: 0 for status in STATUSES}
        for case in self.cases:
            for result in case.results:
                counts[result.status] += 1
        return counts

    def exit_code(self) -> int:
        """CONTRACT section 4: 1 if any case failed, else 3 if a backend could not run, else 0."""
        counts = self.counts()
        if counts["fail"]:
            return 1
        if counts["error"]:
            return 3
        return 0

    def to_json_dict(self) -> dict[str, Any]:
        """The whole `convcheck check --format json` document (schema convcheck/check/2)."""
        return {
            "schema": CHECK_SCHEMA,
            "config": self.config,
            "strict": self.strict,
            "cases": [c.to_dict() for c in self.cases],
            "summary": {"cases": len(self.cases), **self.counts(),
                        "results": {"total": sum(len(c.results) for c in self.cases), **self.result_counts()},
                        "exit_code": self.exit_code(), "seconds": round(self.seconds, 6)},
        }


def judge(name: str, diagnosis: Diagnosis, allow: tuple[AllowRule, ...], strict: bool) -> ResultOutcome:
    """Pass, warn or fail one diagnosis against a case's `allow` rules.

    `equal` passes; `unexplained` fails; `explained` passes when `allow` covers every
    cause, otherwise fails under `strict` and warns without it.
    """
    from .vocabulary import describe_plain

    if diagnosis.verdict is Verdict.EQUAL:
        return ResultOutcome(name, "pass", diagnosis)
    if diagnosis.verdict is Verdict.UNEXPLAINED:
        return ResultOutcome(name, "fail", diagnosis, message=unexplained_message(diagnosis))
    disallowed = tuple(c for c in diagnosis.causes if not any(rule.permits(c) for rule in allow))
    if not disallowed:
        return ResultOutcome(name, "pass", diagnosis)
    listed = ", ".join(_cause_text(c) for c in disallowed)
    assert diagnosis.explanation is not None
    message = (f"explained by {describe_plain(diagnosis.explanation, diagnosis.baseline)}, but {listed} "
               f"{'is' if len(disallowed) == 1 else 'are'} not in allow")
    return ResultOutcome(name, "fail" if strict else "warn", diagnosis, disallowed=disallowed, message=message)


def _cause_text(cause: Cause) -> str:
    value = list(cause.value) if isinstance(cause.value, tuple) else cause.value
    if isinstance(value, float):
        value = f"{value:.6g}"
    return f"{cause.field}={value}"


def unexplained_message(diagnosis: Diagnosis) -> str:
    """One sentence for an unexplained diagnosis: where it differs, or why nothing fits."""
    if diagnosis.reason:
        return f"unexplained: {diagnosis.reason}"
    from .vocabulary import describe

    stats = diagnosis.stats
    where = f" ({diagnosis.where})" if diagnosis.where else ""
    differ = (f"{stats.mismatched} of {stats.total} elements differ from the reference"
              if stats.mismatched is not None else "the output differs from the reference")
    closest = diagnosis.closest
    if closest is not None and closest.changed_fields(diagnosis.baseline) and stats.mismatched_after is not None:
        return (f"unexplained: {differ}, and even the closest candidate ({describe(closest, diagnosis.baseline)}) "
                f"leaves {stats.mismatched_after} beyond the error bound{where}")
    return (f"unexplained: {differ}{where}, and no combination of kernel transform, padding, boundary, "
            "offset, precision, bias, scale, activation and output precision reproduces them")


def _case_status(results: list[ResultOutcome]) -> str:
    statuses = {r.status for r in results}
    for status in ("fail", "error", "warn"):
        if status in statuses:
            return status
    return "pass"


def _load(case: Case, config: Path):
    """The case's validated `Inputs`; an `InputError` is prefixed with the file and case."""
    from .inputs import load_inputs

    try:
        return load_inputs(case.image, case.kernel, case.output, kernel_layout=case.kernel_layout,
                           padding=case.padding, layout=case.layout)
    except InputError as exc:
        raise InputError(f"{config}: case '{case.name}': {exc}") from None


def run_suite(suite: Suite, *, strict: bool = False, progress: Optional[Callable[[int, int, Optional[str]], None]] = None,
              keep_arrays: bool = False) -> CheckReport:
    """Run every case of `suite` in this process and judge each result.

    All files are loaded and validated first, one case at a time (an `InputError` stops
    the run before any framework is imported); then each case runs (loaded again unless
    kept from the first pass, up to 32 MiB of them) and is released before the next:
    memory does not grow with the number of cases. A saved output is explained, backends
    are compared (each framework imported once for the whole suite). `strict` (or the
    config's own `strict`) turns results explained by causes outside `allow` into failures.
    In a suite of many compare cases, when their backends take a fair share of the time,
    a second process makes the diagnoses while this one runs the next case's backends
    (`convcheck.worker.Pipeline`): the same diagnoses, each case finished one case later
    (so two cases' arrays may be alive at once).
    `progress(done, total, name)` is called before each case with the number finished and
    the case's name, and once at the end with `name=None`. `keep_arrays` keeps the arrays
    behind each diagnosis, for `convcheck.plot`.
    """
    import time

    from .comparison import compare_inputs
    from .engine import diagnose
    from .worker import Pipeline

    started = time.perf_counter()
    plotted: list[int] = [0]   # results whose arrays are kept for the plot so far
    # Every case validated first; the first ones kept while they fit in _KEPT_BYTES (small
    # suites load once), the others let go and loaded again when they run: memory stays
    # bounded however many cases there are.
    kept: dict[int, Any] = {}
    budget = _KEPT_BYTES
    for index, case in enumerate(suite.cases):
        inputs = _load(case, suite.config)
        size = sum(a.nbytes for a in (inputs.image, inputs.kernel, inputs.output) if a is not None)
        if size <= budget:
            kept[index], budget = inputs, budget - size
        del inputs
    suite_strict = strict or suite.strict
    total = len(suite.cases)
    results = []
    # Compare cases' diagnoses go to a second process, which works on one case while this
    # one runs the next case's backends (convcheck.worker); the same diagnoses, in order.
    pipeline = Pipeline(sum(case.output is None for case in suite.cases), _WORKER_MIN_CASES)
    owed = None   # the compare case whose diagnoses the worker is making: finished one case later
    try:
        for done, case in enumerate(suite.cases):
            if progress is not None:
                progress(done, total, case.name)
            if case.output is not None and owed is not None:
                results.append(_finish_compare(*owed, keep_arrays, plotted))
                owed = None
            inputs = kept.pop(done) if done in kept else _load(case, suite.config)
            case_strict = suite_strict or case.strict
            case_started = time.perf_counter()
            if case.output is not None:
                diagnosis = diagnose(inputs, padding=case.padding, stride=case.stride, dilation=case.dilation,
                                     groups=case.groups, keep_arrays=keep_arrays)
                diagnosis = _for_plot(diagnosis, plotted) if keep_arrays else diagnosis
                outcomes = [judge(str(case.raw.get("output", case.output)), diagnosis, case.allow, case_strict)]
                results.append(CaseResult(case, _case_status(outcomes), tuple(outcomes), None,
                                          time.perf_counter() - case_started))
            else:
                try:
                    report = compare_inputs(inputs, padding=case.padding, dtype=case.dtype,
                                            backends=list(case.backends or ()),
                                            library_defaults=case.library_defaults, keep_arrays=keep_arrays,
                                            stride=case.stride, dilation=case.dilation,
                                            diagnoser=pipeline.diagnoser())
                except BaseException:
                    if owed is not None:   # an error of the case before is raised first, as it was
                        _finish_compare(*owed, keep_arrays, plotted)
                    raise
                ran = time.perf_counter() - case_started
                pipeline.ran(ran)
                if owed is not None:
                    results.append(_finish_compare(*owed, keep_arrays, plotted))
                owed = (case, report, case_strict, ran)
            del inputs  # released before the next case loads
        if owed is not None:
            results.append(_finish_compare(*owed, keep_arrays, plotted))
    finally:
        pipeline.close()
    if progress is not None:
        progress(total, total, None)
    return CheckReport(_display_path(suite.config), suite_strict, tuple(results), time.perf_counter() - started)


# Validated inputs kept from the first pass up to this many bytes (see run_suite).
_KEPT_BYTES = 1 << 25
# Suites with at least this many compare cases may diagnose in a second process (convcheck.worker).
_WORKER_MIN_CASES = 8


def _finish_compare(case: Case, report: CompareReport, case_strict: bool, ran: float, keep_arrays: bool,
                    plotted: list[int]) -> CaseResult:
    """A compare case's result once its diagnoses are in (`ran`: the seconds its backends took)."""
    import time

    from .comparison import settled

    started = time.perf_counter()
    report = settled(report)
    if keep_arrays:
        report = replace(report, results=tuple(
            replace(row, diagnosis=_for_plot(row.diagnosis, plotted)) if row.diagnosis is not None else row
            for row in report.results))
    outcomes = []
    for row in report.results:
        if row.status != "ok" or row.diagnosis is None:
            what = "was skipped" if row.status == "skipped" else "failed"
            outcomes.append(ResultOutcome(row.backend, "error", backend_result=row,
                                          message=f"{row.backend} {what}: {row.reason}"))
            continue
        judged = judge(row.backend, row.diagnosis, case.allow, case_strict)
        outcomes.append(ResultOutcome(judged.name, judged.status, judged.diagnosis, row,
                                      judged.disallowed, judged.message))
    return CaseResult(case, _case_status(outcomes), tuple(outcomes), report,
                      ran + time.perf_counter() - started)


def _for_plot(diagnosis: Diagnosis, plotted: list[int]) -> Diagnosis:
    """The diagnosis with its arrays only if the plot will draw it (not equal, and among the
    first `convcheck.plot.MAX_ROWS`): a suite's memory stays that of a few cases."""
    from .plot import MAX_ROWS

    if diagnosis.arrays is None:
        return diagnosis
    if diagnosis.verdict is Verdict.EQUAL or plotted[0] >= MAX_ROWS:
        return replace(diagnosis, arrays=None)
    plotted[0] += 1
    return diagnosis


def _display_path(path: Path) -> str:
    """`path` relative to the working directory when it lies below it (as CI logs show paths)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


def check(path: Optional[os.PathLike] = None, *, strict: bool = False, progress=None,
          keep_arrays: bool = False) -> CheckReport:
    """Find the config (`path`, or upwards from the current directory), load it and run it."""
    return run_suite(load_suite(find_config(path)), strict=strict, progress=progress, keep_arrays=keep_arrays)


__all__ = ["AllowRule", "Case", "CaseResult", "CheckReport", "ResultOutcome", "Suite", "check",
           "find_config", "judge", "load_suite", "parse_allow", "parse_allow_entry", "run_suite"]
