"""One group of bench/served.py: a simulated receiver replayed live into chronyds.

A group is one signal and one seed.  Its edge log starts a few seconds from
now, so `dcf77shm run --source replay:LOG --pace` hands each edge on as the
system clock reaches it: to chrony it is a live receiver.  Every candidate
chrony line of the group gets its own private chronyd (-x) and its own `run`
on the very same log, all started together: the lines see identical samples
at the same moment of the minute, so their differences are theirs, not the
noise's.

The truth is exact: the radio clock minus the system clock is the simulator's
clock offset (and the added phase of a wandering oscillator), and the receiver
delay is compensated by the refclock's `offset` (the calibrated case).  The
error an NTP client of the server sees is chrony's system-time correction in
`chronyc tracking` (with -x chrony applies every correction to its own virtual
clock at once, and serves that clock) minus that known offset.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import datetime as dt
import math
import random
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import sysv_ipc
from procstat import Cost, ProcSample, sample

from dcf77shm.formats.edgelog import write_edges
from dcf77shm.model import NS_PER_MS, NS_PER_S, Edge
from dcf77shm.sinks import shmstruct as st
from dcf77shm.sinks.shm import key_for, segment_info
from dcf77shm.sources.simulate import SimParams, simulate
from dcf77shm.testing.chronyd import Driver, PrivateChronyd, shipped_refclock

LEAD_S = 5  # log written -> switch-on: time to start the chronyds and drivers
EARLY_EVERY_S = 2.0  # chronyc polls until `#*` (the resolution of time to select)
EVERY_S = 4.0  # and afterwards
WATCH_EVERY_S = 0.02  # SHM polls: the resolution of publication times
CPU_FROM_S = 120.0  # steady-state cost from here: start-up (imports, the log) excluded
WIDTH_SPREAD_MS = 8.0  # pulse-width sigma, as bench/decoders.py: bits, not timing
FIT_SPAN_S = 1200.0  # the reference line uses the samples of the last 20 min
TAIL_S = 60  # the log runs this much past the run, so the replay never ends first


@dataclass(frozen=True, slots=True)
class Signal:
    key: str
    name: str
    jitter_ms: float
    glitch_rate: float = 0.0
    fades: tuple[tuple[float, float], ...] = ()  # (start s after switch-on, length s)
    rate_ppm: float = 0.0  # system clock fast by this much...
    wander_ppm: float = 0.0  # ...plus a sine of this amplitude
    wander_period_s: float = 1800.0


@dataclass(frozen=True, slots=True)
class ChronyLine:
    key: str
    name: str
    options: tuple[tuple[str, str], ...]  # overrides of the shipped refclock line

    def refclock(self, kind: str, param: str, offset_s: float) -> str:
        tokens = shipped_refclock(kind, param).split()
        head, rest = tokens[:3], tokens[3:]
        if len(rest) % 2:
            raise ValueError(f"shipped {kind} line has a flag option: {' '.join(tokens)}")
        opts = dict(zip(rest[0::2], rest[1::2], strict=True))
        opts.update(self.options)
        opts["offset"] = f"{offset_s:.6f}"  # the receiver delay, calibrated
        return " ".join(head + [f"{k} {v}" for k, v in opts.items()])

    @property
    def poll(self) -> int:
        return int(self.refclock("SHM", "0", 0.0).split(" poll ")[1].split()[0])


@dataclass(frozen=True, slots=True)
class Truth:
    """What the simulator knows: the clocks and the true second marks."""

    t_on_ns: int  # system-clock time of switch-on (the log's start)
    offset_ms: float  # system clock minus radio clock at switch-on
    delay_ms: float  # receiver delay of the leading edge
    signal: Signal
    marks: dict[int, int]  # UTC label -> system time of the undisturbed leading edge

    def phase_s(self, t_s: float) -> float:
        """Extra system-minus-radio time t_s after switch-on (rate and wander)."""
        sig = self.signal
        w = 2 * math.pi / sig.wander_period_s
        return 1e-6 * (sig.rate_ppm * t_s + sig.wander_ppm * (1 - math.cos(w * t_s)) / w)

    def rate_ppm(self, t_s: float) -> float:
        sig = self.signal
        return sig.rate_ppm + sig.wander_ppm * math.sin(2 * math.pi * t_s / sig.wander_period_s)

    def injected_s(self, t_ns: int) -> float:
        """Radio clock minus system clock at system time t_ns."""
        return -self.offset_ms / 1e3 - self.phase_s((t_ns - self.t_on_ns) / NS_PER_S)


def make_log(sig: Signal, seed: int, t_on_s: int, seconds: int, path: Path) -> Truth:
    # The clock offset and receiver delay draw from their own stream, so the
    # simulator's noise for a seed is the same whatever the signal.
    rng = random.Random(f"served-clock-{seed}")
    offset_ms, delay_ms = rng.uniform(-20.0, 20.0), rng.uniform(30.0, 40.0)
    p = SimParams(
        start_s=t_on_s,
        duration_s=seconds,
        delay_ms=delay_ms,
        jitter_ms=sig.jitter_ms,
        width_spread_ms=WIDTH_SPREAD_MS,
        glitch_rate=sig.glitch_rate,
        fades=sig.fades,
        clock_offset_ms=offset_ms,
        seed=seed,
    )
    sim = simulate(p)
    t_on_ns = t_on_s * NS_PER_S + round(offset_ms * NS_PER_MS)
    truth = Truth(t_on_ns, offset_ms, delay_ms, sig, {})
    edges, marks = sim.edges, {m.label_s: m.sys_ns for m in sim.marks}
    if sig.rate_ppm or sig.wander_ppm:
        # The simulator knows a constant rate only.  A wandering oscillator is
        # the same log with every time moved by the phase the wander has
        # accumulated by then: sys = radio + offset + phase(t).  The phase
        # changes by < 1 ns per ms, so which of t_sys or t_radio it is taken
        # at does not matter.
        def move(t_ns: int) -> int:
            return t_ns + round(truth.phase_s((t_ns - t_on_ns) / NS_PER_S) * NS_PER_S)

        # The host's steady clock runs on the same crystal: it wanders alike.
        def moved(e: Edge) -> Edge:
            d = move(e.time_ns) - e.time_ns
            mono = None if e.mono_ns is None else e.mono_ns + d
            return Edge(e.time_ns + d, e.level, mono)

        edges = [moved(e) for e in edges]
        marks = {k: move(v) for k, v in marks.items()}
    truth.marks.update(marks)
    write_edges(path, edges, [f"bench/served.py: {sig.name}, seed {seed}"])
    return truth


@dataclass(frozen=True, slots=True)
class Published:
    pub_ns: int  # wall time at which the sample appeared (SHM) or was logged (SOCK)
    receive_ns: int
    clock_ns: int


class ShmWatcher:
    """One thread polling every measured segment for new samples (publication times).

    A sample is taken once two reads agree and the count is even: the writer
    raises the count once before and once after its write (gpsd's order).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._segs: dict[int, tuple[sysv_ipc.SharedMemory, st.Layout, list[Published]]] = {}
        self._last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="shm-watch", daemon=True)
        self._thread.start()

    def add(self, unit: int) -> list[Published]:
        info = segment_info(key_for(unit))
        layout = st.Layout.from_size(info.size) if info is not None else None
        if info is None or layout is None:
            raise RuntimeError(f"shm:{unit}: no NTP segment (chronyd should have made it)")
        mem = sysv_ipc.attach(info.shmid, None, sysv_ipc.SHM_RDONLY)
        out: list[Published] = []
        with self._lock:
            self._segs[unit] = (mem, layout, out)
            self._last[unit] = -1
        return out

    def remove(self, unit: int) -> None:
        with self._lock:
            mem, _, _ = self._segs.pop(unit)
        mem.detach()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(WATCH_EVERY_S):
            with self._lock:
                for unit, (mem, layout, out) in self._segs.items():
                    a = st.unpack(mem.read(layout.value), layout)
                    b = st.unpack(mem.read(layout.value), layout)
                    if a == b and a.count % 2 == 0 and a.count != self._last[unit]:
                        self._last[unit] = a.count
                        if a.clock_sec:
                            out.append(Published(time.time_ns(), a.receive_ns, a.clock_ns))


