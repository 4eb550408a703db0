"""Second-by-second witness that the count still labels the right seconds.

While locked, every second's bit is predictable (the frame sent during minute
M encodes M+1; only the warning bits 1-14, the call bit and A2 are not), and
second 59 is silent.  A count that slipped by a second - a system-clock step of
a whole second in a recorded log, say - shows at once as bits that fit the
prediction *shifted* better than unshifted.  The witness scores the measured
symbols of the last minute (``DEPTH``), and separately the newest ``RECENT``
ones, against the prediction at shifts of -2..+2 s.
"""

from __future__ import annotations

from collections import deque

from dcf77shm import timecode

SILENT = 2  # the symbol of a second without a pulse
DEPTH = 60  # certainty: a minute of seconds (long runs of equal bits do not fool it)
RECENT = 12  # slip detection: the newest seconds only
PERSIST = 30  # ... and over half a minute, for a slip that persists
SHIFTS = (-2, -1, 1, 2)
_UNPREDICTABLE = frozenset((*range(1, 16), 16, 19))  # warnings, R, A1 (see below), A2


class CountWitness:
    def __init__(self) -> None:
        # Per observed second: its match (+1/-1/0) at each shift in _ALL.
        self._hist: deque[list[int]] = deque()
        self._sums = [0] * len(_ALL)
        self._recent = [0] * len(_ALL)
        self._persist = [0] * len(_ALL)
        self._frames: dict[int, list[int]] = {}

    def reset(self) -> None:
        self._hist.clear()
        self._sums = [0] * len(_ALL)
        self._recent = [0] * len(_ALL)
        self._persist = [0] * len(_ALL)

    def _minute(self, minute: int) -> list[int]:
        """Predicted symbols of a minute's 60 seconds; -1 where unpredictable."""
        syms = self._frames.get(minute)
        if syms is None:
            if len(self._frames) > 4:
                self._frames.clear()
            syms = timecode.encode(timecode.timecode_for(minute + 60))
            # In a leap minute second 59 carries a 0 and second 60 is silent.
            syms.append(-1 if timecode.is_month_end_minute(minute) else SILENT)
            for k in _UNPREDICTABLE:
                syms[k] = -1
            self._frames[minute] = syms
        return syms

    def predict(self, label_s: int) -> int | None:
        """The symbol a correct transmitter sends in UTC second ``label_s``."""
        k = label_s % 60
        b = self._minute(label_s - k)[k]
        return None if b < 0 else b

    def observe(self, label_s: int, symbol: int | None) -> int:
        """Record a measured symbol; returns its match with the unshifted count."""
        if symbol is None:
            return 0
        silent = symbol == SILENT
        # The shifted labels mostly fall in the same minute: one lookup for it.
        k0 = label_s % 60
        here = self._minute(label_s - k0)
        row = []
        for d in _ALL:
            k = k0 + d
            if 0 <= k < 60:
                p = here[k]
            else:
                lab = label_s + d
                p = self._minute(lab - lab % 60)[lab % 60]
            if p < 0 or (silent and p != SILENT):
                row.append(0)  # receivers lose pulses: a silence proves little
            else:
                row.append(1 if p == symbol else -1)
        h, sums, recent, persist = self._hist, self._sums, self._recent, self._persist
        h.append(row)
        for i, v in enumerate(row):
            if v:
                sums[i] += v
                recent[i] += v
                persist[i] += v
        if len(h) > RECENT:
            for i, v in enumerate(h[-RECENT - 1]):
                recent[i] -= v
        if len(h) > PERSIST:
            for i, v in enumerate(h[-PERSIST - 1]):
                persist[i] -= v
        if len(h) > DEPTH:
            for i, v in enumerate(h.popleft()):
                sums[i] -= v
        return row[0]

    def lead(self) -> tuple[int, int]:
        """Over the last minute: (score of the count as it is, best shifted score)."""
        return self._sums[0], max(self._sums[1:])

    def slipped(self, by: int) -> bool:
        """The newest seconds fit a shifted count better by at least ``by``."""
        return max(self._recent[1:]) - self._recent[0] >= by

    def slipped_for_long(self, by: int) -> bool:
        """The last half minute fits a shifted count better by at least ``by``."""
        return max(self._persist[1:]) - self._persist[0] >= by


_ALL = (0, *SHIFTS)
