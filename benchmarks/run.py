"""`make bench`: convcheck against the hand-written equivalent, side by side in one run.

Each pair runs as separate processes, interleaved (A, B, A, B, ...), and reports the
median wall time and peak RSS of each and their ratio. Targets come from the issues:

- compare on the demo case        <= 1.15 x a script making the same twelve calls (Keras on
                                  JAX/PyTorch in two child processes, as compare does)
- compare peak memory             <= 1.2  x that script
- convcheck --help                <= 1.5  x `python -c "import click, rich"`
- explain, 2048x2048 float64 image, 7x7 kernel, output of float32 convolve2d
                                  <= 2    x a script loading the three arrays + one float64 correlate2d
- explain on a small case         <= 0.5 s, start-up included
- explain a stride-2 / a dilated 512x512x3 -> 16-channel float32 output, found from the data
                                  <= 2 s each, start-up included
- check, 50 cases (64x64, 3x3..7x7, TF and Keras backends)
                                  <= 1.3  x one process importing TF/Keras once and calling them by hand

Usage: python benchmarks/run.py [--runs N] [--only NAME ...]
"""

from __future__ import annotations

import argparse
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
PYTHON = sys.executable
CONVCHECK = [PYTHON, "-m", "convcheck"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "NO_COLOR": "1"}
ENV.pop("KERAS_BACKEND", None)


def run_once(cmd: list[str], cwd: Path | None = None) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB, exit code) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"benchmark command failed ({code}): {' '.join(cmd)}\n{stderr[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, code


def pair(name: str, ours: list[str], theirs: list[str], runs: int, cwd: Path | None = None) -> dict:
    """Interleaved runs of both commands; medians and ratios."""
    run_once(ours, cwd)  # warm the file cache for both
    run_once(theirs, cwd)
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    rss: dict[str, list[float]] = {"ours": [], "theirs": []}
    for _ in range(runs):
        for key, cmd in (("ours", ours), ("theirs", theirs)):
            seconds, mib, _ = run_once(cmd, cwd)
            times[key].append(seconds)
            rss[key].append(mib)
    med = {k: statistics.median(v) for k, v in times.items()}
    mem = {k: statistics.median(v) for k, v in rss.items()}
    return {"name": name, "ours_s": med["ours"], "theirs_s": med["theirs"],
            "time_ratio": med["ours"] / med["theirs"], "ours_mib": mem["ours"], "theirs_mib": mem["theirs"],
            "memory_ratio": mem["ours"] / mem["theirs"], "runs": runs,
            "ours_all": times["ours"], "theirs_all": times["theirs"]}


def single(name: str, cmd: list[str], runs: int) -> dict:
    run_once(cmd)
    times = [run_once(cmd)[0] for _ in range(runs)]
    return {"name": name, "ours_s": statistics.median(times), "runs": runs, "ours_all": times}


def make_explain_case(folder: Path) -> tuple[Path, Path, Path]:
    import scipy.signal
    rng = np.random.default_rng(2048)
    image = rng.standard_normal((2048, 2048))
    kernel = rng.standard_normal((7, 7))
    output = scipy.signal.convolve2d(image.astype(np.float32), kernel.astype(np.float32), mode="same")
    paths = folder / "big_image.npy", folder / "big_kernel.npy", folder / "big_output.npy"
    for path, array in zip(paths, (image, kernel, output)):
        np.save(path, array)
    return paths


def make_geometry_case(folder: Path, stride: int, dilation: int) -> list[str]:
    """A 512x512x3 float32 image, a 3x3x3x16 kernel and its stride/dilation output (float32)."""
    from convcheck.reference import reference
    rng = np.random.default_rng(512)
    image = rng.standard_normal((512, 512, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 16)).astype(np.float32)
    output = reference(image, kernel, "same", stride=(stride, stride), dilation=(dilation, dilation))
    paths = [folder / f"geo_{stride}_{dilation}_{part}.npy" for part in ("image", "kernel", "output")]
    for path, array in zip(paths, (image, kernel, output.astype(np.float32))):
        np.save(path, array)
    return [str(p) for p in paths]


