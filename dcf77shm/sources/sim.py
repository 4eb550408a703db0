"""``sim``: a simulated DCF77 receiver, paced in real time (demos, end-to-end tests).

``offset_ms`` is the simulated radio clock minus the system clock: with
``offset_ms=25`` the transmitter's second marks reach the line 25 ms *before*
the system clock shows the whole second, so chrony should measure the system
clock 25 ms slow (sample offset clock - receive = +25 ms).

:func:`dcf77shm.sources.simulate.simulate` is batch; this source calls it for one
chunk of ``CHUNK_S`` seconds at a time and releases each edge when the system
clock reaches it, so a long run holds a bounded number of edges.

``start``: ``minute`` (default) has the receiver switched on just before the
last minute marker of the radio clock; the edges since then (< 60 s of them)
go at once, as a paced replay hands on edges already past, so the strict
decoder locks 60-120 s after start.  ``now`` starts cold at the next second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from dcf77shm.errors import BadInput
from dcf77shm.model import NS_PER_MS, NS_PER_S, Edge, Gap, Polarity
from dcf77shm.sources.simulate import SimParams, simulate

CHUNK_S = 120
# Each chunk ends half a second before the next begins (no pulse is running
# then), so pulses never straddle two chunks.
_TAIL_S = 0.5

_FLOATS = {
    "offset_ms": (-1e9, 1e9),
    "delay_ms": (0.0, 500.0),
    "jitter_ms": (0.0, 200.0),
    "glitch_rate": (0.0, 100.0),
    "drop_rate": (0.0, 1.0),
    "flip_rate": (0.0, 1.0),
}


def raw_ns() -> int:
    """CLOCK_MONOTONIC_RAW: the host's steady clock (never stepped, never slewed)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)


class SimSource:
    live = True  # paced in real time
    host_steady = True  # its edges carry this host's CLOCK_MONOTONIC_RAW

    def __init__(
        self,
        offset_ms: float = 0.0,
        start: str = "minute",
        polarity: Polarity = Polarity.HIGH,
        seed: int = 0,
        clock: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], None] = time.sleep,
        noise: Mapping[str, float] | None = None,
        mono_clock: Callable[[], int] = raw_ns,
    ) -> None:
        self.offset_ns = round(offset_ms * NS_PER_MS)
        self.start = start
        self.polarity = polarity
        self.seed = seed
        self.noise = dict(noise or {})  # SimParams fields: jitter_ms, glitch_rate...
        self.description = f"sim (radio clock {offset_ms:+g} ms from the system clock)"
        self._clock = clock
        self._sleep = sleep
        self.mono_clock = mono_clock
        self._rt_minus_mono = 0
        self._edges: list[Edge] = []
        self._i = 0
        self._next_s = 0  # radio-clock second where the next chunk starts
        self._chunk = 0

    @classmethod
    def from_spec(cls, arg: str, options: Mapping[str, object]) -> SimSource:
        if arg:
            raise BadInput(f"sim takes no argument, got sim:{arg}; use the --sim-* options")
        kw: dict[str, float] = {}
        for name, (lo, hi) in _FLOATS.items():
            v = options.get(name)
            if v is None:
                continue
            if not isinstance(v, int | float) or not lo <= v <= hi:
                raise BadInput(f"bad sim {name} {v!r}: must be between {lo:g} and {hi:g}")
            kw[name] = float(v)
        start = str(options.get("start", "minute"))
        if start not in ("minute", "now"):
            raise BadInput(f"bad sim start {start!r}: minute or now")
        seed = options.get("seed", 0)
        pol = options.get("polarity", Polarity.HIGH)
        if not isinstance(seed, int) or not isinstance(pol, Polarity) or pol is Polarity.AUTO:
            raise BadInput("sim needs an integer seed and polarity high or low")
        offset = kw.pop("offset_ms", 0.0)
        return cls(offset, start, pol, seed, noise=kw)

    def open(self) -> None:
        self._rt_minus_mono = self._clock() - self.mono_clock()
        radio_now_s = (self._clock() + self.offset_ns) // NS_PER_S
        self._next_s = radio_now_s - radio_now_s % 60 if self.start == "minute" else radio_now_s + 1
        self._edges, self._i, self._chunk = [], 0, 0

    def _generate(self) -> None:
        p = SimParams(
            start_s=self._next_s,
            duration_s=CHUNK_S - _TAIL_S,
            polarity=self.polarity,
            clock_offset_ms=-self.offset_ns / NS_PER_MS,  # simulate(): system minus true
            seed=self.seed + self._chunk,
            delay_ms=self.noise.get("delay_ms", 0.0),
            jitter_ms=self.noise.get("jitter_ms", 0.0),
            glitch_rate=self.noise.get("glitch_rate", 0.0),
            drop_rate=self.noise.get("drop_rate", 0.0),
            flip_rate=self.noise.get("flip_rate", 0.0),
            # The steady clock reads the host's CLOCK_MONOTONIC_RAW at the same moments.
            mono_start_ns=self._next_s * NS_PER_S - self.offset_ns - self._rt_minus_mono,
        )
        edges = simulate(p).edges
        if edges and edges[-1].level == (1 if self.polarity is Polarity.HIGH else 0):
            edges.pop()  # a glitch cut by the chunk end: drop its lone leading edge
        self._edges, self._i = edges, 0
        self._next_s += CHUNK_S
        self._chunk += 1

    def read(self, timeout_s: float) -> list[Edge | Gap] | None:
        now = self._clock()
        if self._i >= len(self._edges):
            # Generate the next chunk only when its time comes near, so a
            # chunk without edges (drop_rate 1) does not race ahead.
            if self._next_s * NS_PER_S - self.offset_ns > now + NS_PER_S:
                self._sleep(timeout_s)
                return []
            self._generate()
            if not self._edges:
                return []
        due = self._edges[self._i].time_ns
        if due > now:
            self._sleep(min(due - now, round(timeout_s * NS_PER_S)) / NS_PER_S)
            now = self._clock()
        j = self._i
        while j < len(self._edges) and self._edges[j].time_ns <= now:
            j += 1
        out: list[Edge | Gap] = list(self._edges[self._i : j])
        self._i = j
        return out

    def close(self) -> None:
        self._edges = []
