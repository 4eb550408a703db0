"""The pure tick -> CLOCK_REALTIME map: unwrap, rate, steps."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcf77shm.sources.tickmap import WRAP, Correlation, TickMap, tick_diff

T0_NS = 1_700_000_000 * 10**9


def feed(m: TickMap, tick0: int, ppm: float, secs: list[float], noise_ns: int, seed: int) -> None:
    """Correlations of a timer running ``ppm`` fast, starting at raw tick ``tick0``."""
    rng = random.Random(seed)
    for s in secs:
        rt = T0_NS + round(s * 1e9)
        tick = (tick0 + round(s * 1e6 * (1 + ppm * 1e-6))) % WRAP
        m.add(Correlation(tick, rt + rng.randint(-noise_ns, noise_ns), 50_000, 5 * 10**17))


def true_rt(tick0: int, ppm: float, ext_tick: int) -> float:
    return T0_NS + (ext_tick - tick0) * 1000 / (1 + ppm * 1e-6)


def test_tick_diff_wraps() -> None:
    assert tick_diff(5, WRAP - 5) == 10
    assert tick_diff(WRAP - 5, 5) == -10
    assert tick_diff(1000, 10) == 990


@settings(max_examples=60, deadline=None)
@given(
    tick0=st.integers(0, WRAP - 1),
    ppm=st.floats(-100, 100),
    noise_ns=st.integers(0, 3000),
    seed=st.integers(0, 1000),
)
def test_maps_across_the_wrap_with_rate(tick0: int, ppm: float, noise_ns: int, seed: int) -> None:
    m = TickMap()
    feed(m, tick0, ppm, [i * 1.0 for i in range(12)], noise_ns, seed)
    # An edge half a second after the last correlation, wherever the wrap falls.
    ext = tick0 + round(11.5e6 * (1 + ppm * 1e-6))
    got = m.to_realtime_ns(ext % WRAP)
    assert abs(got - true_rt(tick0, ppm, ext)) <= noise_ns + 1000
    assert abs(m.rate_ppm - ppm) < 1 + noise_ns / 1000


def test_unwrap_across_the_wrap_explicitly() -> None:
    m = TickMap()
    tick0 = WRAP - 2_000_000  # the counter wraps 2 s in
    feed(m, tick0, 0.0, [0.0, 1.0, 2.0, 3.0], 0, 0)
    # Ticks either side of the wrap map 1 s apart, not 71.6 min.
    before = m.to_realtime_ns(WRAP - 500_000)
    after = m.to_realtime_ns(500_000)
    assert after - before == 1_000_000_000


def test_a_clock_step_shifts_the_map_and_is_reported() -> None:
    m = TickMap()
    feed(m, 1000, 0.0, [0.0, 1.0, 2.0], 0, 0)
    before = m.to_realtime_ns(1000 + 2_500_000)
    # The system clock jumps 2 s forward: REALTIME - MONOTONIC grows by 2 s.
    step = m.add(Correlation(1000 + 3_000_000, T0_NS + 5 * 10**9, 50_000, 5 * 10**17 + 2 * 10**9))
    assert step == 2 * 10**9
    assert m.to_realtime_ns(1000 + 2_500_000) - before == 2 * 10**9
    # Small wobble of REALTIME - MONOTONIC is read jitter, not a step.
    assert (
        m.add(
            Correlation(1000 + 4_000_000, T0_NS + 6 * 10**9, 50_000, 5 * 10**17 + 2 * 10**9 + 3000)
        )
        == 0
    )


def test_no_correlation_no_mapping() -> None:
    with pytest.raises(ValueError):
        TickMap().to_realtime_ns(5)
