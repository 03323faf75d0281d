"""How every outcome of a command becomes a CONTRACT section 4 exit code: the `Group` that turns
usage errors, bad input, interrupts and crashes into one line on stderr and its code,
`reports_input_errors` for a command's `InputError` (exit 2) and `finish` for its own code.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable

import click

from ..errors import InputError
from .output import echo

def fail(message: str, code: int = 2) -> None:
    """Print `error: <message>` as one line on stderr and exit with `code` (CONTRACT section 4)."""
    echo(f"error: {' '.join(str(message).split())}", err=True)
    raise click.exceptions.Exit(code)


def reports_input_errors(fn: Callable) -> Callable:
    """Decorate a command so `InputError` becomes exit 2 with one line on stderr, no traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            fail(str(exc))
    return wrapper


class Group(click.Group):
    """The `convcheck` group: every outcome of a run becomes a CONTRACT section 4 exit code.

    - click's usage errors (a bad choice, a missing file argument, an unknown option) are
      one `error: ...` line plus one usage line, exit 2, like convcheck's own input errors;
    - a crash inside convcheck (a bug) is exit 4 with one line saying so and how to report
      it, never exit 1 (which means "mismatch"); `--debug` (or CONVCHECK_DEBUG=1) prints
      the traceback too.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in args or bool(os.environ.get("CONVCHECK_DEBUG"))
        args = [arg for arg in args if arg != "--debug"]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()
            code = exc.exit_code
        except click.UsageError as exc:
            echo(f"error: {' '.join(exc.format_message().split())}", err=True)
            if exc.ctx is not None:
                usage = exc.ctx.get_usage().replace("Usage:", "usage:", 1)
                echo(f"{' '.join(usage.split())}  (see '{exc.ctx.command_path} --help')", err=True)
            code = exc.exit_code
        except click.ClickException as exc:
            echo(f"error: {' '.join(exc.format_message().split())}", err=True)
            code = exc.exit_code
        except InputError as exc:
            echo(f"error: {' '.join(str(exc).split())}", err=True)
            code = 2
        except (click.exceptions.Abort, KeyboardInterrupt, EOFError):
            echo("\nerror: interrupted", err=True)
            code = 130
        except BrokenPipeError:  # `convcheck ... | head`: the reader left; say nothing more
            sys.stdout = open(os.devnull, "w")
            code = 141
        except Exception as exc:  # a bug in convcheck: exit 4, never 1 (CONTRACT section 4)
            if debug:
                import traceback
                traceback.print_exc()
            from .. import __version__
            what = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            hint = ("the traceback is above" if debug else
                    "run the same command with --debug to see the traceback")
            echo(f"error: internal error in convcheck {__version__} ({what}); this is a bug in convcheck, "
                 f"not in your files: please report it with the command you ran ({hint})", err=True)
            code = 4
        sys.exit(code if isinstance(code, int) else 0)


def finish(code: int) -> None:
    """End the current command with exit `code`."""
    click.get_current_context().exit(code)
