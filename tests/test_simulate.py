"""The simulator: what it transmits, its receiver faults, and its CLI."""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import itertools
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from clirun import run_cli

from dcf77shm import timecode
from dcf77shm.cli.main import main
from dcf77shm.decode.pipeline import decode_edges
from dcf77shm.formats.edgelog import read_edges
from dcf77shm.model import NS_PER_MS, NS_PER_S, Edge, MinuteReport, Polarity
from dcf77shm.sources.simulate import LeapClock, SimParams, SimResult, simulate

BERLIN = ZoneInfo("Europe/Berlin")
MS = NS_PER_MS


def _utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> int:
    return calendar.timegm((y, mo, d, h, mi, s))


def _pulses(sim: SimResult, active: int) -> list[tuple[int, int | None]]:
    """(leading edge, width) of every reduced-carrier interval; width None when
    the log ends during the pulse."""
    out: list[tuple[int, int | None]] = []
    for a, b in itertools.pairwise([*sim.edges, None]):
        if a is not None and a.level == active:
            out.append((a.time_ns, None if b is None else b.time_ns - a.time_ns))
    return out


def test_clean_simulation_decodes_to_the_transmitted_time() -> None:
    """Every minute the strict pipeline reports encodes the minute after its
    marker, per German civil time (tzdata, not our own timecode_for)."""
    start = _utc(2024, 10, 27, 0, 17, 23)  # spans the CEST -> CET change at 01:00 UTC
    sim = simulate(SimParams(start_s=start, duration_s=1500))
    reports = [e for e in decode_edges(sim.edges, decoder="strict") if isinstance(e, MinuteReport)]
    assert len(reports) >= 23 and all(r.ok for r in reports)
    for r in reports:
        assert r.utc_s is not None and r.utc_s % 60 == 0
        # The marker is the leading edge of second 0 of the encoded minute.
        assert r.marker_ns == r.utc_s * NS_PER_S
        tc = timecode.decode([int(c) for c in r.bits])
        local = dt.datetime.fromtimestamp(r.utc_s, BERLIN)
        assert (tc.year, tc.month, tc.day, tc.hour, tc.minute, tc.cest) == (
            local.year,
            local.month,
            local.day,
            local.hour,
            local.minute,
            bool(local.dst()),
        )
        # The frame's bits are the truth marks of the minute before the marker.
        truth = [m.bit for m in sim.marks if r.utc_s - 60 <= m.label_s < r.utc_s]
        assert r.bits == "".join(map(str, truth))
    assert any(r.extra.dst_announce for r in reports)


@pytest.mark.parametrize("polarity", [Polarity.HIGH, Polarity.LOW])
def test_polarity_and_pulse_widths(polarity: Polarity) -> None:
    start = _utc(2023, 5, 6, 7, 8, 9)
    sim = simulate(SimParams(start_s=start, duration_s=180, polarity=polarity))
    active = 1 if polarity is Polarity.HIGH else 0
    assert [e.level for e in sim.edges[:4]] == [active, 1 - active] * 2
    pulses = _pulses(sim, active)
    assert [p[0] for p in pulses] == [m.sys_ns for m in sim.marks]
    widths = [(200 if m.bit else 100) * MS for m in sim.marks]
    assert [p[1] for p in pulses[:-1]] == widths[:-1]
    assert pulses[-1][1] in (None, widths[-1])
    assert [m.sys_ns for m in sim.marks] == [m.label_s * NS_PER_S for m in sim.marks]
    # No pulse at second 59: 59 or 60 pulses per minute, never one for second 59.
    assert all(m.label_s % 60 != 59 for m in sim.marks)


def test_deterministic_with_seed() -> None:
    def make(seed: int) -> list[Edge]:
        p = SimParams(
            start_s=_utc(2030, 1, 2),
            duration_s=300,
            jitter_ms=10,
            width_spread_ms=15,
            glitch_rate=0.5,
            drop_rate=0.05,
            flip_rate=0.05,
            seed=seed,
        )
        return simulate(p).edges

    assert make(7) == make(7)
    assert make(7) != make(8)


@pytest.mark.parametrize("leap_clock", list(LeapClock))
def test_leap_second(leap_clock: LeapClock) -> None:
    end = _utc(2016, 12, 31, 23, 59, 59) + 1
    start = end - 1800 + 13
    sim = simulate(
        SimParams(
            start_s=start, duration_s=1900, leap_second_ends=frozenset({end}), leap_clock=leap_clock
        )
    )
    by_label = {m.label_s: m for m in sim.marks}
    # The leap minute's frame (60 bits, bit 59 = 0) encodes 00:00 UTC with A2 set.
    leap_minute = [m.bit for m in sim.marks if end - 60 <= m.label_s < end]
    assert len(leap_minute) == 60 and leap_minute[59] == 0
    tc = timecode.decode(leap_minute)
    assert tc.utc_s() == end and tc.leap_announce
    assert [m.bit for m in sim.marks if end - 120 <= m.label_s < end - 60][19] == 1  # A2
    assert [m.bit for m in sim.marks if end <= m.label_s < end + 60][19] == 0
    # Second 60 is silent: the mark after 23:59:59 is 00:00:00, two SI seconds later,
    # which the system clock shows as 1 s (kernel stepped back) or 2 s (runs on).
    gap = by_label[end].sys_ns - by_label[end - 1].sys_ns
    assert gap == (NS_PER_S if leap_clock is LeapClock.STEP else 2 * NS_PER_S)
    pulses = _pulses(sim, 1)
    assert not [p for p in pulses if by_label[end - 1].sys_ns < p[0] < by_label[end].sys_ns]
    # Before the leap the system clock reads true time; after it, true time in
    # STEP mode and one second ahead in RUN mode.
    assert by_label[end - 1].sys_ns == (end - 1) * NS_PER_S
    ahead = 0 if leap_clock is LeapClock.STEP else NS_PER_S
    assert by_label[end + 5].sys_ns == (end + 5) * NS_PER_S + ahead


