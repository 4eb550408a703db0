"""``dcf77shm status`` and ``dcf77shm calibrate``: thin click commands for a running
service (registered in cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dcf77shm.status import DEFAULT_STATUS_FILE


@click.command()
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_STATUS_FILE,
    show_default=True,
    help="The --status-file of the running `dcf77shm run`.",
)
@click.option("--json", "as_json", is_flag=True, help="The status file itself, one JSON object.")
def status(path: Path, as_json: bool) -> None:
    """Show a running service: lock state, last sample, counters with reasons.

    Exit status 1 if it is not running (no status file, or not written for 10 s).
    """
    from dcf77shm.status import read_status, status_lines

    snap = read_status(path)
    if as_json:
        click.echo(json.dumps(snap, sort_keys=True))
        return
    for line in status_lines(snap):
        click.echo(line)
