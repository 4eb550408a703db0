"""The robust decoder: phase-locked seconds, soft bits, minute lock by evidence.

Stages: :class:`~.tracker.Tracker` (second phase, per-second soft measures)
-> minute phase (which second is the silent 59th, accumulated over minutes)
-> soft frames -> time lock (:mod:`.fields`) -> samples.

Lock is gained in one of two ways:

* fast: two consecutive frames in which every bit 17-58 is clear-cut, both
  valid, one minute apart, and no parity failure in any frame of the window
  (a clean receiver locks as fast as the strict decoder);
* by evidence: the best UTC hypothesis over up to ``WINDOW`` soft frames beats
  every other hypothesis by at least ``MARGIN`` nats of log-likelihood, with
  per-bit confidence capped by an upper bound on the bit error rate measured
  from parity failures (:func:`.fields.evaluate`).

Once locked, seconds are labelled by counting tracked seconds from the minute
marker; each later frame must not contradict the count.

Publishing rule (the one promise that matters): a second mark is published
only while locked and not on hold, when its label comes from the count, and
* its leading edge lies inside the tracked phase window (3.5 sigma of the
  loop's own jitter, 10-100 ms), it is the only pulse-like rise there, and the
  carrier stayed reduced for 60 ms after it (a glitch-shifted or glitch-made
  edge fails one of these);
* the count witness (:mod:`.witness`) finds that the bits of the last minute
  fit the count better, by a margin, than a count shifted by 1 or 2 s, and the
  second's own bit does not contradict it;
* ``CONFIRM_SECONDS`` later seconds have also fitted the count (a whole-second
  clock step in a recorded log is caught before anything after it goes out).
The minute after a possible leap second (any month's last minute) is held
until a frame confirms the count.
"""

from __future__ import annotations

import itertools
import math
from collections import deque

from dcf77shm import timecode
from dcf77shm.decode.frontend import Transition
from dcf77shm.decode.robust import fields
from dcf77shm.decode.robust.tracker import Second, Tracker
from dcf77shm.decode.robust.witness import SILENT, CountWitness
from dcf77shm.model import NS_PER_S, Event, Leap, MinuteReport, Sample, StateChange

WINDOW = 20  # frames kept for the evidence lock
MARGIN = 20.0  # nats: the best hypothesis must beat every other by e^20
SILENCE_DECAY = 0.95  # per minute
KEEP_SECONDS = 62 * (WINDOW + 1)
_GROUPS = ((21, 28), (29, 35), (36, 58))  # parity groups, inclusive
_STABLE = (17, 18, *range(29, 59))  # bits that stay put between most minutes
WITNESS_MIN = 6  # the count must explain this many recent predictable seconds
WITNESS_LEAD = 3  # ... by this much more than any count shifted by 1 or 2 s
# A second is published only after this many later seconds have also fitted
# the count: a whole-second step of the clock in a recorded log (which has no
# monotonic stamps to reveal it) is caught by the witness before any second
# labelled after it is let out.
CONFIRM_SECONDS = 25
# chrony drops refclock samples older than 2^(poll+1) s (32 s at poll 4): a
# confirmed second older than this when it is let out (the minute labelled at
# lock time) is not published at all.
MAX_AGE_SECONDS = 28


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def _confident(s: Second | None, clear: float = 0.3) -> int | None:
    """The hard bit of a second, or None unless ``one`` is ``clear`` away from 0.5."""
    if s is None or s.presence < 0.7 or abs(s.one - 0.5) < clear:
        return None
    return 1 if s.one > 0.5 else 0


def _symbol(s: Second) -> int | None:
    """What the second carried: a 0, a 1, no pulse (SILENT), or unclear (None)."""
    if s.presence < 0.3:
        return SILENT
    return _decided(s)


def _decided(s: Second | None) -> int | None:
    """The hard bit as the strict decoder would take it (width above or below 150 ms)."""
    return _confident(s, 0.1)


