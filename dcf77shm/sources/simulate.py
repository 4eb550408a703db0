"""A simulated DCF77 receiver: the transmitted time code, receiver faults, the
host's clocks, and the attacks an installation meets.

Pure and deterministic for a given seed.  Besides the edges it returns the
truth: for every second mark of the *genuine* transmitter, its UTC label and
where its undisturbed leading edge lies on the host's system clock and steady
clock, so tests and benchmarks can tell a right sample from a wrong one
whatever the receiver actually heard.

The host has two clocks (see :mod:`dcf77shm.model`): a steady one
(``mono_ns``, CLOCK_MONOTONIC_RAW: never steps) and the system clock
(``time_ns``), which is the steady one plus an offset that jumps at each
``clock_steps`` entry and, with ``leap_clock=STEP``, back by a second at an
inserted leap second.  Both run ``rate_ppm`` fast against true time.

``segments`` replace what the receiver hears for a while: a local transmitter
(:attr:`SegmentKind.SPOOF`: another time, another phase, a slow drift, a
false A2), noise only (the antenna unplugged, a storm), or silence.
"""

from __future__ import annotations

import bisect
import dataclasses
import enum
import heapq
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from dcf77shm import timecode
from dcf77shm.model import NS_PER_MS, NS_PER_S, Edge, Polarity

MONO_START_NS = 1_000 * NS_PER_S  # the steady clock's reading at the start (any value works)


class LeapClock(enum.Enum):
    """What the system clock does at an inserted leap second."""

    STEP = "step"  # the kernel repeats 23:59:59 (minute looks 60 s long)
    RUN = "run"  # the clock runs on (minute looks 61 s long)


class SegmentKind(enum.Enum):
    SPOOF = "spoof"  # a local transmitter overpowers DCF77
    NOISE = "noise"  # the receiver outputs noise only
    SILENCE = "silence"  # the receiver outputs nothing


@dataclass(frozen=True, slots=True)
class Segment:
    """What the receiver hears from ``start_s`` for ``length_s`` (seconds since
    the start of the simulation, true time).

    SPOOF: at every genuine mark labelled L the spoofer sends the mark of
    ``L + shift_s`` (so the receiver hears its code and its silent second 59),
    ``phase_ms`` late, plus ``drift_ms_per_min`` for every minute since the
    segment began; ``leap_announce`` sets A2 in every spoofed frame.
    NOISE: pulse-like segments of 5-400 ms at random, ``rate`` per second.
    """

    start_s: float
    length_s: float
    kind: SegmentKind
    shift_s: int = 0
    phase_ms: float = 0.0
    drift_ms_per_min: float = 0.0
    leap_announce: bool = False
    rate: float = 2.0

    def covers(self, si_s: float) -> bool:
        return self.start_s <= si_s < self.start_s + self.length_s


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
    rate_ppm: float = 0.0  # the host oscillator's rate error (both clocks)
    seed: int = 0
    clock_steps: tuple[tuple[float, float], ...] = ()  # (at s since start, step s): system clock
    segments: tuple[Segment, ...] = ()
    mono_start_ns: int = MONO_START_NS


@dataclass(frozen=True, slots=True)
class TruthMark:
    label_s: int  # UTC second of the genuine mark (POSIX)
    sys_ns: int  # system-clock time of its undisturbed leading edge (delay included)
    bit: int
    mono_ns: int = 0  # the same moment on the steady clock


