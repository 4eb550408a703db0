"""Defence in depth (issue 9, item 7): with the shipped serving config, a real
chronyd outvotes a spoofed radio clock.

Three private chronyds on loopback: two "upstream servers" (serving their own
clock, authenticated with a symmetric key - NTS needs the network) and the one
under test, configured from chrony/dcf77shm-serve.conf.example (its NTS
servers replaced by the two local ones) plus the shipped refclock line.
dcf77shm feeds it a radio clock 300 ms off - a local transmitter that was there
from the first lock, which no radio-side check can see.  chronyd must mark DCF
a falseticker and keep following the servers."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from dcf77shm.testing.chronyd import (
    CHRONY_DIR,
    Driver,
    PrivateChronyd,
    find_chronyd,
    shipped_refclock,
)

pytestmark = [
    pytest.mark.chrony,
    pytest.mark.slow,
    pytest.mark.skipif(find_chronyd() is None, reason="chronyd not installed (make chrony)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the private chronyd runs as root"),
]
SPOOF_MS = 300.0
BUDGET_S = 360.0  # lock up to ~3 min, then poll 5 (shipped): ~75 s to `#*`


def _serving_config(tmp: Path, servers: list[tuple[str, int]], keys: Path) -> list[str]:
    text = (CHRONY_DIR / "dcf77shm-serve.conf.example").read_text()
    lines = []
    for ln in text.splitlines():
        if ln.startswith(("allow ", "ntsserver", "ntsdumpdir")):
            continue  # serving to a network is tested in test_chrony_conf.py
        if ln.startswith("keyfile "):
            ln = f"keyfile {keys}"
        if ln.startswith("server ") and servers:
            # An NTS server of the example -> a local one with a key (also
            # authenticated, so `authselectmode require` keeps it selectable).
            addr, port = servers.pop(0)
            ln = f"server {addr} port {port} key 10 iburst minpoll -1 maxpoll -1"
        elif ln.startswith("server "):
            continue
        lines.append(ln)
    return lines


def test_a_spoofed_dcf_is_a_falseticker_and_the_clock_does_not_follow(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(
        subprocess.run(
            ["chronyc", "keygen", "10", "SHA256", "256"], capture_output=True, text=True, check=True
        ).stdout
    )
    keys.chmod(0o600)
    upstream = [
        # Two addresses: chrony tells NTP sources apart by address, not port.
        PrivateChronyd(
            tmp_path / f"up{i}", ["local stratum 2", f"keyfile {keys}"], address=f"127.0.0.{i + 1}"
        )
        for i in (1, 2)
    ]
    unit = 15000 + os.getpid() % 9000
    config = _serving_config(tmp_path, [(u.address, u.ntp_port) for u in upstream], keys)
    assert {"authselectmode require", "minsources 2", "maxchange 0.5 1 -1"} <= set(config)
    assert sum(ln.startswith("server 127.0.0.") for ln in config) == 2
    main = PrivateChronyd(tmp_path / "main", [*config, shipped_refclock("SHM", str(unit))])
    driver = None
    try:
        for c in (*upstream, main):
            c.workdir.mkdir()
            c.start()
        driver = Driver(
            ["--source", "sim", "--sim-offset-ms", str(SPOOF_MS), "--output", f"shm:{unit}"],
            tmp_path / "driver.log",
        )
        t0 = time.monotonic()
        verdict = None
        while time.monotonic() - t0 < BUDGET_S:
            rows = {r.name: r for r in main.sources()}
            dcf = rows.get("DCF")
            servers = [r for n, r in rows.items() if n != "DCF"]
            # Enough DCF measurements for chrony to judge it, and the servers selected.
            judged = dcf is not None and bin(dcf.reach).count("1") >= 3 and dcf.state != "?"
            if judged and any(r.state == "*" for r in servers):
                verdict = (dcf, servers)
                break
            time.sleep(2)
        sources = main.chronyc("sources", csv=False)
        assert verdict is not None, sources + driver.log_text()[-2000:]
        dcf, servers = verdict
        assert dcf is not None
        assert dcf.state == "x", sources  # a falseticker
        # chronyc's offset is local minus source: the radio clock is 300 ms ahead.
        assert abs(dcf.offset_s + SPOOF_MS / 1000) < 0.05, sources
        tracking = main.tracking()
        assert tracking.refid != "DCF" and abs(tracking.slow_s) < 0.01, tracking
        assert re.search(r"^\^\* 127\.0\.0\.[23]", sources, re.M), sources
    finally:
        if driver is not None:
            driver.stop()
        for c in (main, *upstream):
            c.stop()
