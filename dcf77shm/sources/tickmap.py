"""pigpio ticks -> CLOCK_REALTIME and CLOCK_MONOTONIC_RAW: correlation, unwrap,
rate and clock steps (pure).

pigpiod stamps every level change with its *tick*: the SoC's free-running 1 MHz
system timer, truncated to 32 bits (wraps every 2^32 µs = 71.6 min) and not
disciplined by chrony.  We learn the mapping by correlation: read CLOCK_REALTIME,
ask pigpiod for the current tick, read the clock again.  The tick was taken
somewhere inside that round trip, so the midpoint is the estimate and half the
round trip bounds the error; only the tightest round trips are kept.  A line
through the recent points gives offset and rate (the timer and the disciplined
system clock differ by tens of ppm, i.e. tens of µs per second).

System-clock steps (chronyd's makestep, settimeofday, a leap second) move
CLOCK_REALTIME but not CLOCK_MONOTONIC, while slewing moves both equally; so a
change of REALTIME - MONOTONIC between correlations is a step, known to the
nanosecond.  The mapping is simply shifted by it: it stays right in the new
clock's terms, and the caller decides whether the step breaks the edge stream.

The same points map ticks to CLOCK_MONOTONIC_RAW, the pipeline's steady
timeline: the tick and RAW both count the SoC's crystal, unslewed, so that
fit never steps and its rate is constant.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

WRAP = 1 << 32
HALF_WRAP = 1 << 31
# REALTIME-MONOTONIC may wobble by the read jitter of the two clocks; beyond
# this it is a step.
STEP_NOISE_NS = 20_000


def tick_diff(a: int, b: int) -> int:
    """a - b for 32-bit wrapping ticks, in -2^31 .. 2^31-1 µs (±35.8 min)."""
    return (a - b + HALF_WRAP) % WRAP - HALF_WRAP


@dataclass(frozen=True, slots=True)
class Correlation:
    """One tick round trip: the raw tick, the midpoint and length of the round
    trip on CLOCK_REALTIME, and REALTIME - MONOTONIC at that moment."""

    tick: int
    realtime_ns: int
    rtt_ns: int
    rt_minus_mono_ns: int
    raw_ns: int | None = None  # CLOCK_MONOTONIC_RAW at the midpoint


class TickMap:
    """Maps raw pigpio ticks to CLOCK_REALTIME nanoseconds.

    Keeps the last ``window`` correlations (each already the best of a burst),
    unwrapped onto a 64-bit µs axis; fits offset and rate by least squares over
    those whose round trip is not much worse than the best in the window.
    """

    def __init__(self, window: int = 16) -> None:
        self._points: deque[tuple[int, int, int]] = deque(maxlen=window)  # ext tick, rt, rtt
        self._raw: deque[tuple[int, int, int]] = deque(maxlen=window)  # ext tick, raw, rtt
        self._last_tick: int | None = None
        self._last_ext = 0
        self._rt_mono: int | None = None
        self._fit: tuple[int, int, float] | None = None  # ext tick, rt ns, ns per tick
        self._raw_fit: tuple[int, int, float] | None = None

    @property
    def ready(self) -> bool:
        return self._fit is not None

    def __len__(self) -> int:
        return len(self._points)

    @property
    def rt_minus_mono_ns(self) -> int:
        """REALTIME - MONOTONIC as of the last correlation (0 before the first)."""
        return self._rt_mono or 0

    @property
    def rate_ppm(self) -> float:
        """How fast the tick runs against the system clock (ppm)."""
        return 0.0 if self._fit is None else (1000.0 / self._fit[2] - 1.0) * 1e6

    def add(self, c: Correlation) -> int:
        """Take a correlation; returns the system-clock step seen since the last one (ns)."""
        step = 0
        if self._rt_mono is not None:
            d = c.rt_minus_mono_ns - self._rt_mono
            if abs(d) > STEP_NOISE_NS:
                step = d
                # The old points are right in the new clock's terms once shifted.
                self._points = deque(
                    ((t, rt + d, rtt) for t, rt, rtt in self._points), maxlen=self._points.maxlen
                )
        if step or self._rt_mono is None:
            self._rt_mono = c.rt_minus_mono_ns
        ext = self._extend(c.tick)
        self._points.append((ext, c.realtime_ns, c.rtt_ns))
        self._fit = _fit(self._points)
        if c.raw_ns is not None:
            self._raw.append((ext, c.raw_ns, c.rtt_ns))
            self._raw_fit = _fit(self._raw)
        return step

    def _extend(self, tick: int) -> int:
        if self._last_tick is None:
            self._last_ext = tick
        else:
            self._last_ext += tick_diff(tick, self._last_tick)
        self._last_tick = tick
        return self._last_ext

    def to_realtime_ns(self, tick: int) -> int:
        """CLOCK_REALTIME of a raw tick within ±35 min of the last correlation."""
        return self._map(self._fit, tick)

    def to_raw_ns(self, tick: int) -> int:
        """CLOCK_MONOTONIC_RAW of a raw tick within ±35 min of the last correlation."""
        return self._map(self._raw_fit, tick)

    def _map(self, fit: tuple[int, int, float] | None, tick: int) -> int:
        if fit is None or self._last_tick is None:
            raise ValueError("no correlation yet")
        t0, y0, slope = fit
        ext = self._last_ext + tick_diff(tick, self._last_tick)
        return y0 + round((ext - t0) * slope)


def _fit(points: deque[tuple[int, int, int]]) -> tuple[int, int, float]:
    """Offset and rate by least squares over the round trips not much worse than the best."""
    best = min(rtt for _t, _y, rtt in points)
    # Round trips well above the best carry more asymmetry than information.
    pts = [(t, y) for t, y, rtt in points if rtt <= 2 * best + 20_000]
    t0, y0 = pts[-1]
    slope = 1000.0
    if len(pts) >= 3 and pts[-1][0] - pts[0][0] >= 500_000:
        n = len(pts)
        mx = sum(t - t0 for t, _ in pts) / n
        my = sum(y - y0 for _, y in pts) / n
        sxx = sum((t - t0 - mx) ** 2 for t, _ in pts)
        sxy = sum((t - t0 - mx) * (y - y0 - my) for t, y in pts)
        slope = sxy / sxx
        # Anchor on the fitted line at the mean, which averages the offsets.
        y0 = round(y0 + my - slope * mx)
    return t0, y0, slope
