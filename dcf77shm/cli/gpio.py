"""``dcf77shm record`` and ``dcf77shm monitor``: thin click commands (registered in cli.py)."""

from __future__ import annotations

import inspect
import sys
import time
from pathlib import Path

import click

from dcf77shm.cli.options import open_cli_source, parse_duration, source_options
from dcf77shm.fileio import check_output
from dcf77shm.model import NS_PER_S, Polarity


@click.command()
@source_options
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Edge log to write (.gz compresses); NAME.part until the recording ends. "
    "A device, FIFO or - (standard output) is written directly.",
)
@click.option("--duration", help="Stop after this long: 90s, 10m, 2h (default: until Ctrl-C).")
def record(
    source_spec: str,
    glitch_filter_us: int,
    bias: str,
    pace: bool,
    output: Path,
    duration: str | None,
) -> None:
    """Record a source's edges to an edge log (attach it to a bug report)."""
    from dcf77shm.tools.record import RecordStats, stop_on_signals
    from dcf77shm.tools.record import record as do_record

    duration_s = parse_duration(duration) if duration else None
    check_output(output)  # a refused path fails before the receiver is touched
    source = open_cli_source(source_spec, glitch_filter_us, bias, pace)
    tty = sys.stderr.isatty()

    def progress(st: RecordStats) -> None:
        if tty:
            click.echo(f"\rrecording: {st.line()}   ", err=True, nl=False)
        elif round(st.seconds) % 10 == 0:
            click.echo(f"recording: {st.line()}", err=True)

    source.open()
    click.echo(f"recording {source.description} to {output} (Ctrl-C stops)", err=True)
    with stop_on_signals() as stop:
        st = do_record(source, output, duration_s, stop, progress)
    click.echo(("\n" if tty else "") + f"wrote {output}: {st.line()}", err=True)


# The fields of tools.monitor's lines, in `monitor --help` and --legend.
MONITOR_LEGEND = [
    "HH:MM:SS    the second, by the system clock (UTC)",
    "pulse       length of the carrier reduction: ~100 ms is bit 0, ~200 ms bit 1;",
    "            - no pulse (second 59 is silent by design)",
    "bit         0 or 1, ? for a pulse of neither length",
    "phase       the leading edge against the UTC second (utc, once locked) or against",
    "            the running estimate of the second (est): steady within a few ms is good",
    "glitches    other carrier reductions in the same second: noise near the antenna",
    "quality     share of the last 60 s with one clean pulse in phase; aim above ~90 %",
    "LOCKED      the decoder knows the time; = HH:MM:SS UTC is that second's label",
    "== minute   a whole frame: the minute it encodes (UTC, local) and ok or why rejected",
    "== lock     lock gained or lost, and why",
]


@click.command()
@source_options
@click.option(
    "--polarity",
    type=click.Choice([p.value for p in Polarity]),
    default="auto",
    show_default=True,
    help="Line level while the carrier is reduced; auto detects it.",
)
@click.option("--legend", is_flag=True, help="Explain the fields of each line first.")
@click.option(
    "--lines",
    is_flag=True,
    help="Plain lines even on a terminal (else a full-screen view there: quality bar, "
    "pulse-width histogram, phase over the last minutes).",
)
def monitor(
    source_spec: str,
    glitch_filter_us: int,
    bias: str,
    pace: bool,
    polarity: str,
    legend: bool,
    lines: bool,
) -> None:
    """Show the signal live, one line per second: aim the antenna by it.

    On a terminal a steady full-screen view (the same figures, the quality as a
    bar, a histogram of pulse widths and a chart of the phase over the last ten
    minutes); piped, or with --lines, one line per second.

    \b
    The fields (--legend prints this first):
    """
    from dcf77shm.tools.monitor import MonitorView, screen
    from dcf77shm.tools.record import stop_on_signals

    source = open_cli_source(source_spec, glitch_filter_us, bias, pace)
    view = MonitorView(Polarity(polarity))
    source.open()
    if legend:
        click.echo("\n".join(MONITOR_LEGEND) + "\n")
    title = f"dcf77shm monitor: {source.description} (Ctrl-C stops)"
    full = not lines and sys.stdout.isatty()
    if not full:
        click.echo(f"monitoring {source.description} (Ctrl-C stops)", err=True)
    last_ns: int | None = None
    drawn = 0.0

    def draw() -> None:
        # Home, each line cleared to its end, the rest of the screen cleared.
        text = "".join(f"{x}\x1b[K\n" for x in screen(view, title))
        sys.stdout.write(f"\x1b[H{text}\x1b[J")
        sys.stdout.flush()

    if full:
        sys.stdout.write("\x1b[?25l\x1b[H\x1b[2J")  # cursor hidden, screen cleared
    try:
        with stop_on_signals() as stop:
            while not stop.is_set():
                items = source.read(0.2)
                if items is None:
                    break
                out = []
                for it in items:
                    out += view.feed(it)
                    last_ns = it.time_ns
                now = time.time_ns()
                # Only a live stream may be moved on by the wall clock; an old
                # log's times are nowhere near it.
                if last_ns is not None and abs(now - last_ns) < 10 * NS_PER_S:
                    out += view.advance(now)
                if not full:
                    for line in out:
                        click.echo(line)
                elif out and time.monotonic() - drawn >= 0.5:
                    draw()
                    drawn = time.monotonic()
    finally:
        source.close()
        if full:
            draw()
            sys.stdout.write("\x1b[?25h")  # the cursor back
            sys.stdout.flush()


monitor.help = inspect.cleandoc(monitor.help or "") + "\n" + "\n".join(MONITOR_LEGEND)
