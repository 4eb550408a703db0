"""``dcf77shm run`` and ``dcf77shm shm status``: thin click commands (registered in cli.py)."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import click
from click.core import ParameterSource

from dcf77shm.cli.config import config_option
from dcf77shm.cli.options import (
    build_pipeline,
    check_source_options,
    complete_output,
    pipeline_options,
    source_options,
)
from dcf77shm.errors import BadInput
from dcf77shm.fileio import output_kind
from dcf77shm.model import NS_PER_S, Bias, Polarity
from dcf77shm.sinks.shm import PACKAGED_UNIT, ShmSink, parse_unit
from dcf77shm.sinks.sock import PACKAGED_SOCK
from dcf77shm.spec import ascii_int

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
@click.option(
    "--output",
    "output_spec",
    required=True,
    shell_complete=complete_output,
    help=f"shm:UNIT or sock:PATH (the packaged chrony config reads shm:{PACKAGED_UNIT}).",
)
@pipeline_options
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
    help="Write state and counters here (JSON, for `dcf77shm status`): at a change, "
    "else every 10 s.",
)
@click.option(
    "--metrics-textfile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write them for node_exporter's textfile collector (NAME.prom).",
)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the held count here, so a restart in the same boot continues it "
    "(live sources only; the service uses /var/lib/dcf77shm/state.json).",
)
@click.option(
    "--force",
    is_flag=True,
    help=f"Let sim or replay: write to the packaged shm:{PACKAGED_UNIT} or {PACKAGED_SOCK}, "
    "the ones a production chronyd reads.",
)
@config_option
def run(
    source_spec: str,
    output_spec: str,
    polarity: str,
    decoder: str,
    jump_policy: str,
    drift_ppm: float,
    holdover_ppm: float,
    leap_seconds: str,
    glitch_filter_us: int,
    bias: str,
    pace: bool,
    sim_seed: int,
    sim_start: str,
    verbose: int,
    status_file: Path | None,
    metrics_textfile: Path | None,
    state_file: Path | None,
    force: bool,
    **sim: float,
) -> None:
    """Decode a receiver and publish its samples to chrony, until SIGTERM/SIGINT.

    A replay ends at the end of its file (as fast as possible without --pace).
    """
    from dcf77shm.service.runner import Runner
    from dcf77shm.service.state import StateFile
    from dcf77shm.service.status import Monitor
    from dcf77shm.sinks import open_sink
    from dcf77shm.sinks.writerlock import claim
    from dcf77shm.sources import open_source

    scheme = source_spec.partition(":")[0]
    check_source_options(source_spec)
    ctx = click.get_current_context()
    for name in sim:
        if scheme != "sim" and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            flag = "--" + name.replace("_", "-")
            raise BadInput(f"{flag} does nothing with --source {scheme}: it is for sim")
    if scheme in ("sim", "replay") and not force:
        refuse_live_output(output_spec, scheme)
    for path in (status_file, metrics_textfile):
        if path is not None:
            output_kind(path)  # refuse a symlink, directory, socket at start
    if scheme == "replay" and pace:
        warn_if_far_from_now(source_spec.partition(":")[2])
    setup_logging(verbose)
    options: dict[str, object] = {
        "pace": pace,
        "glitch_filter_us": glitch_filter_us,
        "bias": Bias(bias),
    }
    if scheme == "sim":
        options.update({k.removeprefix("sim_"): v for k, v in sim.items()})
        options.update(seed=sim_seed, start=sim_start)
        if polarity != "auto":
            options["polarity"] = Polarity(polarity)
    source = open_source(source_spec, options)
    sink = open_sink(output_spec, {})
    writer = claim(output_spec)  # one writer per unit or socket
    pipeline, leaps = build_pipeline(
        polarity, decoder, jump_policy, drift_ppm, holdover_ppm, leap_seconds
    )
    log = logging.getLogger("dcf77shm.run")
    state = None
    if state_file is not None:
        if getattr(source, "host_steady", False):
            state = StateFile(state_file)
            log.info("%s", state.restore(pipeline.guard))
        else:
            log.warning("--state-file ignored: %s has no steady clock of this host", source_spec)
    monitor = Monitor(
        source_spec,
        output_spec,
        decoder,
        status_file,
        metrics_textfile,
        guard=pipeline.guard,
        leaps=leaps,
        state_file=state,
        output_shmid=(lambda: sink.shmid) if isinstance(sink, ShmSink) else None,
    )
    try:
        Runner(source, sink, pipeline, hooks=monitor).run()
    finally:
        if writer is not None:
            writer.close()


def refuse_live_output(output_spec: str, scheme: str) -> None:
    """A test source must not feed the unit or socket a production chronyd reads."""
    kind, _, arg = output_spec.partition(":")
    live = (kind == "shm" and ascii_int(arg, 5) == PACKAGED_UNIT) or (
        kind == "sock" and os.path.normpath(arg) == PACKAGED_SOCK
    )
    if live:
        raise BadInput(
            f"--output {output_spec} is what the packaged chrony config reads: {scheme} "
            "samples there would steer this machine's clock; use another unit or path, "
            "or --force if that is what you want"
        )


# chrony drops a refclock sample older than 2^(poll+1) s: 32 s with the shipped
# poll 4.  A log that starts further back than that hands chrony samples it drops.
FAR_NS = 32 * NS_PER_S


def warn_if_far_from_now(path: str) -> None:
    """`--pace` hands each edge on when the clock reaches its time: a log from the
    past goes at once and chrony drops its samples; one from the future waits."""
    from dcf77shm.formats.edgelog import iter_edges

    first = next(iter(iter_edges(path)), None)
    if first is None:
        return
    ahead_ns = first.time_ns - time.time_ns()
    if abs(ahead_ns) <= FAR_NS:
        return
    s = abs(ahead_ns) / NS_PER_S
    far = f"{s / 3600:.1f} h" if s >= 3600 else f"{s:.0f} s"
    if ahead_ns < 0:
        what = (
            f"starts {far} before now: --pace hands the past edges on at once, and "
            "chrony drops their samples (older than 2^(poll+1) s, 32 s with poll 4)"
        )
    else:
        what = f"starts {far} after now: --pace waits until the clock gets there"
    click.echo(f"dcf77shm: warning: {path} {what}", err=True)


@click.group()
def shm() -> None:
    """NTP shared-memory segments."""


@shm.command()
@click.argument("unit", required=False)
@click.option("--watch", is_flag=True, help="Then print one line per new sample until Ctrl-C.")
@click.option("--legend", is_flag=True, help="Explain the columns of the list.")
def status(unit: str | None, watch: bool, legend: bool) -> None:
    """Without UNIT: list every NTP SHM segment (like gpsd's ntpshmmon), SAFE or
    UNSAFE.  With UNIT: owner, mode, layout, fields, last sample and its offset.

    \b
    A segment is UNSAFE when group or others may write it, or when its owner or
    creator is neither root nor _dcf77: that user could feed chrony any time.
    Exit status 1 if segment UNIT does not exist.
    """
    from dcf77shm.sinks import shmtools

    if unit is None:
        if watch:
            raise click.UsageError("--watch needs a UNIT")
        for line in shmtools.list_lines(legend=legend):
            click.echo(line)
        return
    u = parse_unit(unit)
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
        raise BadInput(f'{config_path}: no `output` key; add e.g. output = "shm:{PACKAGED_UNIT}"')
    click.echo(adopt_segment(output, user))
