#!/usr/bin/env python3
"""Benchmark: strict vs robust decoder on identical simulated signals.

For every grid cell and every random start, one simulated receiver log is
decoded by each decoder; the simulator's truth says which samples are right.

Per cell and decoder:
  avail   published second marks / transmitted second marks after the first
          sample (a dropped or faded pulse counts as not published); a run
          without any sample counts all its marks after 3 minutes as missed
  ttfs    time to first sample: from the start of the log to the moment the
          first sample is published (the time of the edge whose processing
          let it out), median and p90 (s); '-' when fewer than half (p50) or
          90% (p90) of the runs published anything
  false   wrong samples against the simulator's truth (must be 0): the label
          is not the true label of the genuine mark, or the receive time lies
          more than 50 ms from that mark
  err     receive time - true mark (ms): p50 / p99 / max of |error| over all
          published samples (a sample is the mark's own leading edge: jitter)
  age     how old a sample is when it is let out (s): p50 / max
  fmin    minute reports marked ok whose UTC minute is wrong
Also: total simulated minutes, and the real captures.

Usage: python bench/decoders.py [--quick] [--runs N] [--minutes M] [--jobs J]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dcf77shm.decode.pipeline import Pipeline
from dcf77shm.model import NS_PER_S, MinuteReport, Sample
from dcf77shm.sources.simulate import SimParams, simulate

DECODERS: tuple[str, ...] = ("strict", "robust")
TOLERANCE_NS = 50_000_000  # a sample more than 50 ms from its true mark is wrong


@dataclass
class Result:
    published: int = 0
    possible: int = 0
    ttfs: float | None = None
    false: int = 0
    false_minutes: int = 0
    errors_ms: list[float] = field(default_factory=list)
    ages_s: list[float] = field(default_factory=list)


def run_one(args: tuple[dict[str, float], int, int]) -> dict[str, Result]:
    knobs, seed, minutes = args
    rng = random.Random(seed)
    start = rng.randrange(946684800, 4102444800 - 86400)
    p = SimParams(start_s=start, duration_s=minutes * 60, seed=seed, **knobs)  # type: ignore[arg-type]
    sim = simulate(p)
    out: dict[str, Result] = {}
    t0 = start * NS_PER_S
    for dec in DECODERS:
        r = Result()
        first: int | None = None
        published_at: int | None = None
        pipe = Pipeline(decoder=dec)
        for edge in sim.edges:
            for ev in pipe.feed(edge):
                if isinstance(ev, Sample):
                    mark = sim.mark_at(ev.mono_ns or 0)
                    err = None if mark is None else ev.receive_ns - mark.sys_ns
                    if (
                        err is None
                        or abs(err) > TOLERANCE_NS
                        or (mark is not None and mark.label_s * NS_PER_S != ev.clock_ns)
                    ):
                        r.false += 1
                    if err is not None:
                        r.errors_ms.append(abs(err) / 1e6)
                    r.ages_s.append((edge.time_ns - ev.receive_ns) / NS_PER_S)
                    r.published += 1
                    if first is None:
                        first, published_at = ev.receive_ns, edge.time_ns
                elif isinstance(ev, MinuteReport) and ev.ok and ev.utc_s is not None:
                    near = sim.label_at(ev.marker_ns, 2 * NS_PER_S)
                    if near is not None and abs(near - ev.utc_s) > 2:
                        r.false_minutes += 1
        if first is not None and published_at is not None:
            r.ttfs = (published_at - t0) / NS_PER_S
            r.possible = sum(1 for m in sim.marks if m.sys_ns >= first - 100_000_000)
        else:
            # A run that never published counts every mark after 3 minutes
            # (what a clean signal needs) as missed.
            r.possible = sum(1 for m in sim.marks if m.sys_ns >= t0 + 180 * NS_PER_S)
        out[dec] = r
    return out


def grid(quick: bool) -> list[tuple[str, dict[str, float]]]:
    base = {"jitter_ms": 5.0, "width_spread_ms": 8.0}
    cells: list[tuple[str, dict[str, float]]] = [("clean (jitter 5 ms)", dict(base))]
    for g in (0.25, 0.5, 1, 1.5, 2, 5, 8) if not quick else (0.5, 2):
        cells.append((f"glitches {g}/s x 10 ms", {**base, "glitch_rate": g, "glitch_ms": 10.0}))
    for f in (0.02, 0.05, 0.1, 0.2, 0.3) if not quick else (0.05, 0.2):
        cells.append((f"flipped {f:.0%}", {**base, "flip_rate": f}))
    for d in (0.05, 0.1, 0.25, 0.5) if not quick else (0.1, 0.5):
        cells.append((f"dropped {d:.0%}", {**base, "drop_rate": d}))
    for j in (2, 10, 20, 30) if not quick else (10, 30):
        cells.append((f"jitter {j} ms", {"jitter_ms": float(j), "width_spread_ms": 8.0}))
    cells.append(
        (
            "mixed: 1 glitch/s, 5% flip, 10% drop, 10 ms",
            {
                "jitter_ms": 10.0,
                "width_spread_ms": 12.0,
                "glitch_rate": 1.0,
                "flip_rate": 0.05,
                "drop_rate": 0.1,
            },
        )
    )
    return cells


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def real_captures() -> None:
    """The Pollin DCF1 captures: valid minutes, samples and their consistency."""
    root = Path(__file__).resolve().parents[1].parent / "shared" / "real-signals" / "pollin-dcf1"
    files = sorted(root.glob("*.edges"))
    if not files:
        print("real captures: ../shared/real-signals/pollin-dcf1 not present, skipped")
        return
    from dcf77shm.formats.edgelog import read_edges

    print("\nreal captures (Pollin DCF1; residual = clock-receive after a straight-line fit)")
    print(
        "{:<34} {:<7} {:>7} {:>7} {:>8} {:>9}".format(
            "file", "decoder", "minutes", "samples", "ppm", "resid ms"
        )
    )
    for f in files:
        edges = read_edges(f)
        for dec in DECODERS:
            pipe = Pipeline(decoder=dec)
            events = [ev for e in edges for ev in pipe.feed(e)]
            valid = sum(1 for ev in events if isinstance(ev, MinuteReport) and ev.ok)
            smp = [ev for ev in events if isinstance(ev, Sample)]
            ppm = resid = "-"
            if len(smp) >= 3:
                xs = [(x.receive_ns - smp[0].receive_ns) / 1e9 for x in smp]
                ys = [(x.clock_ns - x.receive_ns) / 1e6 for x in smp]
                mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
                b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
                    (x - mx) ** 2 for x in xs
                )
                r = [y - my - b * (x - mx) for x, y in zip(xs, ys, strict=True)]
                ppm = f"{b * 1e3:+.0f}"
                resid = f"{statistics.pstdev(r):.1f}"
            print(f"{f.name:<34} {dec:<7} {valid:>7} {len(smp):>7} {ppm:>8} {resid:>9}")


def main() -> int:
    global DECODERS
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--minutes", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--decoders", default="strict,robust", help="e.g. robust")
    ap.add_argument("--noisy-only", action="store_true", help="skip the clean cell")
    ap.add_argument("--no-real", action="store_true", help="skip the real captures")
    a = ap.parse_args()
    DECODERS = tuple(a.decoders.split(","))
    total_minutes = 0
    t_start = time.time()
    print(f"{a.runs} runs x {a.minutes} min per cell, random UTC starts 2000-2099, seed {a.seed}")
    head = (
        "cell",
        "decoder",
        "avail",
        "ttfs p50",
        "p90",
        "false",
        "fmin",
        "err p50/p99/max ms",
        "age p50/max s",
    )
    print("{:<44} {:<7} {:>6} {:>8} {:>6} {:>5} {:>4} {:>19} {:>13}".format(*head))
    with ProcessPoolExecutor(a.jobs) as pool:
        for ci, (name, knobs) in enumerate(grid(a.quick)):
            if a.noisy_only and name.startswith("clean"):
                continue
            jobs = [(knobs, a.seed * 100000 + ci * 1000 + i, a.minutes) for i in range(a.runs)]
            results = list(pool.map(run_one, jobs))
            total_minutes += a.runs * a.minutes
            for dec in DECODERS:
                rs = [r[dec] for r in results]
                pub = sum(r.published for r in rs)
                poss = sum(r.possible for r in rs)
                tt = [r.ttfs for r in rs if r.ttfs is not None]
                avail = f"{pub / poss:.1%}" if poss else "-"
                p50 = f"{statistics.median(tt):.0f}" if len(tt) * 2 >= len(rs) else "-"
                p90 = f"{pct(tt, 0.9):.0f}" if len(tt) >= 0.9 * len(rs) else "-"
                errs = sorted(e for r in rs for e in r.errors_ms)
                ages = sorted(a for r in rs for a in r.ages_s)
                err = f"{pct(errs, 0.5):.1f}/{pct(errs, 0.99):.1f}/{errs[-1]:.1f}" if errs else "-"
                age = f"{pct(ages, 0.5):.1f}/{ages[-1]:.1f}" if ages else "-"
                print(
                    f"{name:<44} {dec:<7} {avail:>6} {p50:>8} {p90:>6} "
                    f"{sum(r.false for r in rs):>5} {sum(r.false_minutes for r in rs):>4} "
                    f"{err:>19} {age:>13}",
                    flush=True,
                )
    print(
        f"simulated minutes: {total_minutes} per decoder; wall time {time.time() - t_start:.0f} s"
    )
    if not a.no_real:
        real_captures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
