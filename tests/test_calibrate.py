"""`dcf77shm calibrate`: the arithmetic on chronyc's CSV, and a real chronyd that
calls a late DCF source a falseticker until the recommended offset is applied."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sysv_ipc

from dcf77shm.chronyc import (
    SourceRow,
    StatsRow,
    Tracking,
    parse_sources,
    parse_sourcestats,
    parse_tracking,
)
from dcf77shm.errors import BadInput, RuntimeFailure
from dcf77shm.model import NS_PER_S, Sample
from dcf77shm.sinks.shm import ShmSink, key_for
from dcf77shm.testing.chronyd import PrivateChronyd, find_chronyd, shipped_refclock
from dcf77shm.tools.calibrate import compute, current_line, new_line

MS = 1_000_000


def src_line(state: str, name: str, reach: int, err: float) -> str:
    return f"#,{state},{name},0,4,{reach:o},10,0.0,0.0,{err:.9f}"


def stat_line(name: str, n: int, offset: float, sd: float) -> str:
    return f"{name},{n},{n},100,0.000,0.000,{offset:.9f},{sd:.9f}"


def test_chronyc_csv_rows() -> None:
    # Lines as chronyc 4.3 prints them with -c (a refclock, a server, tracking).
    sources = parse_sources(
        "#,*,DCF,0,4,377,12,-0.000012345,-0.000012000,0.000210000\n"
        "^,x,192.0.2.1,2,6,17,40,0.031000000,0.031000000,0.002000000\n"
        "a short line,1\n"
    )
    assert sources == [
        SourceRow("#", "*", "DCF", 0, 0o377, -12.345e-6, 210e-6, 12),
        SourceRow("^", "x", "192.0.2.1", 2, 0o17, 0.031, 0.002, 40),
    ]
    stats = parse_sourcestats("DCF,8,5,112,-0.012,0.345,0.000001234,0.000056000\n")
    assert stats == {"DCF": StatsRow("DCF", 8, 1.234e-6, 56e-6)}
    trk = parse_tracking(
        "44434600,DCF,1,1700000000.123456789,0.000000012,-0.000000034,0.000000100,"
        "-1.234,0.001,0.002,16.0,0.000001,0.000010,64.5,Normal\n"
    )
    assert trk == Tracking("DCF", 1, 12e-9, "Normal")


def test_correction_is_dcf_minus_the_weighted_references() -> None:
    sources = parse_sources(
        "\n".join(
            [
                src_line("x", "DCF", 0o377, 0.011),
                src_line("*", "A", 0o377, 0.001),
                src_line("+", "B", 0o377, 0.001),
                src_line("?", "C", 0, 0.001),
                src_line("x", "D", 0o377, 0.001),
            ]
        )
    )
    stats = parse_sourcestats(
        "\n".join(
            [
                stat_line("DCF", 8, 0.0312, 0.0006),
                stat_line("A", 8, 0.0010, 0.0001),
                stat_line("B", 8, 0.0020, 0.0001),  # same weight as A: mean 1.5 ms
                stat_line("C", 8, 0.5, 0.0001),  # unreachable
                stat_line("D", 8, 0.9, 0.0001),  # a falseticker among good ones
            ]
        )
    )
    cal = compute(sources, stats, "DCF")
    assert cal.references == ("A", "B") and not cal.note
    assert cal.correction_s == pytest.approx(0.0297, abs=1e-9)
    assert 0.0006 < cal.sigma_s < 0.0008
    line, old, offset = new_line("refclock SHM 77 refid DCF poll 4 delay 0.02 offset 0.005", cal)
    assert old == 0.005 and offset == pytest.approx(0.0347)
    assert line.startswith("refclock SHM 77 refid DCF poll 4 delay 0.00")
    assert line.endswith("offset 0.0347")
    line, _, _ = new_line("refclock SHM 77 refid DCF", cal)
    assert line.split()[5:7] == ["offset", "0.0297"] and line.split()[7] == "delay"


def test_falsetickers_are_used_only_when_nothing_else_is_there() -> None:
    sources = parse_sources(src_line("x", "DCF", 0o377, 0.011) + "\n" + src_line("x", "N", 7, 1e-3))
    stats = parse_sourcestats(
        stat_line("DCF", 5, -0.02, 1e-3) + "\n" + stat_line("N", 5, 0.0, 1e-3)
    )
    cal = compute(sources, stats, "DCF")
    assert cal.references == ("N",) and "falsetickers" in cal.note
    assert cal.correction_s == pytest.approx(-0.02)


@pytest.mark.parametrize(
    ("sources", "stats", "needle"),
    [
        ([src_line("*", "A", 0o377, 1e-3)], [stat_line("A", 8, 0, 1e-4)], "no source 'DCF'"),
        (
            [src_line("x", "DCF", 0o377, 0.01), src_line("*", "A", 0o377, 1e-3)],
            [stat_line("DCF", 3, 0.03, 1e-3), stat_line("A", 8, 0, 1e-4)],
            "3 measurements",
        ),
        (
            [src_line("*", "DCF", 0o377, 0.01), src_line("?", "A", 0, 1e-3)],
            [stat_line("DCF", 8, 0.03, 1e-3), stat_line("A", 8, 0, 1e-4)],
            "no other source",
        ),
    ],
)
def test_missing_data_is_one_line_with_the_fix(
    sources: list[str], stats: list[str], needle: str
) -> None:
    with pytest.raises(RuntimeFailure, match=needle):
        compute(parse_sources("\n".join(sources)), parse_sourcestats("\n".join(stats)), "DCF")


def test_current_line_finds_the_refid_and_skips_comments() -> None:
    text = "# refclock SHM 0 refid DCF\nrefclock SHM 1 refid GPS\n"
    text += "refclock SHM 77 refid DCF poll 4 # x\n"
    assert current_line(text, "DCF") == "refclock SHM 77 refid DCF poll 4"
    with pytest.raises(BadInput):
        current_line(text, "PPS")


# --- a real chronyd --------------------------------------------------------------------

DELAY_MS = 30  # the receiver delay we inject: DCF samples arrive this late


class Feeder:
    """Writes one sample a second into three SHM units, as three receivers would:
    DCF late by DELAY_MS with 2 ms jitter; two 'other sources' on true time."""

    def __init__(self, units: tuple[int, int, int]) -> None:
        self.sinks = [ShmSink(u) for u in units]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rnd = random.Random(5)
        for s in self.sinks:
            s.open()
        while not self.stop.is_set():
            now = time.time_ns()
            t = (now // NS_PER_S + 1) * NS_PER_S
            time.sleep((t + 80 * MS - now) / NS_PER_S)  # every receive time is past
            dcf, a, b = self.sinks
            dcf.publish(Sample(t + DELAY_MS * MS + int(rnd.gauss(0, 2 * MS)), t))
            a.publish(Sample(t, t))
            b.publish(Sample(t + int(rnd.gauss(0, 0.3 * MS)), t))
        for s in self.sinks:
            s.close()


def wait_for(chronyd: PrivateChronyd, ok: tuple[str, ...], deadline: float) -> str:
    """Poll `chronyc sources` until a line starts with one of ``ok``; returns the table."""
    while time.monotonic() < deadline:
        table = chronyd.chronyc("sources", csv=False)
        if any(line.startswith(ok) for line in table.splitlines()):
            return table
        time.sleep(3)
    return chronyd.chronyc("sources", csv=False)


@pytest.mark.chrony
@pytest.mark.slow
@pytest.mark.skipif(find_chronyd() is None, reason="chronyd not installed (make chrony)")
@pytest.mark.skipif(os.geteuid() != 0, reason="the private chronyd runs as root")
def test_calibrate_recovers_the_receiver_delay_and_dcf_is_then_selectable(
    tmp_path: Path,
) -> None:
    t0 = time.monotonic()
    unit = 20000 + os.getpid() % 9000
    units = (unit, unit + 1, unit + 2)
    dcf_line = shipped_refclock("SHM", str(unit))  # offset 0.0 and delay 0.02, as shipped
    others = [
        f"refclock SHM {unit + 1} refid REFA dpoll -1 poll 4 filter 16 precision 1e-6 delay 0.001",
        f"refclock SHM {unit + 2} refid REFB dpoll -1 poll 4 filter 16 precision 1e-6 delay 0.001",
    ]
    conf = tmp_path / "dcf77shm.conf"
    conf.write_text(f"# the drop-in\n{dcf_line}\n")
    feeder = Feeder(units)
    feeder.thread.start()
    try:
        with PrivateChronyd(tmp_path / "before", [dcf_line, *others]) as chronyd:
            # 30 ms late with a ±11 ms error bound: outvoted by the two others.
            table = wait_for(chronyd, ("#x DCF",), t0 + 180)  # poll 5: 32 s a measurement
            assert "#x DCF" in table, table
            cmd = [sys.executable, "-m", "dcf77shm", "calibrate", "--conf", str(conf)]
            cmd += ["--chronyc-socket", str(chronyd.cmd_socket)]
            while True:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
                if r.returncode == 0 or time.monotonic() > t0 + 240:
                    break
                assert "measurements" in r.stderr, r.stderr  # only "wait" is expected
                time.sleep(5)
            assert r.returncode == 0, r.stderr
        print(f"\ncalibrated after {time.monotonic() - t0:.0f} s:\n{r.stdout}")  # pytest -s
        line = r.stdout.strip().splitlines()[-1]
        words = line.split()
        offset = float(words[words.index("offset") + 1])
        delay = float(words[words.index("delay") + 1])
        assert abs(offset - DELAY_MS / 1000) < 0.003
        assert 0.002 <= delay < 0.02
        with PrivateChronyd(tmp_path / "after", [line, *others]) as chronyd:
            table = wait_for(chronyd, ("#- DCF", "#+ DCF", "#* DCF"), t0 + 400)
            assert any(f"#{c} DCF" in table for c in "-+*"), table  # no longer x
            print(f"selectable after {time.monotonic() - t0:.0f} s:\n{table}")
            stats = parse_sourcestats(chronyd.chronyc("sourcestats"))
            assert abs(stats["DCF"].offset_s) < 0.003
    finally:
        feeder.stop.set()
        feeder.thread.join(5)
        for u in units:
            with contextlib.suppress(sysv_ipc.ExistentialError):
                sysv_ipc.SharedMemory(key_for(u)).remove()
