"""`make bench`: convcheck against the hand-written equivalent, side by side in one run.

Each pair runs as separate processes, interleaved (A, B, A, B, ...), and reports the
median wall time and peak RSS of each and their ratio: on a machine shared with other
jobs the ratio of interleaved runs is what means something, the absolute times less so.
Targets (issue 12 and earlier ones):

- explain, float64 image, 7x7 kernel, output of float32 convolve2d, at 2048^2, 4096^2, 8192^2
      <= 1.0 x the time and <= 1.3 x the peak memory of a script loading the three arrays
      and computing one float64 correlate2d (handwritten_explain.py)
- explain a batch, (8, 56, 56, 64) image, (3, 3, 64, 64) kernel, tf.nn.conv2d float32 output
      <= 1.5 x a float64 im2col + matrix product in numpy (handwritten_batch.py)
- check, 500 cases (64x64, 3x3..7x7, TF and Keras backends)
      <= 1.3 x one process importing TF/Keras once and calling them by hand (handwritten_check.py)
- check memory: the same 512x512 explain suite at 100 and at 500 cases
      peak memory at 500 <= 1.1 x at 100 (cases load, run and are released one at a time)
- compare on the demo case, the twelve backends
      <= 1.0 x a script making the same calls (handwritten_compare.py), memory <= 1.2 x
- a large kernel: 256^2 image with a 128^2 kernel, 512^2 with 64^2
      <= 512 MiB and <= 20 s each (was: 8 GiB, 38 s and 7.6 GB)
- --plot on a suite with 170 results that are not equal
      <= 0.5 s per drawn row (at most convcheck.plot.MAX_ROWS drawn, a note names the rest)
- convcheck --help <= 1.5 x `python -c "import click, rich"`
- explain on a small case <= 0.5 s; a stride-2 / dilated 512x512x3 -> 16 output <= 2 s
- real layers (issue 21 item 8; make_layers.py, outputs by torch): a (1,3,224,224)->64 7x7 stride-2
      stem with bias and a (1,256,14,14)->256 3x3 conv + bias + ReLU, each as declared, confirmed
      `equal` in <= 1.5 x a float64 im2col + BLAS reference with the same bias and activation and
      an elementwise comparison (handwritten_layer.py); the same layers `unexplained` (one output
      element corrupted; a port that used other weights) in <= 5 s each
- convcheck model on a ResNet-18-shaped pair at 224x224 (issue 22 item 7; resnet18.py: 20 convs,
      .pt2 against its ONNX export) <= 30 s end to end and <= 2 x both forward passes with
      per-layer capture plus a float64 check of every layer by hand (handwritten_model.py)

The explain timings at the three sizes are also drawn as a scaling curve:
benchmarks/results/scaling.png (needs matplotlib). Details of every run:
benchmarks/results/latest.json.

Usage: python benchmarks/run.py [--runs N] [--only NAME ...] [--sizes 2048 4096 8192]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
CONVCHECK = [PYTHON, "-m", "convcheck"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "NO_COLOR": "1",
       "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
ENV.pop("KERAS_BACKEND", None)
# Rows of a fraction of a second take this many times --runs: their hand-written side
# (two OpenBLAS threads for the batch's product) spreads over 2-3x between runs.
SHORT_RUNS = 3
NAMES = ("explain-large", "batch", "check", "check-memory", "compare", "large-kernel", "plot", "help",
         "explain-small", "geometry", "layers", "model")


# Runs a command and reports its wall time and peak RSS: forked from a small process, as
# GNU time does, since Linux carries a parent's peak RSS over fork and exec into the child's.
_MEASURE = """
import os, sys, time
report, cmd = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(cmd[0], cmd)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(report, "w") as fp:
    fp.write(f"{seconds} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_once(cmd: list[str]) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB, exit code) of one process."""
    with tempfile.TemporaryDirectory() as folder:
        report = os.path.join(folder, "report")
        with open(os.path.join(folder, "stderr"), "w+b") as errors:
            subprocess.run([PYTHON, "-S", "-c", _MEASURE, report, *cmd], env=ENV, stdout=subprocess.DEVNULL,
                           stderr=errors, check=False)
            seconds, kib, code = open(report).read().split()
            if int(code) not in (0, 1):
                errors.seek(0)
                raise SystemExit(f"benchmark command failed ({code}): {' '.join(cmd)}\n"
                                 f"{errors.read().decode(errors='replace')[-2000:]}")
    return float(seconds), int(kib) / 1024, int(code)


def answer(cmd: list[str]) -> tuple[int, str]:
    """(exit code, stdout) of one run, unmeasured: the warm-up run of a row whose answer is checked."""
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"benchmark command failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return done.returncode, done.stdout


def _warm(cmd: list[str], check, extra: dict) -> None:
    """One warm-up run; with `check` (exit code, stdout -> (ok, note)), the answer is checked too: a
    row that times a wrong answer is marked as failing, whatever its time."""
    if check is None:
        run_once(cmd)
        return
    ok, note = check(*answer(cmd))
    extra["answer_ok"] = ok
    extra["note"] = "; ".join(n for n in (note, extra.get("note")) if n)


def pair(name: str, ours: list[str], theirs: list[str], runs: int, check=None, **extra) -> dict:
    """Interleaved runs of both commands; medians and ratios. `check`: see `_warm`."""
    _warm(ours, check, extra)  # warm the file cache for both
    run_once(theirs)
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    rss: dict[str, list[float]] = {"ours": [], "theirs": []}
    for _ in range(runs):
        for key, cmd in (("ours", ours), ("theirs", theirs)):
            seconds, mib, _ = run_once(cmd)
            times[key].append(seconds)
            rss[key].append(mib)
    med = {k: statistics.median(v) for k, v in times.items()}
    mem = {k: statistics.median(v) for k, v in rss.items()}
    return {"name": name, "ours_s": med["ours"], "theirs_s": med["theirs"],
            "time_ratio": med["ours"] / med["theirs"], "ours_mib": mem["ours"], "theirs_mib": mem["theirs"],
            "memory_ratio": mem["ours"] / mem["theirs"], "runs": runs,
            "ours_all": times["ours"], "theirs_all": times["theirs"],
            "ours_mib_all": rss["ours"], "theirs_mib_all": rss["theirs"], **extra}


def single(name: str, cmd: list[str], runs: int, check=None, **extra) -> dict:
    _warm(cmd, check, extra)
    results = [run_once(cmd) for _ in range(runs)]
    return {"name": name, "ours_s": statistics.median(r[0] for r in results),
            "ours_mib": statistics.median(r[1] for r in results), "runs": runs,
            "ours_all": [r[0] for r in results], **extra}


# ----------------------------------------------------------------------------- cases


def make_explain_case(folder: Path, size: int) -> list[str]:
    """A float64 size x size image, a 7x7 kernel and the float32 convolve2d output."""
    import scipy.signal
    rng = np.random.default_rng(2048)
    image = rng.standard_normal((size, size))
    kernel = rng.standard_normal((7, 7))
    output = scipy.signal.convolve2d(image.astype(np.float32), kernel.astype(np.float32), mode="same")
    paths = [folder / f"big{size}_{part}.npy" for part in ("image", "kernel", "output")]
    for path, array in zip(paths, (image, kernel, output)):
        np.save(path, array)
    return [str(p) for p in paths]


_BATCH_SCRIPT = """
import sys, numpy as np, tensorflow as tf
rng = np.random.default_rng(8)
image = rng.standard_normal((8, 56, 56, 64)).astype(np.float32)
kernel = rng.standard_normal((3, 3, 64, 64)).astype(np.float32)
np.save(sys.argv[1], image); np.save(sys.argv[2], kernel)
np.save(sys.argv[3], tf.nn.conv2d(image, kernel, strides=1, padding="SAME").numpy())
"""


def make_batch_case(folder: Path) -> list[str] | None:
    """An (8, 56, 56, 64) float32 batch, a (3, 3, 64, 64) kernel and tf.nn.conv2d's output
    (None when TensorFlow is missing)."""
    paths = [str(folder / f"batch_{part}.npy") for part in ("image", "kernel", "output")]
    done = subprocess.run([PYTHON, "-c", _BATCH_SCRIPT, *paths], env=ENV, capture_output=True)
    return paths if done.returncode == 0 else None


def make_geometry_case(folder: Path, stride: int, dilation: int) -> list[str]:
    """A 512x512x3 float32 image, a 3x3x3x16 kernel and its stride/dilation output (float32)."""
    from convcheck.engine.reference import reference
    rng = np.random.default_rng(512)
    image = rng.standard_normal((512, 512, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 16)).astype(np.float32)
    output = reference(image, kernel, "same", stride=(stride, stride), dilation=(dilation, dilation))
    paths = [folder / f"geo_{stride}_{dilation}_{part}.npy" for part in ("image", "kernel", "output")]
    for path, array in zip(paths, (image, kernel, output.astype(np.float32))):
        np.save(path, array)
    return [str(p) for p in paths]


def make_large_kernel_case(folder: Path, size: int, ksize: int) -> list[str]:
    """A float64 size^2 image, a ksize^2 kernel and their float64 convolve2d output."""
    import scipy.signal
    rng = np.random.default_rng(size + ksize)
    image = rng.standard_normal((size, size))
    kernel = rng.standard_normal((ksize, ksize))
    output = scipy.signal.convolve2d(image, kernel, mode="same")
    paths = [folder / f"large{size}_{ksize}_{part}.npy" for part in ("image", "kernel", "output")]
    for path, array in zip(paths, (image, kernel, output)):
        np.save(path, array)
    return [str(p) for p in paths]


def make_check_suite(folder: Path, cases: int = 50) -> Path:
    """`cases` 64x64 float32 cases (3x3, 5x5, 7x7 kernels) comparing TF and Keras."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(50)
    lines = ['[tool.convcheck]', 'padding = "same"', 'backends = ["tf.nn.conv2d", "keras.layers.Conv2D"]', ""]
    for i in range(cases):
        size = 3 + 2 * (i % 3)  # 3x3, 5x5, 7x7
        np.save(folder / f"x{i}.npy", rng.standard_normal((64, 64)).astype(np.float32))
        np.save(folder / f"k{i}.npy", rng.standard_normal((size, size)).astype(np.float32))
        lines += ["[[tool.convcheck.case]]", f'name = "case {i}"', f'image = "x{i}.npy"', f'kernel = "k{i}.npy"', ""]
    (folder / "pyproject.toml").write_text("\n".join(lines))
    return folder


def make_explain_suite(folder: Path, cases: int, size: int, flipped: bool = False) -> Path:
    """`cases` explain cases of a size x size float32 image, 3x3..7x7 kernels and a saved
    output: the float64 reference (equal), or with `flipped` a true convolution (explained)."""
    from convcheck.engine.reference import reference
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(size)
    lines = []
    for i in range(cases):
        k = 3 + 2 * (i % 3)
        image = rng.standard_normal((size, size)).astype(np.float32)
        kernel = rng.standard_normal((k, k)).astype(np.float32)
        output = reference(image, kernel[::-1, ::-1] if flipped else kernel)
        for name, array in ((f"x{i}", image), (f"k{i}", kernel), (f"y{i}", output)):
            np.save(folder / f"{name}.npy", array)
        lines += ["[[case]]", f'name = "case {i}"', f'image = "x{i}.npy"', f'kernel = "k{i}.npy"',
                  f'output = "y{i}.npy"', ""]
    (folder / "convcheck.toml").write_text("\n".join(lines))
    return folder


def verdict_is(expected: str):
    """A `check` for `pair`/`single`: the explain JSON's verdict is `expected`."""
    def check(code: int, stdout: str) -> tuple[bool, str]:
        document = json.loads(stdout)
        stats = document.get("stats") or {}
        verdict = document["verdict"]
        note = (f"verdict {verdict} (exit {code}), {stats.get('mismatched')} of {stats.get('total')} elements "
                f"outside the bound (error bound {stats.get('error_bound', 0):.2g})")
        return verdict == expected, note if verdict == expected else f"WRONG ANSWER, expected {expected}: {note}"
    return check


def walk_is_equal(code: int, stdout: str) -> tuple[bool, str]:
    """A `check` for the model row: every layer of the faithful export `equal`, none unmatched."""
    document = json.loads(stdout)
    verdicts = [layer["verdict"] for layer in document["layers"]]
    unmatched = sum(len(names) for names in document["unmatched"].values())
    note = (f"{verdicts.count('equal')} of {len(verdicts)} layers equal, {unmatched} unmatched, first divergence "
            f"{document['first_divergence'] or 'none'} (exit {code})")
    ok = code == 0 and set(verdicts) == {"equal"} and not unmatched
    return ok, note if ok else f"WRONG ANSWER, the export is faithful: {note}"


def _explain_declares() -> bool:
    """Whether `convcheck explain` takes --bias and --expect (padding amounts come with them)."""
    done = subprocess.run(CONVCHECK + ["explain", "--help"], env=ENV, capture_output=True, text=True, check=False)
    return "--bias" in done.stdout and "--expect" in done.stdout


def layer_rows(tmp: Path, runs: int) -> list[dict]:
    """Issue 21 item 8: real layers as declared, `equal` against the hand-written check, and
    `unexplained` ones (an element corrupted, other weights) on their own."""
    folder = tmp / "layers"
    done = subprocess.run([PYTHON, str(HERE / "make_layers.py"), str(folder)], env=ENV, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        print(f"layers: skipped (making them with torch failed: {done.stderr.strip()[-300:]})", file=sys.stderr)
        return []
    sys.path.insert(0, str(HERE))
    from make_layers import LAYERS
    cli = _explain_declares()
    rows = []
    for name, (shape, c_out, size, stride, padding, activation) in LAYERS.items():
        x, w, b = (str(folder / f"{name}_{part}.npy") for part in ("x", "w", "b"))

        def ours(output: str) -> list[str]:
            y = str(folder / f"{name}_{output}.npy")
            if not cli:  # the Python API until the CLI declares padding amounts and a bias
                return [PYTHON, str(HERE / "convcheck_layer.py"), x, w, b, y, str(stride), str(padding), activation]
            return CONVCHECK + ["explain", x, w, y, "--layout", "nchw", "--padding", str(padding), "--stride",
                                str(stride), "--bias", b, "--format", "json"] + (
                                    ["--expect", f"activation={activation}"] if activation != "linear" else [])

        label = (f"{shape[1]}x{shape[2]}x{shape[3]}->{c_out} {size}x{size}" + (f" s{stride}" if stride > 1 else "")
                 + " +bias" + ("+ReLU" if activation == "relu" else ""))
        hand = [PYTHON, str(HERE / "handwritten_layer.py"), x, w, b, str(folder / f"{name}_y.npy"), str(stride),
                str(padding), activation]
        via = "" if cli else " (API)"
        rows.append(pair(f"layer {label}: equal{via}", ours("y"), hand, SHORT_RUNS * runs, check=verdict_is("equal"),
                         time_target=1.5))
        for output, what in (("pixel", "1 element off"), ("wrong", "other weights")):
            rows.append(single(f"layer {label}: {what}{via}", ours(output), max(1, runs // 2),
                               check=verdict_is("unexplained"), time_target=5.0))
    return rows


def model_row(tmp: Path, runs: int) -> list[dict]:
    """Issue 22 item 7: `convcheck model` on a ResNet-18-shaped .pt2 and its ONNX export."""
    folder = tmp / "resnet18"
    done = subprocess.run([PYTHON, str(HERE / "resnet18.py"), str(folder)], env=ENV, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        print(f"model: skipped (exporting with torch failed: {done.stderr.strip()[-300:]})", file=sys.stderr)
        return []
    pt2, onnx, x = (str(folder / name) for name in ("resnet18.pt2", "resnet18.onnx", "input.npy"))
    rows = [pair("model: ResNet-18 .pt2 vs ONNX, 224x224, 20 convs", CONVCHECK + [
        "model", pt2, onnx, "--input", x, "--format", "json"], [PYTHON, str(HERE / "handwritten_model.py"), pt2, onnx, x],
        runs, check=walk_is_equal, time_target=2.0, seconds_target=30.0)]
    # Memory one layer at a time: a net whose conv tensors (about 300 MiB a model) dwarf its
    # largest layer (37 MiB); the hand-written walk holds every tensor of both models.
    folder = tmp / "plainnet"
    done = subprocess.run([PYTHON, str(HERE / "plainnet.py"), str(folder)], env=ENV, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        print(f"model: plain net skipped (exporting with torch failed: {done.stderr.strip()[-300:]})",
              file=sys.stderr)
        return rows
    pt2, onnx, x = (str(folder / name) for name in ("plain.pt2", "plain.onnx", "input.npy"))
    rows.append(pair("model: plain 16-conv net .pt2 vs ONNX, 384x384x32 (memory)", CONVCHECK + [
        "model", pt2, onnx, "--input", x, "--format", "json"],
        [PYTHON, str(HERE / "handwritten_model.py"), pt2, onnx, x, "plain"], max(1, runs // 2), check=walk_is_equal,
        memory_target=1.0))
    return rows


# ----------------------------------------------------------------------------- the table


def targets(result: dict) -> tuple[float | None, float | None, bool]:
    """(time target, memory target, whether the row meets its targets)."""
    t, m = result.get("time_target"), result.get("memory_target")
    time_value = result.get("time_ratio", result["ours_s"])
    memory_value = result.get("memory_ratio", result.get("ours_mib"))
    ok = (t is None or time_value <= t) and (m is None or memory_value is None or memory_value <= m)
    seconds = result.get("seconds_target")  # an absolute limit beside a ratio
    ok = ok and (seconds is None or result["ours_s"] <= seconds) and result.get("answer_ok", True)
    return t, m, ok


def print_table(results: list[dict], runs: int) -> None:
    width = max([50] + [len(r["name"]) for r in results])
    header = (f"{'benchmark':{width}s} {'convcheck':>10s} {'by hand':>9s} {'ratio':>6s} {'target':>8s} "
              f"{'MiB ours':>9s} {'MiB hand':>9s} {'ratio':>6s} {'target':>8s}  ok")
    print(header)
    print("-" * len(header))
    for r in results:
        t, m, ok = targets(r)
        hand_s = f"{r['theirs_s']:8.2f}s" if "theirs_s" in r else f"{'':>9s}"
        ratio = f"{r['time_ratio']:6.2f}" if "time_ratio" in r else f"{'':>6s}"
        unit = "" if "time_ratio" in r else "s"
        hand_mib = f"{r['theirs_mib']:9.0f}" if "theirs_mib" in r else f"{'':>9s}"
        mem_ratio = f"{r['memory_ratio']:6.2f}" if "memory_ratio" in r else f"{'':>6s}"
        munit = "" if "memory_ratio" in r else " MiB"
        print(f"{r['name']:{width}s} {r['ours_s']:9.2f}s {hand_s} {ratio} "
              f"{('<= ' + format(t, 'g') + unit) if t is not None else '':>8s} {r['ours_mib']:9.0f} {hand_mib} "
              f"{mem_ratio} {('<= ' + format(m, 'g') + munit) if m is not None else '':>8s}  "
              f"{'yes' if ok else 'NO'}")
        if r.get("seconds_target") is not None:
            print(f"{'':4s}convcheck end to end {r['ours_s']:.1f} s, target <= {r['seconds_target']:g} s")
        if r.get("note"):
            print(f"{'':4s}{r['note']}")
    more = sorted({r["runs"] for r in results if r.get("runs", runs) > runs})
    extra = "".join(f", {n} for the rows of a fraction of a second" for n in more)
    print(f"\n(medians of {runs} interleaved runs{extra}; ratio = convcheck / by hand; peak RSS of the whole process)")


def plot_scaling(results: list[dict], path: Path) -> bool:
    """The explain-large rows as time and memory against image size (False without matplotlib)."""
    rows = sorted((r for r in results if r.get("pixels")), key=lambda r: r["pixels"])
    if not rows:
        return False
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return False
    sizes = [r["pixels"] for r in rows]
    labels = [f"{r['side']}²" for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for axis, ours, theirs, unit in ((left, "ours_s", "theirs_s", "seconds (median)"),
                                     (right, "ours_mib", "theirs_mib", "peak RSS, MiB (median)")):
        axis.plot(sizes, [r[ours] for r in rows], "o-", label="convcheck explain")
        axis.plot(sizes, [r[theirs] for r in rows], "s--", label="load + one float64 correlate2d (by hand)")
        axis.set_xscale("log", base=2)
        axis.set_yscale("log", base=2)
        axis.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_xticks(sizes, labels)
        axis.set_xlabel("image (float64, 7x7 kernel, float32 convolve2d output)")
        axis.set_ylabel(unit)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    left.set_title("wall time")
    right.set_title("peak memory")
    fig.suptitle(f"convcheck explain vs the hand-written reference (medians of {rows[0]['runs']} interleaved runs)")
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs per pair (median reported)")
    parser.add_argument("--only", nargs="*", choices=NAMES, help="benchmark names to run")
    parser.add_argument("--sizes", nargs="*", type=int, default=[2048, 4096, 8192],
                        help="image sides for the explain scaling rows")
    args = parser.parse_args()
    wanted = set(args.only or NAMES)
    # convcheck's bytecode compiled first, as `pip install` compiles an installed package:
    # a source checkout run with PYTHONDONTWRITEBYTECODE=1 (this machine sets it) would
    # otherwise compile every module in every process, ~75 ms a start-up, which no user
    # of an installed convcheck pays.
    compileall.compile_dir(str(ROOT / "convcheck"), quiet=1)
    results = []
    sys.path.insert(0, str(ROOT))
    from convcheck.comparison import demo_paths
    from convcheck.plot import MAX_ROWS
    image, kernel = (str(p) for p in demo_paths())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "explain-large" in wanted:
            for size in args.sizes:
                case = make_explain_case(tmp, size)
                results.append(pair(f"explain {size}x{size} float64, 7x7", CONVCHECK + ["explain", *case, "--format",
                                                                                       "json"],
                                    [PYTHON, str(HERE / "handwritten_explain.py"), *case], args.runs,
                                    time_target=1.0, memory_target=1.3, pixels=size * size, side=size))
                for path in case:
                    os.remove(path)
        if "batch" in wanted:
            case = make_batch_case(tmp)
            if case is None:
                print("batch: skipped (TensorFlow is not installed)", file=sys.stderr)
            else:
                results.append(pair("explain batch (8,56,56,64)x(3,3,64,64), TF out", CONVCHECK + [
                    "explain", *case, "--format", "json"], [PYTHON, str(HERE / "handwritten_batch.py"), *case],
                    SHORT_RUNS * args.runs, time_target=1.5))
        if "check" in wanted:
            suite = make_check_suite(tmp / "suite500", 500)
            results.append(pair("check, 500 cases 64x64, TF + Keras", CONVCHECK + [
                "check", str(suite / "pyproject.toml"), "--format", "json"],
                [PYTHON, str(HERE / "handwritten_check.py"), str(suite), "500"], args.runs, time_target=1.3))
        if "check-memory" in wanted:
            peaks = {}
            for cases in (100, 500):
                suite = make_explain_suite(tmp / f"explain{cases}", cases, 512)
                peaks[cases] = single(f"check, {cases} cases 512x512 (explain)", CONVCHECK + [
                    "check", str(suite / "convcheck.toml"), "--format", "json"], max(1, args.runs // 2))
            results.append({"name": "check memory: 500 vs 100 cases of 512x512", "ours_s": peaks[500]["ours_s"],
                             "theirs_s": peaks[100]["ours_s"], "time_ratio": peaks[500]["ours_s"] / peaks[100]["ours_s"],
                             "ours_mib": peaks[500]["ours_mib"], "theirs_mib": peaks[100]["ours_mib"],
                             "memory_ratio": peaks[500]["ours_mib"] / peaks[100]["ours_mib"], "memory_target": 1.1,
                             "runs": peaks[500]["runs"],
                             "note": "'by hand' here is convcheck check on the first 100 of the cases"})
        if "compare" in wanted:
            results.append(pair("compare demo (12 backends)", CONVCHECK + ["compare", image, kernel, "--format", "json"],
                                [PYTHON, str(HERE / "handwritten_compare.py"), image, kernel], args.runs,
                                time_target=1.0, memory_target=1.2))
        if "large-kernel" in wanted:
            for size, ksize in ((256, 128), (512, 64)):
                case = make_large_kernel_case(tmp, size, ksize)
                results.append(single(f"explain {size}x{size} with a {ksize}x{ksize} kernel",
                                      CONVCHECK + ["explain", *case, "--format", "json"], max(1, args.runs // 2),
                                      time_target=20.0, memory_target=512.0))
        if "plot" in wanted:
            suite = make_explain_suite(tmp / "plot170", 170, 64, flipped=True)
            config = str(suite / "convcheck.toml")
            plain = single("check, 170 results not equal", CONVCHECK + ["check", config, "--format", "json"], 1)
            drawn = single("check --plot", CONVCHECK + ["check", config, "--format", "json", "--plot",
                                                        str(tmp / "p.png")], 1)
            rows = min(170, MAX_ROWS)
            per_row = (drawn["ours_s"] - plain["ours_s"]) / rows
            results.append({"name": f"--plot, 170 not equal ({rows} rows drawn): s/row", "ours_s": per_row,
                            "ours_mib": drawn["ours_mib"], "time_target": 0.5, "runs": 1,
                            "note": f"check {plain['ours_s']:.1f} s without --plot, {drawn['ours_s']:.1f} s with it"})
        if "help" in wanted:
            results.append(pair("convcheck --help", CONVCHECK + ["--help"], [PYTHON, "-c", "import click, rich"],
                                SHORT_RUNS * args.runs, time_target=1.5))
        if "explain-small" in wanted:
            small_out = tmp / "small_output.npy"
            import scipy.signal
            np.save(small_out, scipy.signal.convolve2d(np.load(image), np.load(kernel), mode="same"))
            results.append(single("explain demo case (start-up included)",
                                  CONVCHECK + ["explain", image, kernel, str(small_out)], args.runs, time_target=0.5))
        if "geometry" in wanted:
            for stride, dilation, label in ((2, 1, "stride 2"), (1, 2, "dilation 2")):
                results.append(single(f"explain 512x512x3->16, {label} (start-up incl.)",
                                      CONVCHECK + ["explain", *make_geometry_case(tmp, stride, dilation)], args.runs,
                                      time_target=2.0))
        if "layers" in wanted:
            results += layer_rows(tmp, args.runs)
        if "model" in wanted:
            results += model_row(tmp, args.runs)
    print_table(results, args.runs)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    if plot_scaling(results, out / "scaling.png"):
        print(f"scaling curve: {out / 'scaling.png'}")
    print(f"details: {out / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
