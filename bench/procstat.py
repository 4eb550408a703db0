"""What a child process has cost so far, read from /proc (bench/served.py, bench/cpu.py).

CPU from /proc/PID/stat (utime + stime, clock ticks of 10 ms: fine over minutes),
peak RSS from VmHWM (not ru_maxrss, which keeps the forked parent's peak from
before exec), wake-ups from the context-switch counters: a process that sleeps
in a timeout wakes once per timeout even when there is nothing to do.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcSample:
    t_ns: int  # wall clock when read
    cpu_s: float  # user + system
    hwm_mb: float  # peak resident set so far
    switches: int  # voluntary + involuntary context switches so far


def sample(pid: int) -> ProcSample | None:
    """None once the process is gone (or a zombie without /proc status)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: count fields after its ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    hwm_kb = switches = 0
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key == "VmHWM":
            hwm_kb = int(value.split()[0])
        elif key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
            switches += int(value)
    return ProcSample(time.time_ns(), (utime + stime) * TICK_S, hwm_kb / 1024, switches)


@dataclass(frozen=True, slots=True)
class Cost:
    """Steady-state cost between two samples of one process."""

    cpu_s_per_min: float
    wakeups_per_s: float
    hwm_mb: float

    @staticmethod
    def between(a: ProcSample, b: ProcSample) -> Cost:
        wall_s = (b.t_ns - a.t_ns) / 1e9
        return Cost((b.cpu_s - a.cpu_s) / wall_s * 60, (b.switches - a.switches) / wall_s, b.hwm_mb)
