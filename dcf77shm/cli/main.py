"""The command line: thin click commands that parse options and call the library."""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import json
import os
import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click

from dcf77shm import __version__
from dcf77shm.cli.gpio import monitor, record
from dcf77shm.cli.options import (
    bounded,
    build_pipeline,
    check_dcf77_range,
    parse_clock_step,
    parse_duration,
    parse_fade,
    parse_leap_day,
    parse_noise,
    parse_spoof,
    parse_utc,
    pipeline_options,
    random_start,
)
from dcf77shm.cli.progress import Progress
from dcf77shm.cli.run import run, shm, stderr_is_journal
from dcf77shm.cli.service import calibrate, status
from dcf77shm.errors import BadInput, Dcf77Error
from dcf77shm.fileio import STDOUT, Output, check_output, printable
from dcf77shm.formats.edgelog import check_edges, iter_edges, read_edges, write_edges
from dcf77shm.formats.events import TABLE_HEADER, Summary, json_line, table_line
from dcf77shm.model import Edge, MinuteReport, Polarity


def _is_stream(f: Path) -> bool:
    """`-`, a pipe, FIFO or device: something that can be read only once."""
    if str(f) == "-":
        return True
    try:
        return not stat.S_ISREG(os.stat(f).st_mode)
    except (OSError, ValueError):
        return False  # the reader says what is wrong, in one line


def _fail(msg: str, status: int) -> NoReturn:
    # Under the service the line goes to journald: "<3>" files it as an error.
    prio = "<3>" if stderr_is_journal() else ""
    click.echo(f"{prio}dcf77shm: {msg}", err=True)
    sys.exit(status)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dcf77shm")
def cli() -> None:
    """DCF77 radio-clock refclock driver for chrony.

    Exit status: 0 success, 1 a runtime failure, 2 bad usage or input; 130/143
    when SIGINT/SIGTERM interrupt a command that would have ended by itself
    (run, record, monitor and shm status --watch stop on either with 0).
    Examples: man dcf77shm.
    """


# --- decode ------------------------------------------------------------------