def test_clock_offset_shifts_every_edge() -> None:
    base = SimParams(start_s=_utc(2025, 6, 1), duration_s=120, jitter_ms=8, seed=4)
    a = simulate(base)
    offset_ms = -1234.5
    b = simulate(dataclasses.replace(base, clock_offset_ms=offset_ms))
    shift = round(offset_ms * MS)
    assert [e.time_ns + shift for e in a.edges] == [e.time_ns for e in b.edges]
    assert [m.sys_ns + shift for m in a.marks] == [m.sys_ns for m in b.marks]
    assert [m.label_s for m in a.marks] == [m.label_s for m in b.marks]


def test_delay_and_rate() -> None:
    start = _utc(2025, 6, 1)
    sim = simulate(SimParams(start_s=start, duration_s=600, delay_ms=35, rate_ppm=500))
    for m in sim.marks:
        si = m.label_s - start
        assert abs(m.sys_ns - (start * NS_PER_S + round((si * NS_PER_S + 35 * MS) * 1.0005))) <= 1


def test_fades_remove_pulses_but_not_the_truth() -> None:
    start = _utc(2022, 8, 9, 10, 11, 12)
    sim = simulate(SimParams(start_s=start, duration_s=300, fades=((100, 30),)))
    lo, hi = (start + 100) * NS_PER_S, (start + 130) * NS_PER_S
    assert not [e for e in sim.edges if lo <= e.time_ns < hi]
    assert [e for e in sim.edges if e.time_ns < lo] and [e for e in sim.edges if e.time_ns >= hi]
    marks_in_fade = [m for m in sim.marks if lo <= m.sys_ns < hi]
    assert len(marks_in_fade) >= 29  # the truth still lists what was sent
    assert len(_pulses(sim, 1)) == len(sim.marks) - len(marks_in_fade)


def test_cli_simulate_writes_a_log(tmp_path: Path) -> None:
    out = tmp_path / "s.edges.gz"
    truth = tmp_path / "t.jsonl"
    args: list[str | Path] = [
        "simulate",
        "--start",
        "2024-02-29T12:00:30Z",
        "--duration",
        "3m",
        "-o",
        out,
    ]
    r = run_cli(*args, "--seed", "5", "--jitter-ms", "5", "--truth", truth)
    assert r.returncode == 0 and r.stdout == ""
    edges = read_edges(out)
    want = simulate(
        SimParams(start_s=_utc(2024, 2, 29, 12, 0, 30), duration_s=180, jitter_ms=5, seed=5)
    )
    assert edges == want.edges
    assert len(truth.read_text().splitlines()) == len(want.marks)


BAD_OPTIONS = [
    ["--start", "yesterday"],
    ["--start", "2024-13-01T00:00:00Z"],
    ["--duration", "0"],
    ["--duration", "ten minutes"],
    ["--duration", "-5m"],
    ["--fade", "100"],
    ["--fade", "100:0"],
    ["--fade", "-1:10"],
    ["--jitter-ms", "-1"],
    ["--drop-rate", "1.5"],
    ["--flip-rate", "-0.1"],
    ["--glitch-rate", "1000"],
    ["--rate-ppm", "20000"],
    ["--polarity", "sideways"],
    ["--leap-second", "2016-31-12"],
    ["--leap-clock", "smear"],
]


@pytest.mark.parametrize("bad", BAD_OPTIONS, ids=[" ".join(b) for b in BAD_OPTIONS])
def test_cli_simulate_bad_options(
    tmp_path: Path, bad: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never.edges"
    with pytest.raises(SystemExit) as ei:
        main(["simulate", "--duration", "2m", "-o", str(out), *bad])
    assert ei.value.code == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert len(cap.err.splitlines()) == 1 and cap.err.startswith("dcf77shm: ")
    assert not list(tmp_path.iterdir())  # no output file, no temp file


def test_cli_simulate_bad_option_in_a_real_process(tmp_path: Path) -> None:
    r = run_cli("simulate", "--start", "soon", "-o", tmp_path / "x.edges")
    assert (r.returncode, r.stdout) == (2, "")
    assert len(r.stderr.splitlines()) == 1 and "--start" in r.stderr
    assert not list(tmp_path.iterdir())


def test_random_start_lies_in_the_past_and_follows_the_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dcf77shm.cli.options import DCF77_FIRST_S, random_start

    today_s = calendar.timegm(dt.datetime.now(dt.UTC).date().timetuple())
    for seed in range(200):
        for duration_s in (60.0, 86400.0, 40 * 86400.0):
            s = random_start(seed, duration_s)
            assert s >= DCF77_FIRST_S and s + duration_s < today_s
    assert len({random_start(seed, 3600) for seed in range(50)}) == 50
    out = tmp_path / "r.edges"
    main(["simulate", "--duration", "2m", "--seed", "7", "-o", str(out)])
    first = read_edges(out)
    assert first[-1].time_ns < today_s * NS_PER_S
    main(["simulate", "--duration", "2m", "--seed", "7", "-o", str(out)])
    assert read_edges(out) == first
    capsys.readouterr()
