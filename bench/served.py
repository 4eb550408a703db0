#!/usr/bin/env python3
"""Benchmark: the time we serve, measured through a real chronyd (issue 12).

For every signal (simulated receiver: leading-edge jitter sigma, glitches,
fades, a wandering oscillator), seed and candidate chrony refclock line, a
private `chronyd -x` reads `dcf77shm run --source replay:LOG --pace` (SHM, or
SOCK with --sink sock) while the log plays live; every few seconds
`chronyc tracking` says what time the server would serve, and the simulator
says what the true time is (see bench/servedrun.py).  Per cell (signal x line):

  RMS, max    of the served error in the window (minutes after switch-on),
              pooled over the seeds; "runs" is the spread of the per-run RMS
  fit20       RMS of a least-squares line through the last 20 min of the same samples,
              evaluated at the same moments: what averaging them can give
  fitall      the same through every sample seen since the first: the best unbiased
              estimate on this very noise (chrony may still be luckier on one draw)
  bound       the least any unbiased estimator of offset and frequency could serve
              at the same moments (RMS): a least-squares line through every sample
              published by then, one a second from a minute before lock, at the
              run's own sample scatter (Gauss-Markov: with white noise no unbiased
              estimator does better; only prior knowledge of the frequency would)
  sd          chrony's own std dev of the source (sourcestats), median in the window
  ferr        RMS of chrony's frequency error (ppm; 1 ppm = 3.6 ms per hour of holdover)
  lock        switch-on to the driver's LOCK line (s, mean); each signal and seed
              switches on at its own second of the minute (switch_on_s)
  1st         switch-on to the first sample published (s, mean)
  #*          switch-on to chrony selecting DCF at stratum 1 (s, mean; 2 s resolution)
  age         how old samples are when published (p50 / max / the first one, s);
              margin = chrony's age limit 2^(poll+1) s - max age - 0.5 s (dpoll -1
              reads twice a second).  With SHM these are the samples the segment
              showed, which are those chrony could take: at lock the driver publishes
              a burst of which the segment keeps the last; --log-samples (-vv) or
              --sink sock show every one
  pub         samples the driver published (its exit line)
  lost        of those, samples chrony did not take: too old, or overwritten in the
              segment before chrony read it (the burst at lock: SHM keeps only the last)
  rx          |receive time - true leading edge| of the published samples (p99 / max, ms)
  run         CPU-s per minute of signal (from 2 min on), wake-ups/s, peak RSS (MB)

Usage: python bench/served.py [--quick] [--signals s2,s10,...] [--lines p4f16,...]
       [--seeds N] [--minutes M] [--jobs J] [--sink shm|sock] [--save FILE]
       [--load FILE...] [--write-readme]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from procstat import Cost
from servedrun import (
    LEAD_S,
    TAIL_S,
    ChronyLine,
    RunPlan,
    RunResult,
    ShmWatcher,
    Signal,
    Snap,
    make_log,
    run_one,
)

from dcf77shm.sinks.shm import key_for, segment_info
from dcf77shm.testing.chronyd import find_chronyd

SIGNALS = {
    s.key: s
    for s in (
        Signal("s2", "σ 2 ms", 2.0),
        Signal("s5", "σ 5 ms", 5.0),
        Signal("s10", "σ 10 ms", 10.0),
        Signal("s20", "σ 20 ms", 20.0),
        Signal("glitch", "σ 10 ms, 1 glitch/s", 10.0, glitch_rate=1.0),
        # A short fade before the 8-minute mark, one inside the quick window,
        # a long one in the 10-40 min window: holdover on chrony's frequency.
        Signal(
            "fade", "σ 10 ms, fades", 10.0, fades=((300.0, 60.0), (600.0, 90.0), (1500.0, 300.0))
        ),
        Signal("wander", "σ 10 ms, +10 ±1 ppm/30 min", 10.0, rate_ppm=10.0, wander_ppm=1.0),
    )
}
LINES = {
    ln.key: ln
    for ln in (
        ChronyLine("p4f16", "poll 4 filter 16", (("poll", "4"), ("filter", "16"))),
        ChronyLine("p5f32", "poll 5 filter 32 (shipped)", ()),
        ChronyLine("p6f64", "poll 6 filter 64", (("poll", "6"), ("filter", "64"))),
        ChronyLine(
            "p4f16m32",
            "poll 4 filter 16 minsamples 32",
            (("poll", "4"), ("filter", "16"), ("minsamples", "32")),
        ),
    )
}
QUICK = (("s2", ("p5f32",)), ("s10", ("p4f16", "p5f32", "p6f64")))
QUICK_MINUTES = 15.0


@dataclass(frozen=True, slots=True)
class Group:
    signal: Signal
    seed: int
    lines: tuple[ChronyLine, ...]


# --- running ---------------------------------------------------------------------


class Units:
    """SHM units nobody uses (other benches and tests pick 10000-19999)."""

    def __init__(self) -> None:
        self._next = 40000 + os.getpid() % 1000 * 20

    def take(self) -> int:
        while segment_info(key_for(self._next)) is not None:
            self._next += 1
        self._next += 1
        return self._next - 1


@dataclass(frozen=True, slots=True)
class Settings:
    minutes: float
    sink: str
    log_samples: bool
    jobs: int
    base: Path  # work folders
    save: Path | None


def switch_on_s(g: Group, earliest_s: int) -> int:
    """The group's switch-on: at its own second of the minute, so that the seeds
    of a cell spread over the minute.  How long lock takes depends on where in
    the minute the receiver is switched on (a frame is caught from second 18
    on): one fixed second would make every lock and #* time the same."""
    phase = random.Random(f"served-phase-{g.signal.key}-{g.seed}").randrange(60)
    return earliest_s + (phase - earliest_s) % 60