@dataclass
class SimResult:
    edges: list[Edge]
    marks: list[TruthMark] = field(default_factory=list)

    _index: dict[str, tuple[list[int], list[TruthMark]]] = field(
        default_factory=dict, init=False, repr=False
    )

    def _nearest(self, clock: str, t_ns: int, tolerance_ns: int) -> TruthMark | None:
        keys, marks = self._sorted(clock)
        i = bisect.bisect_left(keys, t_ns)
        best: TruthMark | None = None
        for j in (i - 1, i):
            if not (0 <= j < len(keys) and abs(keys[j] - t_ns) <= tolerance_ns):
                continue
            if best is None or abs(keys[j] - t_ns) < abs(getattr(best, clock) - t_ns):
                best = marks[j]
        return best

    def _sorted(self, clock: str) -> tuple[list[int], list[TruthMark]]:
        # Sorted once per clock, not once per question (benchmarks ask millions).
        cached = self._index.get(clock)
        if cached is None or len(cached[1]) != len(self.marks):
            marks = sorted(self.marks, key=lambda m: getattr(m, clock))
            cached = self._index[clock] = ([getattr(m, clock) for m in marks], marks)
        return cached

    def mark_at(self, mono_ns: int, tolerance_ns: int = 500 * NS_PER_MS) -> TruthMark | None:
        """The genuine mark whose leading edge lies nearest ``mono_ns`` (steady clock)."""
        return self._nearest("mono_ns", mono_ns, tolerance_ns)

    def label_at(self, receive_ns: int, tolerance_ns: int = 300 * NS_PER_MS) -> int | None:
        """The true label of the mark whose leading edge lies near ``receive_ns``
        (system clock: ambiguous around a step of the system clock)."""
        best = self._nearest("sys_ns", receive_ns, tolerance_ns)
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


class _Code:
    """The bits a transmitter sends, frame by frame (cached)."""

    def __init__(self, leap_second_ends: frozenset[int], leap_announce: bool = False) -> None:
        self._ends = leap_second_ends
        self._a2 = leap_announce
        self._frames: dict[int, list[int]] = {}

    def bit(self, label_s: int) -> int | None:
        """The bit of second ``label_s``; None for the silent second 59."""
        minute = label_s - label_s % 60
        bits = self._frames.get(minute)
        if bits is None:
            tc = timecode.timecode_for(minute + 60, self._ends)
            if self._a2:
                tc = dataclasses.replace(tc, leap_announce=True)
            bits = timecode.encode(tc, leap_minute=minute + 60 in self._ends)
            if len(self._frames) > 8:
                self._frames.clear()
            self._frames[minute] = bits
        sec = label_s % 60
        return bits[sec] if sec < len(bits) else None


class _Clocks:
    """True time since the start (SI ns) -> the host's steady clock and system clock."""

    def __init__(self, p: SimParams) -> None:
        self.rate = 1.0 + p.rate_ppm * 1e-6
        self.mono0 = p.mono_start_ns
        # system = steady + offset; the offset starts so that the system clock
        # reads start_s + clock_offset at the start, then jumps at each step.
        base = p.start_s * NS_PER_S + round(p.clock_offset_ms * NS_PER_MS) - self.mono0
        steps = sorted((round(at * NS_PER_S), round(d * NS_PER_S)) for at, d in p.clock_steps)
        self.step_at = [a for a, _ in steps]
        self.offsets = [base]
        for _, d in steps:
            self.offsets.append(self.offsets[-1] + d)
        # SI ns at which the kernel stepped back for a leap: all of them (the
        # edges), and those the loop over the seconds has reached (the truth
        # marks, which have always been stamped that way).
        self.leap_back_all = _leap_backs(p) if p.leap_clock is LeapClock.STEP else []
        self.leap_back: list[int] = []

    def mono(self, si_ns: float) -> int:
        return self.mono0 + round(si_ns * self.rate)

    def system(self, si_ns: float, so_far: bool = False) -> int:
        k = bisect.bisect_right(self.step_at, si_ns)
        leaps = self.leap_back if so_far else self.leap_back_all
        back = bisect.bisect_right(leaps, si_ns) * NS_PER_S
        return self.mono(si_ns) + self.offsets[k] - back


def _leap_backs(p: SimParams) -> list[int]:
    """The SI ns of every inserted second 60 that :func:`_seconds` yields, without
    walking the seconds."""
    out: list[int] = []
    for end in sorted(p.leap_second_ends):
        t = end - 1  # 23:59:59, which 23:59:60 follows
        if t < p.start_s:
            continue
        si = t - p.start_s + len(out)
        if not si < p.duration_s + 1:
            break
        out.append((si + 1) * NS_PER_S)
    return out


# A gauss() draw lies within 8.6 sigma: Box-Muller of 1 - random() >= 2**-53.
_GAUSS_BOUND = 9.0
_PROGRESS_EVERY_S = 3600  # seconds simulated between two progress reports

Interval = tuple[float, float]  # reduced carrier, true time (SI ns): start, end