class BenchChronyd(PrivateChronyd):
    """The tests' private chronyd, also logging every raw sample it accepts."""

    def config_text(self) -> str:
        return super().config_text() + f"logdir {self.workdir}\nlog refclocks\n"

    def accepted_samples(self) -> int:
        """Raw samples chrony took (refclocks.log: 9 fields, a number in DP)."""
        path = self.workdir / "refclocks.log"
        if not path.exists():
            return 0
        n = 0
        for line in path.read_text().splitlines():
            f = line.split()
            if len(f) == 9 and f[2] == "DCF" and f[3].isdigit():
                n += 1
        return n

    def snapshot(self) -> tuple[list[str], list[str], list[str]]:
        """tracking, sources and sourcestats in one chronyc call (CSV rows)."""
        r = subprocess.run(
            ["chronyc", "-h", str(self.cmd_socket), "-n", "-c"],
            input="tracking\nsources\nsourcestats\n",
            capture_output=True,
            text=True,
            timeout=10,
        )
        rows = [line.split(",") for line in r.stdout.splitlines()]
        tracking = next((f for f in rows if len(f) == 14), [])
        source = next((f for f in rows if len(f) == 10 and f[2] == "DCF"), [])
        stats = next((f for f in rows if len(f) == 8 and f[0] == "DCF"), [])
        return tracking, source, stats


