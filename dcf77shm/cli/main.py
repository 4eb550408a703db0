"""The command line: thin click commands that parse options and call the library."""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
from pathlib import Path
from typing import NoReturn

import click

from dcf77shm import __version__
from dcf77shm.cli.gpio import monitor, record
from dcf77shm.cli.options import (
    bounded,
    build_pipeline,
    parse_clock_step,
    parse_duration,
    parse_fade,
    parse_leap_day,
    parse_noise,
    parse_spoof,
    parse_utc,
    pipeline_options,
)
from dcf77shm.cli.run import run, shm
from dcf77shm.cli.service import calibrate, status
from dcf77shm.errors import Dcf77Error
from dcf77shm.formats.edgelog import check_edges, iter_edges, write_edges
from dcf77shm.formats.events import TABLE_HEADER, Summary, json_line, table_line
from dcf77shm.model import MinuteReport, Polarity


def _fail(msg: str, status: int) -> NoReturn:
    click.echo(f"dcf77shm: {msg}", err=True)
    sys.exit(status)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dcf77shm")
def cli() -> None:
    """DCF77 radio-clock refclock driver for chrony."""


# --- decode ------------------------------------------------------------------


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="JSON Lines: sample, withheld, alarm, minute and lock records.",
)
@pipeline_options
def decode(
    files: tuple[Path, ...],
    as_json: bool,
    polarity: str,
    decoder: str,
    jump_policy: str,
    drift_ppm: float,
    holdover_ppm: float,
    leap_seconds: str,
) -> None:
    """Replay edge logs through the pipeline that `run` uses.

    Each FILE is decoded on its own, in order, by a fresh pipeline.  Every file
    is read and checked before anything is printed.
    """
    counts = [check_edges(f) for f in files]  # refuse any bad file before printing
    out = sys.stdout
    for f, count in zip(files, counts, strict=True):
        pipe, _ = build_pipeline(
            polarity, decoder, jump_policy, drift_ppm, holdover_ppm, leap_seconds
        )
        summary = Summary()
        if not as_json:
            out.write(f"{f}: {count} edges\n{TABLE_HEADER}\n")
        for edge in iter_edges(f):
            if summary.first_edge_ns is None:
                summary.first_edge_ns = edge.time_ns
            for ev in pipe.feed(edge):
                summary.add(ev)
                if as_json:
                    out.write(json_line(ev) + "\n")
                elif isinstance(ev, MinuteReport):
                    out.write(table_line(ev, summary.take_minute_samples()) + "\n")
        if not as_json:
            out.write(f"polarity: {pipe.polarity.value}\n")
            for line in summary.lines():
                out.write(line + "\n")


# --- simulate ----------------------------------------------------------------


