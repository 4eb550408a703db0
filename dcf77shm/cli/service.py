"""``dcf77shm status`` and ``dcf77shm calibrate``: thin click commands for a running
service (registered in cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dcf77shm.errors import BadInput
from dcf77shm.fileio import printable
from dcf77shm.service.status import DEFAULT_STATUS_FILE


@click.command()
@click.option(
    "--status-file",
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_STATUS_FILE,
    show_default=True,
    help="The --status-file of the running `dcf77shm run` (--file: the old name).",
)
@click.option("--json", "as_json", is_flag=True, help="The status file itself, one JSON object.")
def status(path: Path, as_json: bool) -> None:
    """Show a running service: lock state, last sample, counters with reasons.

    Exit status 1 if it is not running (no status file, or not written for 30 s).
    """
    from dcf77shm.service.status import read_status, status_lines

    snap = read_status(path)
    if as_json:
        click.echo(json.dumps(snap, sort_keys=True))
        return
    try:
        lines = status_lines(snap)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, OSError) as e:
        # read_status checked what says "a live daemon"; a file that has that
        # but not the rest was not written by dcf77shm run.
        raise BadInput(
            f"{path}: not a dcf77shm status file ({type(e).__name__}: {e})".replace("\n", " ")
        ) from None
    shmid = snap.get("output_shmid")
    if isinstance(snap.get("output"), str) and (shmid is None or isinstance(shmid, int)):
        from dcf77shm.sinks.shmtools import writer_notes

        lines += writer_notes(snap["output"], shmid)
    for line in lines:
        click.echo(line)


MAX_CONF_BYTES = 1024 * 1024  # a chrony drop-in is a few KB


@click.command()
@click.option("--refid", default="DCF", show_default=True, help="The DCF refclock's refid.")
@click.option(
    "--config",
    "--conf",
    "conf",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("/etc/chrony/conf.d/dcf77shm.conf"),
    show_default=True,
    help="chrony's file with the refclock line (its current offset is the base; "
    "--conf: the old name).",
)
@click.option(
    "--chronyc-socket",
    type=click.Path(path_type=Path),
    help="chronyd's command socket (chronyc -h); default: chronyc's own.",
)
def calibrate(refid: str, conf: Path, chronyc_socket: Path | None) -> None:
    """Measure the receiver delay against chrony's other sources; print the line to paste.

    Needs other sources in chrony (NTP servers, GPS) with a few minutes of
    measurements next to the DCF source.  The last line printed is the new
    refclock line (offset corrected, delay fitted to the remaining
    uncertainty).
    """
    from dcf77shm import chronyc
    from dcf77shm.tools import calibrate as cb

    try:
        with conf.open("rb") as f:
            data = f.read(MAX_CONF_BYTES + 1)  # bounded: --config may name /dev/zero
        text = data.decode("utf-8") if len(data) <= MAX_CONF_BYTES else ""
    except (OSError, ValueError) as e:
        why = (e.strerror if isinstance(e, OSError) else None) or str(e)
        raise BadInput(
            f"{printable(conf)}: {why}; fix: --config FILE with the refclock line"
        ) from None
    line = cb.current_line(text, refid)
    sources = chronyc.parse_sources(chronyc.run(["sources"], chronyc_socket))
    stats = chronyc.parse_sourcestats(chronyc.run(["sourcestats"], chronyc_socket))
    cal = cb.compute(sources, stats, refid)
    new, old, offset = cb.new_line(line, cal)
    click.echo(
        f"{refid} is {cal.correction_s * 1e3:+.2f} ms ± {cal.sigma_s * 1e3:.2f} ms (1 sigma) "
        f"from {', '.join(cal.references)} (whose own error bound is "
        f"±{cal.ref_bound_s * 1e3:.2f} ms)"
    )
    if cal.note:
        click.echo(f"note: {cal.note}")
    click.echo(f"receiver delay (refclock offset): {offset:+.4f} s, now {old:+.4f} s")
    click.echo(f"put this line in {conf} instead of the old one, then `systemctl restart chrony`:")
    click.echo(new)
