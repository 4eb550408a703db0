"""The learnt pulse-width offset (dcf77shm.decode.widths)."""

from __future__ import annotations

import random

from dcf77shm.decode.widths import DEADBAND_NS, LIMIT_NS, WidthOffset
from dcf77shm.model import NS_PER_MS

MS = NS_PER_MS


def _feed(w: WidthOffset, offset_ms: float, spread_ms: float, n: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    for _ in range(n):
        bit = rnd.random() < 0.4
        width = round((100 + 100 * bit + offset_ms + rnd.gauss(0, spread_ms)) * MS)
        # Judged as a decoder would: against the threshold the offset gives now.
        w.learn(width, int(width - w.ns >= 150 * MS))


def test_a_near_nominal_receiver_is_read_as_before() -> None:
    w = WidthOffset()
    _feed(w, 8.0, 10.0, 600)
    assert w.ns == 0  # inside the deadband: the fixed thresholds


def test_a_stretching_receiver_is_learnt_within_minutes() -> None:
    w = WidthOffset()
    _feed(w, 40.0, 20.0, 240)  # four minutes of pulses
    assert abs(w.ns - 40 * MS) < 6 * MS
    w.reset()
    assert w.ns == 0
    _feed(w, -30.0, 10.0, 240)
    assert abs(w.ns + 30 * MS) < 5 * MS


def test_outliers_and_limits() -> None:
    w = WidthOffset()
    for _ in range(500):
        w.learn(40 * MS, 0)  # glitch-short "zeros", 60 ms under nominal: ignored
        w.learn(300 * MS, 1)  # merged pulses, 100 ms over: ignored
    assert w.ns == 0
    for off in range(101):  # an offset walking out to +100 ms is followed, then held
        for _ in range(64):
            w.learn((100 + off) * MS, 0)
        if off == 30:
            assert DEADBAND_NS < w.ns < 31 * MS
    assert w.ns == LIMIT_NS