def run_group(
    g: Group, units: list[int], st: Settings, watcher: ShmWatcher, stop: threading.Event
) -> list[RunResult]:
    d = st.base / f"{g.signal.key}-seed{g.seed}"
    d.mkdir(parents=True)
    t_on_s = switch_on_s(g, math.ceil(time.time()) + LEAD_S)
    stop.wait(max(0.0, t_on_s - LEAD_S - time.time()))
    log = d / "signal.edges"
    truth = make_log(g.signal, g.seed, t_on_s, round(st.minutes * 60) + TAIL_S, log)
    print(
        f"{time.strftime('%H:%M:%S')} start {g.signal.key} seed {g.seed}: "
        f"{', '.join(ln.key for ln in g.lines)} (offset {truth.offset_ms:+.1f} ms, "
        f"delay {truth.delay_ms:.1f} ms)",
        flush=True,
    )
    plans = [
        RunPlan(ln, st.sink, u, d / ln.key, st.log_samples)
        for ln, u in zip(g.lines, units, strict=True)
    ]
    with ThreadPoolExecutor(len(plans)) as ex:
        futures = [
            ex.submit(run_one, p, truth, log, g.seed, st.minutes, watcher, stop) for p in plans
        ]
        return [f.result() for f in futures]


def run_all(groups: list[Group], st: Settings) -> list[RunResult]:
    """Groups start as soon as their runs fit into `jobs` slots (a group that alone
    is bigger than `jobs` runs alone)."""
    units, watcher, stop = Units(), ShmWatcher(), threading.Event()
    results: list[RunResult] = []
    pending = list(groups)
    running: dict[Future[list[RunResult]], int] = {}
    pool = ThreadPoolExecutor(max(1, len(groups)))
    try:
        while pending or running:
            used = sum(running.values())
            for g in list(pending):
                n = len(g.lines)
                if used + n <= st.jobs or not running:
                    pending.remove(g)
                    us = [units.take() for _ in g.lines]
                    running[pool.submit(run_group, g, us, st, watcher, stop)] = n
                    used += n
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                del running[f]
                for r in f.result():
                    results.append(r)
                    print(run_line(r), flush=True)
                    if st.save is not None:
                        with st.save.open("a") as out:
                            out.write(json.dumps(asdict(r)) + "\n")
    except KeyboardInterrupt:
        print("interrupted: stopping the runs", file=sys.stderr)
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True)
        watcher.close()
    return results


def run_line(r: RunResult) -> str:
    rms = _f(_rms([s.err_s * 1e3 for s in r.snaps if s.selected and s.t_s >= 480]), 2)
    return (
        f"{time.strftime('%H:%M:%S')} done  {r.signal} seed {r.seed} {r.line}: RMS from 8 min "
        f"{rms} ms, #* {_f(r.selected_s, 0)} s, published {r.published}, chrony took "
        f"{r.accepted}{', FAILED: ' + r.failure if r.failure else ''}"
    )