def simulate(p: SimParams) -> SimResult:
    """The whole simulation in memory (tests, benchmarks); :func:`stream` for long ones."""
    marks: list[TruthMark] = []
    edges = list(stream(p, marks.append))
    return SimResult(edges, marks)


def stream(
    p: SimParams,
    on_mark: Callable[[TruthMark], None] | None = None,
    progress: Callable[[float], None] | None = None,
) -> Iterator[Edge]:
    """The edges of the simulation, in order, as they are made: memory does not
    grow with the duration.  ``on_mark`` hears each truth mark (ahead of the
    edges near it), ``progress`` the fraction done now and then.

    The same edges and marks, bit for bit, as when every interval was drawn
    first and sorted at the end: one random generator is drawn from in the
    same order (the seconds, then each noise segment, then the glitches).
    Noise and glitches come after all the seconds in that order, so their
    generator states are found by a first pass that only draws."""
    noise = [s for s in p.segments if s.kind is SegmentKind.NOISE]
    two_pass = bool(noise) or p.glitch_rate > 0
    half = 0.5 if two_pass else 1.0
    states: list[object] = []
    if two_pass:
        rng = random.Random(p.seed)
        for _ in _second_pulses(p, rng, _Clocks(p), None, _scaled(progress, 0.0, half)):
            pass
        for seg in noise:
            states.append(rng.getstate())
            for _ in _noise(p, seg, rng):
                pass
        states.append(rng.getstate())
    lazy: list[Iterator[Interval]] = []
    for seg, state in zip(noise, states, strict=False):
        lazy.append(_noise(p, seg, _restored(state)))
    if p.glitch_rate > 0:
        lazy.append(_glitches(p, _restored(states[-1])))
    clocks = _Clocks(p)
    seconds = _second_pulses(
        p, random.Random(p.seed), clocks, on_mark, _scaled(progress, 1.0 - half, half)
    )
    yield from _edges(
        _in_order(p, seconds, lazy), p.polarity, clocks, 0, round(p.duration_s * NS_PER_S)
    )


def _scaled(
    progress: Callable[[float], None] | None, base: float, part: float
) -> Callable[[float], None] | None:
    if progress is None:
        return None
    return lambda f: progress(base + part * f)


def _restored(state: object) -> random.Random:
    rng = random.Random()
    rng.setstate(state)  # type: ignore[arg-type]
    return rng


def _second_pulses(
    p: SimParams,
    rng: random.Random,
    clocks: _Clocks,
    on_mark: Callable[[TruthMark], None] | None,
    progress: Callable[[float], None] | None,
) -> Iterator[tuple[int, list[Interval]]]:
    """For each second (SI seconds since the start): the pulses heard in it."""
    genuine = _Code(p.leap_second_ends)
    spoof_codes = {id(s): _Code(frozenset(), s.leap_announce) for s in p.segments}
    end_si_ns = round(p.duration_s * NS_PER_S)
    delay_ns = p.delay_ms * NS_PER_MS
    active: list[Interval] = []

    def pulse(lead: float, bit: int) -> None:
        if p.drop_rate and rng.random() < p.drop_rate:
            return
        width_ms = 200.0 if bit else 100.0
        if p.flip_rate and rng.random() < p.flip_rate:
            width_ms = 300.0 - width_ms
        width_ms += p.width_bias_ms + (rng.gauss(0, p.width_spread_ms) if p.width_spread_ms else 0)
        lead += rng.gauss(0, p.jitter_ms) * NS_PER_MS if p.jitter_ms else 0
        active.append((lead, lead + max(5.0, width_ms) * NS_PER_MS))

    for label, si, leap60 in _seconds(p):
        if progress is not None and si % _PROGRESS_EVERY_S == 0:
            progress(min(1.0, si / p.duration_s))
        if leap60 and p.leap_clock is LeapClock.STEP:
            # From 23:59:60 on, the kernel's system clock reads one second less.
            clocks.leap_back.append(si * NS_PER_S)
        nominal = si * NS_PER_S + delay_ns
        if nominal > end_si_ns:
            continue
        bit = None if leap60 else genuine.bit(label)
        if bit is not None and on_mark is not None:
            on_mark(
                TruthMark(label, clocks.system(nominal, so_far=True), bit, clocks.mono(nominal))
            )
        seg = next((s for s in p.segments if s.covers(si)), None)
        if any(f0 <= si < f0 + flen for f0, flen in p.fades):
            continue
        if seg is None:
            if bit is not None:
                pulse(nominal, bit)
        elif seg.kind is SegmentKind.SPOOF and not leap60:
            sbit = spoof_codes[id(seg)].bit(label + seg.shift_s)
            if sbit is not None:
                minutes = (si - seg.start_s) / 60.0
                late = seg.phase_ms + seg.drift_ms_per_min * minutes
                pulse(nominal + late * NS_PER_MS, sbit)
        if active:
            yield si, active
            active = []


