"""``dcf77shm run`` and ``dcf77shm shm status``: thin click commands (registered in cli.py)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from dcf77shm.cli.config import config_option
from dcf77shm.cli.options import build_pipeline, pipeline_options, source_options
from dcf77shm.errors import BadInput
from dcf77shm.model import Polarity
from dcf77shm.sinks.shm import DEFAULT_UNIT, parse_unit

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def setup_logging(verbose: int) -> None:
    """-v: every frame and dropped sample; -vv: also every published sample."""
    logging.basicConfig(
        stream=sys.stderr, format=LOG_FORMAT, level=logging.DEBUG if verbose else logging.INFO
    )
    logging.getLogger("dcf77shm.run.samples").setLevel(
        logging.DEBUG if verbose >= 2 else logging.INFO
    )


@click.command()
@source_options
@click.option("--output", "output_spec", required=True, help="shm:UNIT or sock:PATH.")
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
    help="Write counters here once a second (JSON, for `dcf77shm status`).",
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
    **sim: float,
) -> None:
    """Decode a receiver and publish its samples to chrony, until SIGTERM/SIGINT.

    A replay ends at the end of its file (as fast as possible without --pace).
    """
    from dcf77shm.service.runner import Runner
    from dcf77shm.service.state import StateFile
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
    )
    Runner(source, sink, pipeline, hooks=monitor).run()


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

    output = load(config_path, run).get("output_spec")
    if not isinstance(output, str):
        raise BadInput(f'{config_path}: no `output` key; add e.g. output = "shm:{DEFAULT_UNIT}"')
    click.echo(adopt_segment(output, user))