def load(paths: Iterable[Path]) -> list[RunResult]:
    out = []
    for p in paths:
        for line in p.read_text().splitlines():
            d = json.loads(line)
            d["snaps"] = [Snap(**s) for s in d["snaps"]]
            d["cost"] = Cost(**d["cost"]) if d["cost"] else None
            out.append(RunResult(**d))
    return out


# --- tables ----------------------------------------------------------------------


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _rms(xs: list[float]) -> float | None:
    return math.sqrt(statistics.fmean(x * x for x in xs)) if xs else None


def _mean(xs: list[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


def line_bound_s(r: RunResult, t_s: float) -> float | None:
    """The standard error of the best unbiased estimate of the offset at t_s.

    Generous to the estimator: every second from a minute before lock (the
    minute the lock labels) is a sample, available once it is as old as the
    run's median sample age, all with the scatter the run's published samples
    had against the truth.  A least-squares line through white noise is the
    best linear unbiased estimate of offset and frequency (Gauss-Markov; with
    Gaussian noise, of any unbiased estimate), and its value at t_s has the
    variance sigma^2 (1/n + (t_s - mean x)^2 / Sxx).
    """
    if r.lock_s is None or len(r.rx_err_ms) < 2:
        return None
    sigma_s = statistics.pstdev(r.rx_err_ms) / 1e3
    age_s = statistics.median(r.ages_s) if r.ages_s else 0.0
    x0 = r.lock_s - 60.0
    n = math.floor(t_s - age_s - x0) + 1
    if n < 3:
        return None
    sxx = n * (n * n - 1) / 12.0
    return sigma_s * math.sqrt(1.0 / n + (t_s - x0 - (n - 1) / 2.0) ** 2 / sxx)


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


@dataclass(frozen=True, slots=True)
class Window:
    lo_min: float
    hi_min: float | None  # None: to the end of the run

    @property
    def name(self) -> str:
        return f"{self.lo_min:g}-{'end' if self.hi_min is None else f'{self.hi_min:g}'} min"

    def covers(self, minutes: float) -> bool:
        return self.hi_min is None or self.hi_min <= minutes + 1e-9

    def snaps(self, r: RunResult) -> list[Snap]:
        hi = math.inf if self.hi_min is None else self.hi_min * 60
        return [s for s in r.snaps if self.lo_min * 60 <= s.t_s <= hi]


@dataclass(frozen=True, slots=True)
class Served:
    """The served error of one cell in one window, pooled over its runs."""

    runs: int
    unselected: int  # runs chrony had not selected DCF by the window's start
    rms_ms: float | None
    max_ms: float | None
    run_rms_ms: tuple[float, ...]
    sd_ms: float | None
    ferr_ppm: float | None
    fit_rms_ms: float | None  # the reference line (bench/servedrun.py: _with_fit)
    fit_all_rms_ms: float | None  # ... through every sample so far
    bound_rms_ms: float | None  # the Gauss-Markov bound (line_bound_s)

    @staticmethod
    def of(rs: list[RunResult], w: Window) -> Served:
        errs: list[float] = []
        run_rms, sds, ferrs, fits, fit_alls, bounds = [], [], [], [], [], []
        unselected = 0
        for r in rs:
            if r.selected_s is None or r.selected_s > w.lo_min * 60:
                unselected += 1
            snaps = [s for s in w.snaps(r) if r.selected_s is not None and s.t_s >= r.selected_s]
            if not snaps:
                continue
            e = [s.err_s * 1e3 for s in snaps]
            errs += e
            run_rms.append(math.sqrt(statistics.fmean(x * x for x in e)))
            sd = [s.sd_s * 1e3 for s in snaps if s.sd_s is not None]
            if sd:
                sds.append(statistics.median(sd))
            ferrs += [s.freq_err_ppm for s in snaps]
            fits += [s.fit_err_s * 1e3 for s in snaps if s.fit_err_s is not None]
            fit_alls += [s.fit_all_err_s * 1e3 for s in snaps if s.fit_all_err_s is not None]
            bounds += [b * 1e3 for s in snaps if (b := line_bound_s(r, s.t_s)) is not None]
        return Served(
            len(rs),
            unselected,
            _rms(errs),
            max(abs(x) for x in errs) if errs else None,
            tuple(run_rms),
            _mean(sds),
            _rms(ferrs),
            _rms(fits),
            _rms(fit_alls),
            _rms(bounds),
        )

    def cell(self) -> str:
        """'RMS / worst' for the Markdown table."""
        if self.rms_ms is None or self.max_ms is None:
            return "-"
        flag = f" ({self.unselected} of {self.runs} not `#*`)" if self.unselected else ""
        return f"{self.rms_ms:.2f} / {self.max_ms:.2f}{flag}"


def cells(results: list[RunResult]) -> dict[tuple[str, str], list[RunResult]]:
    out: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        out.setdefault((r.signal, r.line), []).append(r)
    order_s, order_l = list(SIGNALS), list(LINES)

    def key(k: tuple[str, str]) -> tuple[int, str, int, str]:
        s, ln = k
        return (
            order_s.index(s) if s in order_s else 99,
            s,
            order_l.index(ln) if ln in order_l else 99,
            ln,
        )

    return {k: out[k] for k in sorted(out, key=key)}


def served_table(results: list[RunResult], w: Window) -> None:
    print(
        f"\nserved error, {w.name} after switch-on (ms; runs = per-run RMS; "
        "fit20 = a line through the last 20 min of the same samples, fitall = through all "
        "of them; bound = the best unbiased estimator, expected)"
    )
    head = (
        "signal", "chrony line", "n", "RMS", "max", "runs", "fit20", "fitall", "bound", "sd",
        "ferr ppm", "not #*",
    )  # fmt: skip
    fmt = "{:<8} {:<32} {:>2} {:>6} {:>6} {:<11} {:>6} {:>6} {:>6} {:>6} {:>8} {:>6}"
    print(fmt.format(*head))
    for (sig, line), rs in cells(results).items():
        sv = Served.of(rs, w)
        spread = (
            f"{min(sv.run_rms_ms):.2f}-{max(sv.run_rms_ms):.2f}" if len(sv.run_rms_ms) > 1 else ""
        )
        print(
            fmt.format(
                sig,
                _line_name(line),
                len(rs),
                _f(sv.rms_ms),
                _f(sv.max_ms),
                spread,
                _f(sv.fit_rms_ms),
                _f(sv.fit_all_rms_ms),
                _f(sv.bound_rms_ms),
                _f(sv.sd_ms),
                _f(sv.ferr_ppm),
                sv.unselected,
            )
        )


@dataclass(frozen=True, slots=True)
class Timing:
    lock_s: float | None
    first_s: float | None
    selected_s: float | None
    selected_range: str
    age_p50: float | None
    age_max: float | None
    first_age_max: float | None
    margin_s: float | None
    published: int
    lost: int
    rx_p99: float | None
    rx_max: float | None
    wrong: int
    cost: Cost | None
    startup_cpu_s: float | None

    @staticmethod
    def of(rs: list[RunResult]) -> Timing:
        ages = [a for r in rs for a in r.ages_s]
        firsts = [r.ages_s[0] for r in rs if r.ages_s]
        sel = [r.selected_s for r in rs if r.selected_s is not None]
        rx = [abs(x) for r in rs for x in r.rx_err_ms]
        costs = [r.cost for r in rs if r.cost is not None]
        age_max = max(ages) if ages else None
        limit = 2.0 ** (rs[0].poll + 1)
        return Timing(
            _mean([r.lock_s for r in rs if r.lock_s is not None]),
            _mean([r.first_sample_s for r in rs if r.first_sample_s is not None]),
            _mean(sel),
            f"{min(sel):.0f}-{max(sel):.0f}" if len(sel) > 1 else "",
            _pct(ages, 0.5),
            age_max,
            max(firsts) if firsts else None,
            None if age_max is None else limit - age_max - 0.5,
            sum(r.published for r in rs if r.published is not None),
            sum(r.published - r.accepted for r in rs if r.published is not None),
            _pct(rx, 0.99),
            max(rx) if rx else None,
            sum(r.wrong_labels for r in rs),
            Cost(
                statistics.fmean(c.cpu_s_per_min for c in costs),
                statistics.fmean(c.wakeups_per_s for c in costs),
                max(c.hwm_mb for c in costs),
            )
            if costs
            else None,
            _mean([r.startup_cpu_s for r in rs if r.startup_cpu_s is not None]),
        )


def timing_table(results: list[RunResult]) -> None:
    print("\nstart-up, sample age, receive error and cost of `run`")
    head = (
        "signal",
        "chrony line",
        "lock",
        "1st",
        "#*",
        "(range)",
        "age p50",
        "max",
        "1st",
        "margin",
        "pub",
        "lost",
        "rx p99",
        "max",
        "false",
        "CPU-s/min",
        "wake/s",
        "RSS",
        "start CPU",
    )
    fmt = (
        "{:<8} {:<32} {:>4} {:>4} {:>4} {:<8} {:>7} {:>5} {:>5} {:>6} {:>5} {:>4} {:>6} {:>5} "
        "{:>5} {:>9} {:>6} {:>4} {:>9}"
    )
    print(fmt.format(*head))
    for (sig, line), rs in cells(results).items():
        t = Timing.of(rs)
        c = t.cost
        print(
            fmt.format(
                sig,
                _line_name(line),
                _f(t.lock_s, 0),
                _f(t.first_s, 0),
                _f(t.selected_s, 0),
                t.selected_range,
                _f(t.age_p50, 1),
                _f(t.age_max, 1),
                _f(t.first_age_max, 1),
                _f(t.margin_s, 1),
                t.published,
                t.lost,
                _f(t.rx_p99, 1),
                _f(t.rx_max, 1),
                t.wrong,
                _f(c.cpu_s_per_min if c else None, 3),
                _f(c.wakeups_per_s if c else None, 1),
                _f(c.hwm_mb if c else None, 0),
                _f(t.startup_cpu_s, 2),
            )
        )


def _line_name(key: str) -> str:
    return LINES[key].name if key in LINES else key


def readme(results: list[RunResult], w: Window) -> None:
    """Markdown to paste: served error per chrony line and signal, then timing."""
    groups = cells(results)
    sigs = list(dict.fromkeys(s for s, _ in groups))
    lines = list(dict.fromkeys(ln for _, ln in groups))
    seeds = sorted({r.seed for r in results})
    minutes = min(r.minutes for r in results)
    print(
        f"\n<!-- bench/served.py: {len(results)} runs, seeds {','.join(map(str, seeds))}, "
        f"{minutes:g} min each, window {w.name} -->"
    )
    print(f"Served error (RMS / worst, ms), {w.name} after switch-on:\n")
    print(
        "| chrony line | " + " | ".join(SIGNALS[s].name if s in SIGNALS else s for s in sigs) + " |"
    )
    print("|---" * (len(sigs) + 1) + "|")
    for ln in lines:
        row = [Served.of(groups[(s, ln)], w).cell() if (s, ln) in groups else "" for s in sigs]
        print(f"| `{_line_name(ln)}` | " + " | ".join(row) + " |")
    refs = (
        ("a least-squares line through every sample so far, on the same noise", "fit_all_rms_ms"),
        ("the least any unbiased estimator can expect (Gauss-Markov bound)", "bound_rms_ms"),
    )
    for label, attr in refs:
        row = []
        for s in sigs:
            rs = [r for r in results if r.signal == s and r.line == lines[0]]
            x = getattr(Served.of(rs, w), attr) if rs else None
            row.append(f"{x:.2f}" if x is not None else "")
        print(f"| for reference: {label} (RMS) | " + " | ".join(row) + " |")
    print(
        "\nStart-up and latency (all signals pooled): switch-on to the first sample and to "
        "`#*`, how old samples are when published and what is left of chrony's age limit:\n"
    )
    print("| chrony line | first sample | `#*` | sample age p50 / max | margin |")
    print("|---|---|---|---|---|")
    for ln in lines:
        rs = [r for r in results if r.line == ln]
        t = Timing.of(rs)
        print(
            f"| `{_line_name(ln)}` | {_f(t.first_s, 0)} s | {_f(t.selected_s, 0)} s"
            f"{f' ({t.selected_range} s)' if t.selected_range else ''} | "
            f"{_f(t.age_p50, 1)} / {_f(t.age_max, 1)} s | "
            f"{_f(t.margin_s, 1)} s |"
        )


# --- main ------------------------------------------------------------------------


def parse_windows(text: str) -> list[Window]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.append(Window(float(lo), float(hi) if hi else None))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK}, 1 seed, {QUICK_MINUTES:g} min")
    ap.add_argument("--signals", default=",".join(SIGNALS), help=f"of {','.join(SIGNALS)}")
    ap.add_argument("--lines", default=",".join(LINES), help=f"of {','.join(LINES)}")
    ap.add_argument(
        "--line",
        action="append",
        default=[],
        metavar="KEY=OPTIONS",
        help="another candidate, e.g. p5f16='poll 5 filter 16' (options override the shipped line)",
    )
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1, help="first seed")
    ap.add_argument("--minutes", type=float, default=40.0)
    ap.add_argument("--windows", default="8-,10-40", help="minutes after switch-on")
    ap.add_argument("--jobs", type=int, default=4, help="concurrent runs (chronyd + run each)")
    ap.add_argument("--sink", choices=("shm", "sock"), default="shm")
    ap.add_argument(
        "--log-samples",
        action="store_true",
        help="run -vv: every sample's age, also those a segment overwrites (costs a little CPU)",
    )
    ap.add_argument("--save", type=Path, help="append each run's result here (JSON Lines)")
    ap.add_argument("--load", type=Path, nargs="+", help="tabulate saved results, run nothing")
    ap.add_argument("--keep", action="store_true", help="keep the work folders (logs)")
    ap.add_argument("--write-readme", action="store_true", help="also print Markdown")
    a = ap.parse_args()
    for spec in a.line:
        key, _, opts = spec.partition("=")
        words = opts.split()
        if not key or not words or len(words) % 2:
            print(f"--line {spec!r}: use KEY='option value ...'", file=sys.stderr)
            return 2
        LINES[key] = ChronyLine(key, opts, tuple(zip(words[0::2], words[1::2], strict=True)))
    windows = parse_windows(a.windows)
    if a.load:
        results = load(a.load)
    else:
        if find_chronyd() is None or os.geteuid() != 0:
            print("needs chronyd (make chrony) and root (the private chronyd)", file=sys.stderr)
            return 2
        if a.quick:
            plan = [(SIGNALS[s], tuple(LINES[k] for k in ks)) for s, ks in QUICK]
            seeds, minutes = [a.seed], QUICK_MINUTES
        else:
            try:
                lines = tuple(
                    LINES[k] for k in a.lines.split(",") + [s.partition("=")[0] for s in a.line]
                )
                plan = [(SIGNALS[s], lines) for s in a.signals.split(",")]
            except KeyError as e:
                print(f"unknown signal or line {e}", file=sys.stderr)
                return 2
            seeds, minutes = list(range(a.seed, a.seed + a.seeds)), a.minutes
        groups = [Group(sig, seed, lns) for seed in seeds for sig, lns in plan]
        n = sum(len(g.lines) for g in groups)
        print(
            f"{n} runs of {minutes:g} min in {len(groups)} groups, at most {a.jobs} at once; "
            f"{a.sink}; chrony {_chrony_version()}",
            flush=True,
        )
        base = Path(tempfile.mkdtemp(prefix="served-"))
        t0 = time.monotonic()
        try:
            st = Settings(minutes, a.sink, a.log_samples, a.jobs, base, a.save)
            results = run_all(groups, st)
        finally:
            if a.keep:
                print(f"work folders kept in {base}")
            else:
                shutil.rmtree(base, ignore_errors=True)
        print(f"wall time {(time.monotonic() - t0) / 60:.1f} min")
    if not results:
        return 1
    length = min(r.minutes for r in results)
    shown = [w for w in windows if w.covers(length)]
    for w in shown:
        served_table(results, w)
    timing_table(results)
    if a.write_readme and shown:
        readme(results, shown[0])
    return 0


def _chrony_version() -> str:
    import subprocess

    exe = find_chronyd() or "chronyd"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    return out.split()[3] if len(out.split()) > 3 else "?"


if __name__ == "__main__":
    sys.exit(main())
