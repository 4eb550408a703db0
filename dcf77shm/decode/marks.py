"""Carrier transitions -> second marks with a hard bit (the strict decoder's front).

DCF77 reduces the carrier at the start of every second except second 59:
for 100 ms (bit 0) or 200 ms (bit 1).  A mark's leading edge is its time; its
width is the reduced-carrier time within a fixed window after that edge, so a
short dropout inside a pulse does not split it in two and a glitch that stands
alone is dropped.  Decisions wait until the window has passed (the next edge or
an explicit time advance), which keeps them causal and the same whatever the
pacing of the input.
"""

from __future__ import annotations

from dataclasses import dataclass

from dcf77shm.decode.carrier import QUALIFY_NS, RunHistory
from dcf77shm.decode.frontend import Transition
from dcf77shm.decode.widths import WidthOffset
from dcf77shm.model import NS_PER_MS

WINDOW_NS = 300 * NS_PER_MS
# Hard-decision thresholds on the width (ms), ONE and MAX after taking off the
# receiver's learnt width offset (dcf77shm.decode.widths): below MIN is a glitch.
MIN_WIDTH_NS = 40 * NS_PER_MS
ONE_WIDTH_NS = 150 * NS_PER_MS
MAX_WIDTH_NS = 260 * NS_PER_MS


@dataclass(frozen=True, slots=True)
class Mark:
    """A second mark: leading edge at ``time_ns``; ``bit`` None if the width was out of range."""

    time_ns: int
    width_ns: int
    bit: int | None


class MarkDetector:
    def __init__(self) -> None:
        self._runs = RunHistory()
        self._from: int | None = None  # runs starting before this are decided
        self.offset = WidthOffset()

    def reset(self) -> None:
        self._runs.reset()
        self._from = None
        self.offset.reset()

    def transition(self, tr: Transition) -> list[Mark]:
        out = self.advance(tr.time_ns)
        # Two rising edges in a row: the history forgets the run before, whose
        # end is unknown (it is never a mark).
        self._runs.add(tr)
        return out

    def advance(self, now_ns: int) -> list[Mark]:
        out: list[Mark] = []
        runs = self._runs
        while True:
            lo = runs.first_ns if self._from is None else self._from
            if lo is None:
                break
            # Leading edges whose qualifying window has passed.
            pending = runs.rising_in(lo, now_ns - QUALIFY_NS + 1)
            if not pending:
                break
            start = pending[0]
            if not runs.qualified(start):
                self._from = start + 1  # a needle: not a leading edge
                continue
            end = start + WINDOW_NS
            if now_ns < end:
                break
            width = runs.active_ns(start, end)
            still_on = runs.reduced_across(end)
            self._from = end
            if width < MIN_WIDTH_NS:
                continue
            w = width - self.offset.ns
            bit: int | None
            if still_on or w > MAX_WIDTH_NS:
                bit = None
            else:
                bit = 1 if w >= ONE_WIDTH_NS else 0
                self.offset.learn(width, bit)
            out.append(Mark(start, width, bit))
        return out