@dataclass(frozen=True, slots=True)
class Snap:
    t_s: float  # since switch-on
    selected: bool  # `#*` and stratum 1
    err_s: float  # chrony's system-time correction minus the true offset
    freq_err_ppm: float  # chrony's frequency estimate minus the true one
    sd_s: float | None  # sourcestats std dev
    np: int | None  # sourcestats samples in the regression
    fit_err_s: float | None = None  # the reference: a line through the samples seen by then
    fit_all_err_s: float | None = None  # ... through every sample seen since the first


@dataclass
class RunResult:
    signal: str
    line: str
    seed: int
    sink: str
    minutes: float
    offset_ms: float
    delay_ms: float
    poll: int
    snaps: list[Snap] = field(default_factory=list)
    lock_s: float | None = None
    first_sample_s: float | None = None
    selected_s: float | None = None
    ages_s: list[float] = field(default_factory=list)  # publication age of each sample
    published: int | None = None  # by the driver (its exit line)
    seen: int = 0  # by the bench: in the segment (SHM, which keeps only the last) or -vv log
    accepted: int = 0  # by chrony (its refclocks log)
    wrong_labels: int = 0
    rx_err_ms: list[float] = field(default_factory=list)  # receive time - true edge
    startup_cpu_s: float | None = None
    cost: Cost | None = None  # of `run`, steady state
    chronyd_cpu_s_per_min: float | None = None
    failure: str = ""


@dataclass(frozen=True, slots=True)
class RunPlan:
    line: ChronyLine
    sink: str  # "shm" or "sock"
    unit: int  # SHM unit (unused for sock)
    workdir: Path
    log_samples: bool  # run -vv: every sample's publication time, at a little CPU


def _log_time(asctime: str) -> int:
    """The driver log's asctime (local time, ms) as wall-clock ns."""
    t = dt.datetime.strptime(asctime, "%Y-%m-%d %H:%M:%S,%f")
    return round(t.timestamp() * 1e3) * NS_PER_MS


_SAMPLE_LINE = re.compile(
    r"^(\S+ \S+) DEBUG sample (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d+Z offset ([-+]\d+\.\d+) s$"
)


def _logged_samples(log_text: str) -> list[Published]:
    """Every sample as -vv logs it when it goes out (SOCK has no segment to watch,
    and a segment keeps only the last of a burst)."""
    out = []
    for line in log_text.splitlines():
        m = _SAMPLE_LINE.match(line)
        if m:
            clock_s = int(dt.datetime.fromisoformat(m[2] + "+00:00").timestamp())
            receive_ns = clock_s * NS_PER_S - round(float(m[3]) * 1e9)
            out.append(Published(_log_time(m[1]), receive_ns, clock_s * NS_PER_S))
    return out


