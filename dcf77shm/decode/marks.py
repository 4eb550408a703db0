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

from dcf77shm.decode.frontend import Transition
from dcf77shm.model import NS_PER_MS

WINDOW_NS = 300 * NS_PER_MS
# A leading edge counts only if the carrier stays reduced for most of the
# next 40 ms: rejects needles in front of a real pulse.
QUALIFY_NS = 40 * NS_PER_MS
QUALIFY_ACTIVE_NS = 30 * NS_PER_MS
# Hard-decision thresholds on the width (ms): below MIN is a glitch.
MIN_WIDTH_NS = 40 * NS_PER_MS
ONE_WIDTH_NS = 150 * NS_PER_MS
MAX_WIDTH_NS = 260 * NS_PER_MS


@dataclass(frozen=True, slots=True)
class Mark:
    """A second mark: leading edge at ``time_ns``; ``bit`` None if the width was out of range."""

    time_ns: int
    width_ns: int
    bit: int | None


class _Run:
    """A reduced-carrier run; ``end`` is None while it lasts."""

    __slots__ = ("end", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.end: int | None = None


class MarkDetector:
    def __init__(self) -> None:
        self._runs: list[_Run] = []

    def reset(self) -> None:
        self._runs.clear()

    def transition(self, tr: Transition) -> list[Mark]:
        out = self.advance(tr.time_ns)
        if tr.lost_before and self._runs and tr.active and self._runs[-1].end is None:
            # Two rising edges in a row: the run before ended at an unknown time.
            self._runs.pop()
        if tr.active:
            if not self._runs or self._runs[-1].end is not None:
                self._runs.append(_Run(tr.time_ns))
        elif self._runs and self._runs[-1].end is None:
            self._runs[-1].end = tr.time_ns
        return out

    def advance(self, now_ns: int) -> list[Mark]:
        out: list[Mark] = []
        while self._runs:
            start = self._runs[0].start
            if now_ns < start + QUALIFY_NS:
                break
            if self._active(start, start + QUALIFY_NS) < QUALIFY_ACTIVE_NS:
                self._runs.pop(0)  # a needle: not a leading edge
                continue
            end = start + WINDOW_NS
            if now_ns < end:
                break
            width = self._active(start, end)
            still_on = any(r.end is None or r.end > end for r in self._runs if r.start < end)
            self._runs = [r for r in self._runs if r.start >= end]
            if width < MIN_WIDTH_NS:
                continue
            bit: int | None
            if still_on or width > MAX_WIDTH_NS:
                bit = None
            else:
                bit = 1 if width >= ONE_WIDTH_NS else 0
            out.append(Mark(start, width, bit))
        return out

    def _active(self, lo: int, hi: int) -> int:
        total = 0
        for r in self._runs:
            if r.start >= hi:
                break
            end = hi if r.end is None else min(r.end, hi)
            if end > lo:
                total += end - max(r.start, lo)
        return total
