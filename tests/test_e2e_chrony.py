"""End to end with the real chronyd: our `run` feeds it, chrony selects DCF at
stratum 1 and serves it over NTP on loopback to a client we did not write.

Three runs go in parallel (each with its own chronyd, started at module
setup) so the whole module costs one lock-and-select time (~2-4 min), and no
single test waits more than 4 minutes:

* SHM: simulated receiver, radio clock +25 ms from the system clock;
* SOCK: simulated receiver, -40 ms, 3 ms edge jitter;
* replay --pace: an edge log made by `dcf77shm simulate` starting just ahead
  of the system clock (its clock offset +15 ms, i.e. radio clock -15 ms).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sysv_ipc

from dcf77shm.model import NS_PER_S
from dcf77shm.sinks.shm import key_for
from dcf77shm.testing.chronyd import (
    Driver,
    Outcome,
    PrivateChronyd,
    find_chronyd,
    shipped_refclock,
    wait_selected,
)

ntplib = pytest.importorskip("ntplib")

pytestmark = [
    pytest.mark.chrony,
    pytest.mark.slow,
    pytest.mark.skipif(find_chronyd() is None, reason="chronyd not installed (make chrony)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the private chronyd runs as root"),
]
BUDGET_S = 360.0  # lock up to ~3 min, then poll 5 (shipped): ~75 s to `#*`
TOLERANCE_S = 0.003


@dataclass
class Result:
    injected_s: float  # radio clock minus system clock
    outcome: Outcome
    sources: str
    ntp_stratum: int
    ntp_refid: str
    ntp_offset_s: float
    driver_rc: int
    driver_log: str


def _scenario(
    workdir: Path, refclock: str, driver_args: list[str], injected_s: float, t0: float
) -> Result:
    workdir.mkdir()
    chronyd = PrivateChronyd(workdir, [refclock])
    chronyd.start()
    driver = Driver(driver_args, workdir / "driver.log")
    try:
        outcome = wait_selected(chronyd, driver, "DCF", BUDGET_S - (time.monotonic() - t0))
        sources = chronyd.chronyc("sources", csv=False)
        r = ntplib.NTPClient().request("127.0.0.1", port=chronyd.ntp_port, version=4, timeout=2)
        refid = r.ref_id.to_bytes(4, "big").rstrip(b"\0").decode("ascii", "replace")
        stratum, offset = r.stratum, r.offset
    finally:
        rc = driver.stop()
        chronyd.stop()
    return Result(injected_s, outcome, sources, stratum, refid, offset, rc, driver.log_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, cf.Future[Result]]]:
    base = tmp_path_factory.mktemp("e2e")
    unit = 10000 + os.getpid() % 9000
    t0 = time.monotonic()
    # The replay log starts at the next whole minute of true time at least
    # 1.5 s ahead, so every edge lies ahead of the system clock.  It is the
    # long pole: up to 61.5 s to that minute + 2 frames (lock) + ~50 s (3
    # chrony polls of 16 s) = at most ~235 s.
    start_s = (time.time_ns() + 1_500_000_000) // NS_PER_S // 60 * 60 + 60
    log = base / "ahead.edges"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dcf77shm",
            "simulate",
            "--start",
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_s)),
            "--duration",
            "6m",
            "--clock-offset-ms",
            "15",
            "--seed",
            "11",
            "-o",
            str(log),
        ],
        check=True,
        capture_output=True,
    )
    sock = base / "sock" / "run" / "dcf.sock"
    plans = {
        "shm": (
            base / "shm",
            shipped_refclock("SHM", str(unit)),
            ["--source", "sim", "--sim-offset-ms", "25", "--output", f"shm:{unit}"],
            0.025,
        ),
        "sock": (
            base / "sock",
            shipped_refclock("SOCK", str(sock)),
            [
                "--source",
                "sim",
                "--sim-offset-ms",
                "-40",
                "--sim-jitter-ms",
                "3",
                "--sim-seed",
                "7",
                "--output",
                f"sock:{sock}",
            ],
            -0.040,
        ),
        "replay": (
            base / "replay",
            shipped_refclock("SHM", str(unit + 1)),
            ["--source", f"replay:{log}", "--pace", "--output", f"shm:{unit + 1}"],
            -0.015,
        ),
    }
    pool = cf.ThreadPoolExecutor(len(plans))
    futures = {
        k: pool.submit(_scenario, d, rc, args, inj, t0) for k, (d, rc, args, inj) in plans.items()
    }
    yield futures
    pool.shutdown(wait=True)
    for u in (unit, unit + 1):
        with contextlib.suppress(sysv_ipc.ExistentialError):
            sysv_ipc.SharedMemory(key_for(u)).remove()  # chronyd created it; chronyd has exited


def _check(res: Result, name: str) -> None:
    o = res.outcome
    measured = o.tracking.slow_s * 1e3 if o.tracking else float("nan")
    print(  # shown with pytest -s: the figures for the issue
        f"\n{name}: injected {res.injected_s * 1e3:+.1f} ms, chrony {measured:+.2f} ms, "
        f"ntp client {res.ntp_offset_s * 1e3:+.2f} ms; lock {o.lock_s or 0:.0f} s, "
        f"selected {o.selected_s or 0:.0f} s after start"
    )
    assert o.selected_s is not None and o.tracking is not None, res.sources + res.driver_log
    assert "#* DCF" in res.sources
    assert o.tracking.stratum == 1 and o.tracking.refid == "DCF"
    # tracking's system time: positive when the system clock is slow, i.e.
    # the radio clock is ahead of it by that much.
    assert abs(o.tracking.slow_s - res.injected_s) < TOLERANCE_S
    assert (res.ntp_stratum, res.ntp_refid) == (1, "DCF")
    assert abs(res.ntp_offset_s - res.injected_s) < TOLERANCE_S + 0.002  # loopback RTT
    assert res.driver_rc == 0 and "LOCK: " in res.driver_log and "Traceback" not in res.driver_log


def test_shm_sim(runs: dict[str, cf.Future[Result]]) -> None:
    _check(runs["shm"].result(timeout=BUDGET_S + 30), "shm")


def test_sock_sim(runs: dict[str, cf.Future[Result]]) -> None:
    _check(runs["sock"].result(timeout=BUDGET_S + 30), "sock")


def test_replay_paced_ahead_of_the_clock(runs: dict[str, cf.Future[Result]]) -> None:
    _check(runs["replay"].result(timeout=BUDGET_S + 30), "replay")
