"""The strict decoder: hard bits, whole frames, lock on two agreeing frames.

Kept deliberately simple, as a reference and for comparison (``--decoder
strict``).  Rules:

* A second mark is *in phase* when it lies a whole number of seconds (within
  ``PHASE_TOL_NS``) after the previous in-phase mark.  Out-of-phase marks are
  ignored; if nothing in phase comes for ``PHASE_LOSS_NS``, the chain restarts.
* A gap of two seconds is the minute marker (second 59 carries no pulse).  In a
  minute announced as a leap minute (A2, bit 19) the marker comes after 61 s on
  a clock that runs on, or after 60 s on one whose kernel stepped back.
* Lock needs two consecutive valid frames exactly one minute apart on an
  unbroken chain.  While locked, every in-phase mark with a valid width gets
  the label the count gives it, and goes out once later marks have confirmed
  the count (:mod:`dcf77shm.decode.confirm`); a valid frame that disagrees with
  the count drops the lock, and so do ``MAX_UNCONFIRMED`` invalid frames in a row.
"""

from __future__ import annotations

from dcf77shm import timecode
from dcf77shm.decode.confirm import Confirmation
from dcf77shm.decode.frontend import Transition
from dcf77shm.decode.guard import Missing
from dcf77shm.decode.marks import Mark, MarkDetector
from dcf77shm.leapsecs import LeapPolicy
from dcf77shm.model import (
    NS_PER_MS,
    NS_PER_S,
    Event,
    FrameInfo,
    MinuteReport,
    Sample,
    StateChange,
)

Out = list[Event | Missing]

PHASE_TOL_NS = 50 * NS_PER_MS
# Each second waits for later seconds to confirm the count
# (dcf77shm.decode.confirm); without a steady clock, long enough for a
# whole-second step of the system clock to show.
CONFIRM_STEADY_S = 2
CONFIRM_V1_S = 25
PHASE_LOSS_NS = 3 * NS_PER_S
MAX_UNCONFIRMED = 5


