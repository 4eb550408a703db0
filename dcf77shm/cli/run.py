"""``dcf77shm run`` and ``dcf77shm shm status``: thin click commands (registered in cli.py)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import click

from dcf77shm.cli.config import config_option
from dcf77shm.cli.options import source_options
from dcf77shm.decode.pipeline import DECODERS, DEFAULT_DECODER, Pipeline
from dcf77shm.errors import BadInput
from dcf77shm.model import Polarity
from dcf77shm.sinks.shm import DEFAULT_UNIT, parse_unit

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
# Under systemd, stderr goes to journald, which stamps every line itself and
# reads a leading "<N>" as the line's syslog priority (sd-daemon(3); the unit's
# SyslogLevelPrefix= is on by default): no second timestamp, and warnings show
# as warnings in `journalctl -p warning`.
JOURNAL_FORMAT = "<%(priority)d>%(message)s"
# (logging level at least, syslog priority): CRITICAL crit, ERROR err,
# WARNING warning, INFO info, below that debug.
SYSLOG_PRIORITY = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)


def syslog_priority(levelno: int) -> int:
    return next((prio for level, prio in SYSLOG_PRIORITY if levelno >= level), 7)


def stderr_is_journal(env: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """True when ``fd`` is the stream systemd connected to journald.

    systemd sets JOURNAL_STREAM=DEV:INODE of that stream; a child whose stderr
    was redirected elsewhere inherits the variable, hence the comparison
    (systemd.exec(5), "$JOURNAL_STREAM").
    """
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.priority = syslog_priority(record.levelno)
        return super().format(record)


def setup_logging(verbose: int, env: Mapping[str, str] | None = None) -> None:
    """-v: every frame and dropped sample; -vv: also every published sample."""
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal(env):
        handler.setFormatter(_JournalFormatter(JOURNAL_FORMAT))
    else:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(handlers=[handler], level=logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("dcf77shm.run.samples").setLevel(
        logging.DEBUG if verbose >= 2 else logging.INFO
    )


@click.command()
@source_options
@click.option("--output", "output_spec", required=True, help="shm:UNIT or sock:PATH.")
@click.option(
    "--polarity",
    type=click.Choice([p.value for p in Polarity]),
    default="auto",
    show_default=True,
    help="Line level while the carrier is reduced; auto detects it.",
)
@click.option(
    "--decoder", type=click.Choice(sorted(DECODERS)), default=DEFAULT_DECODER, show_default=True
)
@click.option(
    "--sim-offset-ms",
    type=float,
    default=0.0,
    show_default=True,
    help="sim: simulated radio clock minus system clock.",
)
@click.option(
    "--sim-jitter-ms", type=float, default=0.0, show_default=True, help="sim: edge sigma."
)
@click.option(
    "--sim-delay-ms", type=float, default=0.0, show_default=True, help="sim: receiver delay."
)
@click.option(
    "--sim-glitch-rate", type=float, default=0.0, show_default=True, help="sim: glitches/second."
)
@click.option(
    "--sim-drop-rate", type=float, default=0.0, show_default=True, help="sim: missing pulses."
)
@click.option("--sim-seed", type=int, default=0, show_default=True)
@click.option(
    "--sim-start",
    type=click.Choice(["minute", "now"]),
    default="minute",
    show_default=True,
    help="sim: switched on before the last minute marker, or cold now.",
)
@click.option("-v", "--verbose", count=True, help="-v frames and drops, -vv every sample.")
@click.option(
    "--status-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write counters here once a second (JSON, for `dcf77shm status`).",
)
@click.option(
    "--metrics-textfile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write them for node_exporter's textfile collector (NAME.prom).",
)
@config_option
def run(
    source_spec: str,
    output_spec: str,
    polarity: str,
    decoder: str,
    glitch_filter_us: int,
    bias: str,
    pace: bool,
    sim_seed: int,
    sim_start: str,
    verbose: int,
    status_file: Path | None,
    metrics_textfile: Path | None,
    **sim: float,
) -> None:
    """Decode a receiver and publish its samples to chrony, until SIGTERM/SIGINT.

    A replay ends at the end of its file (as fast as possible without --pace).
    """
    from dcf77shm.service.runner import Runner
    from dcf77shm.service.status import Monitor
    from dcf77shm.sinks import open_sink
    from dcf77shm.sources import open_source

    setup_logging(verbose)
    options: dict[str, object] = {"pace": pace, "glitch_filter_us": glitch_filter_us, "bias": bias}
    if source_spec.partition(":")[0] == "sim":
        options.update({k.removeprefix("sim_"): v for k, v in sim.items()})
        options.update(seed=sim_seed, start=sim_start)
        if polarity != "auto":
            options["polarity"] = Polarity(polarity)
    source = open_source(source_spec, options)
    sink = open_sink(output_spec, {})
    monitor = Monitor(source_spec, output_spec, decoder, status_file, metrics_textfile)
    Runner(source, sink, Pipeline(Polarity(polarity), decoder), hooks=monitor).run()


@click.group()
def shm() -> None:
    """NTP shared-memory segments."""


@shm.command()
@click.argument("unit", default=str(DEFAULT_UNIT))
@click.option("--watch", is_flag=True, help="Then print one line per new sample until Ctrl-C.")
def status(unit: str, watch: bool) -> None:
    """Show segment UNIT: owner, mode, size/layout, fields, last sample and its offset.

    Exit status 2 if the segment does not exist.
    """
    from dcf77shm.sinks import shmtools

    try:
        u = parse_unit(unit)
    except BadInput as e:
        raise click.BadParameter(str(e)) from None
    for line in shmtools.status_lines(u):
        click.echo(line)
    if watch:
        try:
            for line in shmtools.watch(u):
                click.echo(line)
        except KeyboardInterrupt:
            pass


@shm.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The service's config file: its `output` names the segment.",
)
@click.option("--user", required=True, help="The user the service runs as (_dcf77).")
def adopt(config_path: Path, user: str) -> None:
    """Give an existing segment to USER (the service's root ExecStartPre).

    Needed when chronyd started first and created the segment as root: the
    owner changes, the mode stays 0600 and chronyd stays attached.
    """
    from dcf77shm.cli.config import load
    from dcf77shm.sinks.shmtools import adopt as adopt_segment

    try:
        output = load(config_path, run).get("output_spec")
    except BadInput:
        # A config `run` will refuse: `run` reports it (one line, exit 2, so
        # the unit's RestartPreventExitStatus=2 stops the restarts).  Failing
        # here would report it twice and, in ExecStartPre=, restart the unit
        # every 5 s: RestartPreventExitStatus= looks at the main process only.
        click.echo(f"{config_path}: not a valid config; nothing adopted (`dcf77shm run` says why)")
        return
    if not isinstance(output, str):
        raise BadInput(f'{config_path}: no `output` key; add e.g. output = "shm:{DEFAULT_UNIT}"')
    click.echo(adopt_segment(output, user))