def _lock_time(log_text: str) -> int | None:
    for line in log_text.splitlines():
        if " INFO LOCK:" in line:
            return _log_time(line[:23])
    return None


def run_one(
    plan: RunPlan,
    truth: Truth,
    log: Path,
    seed: int,
    minutes: float,
    watcher: ShmWatcher,
    stop: threading.Event,
) -> RunResult:
    line, sig = plan.line, truth.signal
    res = RunResult(
        sig.key, line.key, seed, plan.sink, minutes, truth.offset_ms, truth.delay_ms, line.poll
    )
    plan.workdir.mkdir(parents=True)
    offset_s = truth.delay_ms / 1e3
    if plan.sink == "shm":
        refclock = line.refclock("SHM", str(plan.unit), offset_s)
        output, verbose = f"shm:{plan.unit}", ["-vv"] if plan.log_samples else []
    else:
        path = plan.workdir / "run" / "dcf.sock"
        refclock = line.refclock("SOCK", str(path), offset_s)
        output, verbose = f"sock:{path}", ["-vv"]
    chronyd = BenchChronyd(plan.workdir, [refclock])
    chronyd.start()
    published: list[Published] = []
    driver: Driver | None = None
    try:
        if not verbose:
            published = watcher.add(plan.unit)
        driver = Driver(
            [
                "--source",
                f"replay:{log}",
                "--pace",
                "--output",
                output,
                # as the service runs it: the status file is part of the cost
                "--status-file",
                str(plan.workdir / "status.json"),
                *verbose,
            ],
            plan.workdir / "driver.log",
        )
        try:
            _sample_until_end(res, truth, chronyd, driver, minutes, stop)
        finally:
            rc = driver.stop()
            if rc not in (0, -15) and not res.failure:
                res.failure = f"run exited {rc}"
            if not verbose:
                watcher.remove(plan.unit)
    finally:
        c = sample(chronyd.proc.pid) if chronyd.proc is not None else None
        if c is not None:
            res.chronyd_cpu_s_per_min = c.cpu_s / ((c.t_ns - truth.t_on_ns) / 60e9 + LEAD_S / 60)
        res.accepted = chronyd.accepted_samples()
        chronyd.stop()
        if plan.sink == "shm":
            with contextlib.suppress(sysv_ipc.ExistentialError):
                sysv_ipc.SharedMemory(key_for(plan.unit)).remove()
    text = driver.log_text() if driver is not None else ""
    if verbose:
        published = _logged_samples(text)
    m = re.search(r" INFO (\d+) samples published", text)
    res.published = int(m[1]) if m else None
    lock_ns = _lock_time(text)
    if lock_ns is not None:
        res.lock_s = (lock_ns - truth.t_on_ns) / NS_PER_S
    _score_samples(res, truth, published)
    res.snaps = _with_fit(res.snaps, truth, published)
    return res