class StrictDecoder:
    name = "strict"

    def __init__(self, leaps: LeapPolicy | None = None) -> None:
        self.leaps = leaps or LeapPolicy()
        self._marks = MarkDetector()
        self._last_ns: int | None = None  # last in-phase mark
        self._index: int | None = None  # its second within the minute
        self._bits: list[int | None] = []
        self._prev: tuple[int, timecode.TimeCode] | None = None  # last valid frame on this chain
        self._minute_s: int | None = None  # locked: UTC minute now running
        self._leap_minute = False  # the running minute has 61 seconds
        self._leap_vote = False  # A2 in this frame and the one before
        self._a2 = False
        self._a2_before = False
        self._hold = False
        self._unconfirmed = 0
        self._tentative = False
        self._missed: int | None = None
        self.steady = True  # the timeline is a steady clock (set by the pipeline)
        self._confirm = Confirmation(CONFIRM_STEADY_S)

    # --- the decoder interface (see pipeline.Decoder) -------------------

    def transition(self, tr: Transition) -> Out:
        return self._on_marks(self._marks.transition(tr))

    def advance(self, now_ns: int) -> Out:
        return self._on_marks(self._marks.advance(now_ns))

    def gap(self, time_ns: int, reason: str) -> Out:
        self._marks.reset()
        return self._restart(time_ns, f"source gap: {reason}")

    @property
    def locked(self) -> bool:
        return self._minute_s is not None

    # --- internals -------------------------------------------------------

    def _on_marks(self, marks: list[Mark]) -> Out:
        out: Out = []
        for m in marks:
            evs = self._on_mark(m)
            if self._missed is not None:  # before the mark's own sample
                out.append(Missing(self._missed))
                self._missed = None
            out.extend(evs)
        return out

    def _restart(self, time_ns: int, reason: str) -> Out:
        out: Out = []
        if self.locked:
            out.append(StateChange(time_ns, False, reason))
        self._last_ns = None
        self._index = None
        self._bits = []
        self._prev = None
        self._minute_s = None
        self._leap_minute = False
        self._confirm.clear()
        return out

    def _begin_chain(self, m: Mark) -> None:
        # The first mark of a chain is taken, tentatively, as second 0: if the
        # next marker comes exactly 60 s later it was one, and the minute
        # between is a whole frame (saves a minute when a recording starts
        # during second 59).
        self._last_ns = m.time_ns
        self._index = 0
        self._bits = [m.bit]
        self._tentative = True

    def _on_mark(self, m: Mark) -> Out:
        if self._last_ns is None or self._index is None:
            self._begin_chain(m)
            return []
        d = m.time_ns - self._last_ns
        k = (d + NS_PER_S // 2) // NS_PER_S
        if k == 0 or abs(d - k * NS_PER_S) > PHASE_TOL_NS:
            if d > PHASE_LOSS_NS:
                out = self._restart(m.time_ns, "second marks out of phase")
                self._begin_chain(m)
                return out
            return []  # a pulse between the seconds: ignored
        self._last_ns = m.time_ns
        new = self._index + k
        if k >= 2 and self.locked and new not in (60, 61):
            # A second without a pulse: without a steady clock this is also
            # what a step of the system clock looks like (the guard decides).
            self._missed = m.time_ns - NS_PER_S
        if self._tentative:
            if k == 2:
                self._tentative = False
                return self._start_minute(m, self._frame_events(m.time_ns) if new == 60 else [])
            if new > 60:
                self._begin_chain(m)
                return []
            self._add_bit(m, k, new)
            return []
        marker_at = (60, 61) if self._leap_minute else (60,)
        if new in marker_at:
            return self._start_minute(m, self._frame_events(m.time_ns))
        if k == 2 and not self.locked:
            # A two-second gap where we did not expect the marker: either our
            # marker was wrong or a pulse was lost.  Unlocked, take it as the
            # marker; the next frame decides.
            self._prev = None
            return self._start_minute(m, [])
        if new >= 59 + int(self._leap_minute):
            out = self._restart(m.time_ns, f"no minute marker where expected (second {new})")
            self._begin_chain(m)
            return out
        self._add_bit(m, k, new)
        return self._sample(m, new)

    def _add_bit(self, m: Mark, k: int, new: int) -> None:
        self._bits.extend([None] * (k - 1))
        self._bits.append(m.bit)
        self._index = new

    def _frame_events(self, marker_ns: int) -> Out:
        """Judge the frame that ended at this marker; update the lock."""
        out: Out = []
        bits = self._bits
        text = "".join("_" if b is None else str(b) for b in bits)
        tc: timecode.TimeCode | None = None
        try:
            tc = timecode.decode(bits)
            reasons: tuple[str, ...] = ()
        except timecode.FrameInvalid as e:
            reasons = e.reasons
        utc_s = tc.utc_s() if tc else None
        expected = None if self._minute_s is None else self._minute_s + 60
        if tc is not None and expected is not None and utc_s != expected:
            reasons = ("disagrees-with-count",)
        out.append(MinuteReport(marker_ns, utc_s, not reasons, reasons, text, _extra(tc)))
        if self.locked:
            if reasons == ("disagrees-with-count",):
                out.extend(self._restart(marker_ns, "a valid frame disagrees with the count"))
                return out
            self._unconfirmed = 0 if tc else self._unconfirmed + 1
            if self._unconfirmed > MAX_UNCONFIRMED:
                out.extend(self._restart(marker_ns, f"{self._unconfirmed} frames in a row invalid"))
                return out
            assert expected is not None
            if tc is not None:
                self._hold = False
            self._enter_minute(expected, tc)
        elif tc is not None and self._prev is not None and self._prev[1].utc_s() + 60 == utc_s:
            out.append(StateChange(marker_ns, True, "two consecutive frames agree"))
            self._confirm = Confirmation(CONFIRM_STEADY_S if self.steady else CONFIRM_V1_S)
            self._unconfirmed = 0
            self._a2_before = self._prev[1].leap_announce
            self._enter_minute(tc.utc_s(), tc)
        self._prev = (marker_ns, tc) if tc is not None else None
        return out

    def _enter_minute(self, minute_s: int, tc: timecode.TimeCode | None) -> None:
        if tc is not None:
            self._a2 = tc.leap_announce
        elif minute_s % 3600 == 0:
            self._a2 = False  # A2 never outlives the hour it announces
        # After a leap minute the marker may have come 60 or 61 s after the last
        # one on the system clock (kernel stepped back, or ran on); a pulse in
        # the silent second 60 would look the same as a stepped marker.  So the
        # count is not trusted until a valid frame confirms it.
        self._hold = self._leap_minute
        self._minute_s = minute_s
        # A2 has no parity: the leap-seconds list decides where it speaks;
        # past it, A2 counts only when the previous frame said so too (and
        # only in the last UTC hour of a month: dcf77shm.leapsecs).
        self._leap_vote = self._a2 and self._a2_before
        self._a2_before = self._a2
        self._leap_minute = self.leaps.inserted_after(minute_s, self._leap_vote)

    def _start_minute(self, m: Mark, out: Out) -> Out:
        # The marker is in phase even when its frame has just dropped the lock
        # (_restart clears the chain): the frame that begins here is judged,
        # so a relock takes the two frames after a disagreement, not three.
        self._last_ns = m.time_ns
        self._index = 0
        self._bits = [m.bit]
        if not self.locked:
            tc = self._prev[1] if self._prev is not None else None
            self._leap_minute = tc is not None and self.leaps.inserted_after(
                tc.utc_s(), tc.leap_announce
            )
        return out + self._sample(m, 0)

    def _sample(self, m: Mark, index: int) -> Out:
        """The mark confirms the seconds waiting before it; it waits for its own."""
        if self._minute_s is None or index > 59:
            return []
        label = self._minute_s + index
        match = self._confirm.observe(label, m.bit, clean=m.bit is not None)
        if not self._hold and m.bit is not None and match >= 0:
            leap = self.leaps.flag(label, self._leap_vote)
            self._confirm.add(label, Sample(m.time_ns, label * NS_PER_S, leap))
        return list(self._confirm.release(label))


def _extra(tc: timecode.TimeCode | None) -> FrameInfo:
    return FrameInfo() if tc is None else timecode.frame_info(tc)