@cli.command()
@click.option(
    "--start",
    default="random",
    show_default=True,
    help="UTC start, ISO 8601 (2024-03-31T00:30:00Z), or 'random' (from --seed).",
)
@click.option("--duration", default="1h", show_default=True, help="Length: 3600, 90s, 60m, 1h, 1d.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Edge log to write (.gz compresses).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--delay-ms", type=float, default=0.0, show_default=True, help="Receiver delay.")
@click.option(
    "--jitter-ms",
    type=float,
    default=0.0,
    show_default=True,
    callback=bounded("jitter", 0, 200),
    help="Sigma of the leading edge.",
)
@click.option("--width-bias-ms", type=float, default=0.0, show_default=True)
@click.option(
    "--width-spread-ms",
    type=float,
    default=0.0,
    show_default=True,
    callback=bounded("spread", 0, 100),
)
@click.option(
    "--glitch-rate",
    type=float,
    default=0.0,
    show_default=True,
    callback=bounded("glitch", 0, 100),
    help="Glitches per second.",
)
@click.option(
    "--glitch-ms",
    type=float,
    default=10.0,
    show_default=True,
    callback=bounded("glitch-ms", 0.01, 1000),
    help="Mean glitch length.",
)
@click.option(
    "--drop-rate",
    type=float,
    default=0.0,
    show_default=True,
    callback=bounded("drop", 0, 1),
    help="Probability a pulse is missing.",
)
@click.option(
    "--flip-rate",
    type=float,
    default=0.0,
    show_default=True,
    callback=bounded("flip", 0, 1),
    help="Probability a pulse has the other width.",
)
@click.option("--fade", "fades", multiple=True, help="START:LENGTH seconds without pulses.")
@click.option("--polarity", type=click.Choice(["high", "low"]), default="high", show_default=True)
@click.option(
    "--leap-second",
    "leaps",
    multiple=True,
    help="Insert a leap second at the end of this UTC date (2016-12-31).",
)
@click.option(
    "--leap-clock",
    type=click.Choice(["step", "run"]),
    default="step",
    show_default=True,
    help="System clock at the leap: kernel steps back, or runs on.",
)
@click.option(
    "--clock-offset-ms",
    type=float,
    default=0.0,
    show_default=True,
    help="System clock minus true time.",
)
@click.option(
    "--rate-ppm",
    type=float,
    default=0.0,
    show_default=True,
    callback=bounded("ppm", -10000, 10000),
    help="System-clock rate error.",
)
@click.option(
    "--clock-step",
    "clock_steps",
    multiple=True,
    help="AT:DELTA seconds: the system clock steps by DELTA at AT (e.g. 900:+60).",
)
@click.option(
    "--spoof",
    "spoofs",
    multiple=True,
    help="START:LENGTH[:shift=+1h,phase=MS,drift=MS_PER_MIN,a2]: a local transmitter.",
)
@click.option(
    "--noise", "noises", multiple=True, help="START:LENGTH[:RATE]: the receiver outputs noise only."
)
@click.option(
    "--format",
    "version",
    type=click.Choice(["v1", "v2"]),
    default="v2",
    show_default=True,
    help="Edge log version (v1: system clock only; edges it cannot hold are left out).",
)
@click.option(
    "--truth",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the true label of every second mark (JSON Lines).",
)
def simulate(
    start: str,
    duration: str,
    output: Path,
    seed: int,
    fades: tuple[str, ...],
    leaps: tuple[str, ...],
    polarity: str,
    leap_clock: str,
    clock_steps: tuple[str, ...],
    spoofs: tuple[str, ...],
    noises: tuple[str, ...],
    version: str,
    truth: Path | None,
    **knobs: float,
) -> None:
    """Write a simulated receiver's edge log (deterministic with --seed).

    The truth (--truth) is the genuine transmitter's second marks, whatever the
    receiver heard: its label, and where its leading edge lies on the system
    clock (sys_ns) and the steady clock (mono_ns).
    """
    from dcf77shm.sources.simulate import LeapClock, SimParams, truth_json
    from dcf77shm.sources.simulate import simulate as run_sim

    start_s = (
        random.Random(seed).randrange(946684800, 4102444800 - 86400)
        if start == "random"
        else parse_utc(start, "--start")
    )
    params = SimParams(
        start_s=start_s,
        duration_s=parse_duration(duration),
        fades=tuple(parse_fade(f) for f in fades),
        polarity=Polarity(polarity),
        leap_second_ends=frozenset(parse_leap_day(d) for d in leaps),
        leap_clock=LeapClock(leap_clock),
        seed=seed,
        clock_steps=tuple(parse_clock_step(s) for s in clock_steps),
        segments=(*(parse_spoof(s) for s in spoofs), *(parse_noise(s) for s in noises)),
        delay_ms=knobs["delay_ms"],
        jitter_ms=knobs["jitter_ms"],
        width_bias_ms=knobs["width_bias_ms"],
        width_spread_ms=knobs["width_spread_ms"],
        glitch_rate=knobs["glitch_rate"],
        glitch_ms=knobs["glitch_ms"],
        drop_rate=knobs["drop_rate"],
        flip_rate=knobs["flip_rate"],
        clock_offset_ms=knobs["clock_offset_ms"],
        rate_ppm=knobs["rate_ppm"],
    )
    result = run_sim(params)
    edges = result.edges
    if version == "v1":
        # A version 1 log never goes back: edges stamped before the newest one
        # (after a step back of the system clock) are left out, as `record` does.
        kept, last = [], None
        for e in edges:
            if last is None or e.time_ns >= last:
                kept.append(e)
                last = e.time_ns
        if len(kept) < len(edges):
            click.echo(
                f"v1: left out {len(edges) - len(kept)} edges stamped back in time", err=True
            )
        edges = kept
    start_iso = dt.datetime.fromtimestamp(start_s, dt.UTC).isoformat().replace("+00:00", "Z")
    comments = [
        f"simulated by dcf77shm {__version__}: start {start_iso}, "
        + ", ".join(f"{k}={v}" for k, v in sorted(knobs.items()) if v)
        + f", seed={seed}"
    ]
    write_edges(output, edges, comments, 1 if version == "v1" else 2)
    if truth is not None:
        with truth.open("w", encoding="utf-8") as f:
            for m in result.marks:
                f.write(json.dumps(truth_json(m)) + "\n")
    click.echo(
        f"wrote {len(edges)} edges, {len(result.marks)} second marks from {start_iso} to {output}",
        err=True,
    )


for _command in (run, shm, record, monitor, status, calibrate):
    cli.add_command(_command)


# --- entry point -------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="dcf77shm", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("interrupted", 130)
    except click.ClickException as e:
        _fail(e.format_message().replace("\n", " "), 2 if e.exit_code in (1, 2) else e.exit_code)
    except Dcf77Error as e:
        _fail(str(e), e.exit_status)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BrokenPipeError:
        sys.exit(0)
