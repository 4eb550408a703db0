"""The system test's parsers (systemtest/probes.py), on text in the formats of
chronyc -c (4.3), /proc/sysvipc/shm, /proc/PID/status and systemd-analyze."""

from __future__ import annotations

from systemtest import probes

SOURCES = """\
^,?,192.0.2.1,0,6,0,4294967295,0.000000000,0.000000000,0.000000000
#,*,DCF,0,4,377,34,0.014437883,0.014437883,0.000290000
"""

SYSVIPC = """\
key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss swap
1314148477 1 600 96 270 301 3 996 996 0 0 1795000000 1795000000 1795000000 4096 0
1314148478 2 666 96 270 301 1 0 0 0 0 1795000000 1795000000 1795000000 4096 0
"""


def test_chrony_sources_and_tracking() -> None:
    srcs = probes.chrony_sources(SOURCES)
    assert [s.name for s in srcs] == ["192.0.2.1", "DCF"]
    dcf = srcs[1]
    assert (dcf.mode, dcf.state, dcf.reach, dcf.last_rx_s) == ("#", "*", 0o377, 34)
    assert srcs[0].last_rx_s == 2**32 - 1  # chronyc's "never"
    trk = probes.chrony_tracking("44434600,DCF,1,1795000000.1,0.0,0.0\n")
    assert trk is not None and (trk.refid, trk.stratum) == ("DCF", 1)
    assert probes.chrony_tracking("506 Cannot talk to daemon") is None


def test_segments_and_safety() -> None:
    segs = probes.shm_segments(SYSVIPC)
    ours = segs[probes.SHM_KEY_77]
    assert (ours.mode, ours.uid, ours.nattch, ours.size) == (0o600, 996, 3, 96)
    assert probes.segment_is_safe(ours, {0, 996})
    assert not probes.segment_is_safe(ours, {0})  # someone else's
    assert not probes.segment_is_safe(segs[probes.SHM_KEY_77 + 1], {0})  # 0666


def test_key_values_exposure_and_caps() -> None:
    show = probes.key_values("MainPID=199\nStatusText=locked; last second x=y\n")
    assert show == {"MainPID": "199", "StatusText": "locked; last second x=y"}
    status = probes.key_values(
        "CapInh:\t0000000000000000\nCapPrm:\t0\nCapEff:\t0\nCapBnd:\t0\nCapAmb:\t0\n", ":"
    )
    assert probes.capabilities_zero(status)
    assert not probes.capabilities_zero({**status, "CapBnd": "000001ffffffffff"})
    line = "→ Overall exposure level for dcf77shm.service: 1.3 OK :-)"
    assert probes.exposure(line) == (1.3, "OK")
    assert probes.TIMESTAMP.match("2026-11-27 10:46:08,123 INFO x")
    assert not probes.TIMESTAMP.match("reading replay:/srv/x")