class RobustDecoder:
    name = "robust"

    def __init__(self) -> None:
        self.tracker = Tracker()
        self._epoch = -1
        self._seconds: dict[int, Second] = {}
        self._silence = [0.0] * 60
        self._marker: int | None = None  # n % 60 of the silent second 59
        self._frames: deque[tuple[int, list[Second | None]]] = deque(maxlen=WINDOW)
        self._parity: deque[bool] = deque(maxlen=3 * 30)  # True = group failed
        self._a2: deque[int | None] = deque(maxlen=5)
        self._lock_minute: int | None = None  # UTC s of the minute now running
        self._lock_n0 = 0  # n of its second 0
        self._hold = False
        self._hold_frames = 0
        self._contra: deque[bool] = deque(maxlen=4)
        self._witness = CountWitness()
        self._tables: dict[int, fields.Tables] = {}  # unit-confidence field scores by frame
        self._queue: deque[tuple[int, Sample]] = deque()  # (n, sample) awaiting confirmation

    @property
    def locked(self) -> bool:
        return self._lock_minute is not None

    # --- decoder interface ---------------------------------------------

    def transition(self, tr: Transition) -> list[Event]:
        return self._on_seconds(self.tracker.transition(tr))

    def advance(self, now_ns: int) -> list[Event]:
        return self._on_seconds(self.tracker.advance(now_ns))

    def gap(self, time_ns: int, reason: str) -> list[Event]:
        self.tracker.reset()
        return self._reset_minutes(time_ns, f"source gap: {reason}")

    # --- internals -------------------------------------------------------

    def _reset_minutes(self, time_ns: int, reason: str) -> list[Event]:
        out = self._unlock(time_ns, reason)
        self._seconds.clear()
        self._silence = [0.0] * 60
        self._marker = None
        self._frames.clear()
        return out

    def _unlock(self, time_ns: int, reason: str) -> list[Event]:
        was = self.locked
        self._queue.clear()
        self._lock_minute = None
        self._hold = False
        self._contra.clear()
        return [StateChange(time_ns, False, reason)] if was else []

    def _on_seconds(self, secs: list[Second]) -> list[Event]:
        out: list[Event] = []
        for s in secs:
            out.extend(self._on_second(s))
        return out

    def _on_second(self, s: Second) -> list[Event]:
        out: list[Event] = []
        if s.epoch != self._epoch:
            out.extend(self._reset_minutes(s.start_ns, "second phase re-acquired"))
            self._epoch = s.epoch
        self._seconds[s.n] = s
        self._seconds.pop(s.n - KEEP_SECONDS, None)
        if self.locked:
            out.extend(self._locked_second(s))
            return out
        i = s.n % 60
        # A clear pulse says "not the marker" more surely than a silence says
        # "the marker" (pulses get lost, the silent second never pulses).
        vote = 1.0 if s.presence < 0.3 else -2.0 if s.presence > 0.7 else 0.0
        self._silence[i] = self._silence[i] * SILENCE_DECAY + vote
        marker = self._find_marker()
        if marker != self._marker:
            self._frames.clear()
            self._marker = marker
        if marker is not None and i == marker:
            out.extend(self._frame_done(s, s.n - 59))
        return out

    def _find_marker(self) -> int | None:
        m = self._silence
        best = max(range(60), key=m.__getitem__)
        second = max(v for k, v in enumerate(m) if k != best)
        cur = self._marker
        if cur is not None and cur != best and m[best] - m[cur] < 2.0:
            return cur  # hysteresis: one odd minute does not move the marker
        return best if m[best] >= 0.9 and m[best] - second >= 1.0 else None

    # --- frames and lock -------------------------------------------------

    def _frame_done(self, s: Second, n0: int) -> list[Event]:
        """Seconds n0..n0+58 form a frame; ``s`` is the second after it."""
        secs = [self._seconds.get(n0 + j) for j in range(59)]
        if self._frames and self._frames[-1][0] != n0 - 60:
            self._frames.clear()
        self._frames.append((n0, secs))
        hard = [_confident(x) for x in secs]
        for lo, hi in _GROUPS:
            grp = hard[lo : hi + 1]
            if all(b is not None for b in grp):
                self._parity.append(bool(sum(b for b in grp if b is not None) & 1))
        self._a2.append(hard[19])
        tc, reasons = self._hard_decode([_decided(x) for x in secs])
        marker_ns = s.start_ns + NS_PER_S
        out: list[Event] = []
        extra: dict[str, object] = {"decoder": "robust"}
        expect = self._lock_minute + 60 if self._lock_minute is not None else None
        if expect is not None:
            out.extend(self._verify(s, tc, extra))
        else:
            out.extend(self._try_lock(s, tc, extra))
        bits = "".join("_" if b is None else str(b) for b in (_decided(x) for x in secs))
        # ok: the frame passed every check and nothing we know contradicts it
        # (the running count when locked, the best evidence when not).
        utc = tc.utc_s() if tc else None
        rival = expect if expect is not None else extra.get("evidence_utc")
        if utc is not None and rival is not None and rival != utc:
            extra["decoded"] = utc
            reasons = ("disagrees-with-count" if expect is not None else "disagrees-with-evidence",)
            utc = None
        extra["confirmed"] = utc is not None and utc == rival
        report = MinuteReport(marker_ns, utc, utc is not None, reasons, bits, extra)
        return [report, *out]

    @staticmethod
    def _hard_decode(hard: list[int | None]) -> tuple[timecode.TimeCode | None, tuple[str, ...]]:
        if any(b is None for b in hard[18:59]):
            return None, ("unclear-bits",)
        bits = [0 if b is None else b for b in hard]
        if hard[17] is None:  # a frame caught from second 18 on: Z1 is not Z2
            bits[17] = 1 - bits[18]
        if hard[20] is None:
            bits[20] = 1
        try:
            return timecode.decode(bits), ()
        except timecode.FrameInvalid as e:
            return None, e.reasons

    def _bit_error_bound(self) -> float:
        """Upper bound on the per-bit error rate of clear-cut bits.

        Two independent witnesses, the tighter wins: parity failures of
        complete groups, and disagreements between consecutive frames in bits
        that stay put from minute to minute (zone, hour, date; a real change at
        an hour or day boundary only makes the bound more cautious).  A flipped
        pulse looks perfectly clean, so only the code itself can reveal it.
        """
        groups = len(self._parity)
        fails = sum(self._parity)
        f_ub = min(0.49, (fails + 3.0) / (groups + 4.0))
        p_parity = (1 - (1 - 2 * f_ub) ** (1 / 12.0)) / 2
        pairs = diffs = 0
        frames = list(self._frames)
        for (_, a), (_, b) in itertools.pairwise(frames):
            for j in _STABLE:
                x, y = _confident(a[j]), _confident(b[j])
                if x is not None and y is not None:
                    pairs += 1
                    diffs += x != y
        d_ub = min(0.5, (diffs + 3.0) / (pairs + 4.0))
        p_pairs = (1 - math.sqrt(1 - 2 * d_ub)) / 2  # d = 2p(1-p)
        return _clip(min(p_parity, p_pairs), 0.002, 0.3)

    def _llrs(self, secs: list[Second | None], lam: float) -> list[float]:
        out = []
        for x in secs:
            if x is None:
                out.append(0.0)
                continue
            w = _clip((x.presence - 0.3) / 0.5, 0.0, 1.0)
            out.append(lam * w * _clip((x.one - 0.5) / 0.3, -1.0, 1.0))
        return out

    def _evidence(self) -> fields.Verdict:
        lam = math.log((1 - (p := self._bit_error_bound())) / p)
        tables = []
        for n0, secs in self._frames:
            t = self._tables.get(n0)
            if t is None:
                t = self._tables[n0] = fields.Tables.of(self._llrs(secs, 1.0))
            tables.append(t)
        for old in [k for k in self._tables if k < self._frames[0][0]]:
            del self._tables[old]
        return fields.evaluate_tables(tables, lam)

    def _try_lock(
        self, s: Second, tc: timecode.TimeCode | None, extra: dict[str, object]
    ) -> list[Event]:
        next_minute: int | None = None
        how = ""
        window_parity = list(self._parity)[-3 * len(self._frames) :]
        if tc is not None and len(self._frames) >= 2 and not any(window_parity):
            prev = self._frames[-2][1]
            ptc, _ = self._hard_decode([_decided(x) for x in prev])
            if ptc is not None and ptc.utc_s() + 60 == tc.utc_s():
                next_minute, how = tc.utc_s(), "two clear frames agree"
        if next_minute is None and len(self._frames) >= 2:
            v = self._evidence()
            extra["margin"] = round(v.margin, 1)
            if v.utc_s is not None and v.margin > 0:
                extra["evidence_utc"] = v.utc_s
            if v.utc_s is not None and v.margin >= MARGIN:
                next_minute, how = v.utc_s, f"evidence margin {v.margin:.0f}"
        if next_minute is None or timecode.is_month_end_minute(next_minute - 60):
            return []
        self._lock_minute = next_minute - 60  # the minute now ending
        self._lock_n0 = s.n - 59
        self._hold = False
        self._witness.reset()
        for j in range(60):
            x = self._seconds.get(self._lock_n0 + j)
            if x is not None:
                self._witness.observe(self._lock_minute + j, _symbol(x))
        # The minute that just ended is now labelled too: both frames and an
        # unbroken count vouch for it.  Its seconds join the queue like any
        # other and leave it once CONFIRM_SECONDS later seconds have fitted.
        out: list[Event] = [StateChange(s.start_ns + NS_PER_S, True, how)]
        leap = Leap.INSERT if self._a2_set() and self._lock_minute % 3600 else Leap.NONE
        for j in range(59):
            x = self._seconds.get(self._lock_n0 + j)
            if x is None or not x.clean or x.edge_ns is None:
                continue
            if self._witness.predict(self._lock_minute + j) in (None, _symbol(x)):
                sample = Sample(x.edge_ns, (self._lock_minute + j) * NS_PER_S, leap)
                self._queue.append((x.n, sample))
        out.extend(self._release(s.n))
        return out

    def _release(self, n_now: int) -> list[Event]:
        out: list[Event] = []
        while self._queue and self._queue[0][0] <= n_now - CONFIRM_SECONDS:
            n, sample = self._queue.popleft()
            if n >= n_now - MAX_AGE_SECONDS:
                out.append(sample)
        return out

    def _verify(
        self, s: Second, tc: timecode.TimeCode | None, extra: dict[str, object]
    ) -> list[Event]:
        assert self._lock_minute is not None
        expect = self._lock_minute + 60
        extra["expected"] = expect
        contra = tc is not None and tc.utc_s() != expect
        self._contra.append(contra)
        if sum(self._contra) >= 2:
            return self._unlock(s.start_ns, "frames contradict the count")
        if self._hold:
            confirmed = tc is not None and tc.utc_s() == expect
            if not confirmed and len(self._frames) >= 2:
                v = self._evidence()
                confirmed = v.utc_s == expect and v.margin >= MARGIN
            self._hold_frames += 1
            if confirmed:
                self._hold = False
            elif self._hold_frames > 3:
                return self._unlock(s.start_ns, "count not confirmed after a possible leap second")
        return []

    def _locked_second(self, s: Second) -> list[Event]:
        assert self._lock_minute is not None
        k = s.n - self._lock_n0
        out: list[Event] = []
        if k >= 60:
            month_end = timecode.is_month_end_minute(self._lock_minute)
            if k == 60 and month_end and s.presence < 0.3 and not self._a2_surely_clear():
                # Silent second 60: a leap second on a clock that ran on.
                # It is not counted, so second 0 follows it.
                self._lock_n0 += 1
                self._rotate_marker()
                self._hold, self._hold_frames = True, 0
                return []
            self._lock_minute += 60
            self._lock_n0 += 60
            k -= 60
            if month_end and not self._a2_surely_clear():
                self._hold, self._hold_frames = True, 0
        match = self._witness.observe(self._lock_minute + k, _symbol(s)) if k <= 59 else 0
        here, shifted = self._witness.lead()
        if self._witness.slipped(WITNESS_LEAD):
            return [*out, *self._unlock(s.start_ns, "the bits fit a count shifted by a second")]
        if k == 59:
            return self._frame_done(s, s.n - 59)
        certain = here >= WITNESS_MIN and here - shifted >= WITNESS_LEAD and match >= 0
        if certain and not self._hold and s.clean and k <= 58 and s.edge_ns is not None:
            minute = self._lock_minute
            leap = Leap.INSERT if self._a2_set() and minute % 3600 else Leap.NONE
            self._queue.append((s.n, Sample(s.edge_ns, (minute + k) * NS_PER_S, leap)))
        out.extend(self._release(s.n))
        return out

    def _rotate_marker(self) -> None:
        self._witness.reset()
        if self._marker is not None:
            self._marker = (self._marker + 1) % 60
        self._silence = self._silence[-1:] + self._silence[:-1]

    def _a2_set(self) -> bool:
        """A leap second is announced: A2 clear in two of the last three frames,
        and only in the last UTC hour of a month (A2 has no parity)."""
        assert self._lock_minute is not None
        if not timecode.in_leap_hour(self._lock_minute):
            return False
        return sum(1 for a in list(self._a2)[-3:] if a == 1) >= 2

    def _a2_surely_clear(self) -> bool:
        return sum(1 for a in self._a2 if a == 0) >= 3
