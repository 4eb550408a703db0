"""A short history of reduced-carrier runs, to measure any window after the fact.

The one run history: the strict decoder's mark detector (:mod:`.marks`), the
robust decoder's tracker (:mod:`.robust.tracker`) and ``monitor``
(:mod:`dcf77shm.tools.monitor`) all keep theirs here.  Every soft decision of
the robust decoder is "what fraction of this window was the carrier reduced",
which glitches of any length and lost edges only nudge instead of breaking.
"""

from __future__ import annotations

from collections import deque

from dcf77shm.decode.frontend import Transition
from dcf77shm.model import NS_PER_MS

KEEP_NS = 65_000_000_000  # a minute of history: acquisition measures the past too
# A leading edge counts only if the carrier stays reduced for most of the
# next 40 ms: rejects needles in front of a real pulse (both decoders).
QUALIFY_NS = 40 * NS_PER_MS
QUALIFY_ACTIVE_NS = 30 * NS_PER_MS


class RunHistory:
    __slots__ = ("_ends", "_open_since", "_starts", "last_ns")

    def __init__(self) -> None:
        self._starts: deque[int] = deque()
        self._ends: deque[int] = deque()
        self._open_since: int | None = None  # start of the run still going on
        self.last_ns: int | None = None

    def reset(self) -> None:
        self._starts.clear()
        self._ends.clear()
        self._open_since = None
        self.last_ns = None

    def add(self, tr: Transition) -> bool:
        """Record a transition; True when it is a leading edge (carrier goes reduced)."""
        t = tr.time_ns
        self.last_ns = t
        lead = False
        if tr.active:
            if self._open_since is not None and tr.lost_before:
                # Two rising edges in a row: when the earlier run ended is
                # unknown, so it is forgotten rather than guessed.
                self._open_since = None
            if self._open_since is None:
                self._open_since = t
                lead = True
        elif self._open_since is not None:
            self._starts.append(self._open_since)
            self._ends.append(t)
            self._open_since = None
        while self._ends and self._ends[0] < t - KEEP_NS:
            self._starts.popleft()
            self._ends.popleft()
        return lead

    def active_ns(self, lo: int, hi: int) -> int:
        """Reduced-carrier time within [lo, hi) (the open run counts up to ``last_ns``)."""
        total = 0
        starts, ends = self._starts, self._ends
        for i in range(len(ends) - 1, -1, -1):
            e = ends[i]
            if e <= lo:
                break
            s = starts[i]
            if s < hi:
                total += min(e, hi) - max(s, lo)
        o = self._open_since
        if o is not None and o < hi:
            # Still reduced: callers only measure windows that have passed.
            total += hi - max(o, lo)
        return total

    def rising_in(self, lo: int, hi: int) -> list[int]:
        """Leading edges within [lo, hi)."""
        out = [start for start, _ in self.runs_in(lo, hi)]
        if self._open_since is not None and lo <= self._open_since < hi:
            out.append(self._open_since)
        return out

    def qualified(self, t: int) -> bool:
        """Is a leading edge at ``t`` a pulse's, not a needle (see QUALIFY_NS)?"""
        return self.active_ns(t, t + QUALIFY_NS) >= QUALIFY_ACTIVE_NS

    def runs_in(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """Finished runs, (start, end), that started within [lo, hi)."""
        out = []
        starts, ends = self._starts, self._ends
        for i in range(len(starts) - 1, -1, -1):
            if ends[i] <= lo:
                break
            if lo <= starts[i] < hi:
                out.append((starts[i], ends[i]))
        out.reverse()
        return out

    def reduced_across(self, t: int) -> bool:
        """A run started before ``t`` and lasted past it (or lasts still)."""
        o = self._open_since
        if o is not None and o < t:
            return True
        starts, ends = self._starts, self._ends
        for i in range(len(ends) - 1, -1, -1):
            if ends[i] <= t:
                return False
            if starts[i] < t:
                return True
        return False

    def falling_in(self, lo: int, hi: int) -> bool:
        ends = self._ends
        for i in range(len(ends) - 1, -1, -1):
            e = ends[i]
            if e <= lo:
                return False
            if e < hi:
                return True
        return False

    @property
    def open_ns(self) -> int | None:
        """Start of the run still going on, if any."""
        return self._open_since

    @property
    def first_ns(self) -> int | None:
        if self._starts:
            return self._starts[0]
        return self._open_since