def make_check_suite(folder: Path, cases: int = 50) -> Path:
    rng = np.random.default_rng(50)
    lines = ['[tool.convcheck]', 'padding = "same"', 'backends = ["tf.nn.conv2d", "keras.layers.Conv2D"]', ""]
    for i in range(cases):
        size = 3 + 2 * (i % 3)  # 3x3, 5x5, 7x7
        np.save(folder / f"x{i}.npy", rng.standard_normal((64, 64)).astype(np.float32))
        np.save(folder / f"k{i}.npy", rng.standard_normal((size, size)).astype(np.float32))
        lines += ["[[tool.convcheck.case]]", f'name = "case {i}"', f'image = "x{i}.npy"', f'kernel = "k{i}.npy"', ""]
    (folder / "pyproject.toml").write_text("\n".join(lines))
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs per pair (median reported)")
    parser.add_argument("--only", nargs="*", help="benchmark names to run")
    args = parser.parse_args()
    wanted = set(args.only or ["compare", "help", "explain-large", "explain-small", "geometry", "check"])
    results = []
    from convcheck.comparison import demo_paths
    image, kernel = (str(p) for p in demo_paths())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "compare" in wanted:
            results.append(pair("compare demo (12 backends)", CONVCHECK + ["compare", image, kernel, "--format", "json"],
                                [PYTHON, str(HERE / "handwritten_compare.py"), image, kernel], args.runs))
        if "help" in wanted:
            results.append(pair("convcheck --help", CONVCHECK + ["--help"],
                                [PYTHON, "-c", "import click, rich"], args.runs))
        if "explain-large" in wanted:
            big = [str(p) for p in make_explain_case(tmp)]
            results.append(pair("explain 2048x2048, 7x7", CONVCHECK + ["explain", *big, "--format", "json"],
                                [PYTHON, str(HERE / "handwritten_explain.py"), *big], args.runs))
        if "explain-small" in wanted:
            small_out = tmp / "small_output.npy"
            import scipy.signal
            np.save(small_out, scipy.signal.convolve2d(np.load(image), np.load(kernel), mode="same"))
            results.append(single("explain demo case (wall, start-up included)",
                                  CONVCHECK + ["explain", image, kernel, str(small_out)], args.runs))
        if "geometry" in wanted:
            for stride, dilation, label in ((2, 1, "stride 2"), (1, 2, "dilation 2")):
                results.append(single(f"explain 512x512x3->16, {label} (start-up incl.)",
                                      CONVCHECK + ["explain", *make_geometry_case(tmp, stride, dilation)], args.runs))
        if "check" in wanted:
            (tmp / "suite").mkdir()
            suite = make_check_suite(tmp / "suite")
            results.append(pair("check, 50 cases, TF + Keras", CONVCHECK + ["check", "--format", "json"],
                                [PYTHON, str(HERE / "handwritten_check.py"), str(suite), "50"], args.runs, cwd=suite))
    targets = {"compare demo (12 backends)": ("time_ratio", 1.15, "memory_ratio", 1.2),
               "convcheck --help": ("time_ratio", 1.5, None, None),
               "explain 2048x2048, 7x7": ("time_ratio", 2.0, None, None),
               "check, 50 cases, TF + Keras": ("time_ratio", 1.3, None, None)}
    print(f"{'benchmark':44s} {'convcheck':>10s} {'by hand':>9s} {'ratio':>7s} {'target':>7s} "
          f"{'MiB ours':>9s} {'MiB hand':>9s} {'ratio':>6s}")
    for r in results:
        if "theirs_s" in r:
            key, limit, mkey, mlimit = targets.get(r["name"], ("time_ratio", None, None, None))
            mem_target = f" (<= {mlimit})" if mlimit else ""
            print(f"{r['name']:44s} {r['ours_s']:9.3f}s {r['theirs_s']:8.3f}s {r['time_ratio']:7.2f} "
                  f"{('<= ' + str(limit)) if limit else '':>7s} {r['ours_mib']:9.0f} {r['theirs_mib']:9.0f} "
                  f"{r['memory_ratio']:6.2f}{mem_target}")
        else:
            limit = "<= 2s" if r["name"].startswith("explain 512") else "<= 0.5s"
            print(f"{r['name']:44s} {r['ours_s']:9.3f}s {'':>9s} {'':>7s} {limit:>7s}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    print(f"\n(median of {args.runs} interleaved runs; details in {out / 'latest.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
