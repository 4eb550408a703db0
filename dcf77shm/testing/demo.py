"""``make demo``: the whole chain against a private chronyd, in under 4 minutes.

A simulated receiver whose radio clock runs 25 ms ahead of the system clock
-> ``dcf77shm run`` -> SHM -> a private chronyd (``-x``: it never touches
the system clock; never the system chronyd) -> chrony selects DCF at
stratum 1.  Everything is stopped and removed at the end.  Exit status 0 when
chrony selected DCF at stratum 1, 1 otherwise.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import sysv_ipc

from dcf77shm.errors import Dcf77Error
from dcf77shm.sinks.shm import key_for, segment_info
from dcf77shm.testing.chronyd import (
    Driver,
    PrivateChronyd,
    find_chronyd,
    shipped_refclock,
    wait_selected,
)

OFFSET_MS = 25.0
TIMEOUT_S = 300.0  # lock ~2 min, then poll 5: ~75 s to `#*`


def say(msg: str) -> None:
    print(msg, flush=True)


def free_unit() -> int:
    """A unit nobody uses, away from gpsd's 0-7 and our default 77."""
    for unit in range(7700, 7800):
        if segment_info(key_for(unit)) is None:
            return unit
    raise SystemExit("demo: no free SHM unit in 7700-7799")


def demo(work: Path) -> bool:
    unit = free_unit()
    chronyd = PrivateChronyd(work, [shipped_refclock("SHM", str(unit))])
    say(f"starting a private chronyd (-x, NTP on 127.0.0.1:{chronyd.ntp_port}) in {work}")
    say(f"  {chronyd.refclocks[0]}")
    chronyd.start()
    driver: Driver | None = None
    try:
        args = ["--source", "sim", "--sim-offset-ms", str(OFFSET_MS), "--output", f"shm:{unit}"]
        say(f"starting: dcf77shm run {' '.join(args)}")
        say("  (the simulated receiver's clock is 25 ms ahead of the system clock; the decoder")
        say("   locks after two whole frames, chrony selects it after ~3 polls of 16 s)")
        driver = Driver(args, work / "driver.log")
        out = wait_selected(
            chronyd,
            driver,
            "DCF",
            TIMEOUT_S,
            progress=lambda t, line: say(f"  {t:5.0f} s  {line}"),
            settle_s=0.0,
        )
        say("")
        say(chronyd.chronyc("sources", csv=False).rstrip())
        say("")
        say(chronyd.chronyc("tracking", csv=False).rstrip())
        say("")
        if out.selected_s is None or out.tracking is None:
            say(f"demo: FAILED, DCF not selected within {TIMEOUT_S:.0f} s; driver log:")
            say(driver.log_text()[-2000:])
            return False
        say(
            f"lock after {out.lock_s or 0:.0f} s, DCF selected at stratum {out.tracking.stratum} "
            f"after {out.selected_s:.0f} s; chrony measures the system clock "
            f"{out.tracking.slow_s * 1e3:+.1f} ms slow (injected {OFFSET_MS:+.1f} ms)"
        )
        _ntp_query(chronyd.ntp_port)
        return out.tracking.stratum == 1
    finally:
        if driver is not None:
            rc = driver.stop()
            say(f"dcf77shm run stopped (exit {rc})")
        chronyd.stop()
        say("private chronyd stopped")
        with contextlib.suppress(sysv_ipc.ExistentialError):
            sysv_ipc.SharedMemory(key_for(unit)).remove()  # the demo's own segment


def _ntp_query(port: int) -> None:
    try:
        import ntplib
    except ImportError:
        return
    r = ntplib.NTPClient().request("127.0.0.1", port=port, version=4, timeout=2)
    refid = r.ref_id.to_bytes(4, "big").rstrip(b"\0").decode("ascii", "replace")
    say(
        f"an NTP client (ntplib) asking 127.0.0.1:{port}: stratum {r.stratum}, refid {refid}, "
        f"offset {r.offset * 1e3:+.1f} ms"
    )


def main() -> int:
    if find_chronyd() is None:
        say("demo: chronyd not found; `make demo` installs Debian's chrony first")
        return 1
    if os.geteuid() != 0:
        say("demo: the private chronyd needs root: run `sudo make demo`")
        return 1
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dcf77shm-demo-") as d:
        try:
            ok = demo(Path(d))
        except Dcf77Error as e:
            say(f"demo: {e}")
            ok = False
        except KeyboardInterrupt:
            say("demo: interrupted")
            return 130
    say(f"demo {'succeeded' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
