"""Later seconds confirm a second before it goes out (shared by both decoders).

Once locked, every second's symbol is predictable from the count - the frame
sent during minute M encodes M+1 - except the warning bits 1-14, the call bit,
A1 and A2, whose pulse (of either width) is all we know.  A decoded second is
held back until the seconds after it have *positively* confirmed the count:
``MIN_GOOD`` of them carried exactly the predicted symbol (or, where the bit is
unpredictable, a clean pulse in phase), no more than ``MAX_CONTRA``
contradicted it, and at least ``min_wait`` seconds have passed.  What no later
second confirms within ``MAX_AGE_S`` (16 s) is withheld.

Why positive evidence: receivers lose pulses (silence proves little), but noise
after a lock - an unplugged antenna, a storm, a local transmitter at another
phase - does not keep producing the predicted bits, so nothing decoded from it
is ever let out, however plausible its edge looks.  A whole-second slip of the
count (a step of the system clock in a version 1 log) contradicts within a few
predictable seconds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from dcf77shm import timecode
from dcf77shm.model import DropReason, Sample, Withheld

SILENT = 2  # the symbol of a second without a pulse (second 59)
MIN_GOOD = 3
MAX_CONTRA = 1
# chrony drops refclock samples older than 2^(poll+1) s (32 s at poll 4).  A
# second not confirmed within this goes nowhere: what is published reaches
# chrony with >= 16 s to spare for a slow Pi or a busy moment (issue 12).  On
# a steady timeline 99 % of seconds are out within 12 s (bench/served.py's
# age column); without one (a version 1 log, min_wait 25 s) the limit is
# min_wait + MIN_GOOD (28 s) instead.
MAX_AGE_S = 16
_UNPREDICTABLE = frozenset((*range(1, 17), 19))  # warnings, R, A1, A2


class Predictor:
    """The symbol a correct transmitter sends in each UTC second (cached per minute)."""

    def __init__(self) -> None:
        self._frames: dict[int, list[int]] = {}

    def minute(self, minute: int) -> list[int]:
        """Predicted symbols of a minute's 60 seconds (61 in a possible leap minute);
        -1 where unpredictable."""
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
        k = label_s % 60
        b = self.minute(label_s - k)[k]
        return None if b < 0 else b

    def match(self, label_s: int, symbol: int | None, clean: bool = False) -> int:
        """+1 the symbol is the predicted one (where the bit is unpredictable: a
        ``clean`` pulse in phase), -1 it contradicts, 0 no information (unclear,
        or a silence where a pulse was due)."""
        if symbol is None:
            return 0
        p = self.predict(label_s)
        if p is None:
            return 1 if clean and symbol != SILENT and label_s % 60 != 59 else 0
        if symbol == SILENT and p != SILENT:
            return 0
        return 1 if p == symbol else -1


@dataclass(slots=True)
class _Waiting:
    label: int
    sample: Sample
    good: int = 0
    contra: int = 0


class Confirmation:
    """Samples waiting for later seconds to confirm the count they were labelled by."""

    def __init__(self, min_wait_s: int) -> None:
        self.min_wait_s = min_wait_s
        self.max_age_s = max(MAX_AGE_S, min_wait_s + MIN_GOOD)
        self.predictor = Predictor()
        self._queue: deque[_Waiting] = deque()

    def clear(self) -> None:
        self._queue.clear()

    def drain(self) -> list[Sample]:
        """Everything waiting, in order (to be withheld)."""
        out = [w.sample for w in self._queue]
        self._queue.clear()
        return out

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, label: int, sample: Sample, good: int = 0, contra: int = 0) -> None:
        self._queue.append(_Waiting(label, sample, good, contra))

    def observe(self, label: int, symbol: int | None, clean: bool = False) -> int:
        """A second after the waiting ones was received; returns its match."""
        m = self.predictor.match(label, symbol, clean)
        if m:
            for w in self._queue:
                if w.label < label:
                    if m > 0:
                        w.good += 1
                    else:
                        w.contra += 1
        return m

    def release(self, now_label: int) -> list[Sample | Withheld]:
        """What is confirmed (or can no longer be) by second ``now_label``, in order."""
        out: list[Sample | Withheld] = []
        q = self._queue
        while q:
            w = q[0]
            age = now_label - w.label
            if w.contra > MAX_CONTRA:
                out.append(Withheld(q.popleft().sample, DropReason.UNVERIFIED))
            elif w.good >= MIN_GOOD and age >= self.min_wait_s:
                q.popleft()
                ok = age <= self.max_age_s
                out.append(w.sample if ok else Withheld(w.sample, DropReason.TOO_OLD))
            elif age > self.max_age_s:
                out.append(Withheld(q.popleft().sample, DropReason.UNVERIFIED))
            else:
                break
        return out