def _noise(p: SimParams, seg: Segment, rng: random.Random) -> Iterator[Interval]:
    t = seg.start_s
    while True:
        t += rng.expovariate(seg.rate)
        if t >= min(seg.start_s + seg.length_s, p.duration_s):
            return
        a = t * NS_PER_S
        yield a, a + rng.uniform(5, 400) * NS_PER_MS


def _glitches(p: SimParams, rng: random.Random) -> Iterator[Interval]:
    t = 0.0
    while True:
        t += rng.expovariate(p.glitch_rate)
        if t >= p.duration_s:
            return
        length = max(0.5, rng.expovariate(1.0 / p.glitch_ms)) * NS_PER_MS
        yield t * NS_PER_S, t * NS_PER_S + length


def _in_order(
    p: SimParams, seconds: Iterator[tuple[int, list[Interval]]], lazy: list[Iterator[Interval]]
) -> Iterator[Interval]:
    """Every interval, sorted as ``sorted()`` of all of them would be, holding
    only those of the last few seconds.

    A pulse of second ``si`` never starts before ``si`` + the delay + the
    earliest a spoofer or the jitter can move it, so an interval that starts
    before that bound for the current second cannot be overtaken by a later
    second's pulse; noise and glitches come in order of their start."""
    early_ms = min(
        [0.0]
        + [
            min(s.phase_ms, s.phase_ms + s.drift_ms_per_min * s.length_s / 60.0)
            for s in p.segments
            if s.kind is SegmentKind.SPOOF
        ]
    )
    early_ms -= _GAUSS_BOUND * p.jitter_ms + 1.0  # 1 ms for the rounding of floats
    offset_ns = (p.delay_ms + early_ms) * NS_PER_MS
    heap: list[Interval] = []
    nexts: list[Interval | None] = [next(it, None) for it in lazy]

    def upto(bound: float) -> Iterator[Interval]:
        for k, it in enumerate(lazy):
            iv = nexts[k]
            while iv is not None and iv[0] < bound:
                heapq.heappush(heap, iv)
                iv = next(it, None)
            nexts[k] = iv
        while heap and heap[0][0] < bound:
            yield heapq.heappop(heap)

    for si, pulses in seconds:
        yield from upto(si * NS_PER_S + offset_ns)
        for iv in pulses:
            heapq.heappush(heap, iv)
    yield from upto(math.inf)


def _edges(
    active: Iterable[Interval], polarity: Polarity, clocks: _Clocks, lo: float, hi: float
) -> Iterator[Edge]:
    """Merge overlapping reduced-carrier intervals (in order of their start) and
    emit the line's edges, stamped on both host clocks."""
    on = 1 if polarity is Polarity.HIGH else 0

    def emit(iv: Interval) -> Iterator[Edge]:
        a, b = iv
        if lo <= a <= hi:
            yield Edge(clocks.system(a), on, clocks.mono(a))
        if lo <= b <= hi and a >= lo:
            yield Edge(clocks.system(b), 1 - on, clocks.mono(b))

    cur: Interval | None = None
    for a, b in active:
        if cur is not None and a <= cur[1]:
            cur = (cur[0], max(cur[1], b))
            continue
        if cur is not None:
            yield from emit(cur)
        cur = (a, b)
    if cur is not None:
        yield from emit(cur)


def truth_json(m: TruthMark) -> dict[str, int]:
    """One line of ``simulate --truth`` (JSON Lines)."""
    return {"label_s": m.label_s, "sys_ns": m.sys_ns, "bit": m.bit, "mono_ns": m.mono_ns}
