"""The `convcheck` command line: thin click commands over the library (sqlite-utils style).

Each command parses options, calls the library, hands the result to a format (which
returns a string) and maps the outcome to an exit code (CONTRACT section 4). numpy,
scipy and TensorFlow are imported inside the commands, never at module level, so
`convcheck --help` starts instantly; input files are validated before any backend
(and so TensorFlow) is imported.

Here: the `convcheck` group (`main`) and the console script (`entry`). One module per
command (`compare`, `explain`, `demo`, `backends`, `check`, `weights`, `model`): a new command is a module
of its own and one line in `_COMMANDS`. Beside them, what commands share: `options` (the
option groups), `output` (where reports and talk go) and `exits` (outcomes to exit codes).
"""

from __future__ import annotations

import os
import sys

import click

from .. import __version__
from . import backends, check, compare, demo, explain, model, weights
from .exits import Group

@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Example: convcheck explain image.npy kernel.npy output.npy --padding same")
@click.version_option(__version__, prog_name="convcheck")
@click.option("--debug", is_flag=True, default=False, expose_value=False,
              help="On an internal error, print the traceback (also CONVCHECK_DEBUG=1).")
def main():
    """Explain why convolution outputs disagree.

    The reference is the float64 cross-correlation (what deep-learning frameworks call
    convolution) with zero padding. Every difference is explained, if it can be, by a
    kernel flip, padding, boundary, offset, precision, bias or scale, judged against a
    rigorous floating-point error bound.

    Exit codes: 0 no mismatch, 1 an unexplained mismatch (with --strict: any
    difference), 2 bad usage or input, 3 a requested backend could not run, 4 an
    internal error (a bug in convcheck: please report it).
    """


# Frameworks whose interpreter teardown takes a second or more (measured: TensorFlow 0.9 s,
# with PyTorch and JAX 1.5 s) though nothing of theirs needs saving at exit.
_SLOW_TEARDOWN = ("tensorflow", "torch", "jax")


def entry() -> None:
    """The `convcheck` command itself (the console script, `python -m convcheck`).

    The same as `main`, except that the process leaves as soon as its output is flushed
    (os._exit), skipping the interpreter's teardown (freeing every module and object one
    by one: about 0.02 s after an explain, an eighth of a small layer's whole run, and
    with a framework a second or more: TensorFlow 0.9 s, with PyTorch and JAX 1.5 s).
    Everything convcheck writes (stdout, stderr, --output and --report files, written
    atomically and closed; plots) is complete by then. Without a framework loaded, the
    `atexit` handlers run first (a Keras worker closed, a temporary folder removed, as a
    normal exit would); with one, they are skipped too (the frameworks' own are part of
    the slow teardown), and the Keras worker processes leave on their own when their
    input closes. Only here, never in `main`, which tests and other Python code call in
    their own process.

    Before numpy is loaded, its OpenBLAS is asked for one thread (OPENBLAS_NUM_THREADS,
    unless the environment already names a number): convcheck runs its products on one
    BLAS thread each, two at a time on threads of its own (reference.single_threaded_blas,
    map_blocks), so OpenBLAS's own pool would only be started for nothing, and its threads,
    spinning for work the first ~0.1 s, would take a core from them (measured: an explain
    of an (8, 56, 56, 64) batch 0.26 s -> 0.24 s). Child processes inherit it; the
    frameworks' convolutions do not use numpy's BLAS.
    """
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        main(prog_name="convcheck")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            if sys.stderr is not None:   # sys.exit(message): printed, as the interpreter would
                sys.stderr.write(f"{exc.code}\n")
        if not any(name in sys.modules for name in _SLOW_TEARDOWN):
            import atexit
            atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:   # None where the caller closed it (`convcheck ... >&-`)
                    stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


# Every command, each from its own module.
_COMMANDS = (compare.compare, explain.explain, demo.demo, backends.backends_command, check.check, weights.weights,
             model.model)
for _command in _COMMANDS:
    main.add_command(_command)
