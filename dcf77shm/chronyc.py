"""``chronyc -c`` (CSV) output: the rows dcf77shm reads, and running chronyc.

The one parser, for ``calibrate`` (:mod:`dcf77shm.tools.calibrate`) and for the
private chronyd of the tests and the demo (:mod:`dcf77shm.testing.chronyd`).
Field positions are chronyc's CSV columns (chrony 4, client.c):

* ``sources``: mode, state, name, stratum, poll, reach (octal), last rx,
  adjusted offset, measured offset, error bound;
* ``sourcestats``: name, NP, NR, span, frequency, skew, offset, std dev;
* ``tracking``: ref ID (hex), ref name, stratum, ref time, system time
  (how far the system clock is slow), ..., leap status last.

Offsets are chronyc's: positive when the local clock is ahead of the source.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dcf77shm.errors import RuntimeFailure


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One line of ``chronyc -c sources``."""

    mode: str  # '^' server, '=' peer, '#' refclock
    state: str  # '*' selected, '+' combined, '-' not combined, 'x' falseticker, '?' unusable
    name: str
    stratum: int
    reach: int
    offset_s: float  # the last sample's offset (adjusted)
    error_s: float  # its error bound (+/-): delay/2 + dispersion
    last_rx_s: int = -1  # seconds since the last sample (2^32 - 1: never)


@dataclass(frozen=True, slots=True)
class StatsRow:
    """One line of ``chronyc -c sourcestats``."""

    name: str
    samples: int
    offset_s: float  # chrony's estimate from the regression
    std_dev_s: float


@dataclass(frozen=True, slots=True)
class Tracking:
    """The fields of ``chronyc -c tracking`` we use."""

    refid: str  # e.g. "DCF"
    stratum: int
    slow_s: float  # how far the system clock is behind chrony's estimate of true time
    leap: str


def parse_sources(text: str) -> list[SourceRow]:
    """The source lines; anything else (an error message, a cut line) is skipped."""
    rows = []
    for line in text.splitlines():
        f = line.split(",")
        if len(f) < 10:
            continue
        try:
            rows.append(
                SourceRow(f[0], f[1], f[2], int(f[3]), int(f[5], 8), float(f[7]), float(f[9]),
                          int(f[6]))
            )  # fmt: skip
        except ValueError:
            continue
    return rows


def parse_sourcestats(text: str) -> dict[str, StatsRow]:
    rows = {}
    for line in text.splitlines():
        f = line.split(",")
        if len(f) >= 8:
            rows[f[0]] = StatsRow(f[0], int(f[1]), float(f[6]), float(f[7]))
    return rows


def parse_tracking(text: str) -> Tracking:
    f = text.strip().split(",")
    return Tracking(_refid_text(f[0]), int(f[2]), float(f[4]), f[-1])


def tracking_or_none(text: str) -> Tracking | None:
    """parse_tracking, or None for what is not a tracking line (chronyd not up yet)."""
    try:
        return parse_tracking(text)
    except (IndexError, ValueError):
        return None


def _refid_text(hex_id: str) -> str:
    try:
        return bytes.fromhex(hex_id).rstrip(b"\0").decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return hex_id


def run(
    args: list[str], socket: Path | None = None, csv: bool = True, timeout_s: float = 15
) -> str:
    """``chronyc -n [-c] [-h SOCKET] ARGS``'s output, or RuntimeFailure in one line."""
    exe = shutil.which("chronyc") or "/usr/bin/chronyc"
    cmd = [exe, "-n", *(["-c"] if csv else []), *(["-h", str(socket)] if socket else []), *args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise RuntimeFailure("chronyc not found; install chrony") from None
    except subprocess.TimeoutExpired:
        raise RuntimeFailure(
            f"chronyc did not answer in {timeout_s:g} s; is chronyd running?"
        ) from None
    if r.returncode != 0:
        why = (r.stderr.strip() or r.stdout.strip()).splitlines()
        raise RuntimeFailure(
            f"chronyc {' '.join(args)}: {why[0] if why else 'failed'}; is chronyd running?"
        )
    return r.stdout
