"""`convcheck backends`: the backends compare can run, available here or not, and why not."""

from __future__ import annotations

import click

from ..formats import Format
from .output import echo, terminal_width, use_color

@click.command("backends", epilog="Example: convcheck backends --format json")
@click.option("--format", "fmt", type=click.Choice([Format.TABLE.value, Format.JSON.value]),
              default=Format.TABLE.value, show_default=True, help="table for people, json for scripts.")
def backends_command(fmt):
    """List the backends compare can run: available here or not, version, and why not."""
    from ..comparison import backend_table

    rows = backend_table()
    if fmt == Format.JSON.value:
        from ..formats.json import dumps
        echo(dumps({"backends": rows}))
        return
    from ..formats.table import render_backends

    color = use_color()
    echo(render_backends(rows, color=color, width=terminal_width()), nl=False, color=color)
