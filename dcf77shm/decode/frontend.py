"""Edges -> carrier transitions: polarity detection and line-level clean-up.

Some receiver modules pull the line high while the carrier is reduced (Pollin
DCF1), others low (many open-collector modules with a pull-up, and the inverted
outputs of ELV/Conrad boards).  The edge log does not say which (INTERFACES §1),
so the polarity is detected from the durations: pulses last 100 or 200 ms,
pauses 800-900 ms (1800-1900 ms before a minute marker).
"""

from __future__ import annotations

from dataclasses import dataclass

from dcf77shm.model import NS_PER_MS, Edge, Polarity

# A segment this long is pulse-like (also what record and monitor count).
PULSE_NS = (70 * NS_PER_MS, 260 * NS_PER_MS)
# Evidence needed before we commit to a polarity.
_VOTES = 8
_DUTY = (0.05, 0.40)
_DECIDE_AFTER_NS = 12 * NS_PER_MS * 1000


@dataclass(frozen=True, slots=True)
class Transition:
    """The carrier went reduced (``active``) or back to full power at ``time_ns``.

    ``lost_before`` is set when the source reported the same level twice: an
    edge between the two was lost and its time is unknown.
    """

    time_ns: int
    active: bool
    lost_before: bool = False


class FrontEnd:
    """Turns raw edges into carrier transitions, detecting polarity causally.

    Until the polarity is known, edges are held back; once the evidence is in,
    they are released in order, so decoding is identical to having known the
    polarity from the start, only later.
    """

    def __init__(self, polarity: Polarity = Polarity.AUTO) -> None:
        self.active_level: int | None = {Polarity.HIGH: 1, Polarity.LOW: 0}.get(polarity)
        self._held: list[Edge] = []
        self._last: Edge | None = None
        # votes[level] = [pulse-like segments, pause-like segments] at that level
        self._votes = [[0, 0], [0, 0]]
        self._time = [0, 0]
        self._first_ns = 0

    @property
    def polarity(self) -> Polarity:
        if self.active_level is None:
            return Polarity.AUTO
        return Polarity.HIGH if self.active_level else Polarity.LOW

    @property
    def likely_level(self) -> int:
        """The active level if known, else the one with more pulse-like segments so
        far (1 on a tie): a guess for a display (monitor), never for decoding."""
        if self.active_level is not None:
            return self.active_level
        return int(self._votes[1][0] >= self._votes[0][0])

    def reset(self) -> None:
        self._last = None

    def feed(self, edge: Edge) -> list[Transition]:
        if self.active_level is not None:
            return self._convert(edge)
        self._held.append(edge)
        self._vote(edge)
        if self.active_level is None:
            if len(self._held) > 4096:  # no DCF77-like signal: keep memory bounded
                del self._held[:2048]
            return []
        out: list[Transition] = []
        held, self._held = self._held, []
        self._last = None
        for e in held:
            out.extend(self._convert(e))
        return out

    def _vote(self, edge: Edge) -> None:
        # Evidence per level: time spent at it, and segments as long as a
        # pulse.  Glitches chop the long pauses into pieces, so pause lengths
        # are useless in noise; the duty cycle is not: the carrier is reduced
        # for ~15% of the time (100-200 ms a second), glitches add a little.
        prev = self._last
        self._last = edge
        if prev is None:
            self._first_ns = edge.time_ns
            return
        if prev.level == edge.level:
            return
        dur = edge.time_ns - prev.time_ns
        self._time[prev.level] += dur
        if PULSE_NS[0] <= dur <= PULSE_NS[1]:
            self._votes[prev.level][0] += 1
        if edge.time_ns - self._first_ns < _DECIDE_AFTER_NS:
            return
        total = self._time[0] + self._time[1]
        for lv in (0, 1):
            duty = self._time[lv] / total if total else 0.0
            pulses = self._votes[lv][0]
            if _DUTY[0] <= duty <= _DUTY[1] and pulses >= _VOTES:
                self.active_level = lv
                return

    def _convert(self, edge: Edge) -> list[Transition]:
        assert self.active_level is not None
        prev = self._last
        self._last = edge
        active = edge.level == self.active_level
        if prev is None:
            return [Transition(edge.time_ns, active)]
        lost = prev.level == edge.level
        return [Transition(edge.time_ns, active, lost_before=lost)]
