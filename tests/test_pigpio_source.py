"""The pigpio source through the real ``pigpio`` client library against the fake pigpiod.

The fake runs in its own process (no GIL shared with the client, as with the
real daemon) and plays simulated edges in real time; it knows each edge's true
CLOCK_REALTIME time, which is what the source's timestamps are checked against.
"""

from __future__ import annotations

import itertools
import socket
import statistics
import time
from collections.abc import Iterator

import pytest

from dcf77shm.errors import BadInput, RuntimeFailure
from dcf77shm.model import Bias, Edge, Gap, Step
from dcf77shm.sources import open_source
from dcf77shm.sources.pigpio_source import PigpioSource
from dcf77shm.testing.fake_pigpiod import FG, WRAP, FakePigpiodProcess, Reported, simulated_signal

GPIO = 17
# The error budget: pigpiod's 5 µs sample period plus 10 µs (issue 4).  The
# first edges come before the rate is known, and the fake's own Python
# round-trip asymmetry adds a few µs, so single edges get a looser bound - and
# on a loaded machine (CI, a Pi 3) one correlation round trip can be delayed by
# 100 µs or more: the single-edge bound only catches mapping bugs (a wrap, a
# wrong offset: ms to s); bench/pigpio_timestamps.py measures the µs figures.
MEDIAN_US = 15
MAX_US = 300


@pytest.fixture
def fake() -> Iterator[FakePigpiodProcess]:
    with FakePigpiodProcess(gpio=GPIO, tick_start=WRAP - 2_500_000, rate_ppm=40) as f:
        yield f


def collect(
    src: PigpioSource, seconds: float, during: float = 0, action: object = None
) -> list[Edge | Gap | Step]:
    out: list[Edge | Gap | Step] = []
    start = time.monotonic()
    done = False
    while time.monotonic() - start < seconds:
        out += src.read(0.2) or []
        if action is not None and not done and time.monotonic() - start >= during:
            action()  # type: ignore[operator]
            done = True
    return out


def match(edges: list[Edge], truth: list[Reported], shift_ns: int = 0) -> list[float]:
    """Each delivered edge's error (µs) against the one true edge near it; asserts one-to-one."""
    errors = []
    used: set[int] = set()
    for e in edges:
        i = min(range(len(truth)), key=lambda k: abs(truth[k].true_ns + shift_ns - e.time_ns))
        assert i not in used, f"edge {e} delivered twice"
        assert truth[i].level == e.level
        used.add(i)
        errors.append((e.time_ns - truth[i].true_ns - shift_ns) / 1000)
    return errors


def start_source(fake: FakePigpiodProcess, **kw: object) -> PigpioSource:
    src = PigpioSource(GPIO, "127.0.0.1", fake.port, **kw)  # type: ignore[arg-type]
    src.open()
    return src


def test_timestamps_across_the_tick_wrap(fake: FakePigpiodProcess) -> None:
    src = start_source(fake)
    fake.play(simulated_signal(time.time_ns() + 300_000_000, 5))
    got = collect(src, 6)
    src.close()
    truth = fake.reported
    assert any(r.tick > WRAP - 3_000_000 for r in truth) and any(r.tick < 3_000_000 for r in truth)
    edges = [e for e in got if isinstance(e, Edge)]
    assert not [g for g in got if isinstance(g, Gap)]
    assert len(edges) == len(truth) >= 8
    errors = match(edges, truth)
    assert statistics.median(abs(x) for x in errors) <= MEDIAN_US, errors
    assert max(abs(x) for x in errors) <= MAX_US, errors


def _check_gap_once(got: list[Edge | Gap | Step], truth: list[Reported], words: str) -> None:
    gaps = [i for i, x in enumerate(got) if isinstance(x, Gap)]
    assert len(gaps) == 1, got
    gap = got[gaps[0]]
    assert isinstance(gap, Gap) and words in gap.reason
    before = [e for e in got[: gaps[0]] if isinstance(e, Edge)]
    after = [e for e in got[gaps[0] + 1 :] if isinstance(e, Edge)]
    assert len(before) >= 3 and len(after) >= 3, got
    # Nothing from before the loss comes after the gap; the stream goes forward.
    assert all(e.time_ns > gap.time_ns for e in after)
    times = [e.time_ns for e in before + after]
    assert times == sorted(times)
    assert max(abs(x) for x in match(before + after, truth)) <= MAX_US


