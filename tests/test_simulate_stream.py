"""simulate streams: the same bytes as when everything was drawn first and
sorted at the end, in memory that does not grow with the duration."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest
from clirun import run_cli

from dcf77shm.model import Polarity
from dcf77shm.sources.simulate import LeapClock, Segment, SegmentKind, SimParams, simulate, stream

LEAP_END = 1_483_228_800  # 2017-01-01T00:00:00Z, after the leap second of 2016-12-31

CASES = {
    "plain": SimParams(start_s=1_700_000_000, duration_s=600, seed=1),
    "noisy": SimParams(
        start_s=1_700_000_000, duration_s=900, seed=2, jitter_ms=150, width_spread_ms=20,
        glitch_rate=0.5, glitch_ms=30, drop_rate=0.05, flip_rate=0.02, delay_ms=600,
        fades=((100, 50),), polarity=Polarity.LOW, rate_ppm=500, clock_offset_ms=-2500,
    ),
    # A spoofer more than a second early overtakes the genuine pulses before it.
    "segments": SimParams(
        start_s=1_700_000_000, duration_s=1200, seed=3, delay_ms=-900,
        segments=(
            Segment(200, 300, SegmentKind.SPOOF, shift_s=3600, phase_ms=900,
                    drift_ms_per_min=-400, leap_announce=True),
            Segment(600, 100, SegmentKind.NOISE, rate=5.0),
            Segment(800, 60, SegmentKind.SILENCE),
            Segment(900, 120, SegmentKind.NOISE, rate=1.0),
        ),
        glitch_rate=2.0, clock_steps=((300, -2.5), (700, 60)),
    ),
    "leap-step": SimParams(
        start_s=LEAP_END - 600, duration_s=1200, seed=4, leap_second_ends=frozenset({LEAP_END}),
        delay_ms=1000, jitter_ms=30,
    ),
    "leap-run": SimParams(
        start_s=LEAP_END - 600, duration_s=1200.5, seed=5, leap_second_ends=frozenset({LEAP_END}),
        leap_clock=LeapClock.RUN, delay_ms=-1000,
    ),
}  # fmt: skip

# sha256 of the edges and truth marks, computed with the simulator as it was
# before it streamed (every interval drawn, then sorted, then merged).
GOLDEN = {
    "plain": "72168d933b44f6e823fb67a3c871361b6394b0a2eb1661595289d2ee2dfe8605",
    "noisy": "5bb540daf7078822ebcf7680620eed844d1b1f026c11311711c0ea232305de77",
    "segments": "1bbacd6831eed132d99a349eb9ffc6a144dc7d65749ad0148f3b80fa0bafb605",
    "leap-step": "8404be44911b6e7a313beb95722137fbfffe9580fa4d853b99106e12aa8e13d5",
    "leap-run": "5f774c11ee613ee0fbe37570f71d71bf73182753718bc1b002bccd89a3e68a10",
}

# The same for the CLI's files (edge log, truth), by the code before it streamed.
CLI_ARGS = (
    "--duration", "2h", "--seed", "9", "--jitter-ms", "40", "--glitch-rate", "0.3",
    "--clock-step", "900:-3", "--leap-second", "2016-12-31", "--start", "2016-12-31T23:00:00Z",
)  # fmt: skip
CLI_GOLDEN = {
    "v1": (
        "885afc9c43f1b05dad5e0ce19cc65123653f6c337b5fae3be42bdaf1cc273739",
        "90081f324a47e45b70fb9ced2abd1062abb25ed2f3d521ab82322f006f80fed5",
    ),
    "v2": (
        "2727130b3c15e9023509afa7477111d2fffd018dab737bfc369f15181b16c091",
        "90081f324a47e45b70fb9ced2abd1062abb25ed2f3d521ab82322f006f80fed5",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_edges_and_truth_as_before_it_streamed(name: str) -> None:
    r = simulate(CASES[name])
    h = hashlib.sha256()
    for e in r.edges:
        h.update(f"{e.time_ns} {e.level} {e.mono_ns}\n".encode())
    for m in r.marks:
        h.update(f"{m.label_s} {m.sys_ns} {m.bit} {m.mono_ns}\n".encode())
    assert h.hexdigest() == GOLDEN[name]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_cli_writes_the_same_bytes_as_before(version: str, tmp_path: Path) -> None:
    log, truth = tmp_path / "x.edges", tmp_path / "truth.jsonl"
    r = run_cli("simulate", *CLI_ARGS, "--format", version, "-o", log, "--truth", truth)
    assert r.returncode == 0, r.stderr
    got = (
        hashlib.sha256(log.read_bytes()).hexdigest(),
        hashlib.sha256(truth.read_bytes()).hexdigest(),
    )
    assert got == CLI_GOLDEN[version]


def test_edges_come_before_the_simulation_ends() -> None:
    """The first edges of 1,000 days come at once: nothing waits for the end."""
    p = SimParams(start_s=1_000_000_000, duration_s=1000 * 86400, seed=1, jitter_ms=5)
    marks: list[object] = []
    first = list(itertools.islice(stream(p, marks.append), 200))
    assert len(first) == 200 and first[0].time_ns < first[-1].time_ns
    assert len(marks) < 150  # it drew the seconds it needed, a few ahead


def test_absurd_durations_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "x.edges"
    for duration in ("100000d", "99999999999999999999999999d"):
        r = run_cli("simulate", "--duration", duration, "-o", out)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert "2000-2099" in r.stderr and "--duration" in r.stderr
    assert not list(tmp_path.iterdir())
