"""The pure pipeline that both ``decode`` and ``run`` use.

items -> timeline (the steady clock, or the system clock for a version 1 log)
      -> :class:`~dcf77shm.decode.frontend.FrontEnd` (polarity, lost edges)
      -> a :class:`Decoder` (marks, frames, lock; replaceable)
      -> :class:`~dcf77shm.decode.guard.Guard` (the held count: jumps, drift,
         clock steps, holdover)
      -> events (samples, withheld seconds, alarms, minute reports, lock changes)

The decoder sees only the timeline: every interval it measures is a
difference of steady-clock stamps, so a step of the system clock cannot move
its count.  The system clock is what a sample's receive time is *labelled*
with: the pipeline keeps, for each edge, the offset between the two clocks and
puts it back on the way out.  A change of that offset is a step of the system
clock (the sources also report steps explicitly).

No I/O and no clock reads here: time only moves when an edge or an explicit
``advance`` says so, which is what makes ``decode`` of a log and ``run`` on the
same log publish the same samples.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Protocol

from dcf77shm.decode.frontend import FrontEnd, Transition
from dcf77shm.decode.guard import Guard, GuardConfig, Missing
from dcf77shm.errors import BadInput
from dcf77shm.leapsecs import LeapPolicy, LeapTable
from dcf77shm.model import (
    NS_PER_MS,
    Alarm,
    Edge,
    Event,
    Gap,
    MinuteReport,
    Polarity,
    Sample,
    StateChange,
    Step,
    Withheld,
)

DecoderEvent = Event | Missing


class Decoder(Protocol):
    """The replaceable bit/frame/lock stage; it sees only the timeline."""

    name: str
    steady: bool  # the timeline is a steady clock (else a system clock that may step)

    @property
    def locked(self) -> bool: ...

    def transition(self, tr: Transition) -> list[DecoderEvent]: ...

    def advance(self, now_ns: int) -> list[DecoderEvent]: ...

    def gap(self, time_ns: int, reason: str) -> list[DecoderEvent]: ...


def _strict(leaps: LeapPolicy) -> Decoder:
    from dcf77shm.decode.strict import StrictDecoder

    return StrictDecoder(leaps)


def _robust(leaps: LeapPolicy) -> Decoder:
    from dcf77shm.decode.robust.decoder import RobustDecoder

    return RobustDecoder(leaps)


DECODERS: dict[str, Callable[[LeapPolicy], Decoder]] = {"robust": _robust, "strict": _strict}
DEFAULT_DECODER = "robust"

# A change of (system - steady) between two edges beyond this, plus what the
# fastest slew could do in between (chrony's maxslewrate is 83,333 ppm), is a
# step of the system clock.
STEP_MIN_NS = NS_PER_MS
MAX_SLEW = 0.1
TIMEBASE_KEEP_NS = 600 * 1_000_000_000  # how far back a timeline stamp can be relabelled


def make_decoder(name: str, leaps: LeapPolicy | None = None) -> Decoder:
    try:
        factory = DECODERS[name]
    except KeyError:
        raise BadInput(
            f"unknown decoder {name!r}: choose one of {', '.join(sorted(DECODERS))}"
        ) from None
    return factory(leaps or LeapPolicy())


class _Timebase:
    """Per edge, system clock minus timeline: relabels timeline stamps."""

    def __init__(self) -> None:
        self._tl: list[int] = []
        self._off: list[int] = []

    def add(self, tl: int, off: int) -> None:
        self._tl.append(tl)
        self._off.append(off)
        if len(self._tl) > 4096 and tl - self._tl[2048] > TIMEBASE_KEEP_NS:
            del self._tl[:2048], self._off[:2048]

    @property
    def last_offset(self) -> int:
        return self._off[-1] if self._off else 0

    def system(self, tl: int) -> int:
        """The system-clock label of timeline stamp ``tl`` (its edge's, or the last
        edge's before it)."""
        i = bisect.bisect_right(self._tl, tl) - 1
        return tl + (self._off[i] if i >= 0 else self.last_offset)


class Pipeline:
    def __init__(
        self,
        polarity: Polarity = Polarity.AUTO,
        decoder: str = DEFAULT_DECODER,
        leaps: LeapTable | None = None,
        guard: GuardConfig | None = None,
    ) -> None:
        self.front = FrontEnd(polarity)
        self.leaps = LeapPolicy(leaps)
        self.decoder = make_decoder(decoder, self.leaps)
        self.guard = Guard(guard, self.leaps)
        self.steady: bool | None = None  # does the stream carry a steady clock?
        self._tb = _Timebase()
        self._last_tl: int | None = None
        self._last_off: int | None = None

    @property
    def polarity(self) -> Polarity:
        return self.front.polarity

    def feed(self, item: Edge | Gap | Step) -> list[Event]:
        if isinstance(item, Step):
            self._last_off = None  # the next edge carries the new offset: not a second step
            return self._out(self.guard.step(item.mono_ns, item.delta_ns))
        if isinstance(item, Gap):
            self.front.reset()
            tl = item.mono_ns if item.mono_ns is not None else item.time_ns - self._tb.last_offset
            return self._run(self.decoder.gap(tl, item.reason))
        if self.steady is None:
            self.steady = item.mono_ns is not None
            self.guard.monotonic = self.decoder.steady = self.steady
        if not self.steady:
            tl = item.time_ns
        elif item.mono_ns is not None:
            tl = item.mono_ns
        else:  # an edge without its steady stamp in a steady stream: the last offset
            tl = item.time_ns - self._tb.last_offset
        out: list[Event] = []
        if self._last_tl is not None and tl < self._last_tl:
            # The timeline went backwards (a version 1 log whose system clock
            # stepped back under a live source): every interval across it is
            # meaningless.
            self.front.reset()
            out += self._run(self.decoder.gap(tl, "system clock stepped back"))
            out += self._out(self.guard.step(self._last_tl, tl - self._last_tl))
        off = item.time_ns - tl
        if self.steady and self._last_off is not None and self._last_tl is not None:
            delta = off - self._last_off
            if abs(delta) > STEP_MIN_NS + MAX_SLEW * (tl - self._last_tl):
                out += self._out(self.guard.step(self._last_tl, delta))
        self._last_tl, self._last_off = tl, off
        self._tb.add(tl, off)
        for tr in self.front.feed(Edge(tl, item.level)):
            out += self._run(self.decoder.transition(tr))
        return out

    def advance(self, now_ns: int, mono_ns: int | None = None) -> list[Event]:
        """Tell the pipeline that system-clock time ``now_ns`` (steady clock
        ``mono_ns`` when the caller knows it) was reached with no further edge."""
        tl = mono_ns if self.steady and mono_ns is not None else now_ns - self._tb.last_offset
        if self._last_tl is not None and tl < self._last_tl:
            return []
        return self._run(self.decoder.advance(tl))

    def _run(self, events: list[DecoderEvent]) -> list[Event]:
        """The decoder's events (on the timeline) through the guard, relabelled."""
        if not events:  # most edges end no second
            return []
        g = self.guard
        out: list[Event] = []
        for ev in events:
            if isinstance(ev, Sample):
                # Built, not dataclasses.replace()d: once a second (issue 12: CPU).
                out += g.sample(Sample(ev.receive_ns, ev.clock_ns, ev.leap, ev.receive_ns))
            elif isinstance(ev, MinuteReport):
                out.append(ev)
                out += g.minute(ev, ev.marker_ns)
            elif isinstance(ev, StateChange):
                out.append(ev)
                out += g.state_change(ev)
            elif isinstance(ev, Missing):
                g.missing(ev.mono_ns)
            else:
                out.append(ev)
        return self._out(out)

    def _out(self, events: list[Event]) -> list[Event]:
        """Timeline stamps -> system-clock labels (``mono_ns`` kept when steady)."""
        tb = self._tb
        steady = bool(self.steady)
        res: list[Event] = []
        for ev in events:
            if isinstance(ev, Sample):
                res.append(_relabel(ev, tb, steady))
            elif isinstance(ev, Withheld):
                res.append(Withheld(_relabel(ev.sample, tb, steady), ev.reason))
            elif isinstance(ev, MinuteReport):
                res.append(replace(ev, marker_ns=tb.system(ev.marker_ns)))
            elif isinstance(ev, StateChange | Alarm):
                res.append(replace(ev, time_ns=tb.system(ev.time_ns)))
        return res


def _relabel(s: Sample, tb: _Timebase, steady: bool) -> Sample:
    tl = s.mono_ns if s.mono_ns is not None else s.receive_ns
    return Sample(tb.system(tl), s.clock_ns, s.leap, tl if steady else None)


def decode_edges(
    edges: Iterable[Edge | Gap | Step],
    polarity: Polarity = Polarity.AUTO,
    decoder: str = DEFAULT_DECODER,
    leaps: LeapTable | None = None,
    guard: GuardConfig | None = None,
) -> Iterator[Event]:
    """Run a whole edge stream through a fresh pipeline, yielding events in order."""
    p = Pipeline(polarity, decoder, leaps, guard)
    for e in edges:
        yield from p.feed(e)
