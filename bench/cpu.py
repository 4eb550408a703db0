#!/usr/bin/env python3
"""Benchmark: what `run` and `decode` cost per hour of signal (issue 12, item 6).

* run: `dcf77shm run --source replay:LOG --pace --output shm:UNIT` on a
  simulated receiver that starts now (so it runs in real time, as on a Pi),
  once as the service runs it (--status-file) and once without; CPU-s per
  hour of signal from 2 minutes after switch-on to the end (start-up, i.e.
  imports and reading the log, shown apart), wake-ups per second (context
  switches: a loop that sleeps in a short timeout wakes even with nothing to
  do) and peak RSS.  No chronyd: the sink makes its own segment.
* decode: `dcf77shm decode [--json] LOG` on an hour of the same signal, in a
  fresh child: CPU-s (start-up included) and peak RSS.

The Pi figures are this machine's times a slow-down factor, an assumption
(CPython on a Pi 3's Cortex-A53 at 1.2 GHz is roughly 10x slower per core than
a current x86 server core, on a Pi Zero's ARM1176 at 1 GHz roughly 30x): change
them with --pi3 / --pizero.

Usage: python bench/cpu.py [--minutes 10] [--jitter-ms 5]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sysv_ipc  # noqa: E402
from procstat import Cost, ProcSample, sample  # noqa: E402

from dcf77shm.formats.edgelog import write_edges  # noqa: E402
from dcf77shm.sinks.shm import key_for, segment_info  # noqa: E402
from dcf77shm.sources.simulate import SimParams, simulate  # noqa: E402

LEAD_S = 3
STEADY_FROM_S = 120.0

# The child reports its own CPU time and VmHWM at exit (ru_maxrss would keep
# the forked parent's peak from before exec).
CHILD = """
import resource, sys
from dcf77shm.cli.main import main
try:
    main(sys.argv[1:])
finally:
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print("COST", ru.ru_utime + ru.ru_stime, hwm, file=sys.stderr)
"""


def signal_log(path: Path, start_s: int, seconds: int, jitter_ms: float) -> None:
    sim = simulate(
        SimParams(
            start_s=start_s,
            duration_s=seconds,
            delay_ms=35.0,
            jitter_ms=jitter_ms,
            width_spread_ms=8.0,
            seed=5,
        )
    )
    write_edges(path, sim.edges)


def free_unit(first: int) -> int:
    u = first
    while segment_info(key_for(u)) is not None:
        u += 1
    return u


def measure_run(minutes: float, jitter_ms: float, tmp: Path) -> list[tuple[str, float, Cost]]:
    """Both variants at once on one log: (name, start-up CPU-s, steady cost)."""
    t_on_s = math.ceil(time.time()) + LEAD_S
    log = tmp / "live.edges"
    signal_log(log, t_on_s, round(minutes * 60) + 60, jitter_ms)
    variants = {"run --status-file (service)": True, "run": False}
    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    unit = 41000
    for name, status in variants.items():
        unit = free_unit(unit + 1)
        args = ["--source", f"replay:{log}", "--pace", "--output", f"shm:{unit}"]
        if status:
            args += ["--status-file", str(tmp / "status.json")]
        p = subprocess.Popen(
            [sys.executable, "-m", "dcf77shm", "run", *args],
            stdout=subprocess.DEVNULL,
            stderr=(tmp / f"{unit}.log").open("wb"),
            cwd=ROOT,
        )
        procs[name] = (p, unit)
    start: dict[str, ProcSample | None] = {}
    base: dict[str, ProcSample | None] = {}
    end: dict[str, ProcSample | None] = {}
    try:
        time.sleep(max(0.0, t_on_s - time.time()))
        start = {n: sample(p.pid) for n, (p, _) in procs.items()}
        time.sleep(STEADY_FROM_S)
        base = {n: sample(p.pid) for n, (p, _) in procs.items()}
        time.sleep(max(0.0, minutes * 60 - STEADY_FROM_S))
        end = {n: sample(p.pid) for n, (p, _) in procs.items()}
    finally:
        for p, unit in procs.values():
            p.terminate()
            p.wait()
            with contextlib.suppress(sysv_ipc.ExistentialError):
                sysv_ipc.SharedMemory(key_for(unit)).remove()
    out = []
    for n in procs:
        s, b, e = start.get(n), base.get(n), end.get(n)
        if s is None or b is None or e is None:
            raise SystemExit(f"{n}: the child died early; see {tmp}")
        out.append((n, s.cpu_s, Cost.between(b, e)))
    return out


def measure_decode(jitter_ms: float, tmp: Path) -> list[tuple[str, float, float]]:
    """(name, CPU-s for one hour of signal, peak RSS MB)."""
    log = tmp / "hour.edges"
    signal_log(log, 1_700_000_000, 3600, jitter_ms)
    out = []
    for name, extra in (("decode", []), ("decode --json", ["--json"])):
        done = subprocess.run(
            [sys.executable, "-c", CHILD, "decode", *extra, str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=True,
            cwd=ROOT,
        )
        line = [x for x in done.stderr.splitlines() if x.startswith("COST ")][-1].split()
        out.append((name, float(line[1]), int(line[2]) / 1024))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0, help="of live signal for run")
    ap.add_argument("--jitter-ms", type=float, default=5.0)
    ap.add_argument("--pi3", type=float, default=10.0, help="assumed slow-down of a Pi 3")
    ap.add_argument("--pizero", type=float, default=30.0, help="assumed slow-down of a Pi Zero")
    a = ap.parse_args()
    if a.minutes * 60 <= STEADY_FROM_S + 60:
        print("--minutes must be more than 3", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="cpu-") as d:
        tmp = Path(d)
        print(f"signal: simulated receiver, jitter {a.jitter_ms:g} ms; run: {a.minutes:g} min live")
        runs = measure_run(a.minutes, a.jitter_ms, tmp)
        decodes = measure_decode(a.jitter_ms, tmp)
    pct = f"% core Pi 3 ({a.pi3:g}x)", f"Pi Zero ({a.pizero:g}x)"
    head = ("", "CPU-s/h", "CPU-s/min", "wake/s", "RSS MB", "start CPU-s", *pct)
    fmt = "{:<28} {:>8} {:>9} {:>6} {:>6} {:>11} {:>20} {:>15}"
    print(fmt.format(*head))
    for name, startup, c in runs:
        per_h = c.cpu_s_per_min * 60
        print(
            fmt.format(
                name,
                f"{per_h:.2f}",
                f"{c.cpu_s_per_min:.4f}",
                f"{c.wakeups_per_s:.1f}",
                f"{c.hwm_mb:.0f}",
                f"{startup:.2f}",
                f"{per_h * a.pi3 / 36:.2f}",
                f"{per_h * a.pizero / 36:.2f}",
            )
        )
    for name, cpu_s, hwm in decodes:
        print(
            fmt.format(
                name + " (1 h log)",
                f"{cpu_s:.2f}",
                f"{cpu_s / 60:.4f}",
                "",
                f"{hwm:.0f}",
                "(incl.)",
                f"{cpu_s * a.pi3 / 36:.2f}",
                f"{cpu_s * a.pizero / 36:.2f}",
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
