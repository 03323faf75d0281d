"""The CLI under hostile or unusual conditions (issue 11): usage errors, internal errors,
output paths, several reports from one run, encodings, help texts and shell completion.
Nothing here imports TensorFlow: compare runs only the scipy backends."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import scipy.signal
from click.testing import CliRunner

from convcheck.cli import main
from convcheck.cli.output import ascii_fallback
from convcheck.comparison import demo_paths

SCIPY = "scipy.signal.convolve2d,scipy.signal.correlate2d"


@pytest.fixture
def runner():
    return CliRunner(env={"NO_COLOR": "1", "FORCE_COLOR": None, "COLUMNS": "160", "GITHUB_STEP_SUMMARY": None,
                          "CONVCHECK_DEBUG": None})


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    image_path, kernel_path = demo_paths()
    image = np.load(image_path).astype(np.float64)
    kernel = np.load(kernel_path).astype(np.float64)
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "kernel.npy", kernel)
    np.save(tmp_path / "convolved.npy", scipy.signal.convolve2d(image, kernel, mode="same"))
    np.save(tmp_path / "correlated.npy", scipy.signal.correlate2d(image, kernel, mode="same"))
    return tmp_path


def run(runner, *args):
    return runner.invoke(main, list(args), prog_name="convcheck", catch_exceptions=False)


def one_error_line(result, code=2, mentions=()):
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for phrase in mentions:
        assert phrase in lines[0], lines[0]
    return lines[0]


EXPLAIN = ("explain", "image.npy", "kernel.npy", "convolved.npy")


# ----------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize("args, phrase", [
    (EXPLAIN + ("--padding", "wide"), "'wide' is not one of"),
    (("explain", "image.npy"), "Missing argument"),
    (EXPLAIN + ("--no-such-option",), "No such option"),
    (EXPLAIN + ("--report", "pdf=x.pdf"), "unknown format 'pdf'"),
    (EXPLAIN + ("--report", "junit"), "is not FORMAT=FILE"),
    (("check", "--format", "yaml"), "'yaml' is not one of"),
])
def test_click_usage_errors_are_one_line_plus_usage(runner, files, args, phrase):
    result = run(runner, *args)
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: ") and phrase in lines[0]
    assert lines[1].startswith("usage: convcheck ") and "--help" in lines[1]


@pytest.mark.parametrize("spelling", ["SAME", "Same", "same"])
def test_padding_accepts_tensorflow_spelling(runner, files, spelling):
    result = run(runner, *EXPLAIN, "--padding", spelling, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["expected"]["padding"] == "same"


def test_padding_valid_upper_case(runner, files):
    np.save("valid.npy", scipy.signal.correlate2d(np.load("image.npy"), np.load("kernel.npy"), mode="valid"))
    result = run(runner, "explain", "image.npy", "kernel.npy", "valid.npy", "--padding", "VALID", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["verdict"] == "equal"


# ----------------------------------------------------------------------------- internal errors


def _boom(*args, **kwargs):
    raise ZeroDivisionError("simulated bug")


def test_internal_error_exits_4_with_one_line_and_a_hint(runner, files, monkeypatch):
    monkeypatch.setattr("convcheck.engine.diagnose", _boom)
    result = run(runner, *EXPLAIN)
    line = one_error_line(result, code=4, mentions=["internal error", "ZeroDivisionError: simulated bug",
                                                    "report", "--debug"])
    assert "Traceback" not in result.stderr and line


def test_debug_shows_the_traceback(runner, files, monkeypatch):
    monkeypatch.setattr("convcheck.engine.diagnose", _boom)
    for args in (("--debug",) + EXPLAIN, EXPLAIN + ("--debug",)):
        result = run(runner, *args)
        assert result.exit_code == 4
        assert "Traceback (most recent call last)" in result.stderr
        assert result.stderr.rstrip().splitlines()[-1].startswith("error: internal error")


def test_internal_error_in_a_real_process_exits_4(files):
    # Through the console entry point, not CliRunner: what a CI job really sees.
    code = ("import convcheck.engine as e; e.diagnose = lambda *a, **k: 1 / 0; "
            "from convcheck.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", code, *EXPLAIN], capture_output=True, text=True, timeout=120)
    assert done.returncode == 4, done.stderr
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1


def test_every_help_has_an_example(runner):
    for command in ([], ["compare"], ["explain"], ["check"], ["demo"], ["backends"]):
        result = run(runner, *command, "--help")
        assert result.exit_code == 0
        assert "Example:" in result.stdout and "convcheck " in result.stdout.split("Example:")[1], command


def test_check_help_lists_every_config_key(runner):
    from convcheck.check.config import _CASE_KEYS, _TOP_KEYS
    text = run(runner, "check", "--help").stdout
    for key in set(_TOP_KEYS + _CASE_KEYS) - {"case"}:
        assert key in text, key
    assert "[[case]]" in text and "[tool.convcheck]" in text


def _complete(runner, args: str, incomplete: str) -> list[str]:
    words = f"convcheck {args} {incomplete}"
    typed = len(words.split())
    cword = typed - 1 if incomplete else typed  # the index of the word being completed
    result = runner.invoke(main, [], prog_name="convcheck", env={
        "_CONVCHECK_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)})
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if "," in line]


def test_choices_are_completed_by_the_shell(runner):
    assert _complete(runner, "explain a b c --padding", "") == ["same", "valid", "full"]
    assert _complete(runner, "compare a b --format", "j") == ["json", "junit"]
    assert "junit=" in _complete(runner, "compare a b --report", "")


# ----------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("target", ["image.npy", "kernel.npy", "convolved.npy", "./sub/../convolved.npy"])
def test_output_naming_an_input_is_refused_and_the_input_kept(runner, files, target):
    os.makedirs("sub", exist_ok=True)
    before = {name: open(name, "rb").read() for name in ("image.npy", "kernel.npy", "convolved.npy")}
    for option in (["--output", target], ["--report", f"json={target}"], ["--plot", target]):
        result = run(runner, *EXPLAIN, *option)
        assert result.exit_code == 2, result.stderr
        assert result.stdout == "" and result.stderr.startswith("error: ")
    assert before == {name: open(name, "rb").read() for name in before}


def test_output_through_a_symlink_to_an_input_is_refused(runner, files):
    os.symlink("image.npy", "report.json")
    one_error_line(run(runner, *EXPLAIN, "-o", "report.json"), mentions=["image file"])


def test_two_reports_into_one_file_are_refused(runner, files):
    one_error_line(run(runner, *EXPLAIN, "-o", "r.json", "--report", "junit=r.json"), mentions=["own file"])


def test_check_refuses_overwriting_its_config_and_case_files(runner, files):
    with open("convcheck.toml", "w") as fp:
        fp.write('[[case]]\nname = "a"\nimage = "image.npy"\nkernel = "kernel.npy"\noutput = "convolved.npy"\n')
    config = open("convcheck.toml").read()
    one_error_line(run(runner, "check", "-o", "convcheck.toml", "--format", "json"), mentions=["check config"])
    one_error_line(run(runner, "check", "--report", "junit=image.npy"), mentions=["image file of case 'a'"])
    assert open("convcheck.toml").read() == config


def test_several_reports_from_one_run(runner, files):
    result = run(runner, "compare", "image.npy", "kernel.npy", "--backends", SCIPY, "--format", "json",
                 "--report", "junit=report.xml", "--report", "markdown=summary.md", "--report", "github=gh.txt")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["schema"].startswith("convcheck/compare/")
    ET.parse("report.xml")
    assert open("summary.md").read().startswith("### convcheck compare")
    assert "::warning" in open("gh.txt").read()
    assert "wrote junit report to report.xml" in result.stderr


def test_reports_on_explain_and_check(runner, files):
    result = run(runner, *EXPLAIN, "--report", "json=e.json")
    assert result.exit_code == 0 and json.load(open("e.json"))["verdict"] == "explained"
    with open("convcheck.toml", "w") as fp:
        fp.write('[[case]]\nname = "a"\nimage = "image.npy"\nkernel = "kernel.npy"\noutput = "correlated.npy"\n')
    result = run(runner, "check", "--report", "junit=c.xml", "-o", "c.json", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.load(open("c.json"))["schema"].startswith("convcheck/check/")
    assert ET.parse("c.xml").getroot().tag == "testsuites"


def test_reports_are_written_atomically(runner, files, monkeypatch):
    # A write that fails part-way (a full disk) must leave the old report whole and no temp file.
    with open("report.json", "w") as fp:
        fp.write("old report\n")
    real_open = open

    class FullDisk(io.StringIO):
        def write(self, text):
            raise OSError(28, "No space left on device")

    def failing_open(path, mode="r", *args, **kwargs):
        if "w" in mode and os.path.basename(str(path)).startswith(".report."):
            return FullDisk()
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    result = run(runner, *EXPLAIN, "-o", "report.json")
    monkeypatch.setattr("builtins.open", real_open)
    assert result.exit_code == 2 and "No space left on device" in result.stderr
    assert real_open("report.json").read() == "old report\n"
    assert sorted(os.listdir(".")) == sorted(["image.npy", "kernel.npy", "convolved.npy", "correlated.npy",
                                              "report.json"])


def test_write_atomic_keeps_permissions_and_replaces_whole(tmp_path):
    from convcheck.files import write_text_atomic
    path = tmp_path / "r.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    write_text_atomic(path, "new")
    assert path.read_text() == "new" and (os.stat(path).st_mode & 0o777) == 0o640
    assert os.listdir(tmp_path) == ["r.txt"]


def test_plot_extension_is_checked_before_any_work(runner, files, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr("convcheck.engine.diagnose", _boom)  # proves nothing ran
    one_error_line(run(runner, *EXPLAIN, "--plot", "fig.txt"), mentions=["'.txt' is not an image format", ".png"])
    one_error_line(run(runner, *EXPLAIN, "--plot", "fig"), mentions=["has no extension"])


def test_plot_is_written_atomically(runner, files):
    pytest.importorskip("matplotlib")
    result = run(runner, *EXPLAIN, "--plot", "fig.svg")
    assert result.exit_code == 0, result.stderr
    assert open("fig.svg").read().lstrip().startswith("<?xml")
    assert not [n for n in os.listdir(".") if n.startswith(".fig")]


# ----------------------------------------------------------------------------- hostile files


def test_fifo_input_is_refused_not_waited_on(files):
    # Opening a FIFO would block forever; a timeout turns a regression into a failure, not a hang.
    os.mkfifo("pipe.npy")
    done = subprocess.run([sys.executable, "-c", "from convcheck.cli import main; main()",
                           "explain", "image.npy", "kernel.npy", "pipe.npy"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "named pipe (FIFO)" in done.stderr


def test_fifo_in_check_config_is_refused(runner, files):
    os.mkfifo("pipe.npy")
    with open("convcheck.toml", "w") as fp:
        fp.write('[[case]]\nname = "a"\nimage = "image.npy"\nkernel = "kernel.npy"\noutput = "pipe.npy"\n')
    one_error_line(run(runner, "check"), mentions=["named pipe (FIFO)"])


def test_fifo_as_check_config_is_refused(runner, files):
    os.mkfifo("convcheck.fifo")
    one_error_line(run(runner, "check", "convcheck.fifo"), mentions=["named pipe (FIFO)"])


def test_deeply_nested_toml_is_one_line(runner, files):
    with open("convcheck.toml", "w") as fp:
        fp.write("allow = " + "[" * 5000 + "]" * 5000 + "\n")
    one_error_line(run(runner, "check"), mentions=["too deeply"])


@pytest.mark.parametrize("shape", ["(True, 4)", "(0, 100000000000000000000000)"])
def test_crafted_npy_header_is_exit_2(runner, files, shape):
    header = ("{'descr': '<f8', 'fortran_order': False, 'shape': %s, }" % shape).encode()
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    with open("crafted.npy", "wb") as fp:
        fp.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 64)
    one_error_line(run(runner, "explain", "image.npy", "kernel.npy", "crafted.npy"), mentions=["corrupt .npy header"])


# ----------------------------------------------------------------------------- encodings


def test_ascii_fallback_only_when_needed():
    assert ascii_fallback("≈ explained │ max |Δ| ≤ 1 ─", "utf-8") == "≈ explained │ max |Δ| ≤ 1 ─"
    assert ascii_fallback("≈ explained │ max |Δ| ≤ 1 ─ ✓ ✗ 💥", "cp1252") == "~ explained | max |d| <= 1 - OK X [error]"


@pytest.mark.parametrize("args", [EXPLAIN, ("compare", "image.npy", "kernel.npy", "--backends", SCIPY), ("demo", "--backends", SCIPY)])
def test_cp1252_stdout_never_crashes(files, args):
    env = {**os.environ, "PYTHONIOENCODING": "cp1252", "NO_COLOR": "1", "COLUMNS": "150"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    done = subprocess.run([sys.executable, "-c", "from convcheck.cli import main; main()", *args],
                          capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr.decode("cp1252", "replace")
    text = done.stdout.decode("cp1252")
    assert "explained" in text and "Traceback" not in done.stderr.decode("cp1252", "replace")


# ----------------------------------------------------------------------------- github / plain words


def test_github_format_annotates_problems_and_puts_passes_in_the_step_summary(runner, files, tmp_path):
    summary = tmp_path / "summary.md"
    result = runner.invoke(main, ["compare", "image.npy", "kernel.npy", "--backends", SCIPY, "--format", "github"],
                           env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 0, result.stderr
    assert "::notice" not in result.stdout
    assert result.stdout.startswith("::warning title=convcheck%3A scipy.signal.convolve2d%3A explained by kernel "
                                    "flipped 180° (true convolution)::")
    assert "equal to the reference: scipy.signal.correlate2d" in result.stdout
    text = summary.read_text()
    assert text.startswith("### convcheck compare") and "`scipy.signal.correlate2d`" in text


def test_plain_labels_cover_every_vocabulary_value():
    from convcheck.vocabulary import (BOUNDARIES, KERNEL_TRANSFORMS, PADDINGS, PRECISIONS, Explanation,
                                      describe_plain, plain_label)
    for field, values in (("kernel_transform", KERNEL_TRANSFORMS), ("padding", PADDINGS),
                          ("boundary", BOUNDARIES), ("precision", PRECISIONS)):
        for value in values:
            label = plain_label(field, value)
            assert "_" not in label and label != f"{field} {value}", (field, value, label)
    assert plain_label("kernel_transform", "anti_transpose") == "kernel transposed and flipped"
    assert plain_label("offset", (-1, 0)) == "output shifted by [-1, 0]"
    assert plain_label("new_field", "x") == "new field x"  # a field added later still reads
    base = Explanation(precision="float64")
    got = Explanation(kernel_transform="rot180", precision="float32")
    assert describe_plain(got, base) == "kernel flipped 180° (true convolution) + float32 rounding"


# ----------------------------------------------------------------------------- numbers and shapes


def test_values_apart_shows_enough_digits():
    from convcheck.formats._text import values_apart
    assert values_apart(1.0000001, 1.0) == ("1.0000001", "1")
    assert values_apart(-6.188136577606201, -6.188136771681356) == ("-6.1881366", "-6.1881368")
    assert values_apart(2.5, 2.5) == ("2.5", "2.5")
    assert values_apart(None, 1.0) == ("–", "1")


def test_explain_worst_values_differ_on_screen(runner, files):
    reference = scipy.signal.correlate2d(np.load("image.npy"), np.load("kernel.npy"), mode="same")
    reference[4, 4] += 1e-9 * abs(reference[4, 4]) + 1e-12
    np.save("nudged.npy", reference)
    result = run(runner, "explain", "image.npy", "kernel.npy", "nudged.npy")
    line = next(line for line in result.stdout.splitlines() if line.startswith("worst index"))
    output, reference_text = line.split("output ")[1].split(", reference ")
    assert output.strip() != reference_text.strip(), line


def test_output_of_another_shape_says_so_in_the_stats(runner, files):
    np.save("valid.npy", scipy.signal.correlate2d(np.load("image.npy"), np.load("kernel.npy"), mode="valid"))
    result = run(runner, "explain", "image.npy", "kernel.npy", "valid.npy")
    assert result.exit_code == 0
    rows = {line.split("  ", 1)[0]: line for line in result.stdout.splitlines()}
    assert "the output's shape differs from the expected one (padding 'valid', not 'same')" in rows["shape"]
    assert "of that reference" in rows["mismatched"]
    result = run(runner, "explain", "image.npy", "kernel.npy", "valid.npy", "--format", "github")
    assert "the output's shape differs from the expected one" in result.stdout


class _Left(Exception):
    pass


@pytest.mark.parametrize("framework", [None, "tensorflow", "torch", "jax"])
def test_the_command_skips_the_teardown_and_a_frameworks_exit_handlers(monkeypatch, capsys, framework):
    import atexit
    import types

    import convcheck.cli as cli

    def leave(code):
        raise _Left(code)

    handlers = []
    monkeypatch.setattr(cli.os, "_exit", leave)
    monkeypatch.setattr(atexit, "_run_exitfuncs", lambda: handlers.append("ran"))
    for name in cli._SLOW_TEARDOWN:
        monkeypatch.delitem(sys.modules, name, raising=False)
    if framework is not None:
        monkeypatch.setitem(sys.modules, framework, types.ModuleType(framework))
    monkeypatch.setattr(sys, "argv", ["convcheck", "explain", "missing.npy", "k.npy", "o.npy"])
    with pytest.raises(_Left) as left:
        cli.entry()
    assert left.value.args[0] == 2   # the command's own exit code, either way
    assert "missing.npy" in capsys.readouterr().err
    assert handlers == ([] if framework is not None else ["ran"])


def test_the_command_leaves_with_its_output_written_and_its_exit_handlers_run(tmp_path):
    # A real process: stdout through a pipe (buffered), an exit handler of the caller's, the
    # command's exit code; and sys.exit with a message prints it and exits 1, as Python does.
    script = ("import atexit, sys\n"
              "from convcheck import cli\n"
              "atexit.register(lambda: print('handler ran'))\n"
              "sys.argv = ['convcheck', 'explain', 'missing.npy', 'k.npy', 'o.npy']\n"
              "print('x' * 100000)\n"
              "cli.entry()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == "x" * 100000 + "\nhandler ran\n"
    assert "missing.npy" in done.stderr
    script = ("import sys\nfrom convcheck import cli\n"
              "cli.main = lambda prog_name: sys.exit('a message')\ncli.entry()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (1, "a message\n")
    # stdout closed by the caller (`convcheck ... >&-`): sys.stdout is None, the code is the command's.
    script = ("import sys\nfrom convcheck import cli\n"
              "sys.argv = ['convcheck', '--version']\ncli.entry()\n")
    done = subprocess.run([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True, timeout=120,
                          preexec_fn=lambda: os.close(1))
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize("columns", [None, "97", "0", "-3", "wide", ""])
def test_terminal_width_is_shutils_without_importing_it(monkeypatch, columns):
    import shutil
    from convcheck.cli.output import terminal_width
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert terminal_width() == shutil.get_terminal_size((160, 24)).columns


@pytest.mark.parametrize("given, numpy_first, expected", [
    (None, False, "1"),    # numpy's OpenBLAS then starts with one thread
    ("2", False, "2"),     # the user's own number is kept (and OpenBLAS takes it)
    (None, True, None),    # numpy already loaded: too late, left alone
])
def test_the_command_asks_openblas_for_one_thread_before_numpy_loads(given, numpy_first, expected):
    from convcheck.engine.threads import cores
    script = ("import atexit, os, sys\n"
              + ("import numpy\n" if numpy_first else "")
              + "from convcheck import cli\n"
              "def report():\n"
              "    from convcheck.engine import threads  # numpy loaded here: the command did not need it\n"
              "    counts = [get() for get, _ in threads._openblas_threads()]\n"
              "    print(os.environ.get('OPENBLAS_NUM_THREADS'), min(counts, default=-1))\n"
              "atexit.register(report)\n"
              "sys.argv = ['convcheck', '--version']\n"
              "cli.entry()\n")
    # OpenBLAS reads the first of these that is set: none, but the one under test.
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    variable, threads = done.stdout.split()[-2:]
    if threads == "-1":
        pytest.skip("numpy here is not built on OpenBLAS: no thread count to read")
    assert variable == str(expected), done.stderr[-2000:]
    if expected == "1":
        assert threads == "1"
    elif cores() >= 2:
        assert int(threads) >= 2   # OpenBLAS's own choice (all cores, or the user's number)
