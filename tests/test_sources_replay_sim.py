"""replay and sim sources: pacing on the system clock, chunked simulation."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from dcf77shm.decode.pipeline import Pipeline
from dcf77shm.errors import BadInput
from dcf77shm.formats.edgelog import write_edges
from dcf77shm.model import NS_PER_S, Edge, Gap, Polarity, Sample, Step
from dcf77shm.sources import open_source
from dcf77shm.sources.replay import ReplaySource
from dcf77shm.sources.sim import CHUNK_S, SimSource

MS = 1_000_000


class FakeClock:
    """The system clock, moved only by sleep (so pacing is checked exactly)."""

    def __init__(self, t_ns: int) -> None:
        self.t = t_ns
        self.slept = 0.0

    def __call__(self) -> int:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept += s
        self.t += round(s * NS_PER_S)


def test_replay_unpaced_hands_on_everything_then_ends(tmp_path: Path) -> None:
    edges = [Edge(i * 100 * MS, i % 2) for i in range(10_000)]
    write_edges(tmp_path / "a.edges", edges)
    src = open_source(f"replay:{tmp_path / 'a.edges'}")
    src.open()
    got: list[Edge | Gap | Step] = []
    while (items := src.read(0.2)) is not None:
        got += items
    assert got == edges
    src.close()


def test_replay_paced_waits_for_the_clock(tmp_path: Path) -> None:
    t0 = 1_700_000_000 * NS_PER_S
    edges = [
        Edge(t0 - 5 * MS, 1),
        Edge(t0 - MS, 0),
        Edge(t0 + 500 * MS, 1),
        Edge(t0 + 2 * NS_PER_S, 0),
    ]
    write_edges(tmp_path / "a.edges", edges)
    clock = FakeClock(t0)
    src = ReplaySource(tmp_path / "a.edges", pace=True, clock=clock, sleep=clock.sleep)
    src.open()
    assert src.read(0.2) == edges[:2]  # already past: at once
    assert src.read(0.2) == [] and clock.t == t0 + 200 * MS  # timeout, nothing due
    assert src.read(1.0) == [edges[2]] and clock.t == edges[2].time_ns  # exactly on time
    assert src.read(5.0) == [edges[3]] and clock.t == edges[3].time_ns
    assert src.read(0.2) is None


def test_replay_refuses_bad_file_at_open(tmp_path: Path) -> None:
    (tmp_path / "bad.edges").write_text("not a log\n")
    with pytest.raises(BadInput, match="header"):
        open_source(f"replay:{tmp_path / 'bad.edges'}").open()


def _run_sim(src: SimSource, clock: FakeClock, seconds: int) -> list[Edge]:
    got: list[Edge] = []
    end = clock.t + seconds * NS_PER_S
    while clock.t < end:
        items = src.read(0.2)
        assert items is not None
        for it in items:
            assert isinstance(it, Edge)
            assert it.time_ns <= clock.t  # never handed on before its time
            got.append(it)
    return got


def test_sim_starts_at_last_minute_marker_and_chunks_seamlessly() -> None:
    offset_ms = 25.0
    now = 1_700_000_037 * NS_PER_S + 400 * MS  # radio second 37 of a minute
    clock = FakeClock(now)
    src = SimSource(offset_ms, clock=clock, sleep=clock.sleep)
    src.open()
    edges = _run_sim(src, clock, 2 * CHUNK_S + 30)
    radio_minute = (now + 25 * MS) // NS_PER_S // 60 * 60
    first = edges[0]
    assert (first.time_ns, first.level) == (radio_minute * NS_PER_S - 25 * MS, 1)  # the marker
    # Both clocks on every edge; with no step between them, a constant offset.
    assert len({e.time_ns - (e.mono_ns or 0) for e in edges}) == 1
    times = [e.time_ns for e in edges]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all(a.level != b.level for a, b in itertools.pairwise(edges))
    # Decoded, the samples carry exactly the injected offset: clock - receive = +25 ms
    pipe = Pipeline(Polarity.AUTO)
    samples = [ev for e in edges for ev in pipe.feed(e) if isinstance(ev, Sample)]
    assert len(samples) > 100
    assert {s.offset_ns for s in samples} == {25 * MS}


def test_sim_options_are_checked() -> None:
    with pytest.raises(BadInput, match="jitter_ms"):
        open_source("sim", {"jitter_ms": -1.0})
    with pytest.raises(BadInput, match="no argument"):
        open_source("sim:x")
    src = open_source("sim", {"offset_ms": -40.0, "jitter_ms": 3.0, "start": "now"})
    assert isinstance(src, SimSource) and src.offset_ns == -40 * MS


def test_sim_noise_keeps_the_line_consistent_across_chunks() -> None:
    clock = FakeClock(1_700_000_010 * NS_PER_S)
    src = SimSource(
        -40.0,
        clock=clock,
        sleep=clock.sleep,
        seed=5,
        noise={"jitter_ms": 5.0, "glitch_rate": 0.3},
    )
    src.open()
    edges = _run_sim(src, clock, 3 * CHUNK_S)
    times = [e.time_ns for e in edges]
    assert times == sorted(times)
    assert all(a.level != b.level for a, b in itertools.pairwise(edges))