# The columns of formats.events.TABLE_HEADER, in `decode --help` and --legend
# (as `chronyc sources -v` explains its own).
DECODE_LEGEND = [
    "marker (system clock)  when the minute marker (second 0's leading edge) came, by the",
    "                       system clock of the log (UTC)",
    "frame encodes (UTC)    the minute the frame that ended at this marker names: the one",
    "                       that starts at the marker (- if it could not be read)",
    "local                  the same minute in the transmitted German time (CET/CEST)",
    "n                      samples `run` would have published since the line before",
    "status                 ok, or rejected: the checks the frame failed (parity-*, bcd-*,",
    "                       weekday, zone, missing-bits, unclear-bits, disagrees-with-count)",
]


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="JSON Lines: sample, withheld, alarm, minute and lock records.",
)
@pipeline_options
@click.option("--legend", is_flag=True, help="Explain the table's columns above it.")
@click.option(
    "--partial",
    is_flag=True,
    help="A log cut short (its writer killed: a gzip stream without its end, a last "
    "line cut mid-number) is decoded up to its last complete line, with a warning; "
    "without it such a log is refused (exit 2).",
)
def decode(
    files: tuple[Path, ...],
    as_json: bool,
    polarity: str,
    decoder: str,
    jump_policy: str,
    drift_ppm: float,
    holdover_ppm: float,
    leap_seconds: str,
    legend: bool,
    partial: bool,
) -> None:
    """Replay edge logs through the pipeline that `run` uses.

    Each FILE is decoded on its own, in order, by a fresh pipeline.  Every file
    is read and checked before anything is printed.  With several files, each
    JSON record names its file (a "file" key).

    \b
    The table (--legend prints this above it):
    """
    # Refuse any bad file before printing.  A regular file is checked, then
    # streamed; a pipe, FIFO or device (`-` is standard input) can be read only
    # once, so it is read whole.
    loaded: dict[int, list[Edge]] = {}
    counts = []
    warnings: list[str] = []  # said once the progress line is gone
    for i, f in enumerate(files):
        with Progress(f"decode {printable(f)}", output=sys.stdout) as progress:
            progress.status("reading and checking")
            if _is_stream(f):
                loaded[i] = read_edges(f, partial, warnings.append)
                counts.append(len(loaded[i]))
            else:
                counts.append(check_edges(f, partial, warnings.append))
    for w in warnings:
        click.echo(f"dcf77shm: warning: {w}", err=True)
    out = sys.stdout
    if legend and not as_json:
        out.write("\n".join(DECODE_LEGEND) + "\n\n")
    for i, (f, count) in enumerate(zip(files, counts, strict=True)):
        pipe, _ = build_pipeline(
            polarity, decoder, jump_policy, drift_ppm, holdover_ppm, leap_seconds
        )
        progress = Progress(f"decode {printable(f)}", output=sys.stdout)
        step = max(1, count // 1000)
        summary = Summary()
        # One record per line, so the key goes in front of each (JSON text:
        # the name is escaped as any string).
        tag = "{" + f'"file": {json.dumps(str(f))}, ' if len(files) > 1 else "{"
        if not as_json:
            out.write(f"{f}: {count} edges\n{TABLE_HEADER}\n")
        for n, edge in enumerate(loaded.pop(i) if i in loaded else iter_edges(f, partial)):
            if summary.first_edge_ns is None:
                summary.first_edge_ns = edge.time_ns
            if n % step == 0 and progress.shown:
                progress(n / count, f"({n:,} of {count:,} edges)")
            for ev in pipe.feed(edge):
                summary.add(ev)
                if as_json:
                    out.write(tag + json_line(ev)[1:] + "\n")
                elif isinstance(ev, MinuteReport):
                    out.write(table_line(ev, summary.take_minute_samples()) + "\n")
        progress.close()
        if not as_json:
            out.write(f"polarity: {pipe.polarity.value}\n")
            for line in summary.lines():
                out.write(line + "\n")


decode.help = inspect.cleandoc(decode.help or "") + "\n" + "\n".join(DECODE_LEGEND)


# --- simulate ----------------------------------------------------------------


@cli.command()
@click.option(
    "--start",
    default="random",
    show_default=True,
    help="UTC start, ISO 8601 (2024-03-31T00:30:00Z), or 'random': from --seed, "
    "2000-2024, so the whole log lies in the past.",
)
@click.option("--duration", default="1h", show_default=True, help="Length: 3600, 90s, 60m, 1h, 1d.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Edge log to write (.gz compresses; - is standard output).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--delay-ms",
    type=float,
    default=0.0,
    show_default=True,
    callback=bounded("delay", -1000, 1000),
    help="Receiver delay.",
)
@click.option(
    "--jitter-ms",
    type=float,
    default=0.0,
    show_default=True,
    callback=bounded("jitter", 0, 200),
    help="Sigma of the leading edge.",
)
@click.option(
    "--width-bias-ms",
    type=float,
    default=0.0,
    show_default=True,
    callback=bounded("width-bias", -100, 100),
)
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
    callback=bounded("clock-offset", -86_400_000, 86_400_000),
    help="System clock minus true time (at most a day).",
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
    help="Also write the true label of every second mark (JSON Lines; - is standard output).",
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
    from dcf77shm.sources.simulate import LeapClock, SimParams, TruthMark, truth_json
    from dcf77shm.sources.simulate import stream as sim_stream

    if truth is not None and str(truth) == str(output) == STDOUT:
        raise BadInput("-o and --truth cannot both be - (standard output)")
    # Refuse a bad output path before the work, not after it.
    check_output(output)
    if truth is not None:
        check_output(truth)
    duration_s = parse_duration(duration)
    start_s = random_start(seed, duration_s) if start == "random" else parse_utc(start, "--start")
    check_dcf77_range(start_s, duration_s)
    params = SimParams(
        start_s=start_s,
        duration_s=duration_s,
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
    start_iso = dt.datetime.fromtimestamp(start_s, dt.UTC).isoformat().replace("+00:00", "Z")
    comments = [
        f"simulated by dcf77shm {__version__}: start {start_iso}, "
        + ", ".join(f"{k}={v}" for k, v in sorted(knobs.items()) if v)
        + f", seed={seed}"
    ]
    # Edges and truth are written as they are made (42 days once took 1.95 GB
    # in memory).  The truth goes to its temp file and is renamed only once the
    # edge log is in place: a failure leaves neither half of the pair.
    truth_out = Output(truth) if truth is not None else None
    marks = 0

    def on_mark(m: TruthMark) -> None:
        nonlocal marks
        marks += 1
        if truth_out is not None:
            try:
                truth_out.file.write(json.dumps(truth_json(m)).encode() + b"\n")
            except OSError as e:  # named here: write_edges would blame the edge log
                if isinstance(e, BrokenPipeError):
                    raise
                raise BadInput(f"cannot write {printable(str(truth))}: {e.strerror or e}") from None

    days = duration_s / 86400
    progress = Progress("simulate", output=sys.stdout if str(output) == STDOUT else None)

    def report(f: float) -> None:
        progress(f, f"({f * days:.1f} of {days:.1f} days)" if days >= 1 else "")

    counted = _Counted(sim_stream(params, on_mark, report), version == "v1")
    try:
        with progress:
            write_edges(output, counted, comments, 1 if version == "v1" else 2)
    except OSError as e:
        if truth_out is not None:
            truth_out.abort()
        if isinstance(e, BrokenPipeError):
            raise
        raise BadInput(f"cannot write {truth}: {e.strerror or e}") from None
    except BaseException:
        if truth_out is not None:
            truth_out.abort()
        raise
    if truth_out is not None:
        truth_out.commit()
    if counted.left_out:
        click.echo(f"v1: left out {counted.left_out} edges stamped back in time", err=True)
    click.echo(
        f"wrote {counted.written} edges, {marks} second marks from "
        f"{start_iso} to {'standard output' if str(output) == STDOUT else output}",
        err=True,
    )


class _Counted:
    """The simulated edges on their way to the file, counted; for a version 1
    log without those stamped before the newest one (after a step back of the
    system clock), as `record` does: a version 1 log never goes back."""

    def __init__(self, edges: Iterator[Edge], v1: bool) -> None:
        self._edges, self._v1 = edges, v1
        self.written = self.left_out = 0

    def __iter__(self) -> Iterator[Edge]:
        last = None
        for e in self._edges:
            if self._v1:
                if last is not None and e.time_ns < last:
                    self.left_out += 1
                    continue
                last = e.time_ns
            self.written += 1
            yield e


for _command in (run, shm, record, monitor, status, calibrate):
    cli.add_command(_command)


# --- entry point -------------------------------------------------------------


# Exit status when SIGINT (Ctrl-C) or SIGTERM interrupts a command that has an
# end of its own (decode, simulate, status, calibrate, shm status): 128 + the
# signal, as a shell reports a killed program, after any half-written output
# was removed.  The commands that run until stopped (run, record, monitor,
# shm status --watch) take either signal as the way to stop: exit 0.
INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}


class _Interrupts:
    """SIGTERM raises KeyboardInterrupt like SIGINT, so that both unwind the same
    way (temp files removed); remembers which came."""

    def __init__(self) -> None:
        self.signum = signal.SIGINT
        self._old: dict[int, Any] = {}

    def _raise(self, signum: int, _frame: FrameType | None) -> None:
        self.signum = signal.Signals(signum)
        raise KeyboardInterrupt

    def __enter__(self) -> _Interrupts:
        with contextlib.suppress(ValueError):  # not the main thread: leave them be
            for s in INTERRUPTED:
                self._old[s] = signal.signal(s, self._raise)
        return self

    def __exit__(self, *_exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def main(argv: list[str] | None = None) -> None:
    if argv is not None and any("\0" in a for a in argv):
        # A real command line cannot carry one; a caller of main() can, and
        # os.stat() inside click would raise ValueError.
        _fail("an argument contains a NUL byte", 2)
    with _Interrupts() as interrupts:
        try:
            cli.main(args=argv, prog_name="dcf77shm", standalone_mode=False)
        except click.exceptions.Abort:
            _fail("interrupted", INTERRUPTED[interrupts.signum])
        except click.ClickException as e:
            if type(e).__name__ == "NoArgsIsHelpError":
                # click >= 8.2: `dcf77shm` or `dcf77shm shm` alone.  Plain help, as
                # click 8.1 (Debian bookworm) prints it and as --help does.
                click.echo(e.format_message())
                sys.exit(0)
            msg = e.format_message().replace("\n", " ")
            _fail(msg, 2 if e.exit_code in (1, 2) else e.exit_code)
        except Dcf77Error as e:
            _fail(str(e), e.exit_status)
        except KeyboardInterrupt:
            _fail("interrupted", INTERRUPTED[interrupts.signum])
        # A reader that went away (`| head`) is click's: it exits 1 without a
        # word (BrokenPipeError reaches it untouched from our writers).