def test_daemon_restart_gives_one_gap_and_a_clean_restart(fake: FakePigpiodProcess) -> None:
    src = start_source(fake)
    fake.play(simulated_signal(time.time_ns() + 300_000_000, 7))
    got = collect(src, 8, 2.5, lambda: fake.restart(tick_start=777_000_000, downtime_s=0.7))
    src.close()
    _check_gap_once(got, fake.reported, "pigpiod")


def test_dropped_connection(fake: FakePigpiodProcess) -> None:
    src = start_source(fake)
    fake.play(simulated_signal(time.time_ns() + 300_000_000, 7))
    got = collect(src, 8, 2.5, lambda: fake.drop("all"))
    src.close()
    _check_gap_once(got, fake.reported, "pigpiod")


def test_dead_notification_stream_is_noticed_by_the_watchdog(fake: FakePigpiodProcess) -> None:
    src = start_source(fake, watchdog_ms=500)
    fake.play(simulated_signal(time.time_ns() + 300_000_000, 8))
    got = collect(src, 9, 2.5, lambda: fake.drop("notify"))
    src.close()
    _check_gap_once(got, fake.reported, "notification stream dead")


def test_glitch_filter_timestamps_are_corrected(fake: FakePigpiodProcess) -> None:
    from dcf77shm.sources.simulate import SimParams, simulate

    start = time.time_ns() + 300_000_000
    sim = simulate(SimParams(1_700_000_000, 6, glitch_rate=3, glitch_ms=0.5, seed=3))
    fake.play(Edge(e.time_ns - 1_700_000_000 * 10**9 + start, e.level) for e in sim.edges)
    src = start_source(fake, glitch_filter_us=3000)
    got = collect(src, 7)
    src.close()
    assert (FG, GPIO, 3000) in fake.commands
    edges = [e for e in got if isinstance(e, Edge)]
    truth = fake.reported
    assert len(edges) == len(truth) and len(truth) < len(sim.edges)  # glitches filtered
    # Uncorrected, every edge would be 3 ms late.
    assert max(abs(x) for x in match(edges, truth)) <= MAX_US


def test_system_clock_step_gives_a_step_and_new_labels(fake: FakePigpiodProcess) -> None:
    offset = [0]
    src = start_source(fake, realtime_ns=lambda: time.time_ns() + offset[0])
    fake.play(simulated_signal(time.time_ns() + 300_000_000, 6))

    def step() -> None:
        offset[0] = 3 * 10**9

    got = collect(src, 7, 2.5, step)
    src.close()
    # No edge was lost: not a gap, a step, reported once, before the edges that
    # were mapped with the new clock.
    assert not [x for x in got if isinstance(x, Gap)]
    gaps = [i for i, x in enumerate(got) if isinstance(x, Step)]
    assert len(gaps) == 1 and abs(got[gaps[0]].delta_ns - 3 * 10**9) < 100_000  # type: ignore[union-attr]
    truth = fake.reported
    before = [e for e in got[: gaps[0]] if isinstance(e, Edge)]
    after = [e for e in got[gaps[0] + 1 :] if isinstance(e, Edge)]
    assert max(abs(x) for x in match(before, truth)) <= MAX_US
    assert len(after) >= 3
    assert max(abs(x) for x in match(after, truth, 3 * 10**9)) <= MAX_US
    # The steady timeline did not move with the system clock.
    steady = [e for e in got if isinstance(e, Edge)]
    assert all(e.mono_ns is not None for e in steady)
    assert all(b.mono_ns > a.mono_ns for a, b in itertools.pairwise(steady))  # type: ignore[operator]


def test_not_connected_is_one_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(RuntimeFailure) as e:
        PigpioSource(GPIO, "127.0.0.1", port).open()
    msg = str(e.value)
    assert "\n" not in msg and f"127.0.0.1:{port}" in msg
    assert "pigpiod" in msg and "PIGPIO_ADDR/PIGPIO_PORT" in msg


def test_spec_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIGPIO_ADDR", "10.1.2.3")
    monkeypatch.setenv("PIGPIO_PORT", "7777")
    src = open_source("pigpio:17", {"glitch_filter_us": 100, "bias": "pull-up"})
    assert isinstance(src, PigpioSource)
    assert (src.host, src.port, src.gpio, src.bias) == ("10.1.2.3", 7777, 17, Bias.PULL_UP)
    for spec, opts in [("pigpio:x", {}), ("pigpio:32", {}), ("pigpio:4", {"bias": "up"})]:
        with pytest.raises(BadInput):
            open_source(spec, opts)
    with pytest.raises(BadInput):
        open_source("pigpio:4", {"glitch_filter_us": 400_000})