def _sample_until_end(
    res: RunResult,
    truth: Truth,
    chronyd: BenchChronyd,
    driver: Driver,
    minutes: float,
    stop: threading.Event,
) -> None:
    end_ns = truth.t_on_ns + round(minutes * 60 * NS_PER_S)
    base: ProcSample | None = None
    last: ProcSample | None = None
    stop.wait(max(0.0, (truth.t_on_ns - time.time_ns()) / NS_PER_S))
    while not stop.is_set() and (now := time.time_ns()) < end_ns:
        if driver.proc.poll() is not None:
            res.failure = (
                f"run exited {driver.proc.returncode} after {(now - truth.t_on_ns) / 1e9:.0f} s"
            )
            break
        t_s = (now - truth.t_on_ns) / NS_PER_S
        if res.startup_cpu_s is None:
            ps = sample(driver.proc.pid)
            res.startup_cpu_s = ps.cpu_s if ps else None
        if base is None and t_s >= CPU_FROM_S:
            base = sample(driver.proc.pid)
        tracking, source, stats = chronyd.snapshot()
        t_mid = (now + time.time_ns()) // 2
        if tracking:
            selected = bool(source) and source[1] == "*" and tracking[2] == "1"
            if selected and res.selected_s is None:
                res.selected_s = t_s
            # tracking: system time (4) is positive when the system clock is
            # behind chrony's time; frequency (7) is positive when the system
            # clock runs fast (checked: the wander signal's +10 ppm moves it
            # by +10 ppm against the same samples without wander).
            t_q = (t_mid - truth.t_on_ns) / NS_PER_S
            res.snaps.append(
                Snap(
                    t_s,
                    selected,
                    float(tracking[4]) - truth.injected_s(t_mid),
                    float(tracking[7]) - truth.rate_ppm(t_q),
                    float(stats[7]) if stats else None,
                    int(stats[1]) if stats else None,
                )
            )
        every = EVERY_S if res.selected_s is not None else EARLY_EVERY_S
        stop.wait(every - (time.time_ns() - now) / NS_PER_S % every)
    last = sample(driver.proc.pid)
    if base is not None and last is not None:
        res.cost = Cost.between(base, last)


def _score_samples(res: RunResult, truth: Truth, published: list[Published]) -> None:
    res.seen = len(published)
    if published:
        res.first_sample_s = (published[0].pub_ns - truth.t_on_ns) / NS_PER_S
    for p in published:
        res.ages_s.append((p.pub_ns - p.receive_ns) / NS_PER_S)
        true_ns = truth.marks.get(p.clock_ns // NS_PER_S)
        if true_ns is None or abs(p.receive_ns - true_ns) > 150 * NS_PER_MS:
            res.wrong_labels += 1
        else:
            res.rx_err_ms.append((p.receive_ns - true_ns) / NS_PER_MS)


def _with_fit(snaps: list[Snap], truth: Truth, published: list[Published]) -> list[Snap]:
    """Add references to each snapshot: the error of a least-squares line through
    the samples seen by then (the last FIT_SPAN_S of them, and all of them),
    evaluated then.

    A line, not a mean: chrony does not know the frequency either, and a
    line's end point costs 2 sigma/sqrt(N), twice a mean's.  chrony does much
    the same with a median filter in front and its own choice of how many
    points to keep (up to 64 x 2^poll s), so it may beat the 20-minute line when
    it keeps more than 20 minutes, and loses to it where it keeps fewer.  The
    line through all samples is the best unbiased estimate there is (white
    noise: Gauss-Markov); on one noise realisation chrony can still be luckier.
    """
    delay_s = truth.delay_ms / 1e3
    pub = [p.pub_ns for p in published]
    xs = [(p.receive_ns - truth.t_on_ns) / NS_PER_S for p in published]
    # each sample's own estimate of radio minus system time, delay compensated
    ys = [(p.clock_ns - p.receive_ns) / NS_PER_S + delay_s for p in published]
    sums = [(0.0, 0.0, 0.0, 0.0)]
    for x, y in zip(xs, ys, strict=True):
        a, b, c, d = sums[-1]
        sums.append((a + x, b + y, c + x * x, d + x * y))

    def fit(lo: int, hi: int, t_s: float, t_ns: int) -> float | None:
        n = hi - lo
        if n < 3:
            return None
        sx, sy, sxx, sxy = (a - b for a, b in zip(sums[hi], sums[lo], strict=True))
        mx, my = sx / n, sy / n
        vxx = sxx / n - mx * mx
        if vxx <= 0:
            return None
        slope = (sxy / n - mx * my) / vxx
        return my + slope * (t_s - mx) - truth.injected_s(t_ns)

    out = []
    for s in snaps:
        t_ns = truth.t_on_ns + round(s.t_s * NS_PER_S)
        hi = bisect.bisect_right(pub, t_ns)
        lo = bisect.bisect_left(xs, s.t_s - FIT_SPAN_S, 0, hi)
        out.append(
            dataclasses.replace(
                s, fit_err_s=fit(lo, hi, s.t_s, t_ns), fit_all_err_s=fit(0, hi, s.t_s, t_ns)
            )
        )
    return out
