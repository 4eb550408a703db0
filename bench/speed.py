#!/usr/bin/env python3
"""Benchmark: decoding speed and memory, a whole day of signal per run.

Two figures per decoder and signal:
* pipeline: the pure pipeline alone, edges already in memory (decoding speed);
* CLI: `dcf77shm decode --json FILE > /dev/null` in a fresh child process,
  end to end (reading and checking the log, decoding, writing JSON), with the
  child's own peak RSS as it reports it at exit.

And one line per signal for `dcf77shm simulate --duration 7d` (--sim-days):
its time and peak RSS, which must not grow with the duration (it streams).

Usage: python bench/speed.py [--hours 24] [--sim-days 7]
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dcf77shm.decode.pipeline import Pipeline  # noqa: E402
from dcf77shm.formats.edgelog import write_edges  # noqa: E402
from dcf77shm.sources.simulate import SimParams, simulate  # noqa: E402

SIGNALS: dict[str, dict[str, float]] = {
    "clean": {"jitter_ms": 5.0, "width_spread_ms": 8.0},
    "noisy": {
        "jitter_ms": 10.0,
        "width_spread_ms": 12.0,
        "glitch_rate": 1.0,
        "drop_rate": 0.05,
        "flip_rate": 0.02,
    },
}

# VmHWM, not ru_maxrss: the latter keeps the peak of the forked parent (this
# benchmark, holding a day of edges) from before exec.
CHILD = """
import sys
from dcf77shm.cli.main import main
try:
    main(sys.argv[1:])
finally:
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
    print(hwm[0].split()[1], file=sys.stderr)
"""


def cli_run(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of the CLI in a child process."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return time.perf_counter() - t0, int(done.stderr.split()[-1]) / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--sim-days", type=float, default=7.0)
    a = ap.parse_args()
    seconds = a.hours * 3600
    print(f"{a.hours:g} h of simulated signal per run")
    head = ("signal", "decoder", "edges", "pipeline s", "x real", "CLI s", "x real", "CLI RSS MB")
    print("{:<7} {:<7} {:>8} {:>10} {:>8} {:>7} {:>8} {:>10}".format(*head))
    with tempfile.TemporaryDirectory() as tmp:
        for name, knobs in SIGNALS.items():
            sim = simulate(SimParams(start_s=1700000000, duration_s=seconds, seed=3, **knobs))  # type: ignore[arg-type]
            log = Path(tmp) / f"{name}.edges"
            write_edges(log, sim.edges)
            gc.collect()
            gc.freeze()  # the day of edges in memory is not the decoder's: keep GC off it
            for dec in ("strict", "robust"):
                pipe = Pipeline(decoder=dec)
                t0 = time.perf_counter()
                for edge in sim.edges:
                    pipe.feed(edge)
                pipe_s = time.perf_counter() - t0
                cli_s, rss = cli_run(["decode", "--json", "--decoder", dec, str(log)])
                row = (name, dec, len(sim.edges), pipe_s, seconds / pipe_s, cli_s)
                print(
                    "{:<7} {:<7} {:>8} {:>10.2f} {:>8,.0f} {:>7.2f}".format(*row),
                    f"{seconds / cli_s:>8,.0f} {rss:>10.1f}",
                    flush=True,
                )
            gc.unfreeze()
            del sim
        print(f"\n`simulate --duration {a.sim_days:g}d -o FILE.gz`, in a fresh process")
        print("{:<7} {:>7} {:>8}".format("signal", "s", "RSS MB"))
        for name, knobs in SIGNALS.items():
            flags = [f"--{k.replace('_', '-')}={v:g}" for k, v in knobs.items()]
            out = Path(tmp) / "sim.edges.gz"
            sim_s, rss = cli_run(
                ["simulate", f"--duration={a.sim_days:g}d", "--seed=3", *flags, "-o", str(out)]
            )
            print(f"{name:<7} {sim_s:>7.1f} {rss:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
