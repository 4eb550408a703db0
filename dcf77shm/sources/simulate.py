"""A simulated DCF77 receiver: the transmitted time code plus receiver faults.

Pure and deterministic for a given seed.  Besides the edges it returns the
truth: for every transmitted second mark, its UTC label and the system-clock
time at which its undisturbed leading edge leaves the receiver, so tests and
benchmarks can tell a right sample from a wrong one.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from dcf77shm import timecode
from dcf77shm.model import NS_PER_MS, NS_PER_S, Edge, Polarity


class LeapClock(enum.Enum):
    """What the system clock does at an inserted leap second."""

    STEP = "step"  # the kernel repeats 23:59:59 (minute looks 60 s long)
    RUN = "run"  # the clock runs on (minute looks 61 s long)


@dataclass(frozen=True)
class SimParams:
    start_s: int  # UTC POSIX second at which the recording starts
    duration_s: float
    delay_ms: float = 0.0  # receiver delay of every leading edge
    jitter_ms: float = 0.0  # sigma of the leading-edge time
    width_bias_ms: float = 0.0  # added to every pulse width
    width_spread_ms: float = 0.0  # sigma of the pulse width
    glitch_rate: float = 0.0  # glitches per second
    glitch_ms: float = 10.0  # mean glitch length (exponential)
    drop_rate: float = 0.0  # probability that a pulse is missing
    flip_rate: float = 0.0  # probability that a pulse has the other width
    fades: tuple[tuple[float, float], ...] = ()  # (start offset s, length s): no pulses
    polarity: Polarity = Polarity.HIGH  # line level while the carrier is reduced
    leap_second_ends: frozenset[int] = frozenset()  # POSIX s following each inserted leap second
    leap_clock: LeapClock = LeapClock.STEP
    clock_offset_ms: float = 0.0  # system clock minus true time
    rate_ppm: float = 0.0  # system-clock rate error
    seed: int = 0


@dataclass(frozen=True, slots=True)
class TruthMark:
    label_s: int  # UTC second of the mark (POSIX)
    sys_ns: int  # system-clock time of the undisturbed leading edge (delay included)
    bit: int


@dataclass
class SimResult:
    edges: list[Edge]
    marks: list[TruthMark] = field(default_factory=list)

    _keys: list[int] = field(default_factory=list, init=False, repr=False)
    _keys_of: int = field(default=0, init=False, repr=False)

    def label_at(self, receive_ns: int, tolerance_ns: int = 300 * NS_PER_MS) -> int | None:
        """The true label of the mark whose leading edge lies near ``receive_ns``."""
        import bisect

        if self._keys_of != id(self.marks) or len(self._keys) != len(self.marks):
            # Sorted once per list of marks, not once per question.
            self._keys = [m.sys_ns for m in self.marks]
            self._keys_of = id(self.marks)
        keys = self._keys
        i = bisect.bisect_left(keys, receive_ns)
        best = None
        for j in (i - 1, i):
            if not (0 <= j < len(keys) and abs(keys[j] - receive_ns) <= tolerance_ns):
                continue
            if best is None or abs(keys[j] - receive_ns) < abs(best.sys_ns - receive_ns):
                best = self.marks[j]
        return None if best is None else best.label_s


def _seconds(p: SimParams) -> Iterator[tuple[int, int, bool]]:
    """(label_s, SI seconds since start, is the inserted second 60) for each second."""
    si = 0
    t = p.start_s
    while si < p.duration_s + 1:
        yield t, si, False
        si += 1
        if t + 1 in p.leap_second_ends:
            yield t, si, True  # 23:59:60 shares its POSIX label with 23:59:59
            si += 1
        t += 1


def simulate(p: SimParams) -> SimResult:
    rng = random.Random(p.seed)
    frames: dict[int, list[int]] = {}

    def bit_for(label_s: int, leap60: bool) -> int | None:
        if leap60:
            return None
        minute = label_s - label_s % 60
        sec = label_s % 60
        bits = frames.get(minute)
        if bits is None:
            tc = timecode.timecode_for(minute + 60, p.leap_second_ends)
            leap_minute = minute + 60 in p.leap_second_ends
            bits = timecode.encode(tc, leap_minute=leap_minute)
            frames[minute] = bits
        return bits[sec] if sec < len(bits) else None

    rate = 1.0 + p.rate_ppm * 1e-6
    offset_ns = round(p.clock_offset_ms * NS_PER_MS)
    start_ns = p.start_s * NS_PER_S
    end_si_ns = round(p.duration_s * NS_PER_S)

    def to_sys(si_ns: float, stepped: bool) -> int:
        step = NS_PER_S if stepped else 0
        return start_ns + round(si_ns * rate) + offset_ns - step

    marks: list[TruthMark] = []
    active: list[tuple[int, int]] = []
    stepped = False
    for label, si, leap60 in _seconds(p):
        if leap60 and p.leap_clock is LeapClock.STEP:
            stepped = True  # from 23:59:60 on, the kernel clock reads one second less
        bit = bit_for(label, leap60)
        if bit is None:
            continue
        nominal = si * NS_PER_S + p.delay_ms * NS_PER_MS
        if nominal > end_si_ns or si * NS_PER_S < 0:
            continue
        marks.append(TruthMark(label, to_sys(nominal, stepped), bit))
        if any(f0 <= si < f0 + flen for f0, flen in p.fades):
            continue
        if p.drop_rate and rng.random() < p.drop_rate:
            continue
        width_ms = 200.0 if bit else 100.0
        if p.flip_rate and rng.random() < p.flip_rate:
            width_ms = 300.0 - width_ms
        width_ms += p.width_bias_ms + (rng.gauss(0, p.width_spread_ms) if p.width_spread_ms else 0)
        lead = nominal + (rng.gauss(0, p.jitter_ms) * NS_PER_MS if p.jitter_ms else 0)
        width_ns = max(5.0, width_ms) * NS_PER_MS
        active.append((to_sys(lead, stepped), to_sys(lead + width_ns, stepped)))
    if p.glitch_rate > 0:
        t = 0.0
        while True:
            t += rng.expovariate(p.glitch_rate)
            if t >= p.duration_s:
                break
            length = max(0.5, rng.expovariate(1.0 / p.glitch_ms)) * NS_PER_MS
            a = to_sys(t * NS_PER_S, False)
            active.append((a, a + round(length)))
    return SimResult(
        _edges(active, p.polarity, start_ns + offset_ns, to_sys(end_si_ns, False)), marks
    )


def _edges(active: list[tuple[int, int]], polarity: Polarity, lo: int, hi: int) -> list[Edge]:
    """Merge overlapping reduced-carrier intervals and emit the line's edges."""
    on = 1 if polarity is Polarity.HIGH else 0
    out: list[Edge] = []
    cur: tuple[int, int] | None = None
    for a, b in sorted(active):
        if cur is not None and a <= cur[1]:
            cur = (cur[0], max(cur[1], b))
            continue
        if cur is not None:
            out.extend(_pair(cur, on, lo, hi))
        cur = (a, b)
    if cur is not None:
        out.extend(_pair(cur, on, lo, hi))
    return out


def _pair(iv: tuple[int, int], on: int, lo: int, hi: int) -> list[Edge]:
    a, b = iv
    out = []
    if lo <= a <= hi:
        out.append(Edge(a, on))
    if lo <= b <= hi and a >= lo:
        out.append(Edge(b, 1 - on))
    return out
