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
  clock step in a recorded log is caught before anything after it goes out),
  and, for the seconds of the minute that led to the lock, ``CONFIRM_SECONDS``
  seconds after the lock itself: nothing is let out at lock time that no
  later second has confirmed.
The minute after a possible leap second (a month's last minute that the
leap-seconds list cannot speak for) is held until a frame confirms the count.
On unlock, and across a gap, the evidence is cleared: a relock never rests on
frames from before the signal was lost.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import replace

from dcf77shm import timecode
from dcf77shm.decode.confirm import Confirmation
from dcf77shm.decode.frontend import Transition
from dcf77shm.decode.guard import Missing
from dcf77shm.decode.robust import fields
from dcf77shm.decode.robust.tracker import Second, Tracker
from dcf77shm.decode.robust.witness import SILENT, CountWitness
from dcf77shm.leapsecs import LeapPolicy
from dcf77shm.model import (
    NS_PER_S,
    DropReason,
    Event,
    FrameInfo,
    MinuteReport,
    Sample,
    StateChange,
    Withheld,
)

Out = list[Event | Missing]

WINDOW = 20  # frames kept for the evidence lock
MARGIN = 20.0  # nats: the best hypothesis must beat every other by e^20
SILENCE_DECAY = 0.95  # per minute
KEEP_SECONDS = 62 * (WINDOW + 1)
_GROUPS = ((21, 28), (29, 35), (36, 58))  # parity groups, inclusive
_STABLE = (17, 18, *range(29, 59))  # bits that stay put between most minutes
WITNESS_MIN = 6  # the count must explain this many recent predictable seconds
WITNESS_LEAD = 3  # ... by this much more than any count shifted by 1 or 2 s
PERSIST_LEAD = 8  # a shifted count that leads by this much over half a minute: unlock
NOISY_WINDOW = 10  # seconds: more than MAX_NOISY of them with a noisy pause
MAX_NOISY = 1  # ... and nothing is published
# A second waits until later seconds have confirmed the count (see
# dcf77shm.decode.confirm), and at least this long: on a steady timeline a
# couple of seconds; without one (a version 1 log) long enough for the witness
# to catch a whole-second step of the system clock before anything labelled
# after it is let out.
CONFIRM_STEADY_S = 2
CONFIRM_V1_S = 25


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

    def __init__(self, leaps: LeapPolicy | None = None) -> None:
        self.leaps = leaps or LeapPolicy()
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
        self.steady = True  # the timeline is a steady clock (set by the pipeline)
        self._suspect_until = 0  # n: after a possible slip, nothing new until then
        self._noisy: deque[bool] = deque(maxlen=NOISY_WINDOW)
        self._confirm = Confirmation(CONFIRM_STEADY_S)

    @property
    def locked(self) -> bool:
        return self._lock_minute is not None

    # --- decoder interface ---------------------------------------------

    def transition(self, tr: Transition) -> Out:
        return self._on_seconds(self.tracker.transition(tr))

    def advance(self, now_ns: int) -> Out:
        return self._on_seconds(self.tracker.advance(now_ns))

    def gap(self, time_ns: int, reason: str) -> Out:
        self.tracker.reset()
        return self._reset_minutes(time_ns, f"source gap: {reason}")

    # --- internals -------------------------------------------------------

    def _reset_minutes(self, time_ns: int, reason: str) -> Out:
        out = self._unlock(time_ns, reason)
        self._seconds.clear()
        self._silence = [0.0] * 60
        self._marker = None
        self._frames.clear()
        return out

    def _unlock(self, time_ns: int, reason: str) -> Out:
        was = self.locked
        self._confirm.clear()
        self._lock_minute = None
        self._hold = False
        self._contra.clear()
        if was:
            # Whatever made the count fail may have been in the evidence too:
            # a relock must rest on frames received after this.
            self._frames.clear()
            self._tables.clear()
            self._parity.clear()
            self._a2.clear()
            self._silence = [0.0] * 60  # where the minute starts, too
            self._marker = None
        return [StateChange(time_ns, False, reason)] if was else []

    def _on_seconds(self, secs: list[Second]) -> Out:
        out: Out = []
        for s in secs:
            out.extend(self._on_second(s))
        return out

    def _on_second(self, s: Second) -> Out:
        out: Out = []
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

    def _frame_done(self, s: Second, n0: int) -> Out:
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
        out: Out = []
        expect = self._lock_minute + 60 if self._lock_minute is not None else None
        margin: float | None = None
        evidence_utc: int | None = None
        if expect is not None:
            out.extend(self._verify(s, tc))
        else:
            margin, evidence_utc, lock = self._try_lock(s, tc)
            out.extend(lock)
        bits = "".join("_" if b is None else str(b) for b in (_decided(x) for x in secs))
        # ok: the frame passed every check and nothing we know contradicts it
        # (the running count when locked, the best evidence when not).
        utc = tc.utc_s() if tc else None
        rival = expect if expect is not None else evidence_utc
        decoded = None
        if utc is not None and rival is not None and rival != utc:
            decoded = utc
            reasons = ("disagrees-with-count" if expect is not None else "disagrees-with-evidence",)
            utc = None

        def ns(t: int | None) -> int | None:
            return None if t is None else t * NS_PER_S

        frame = timecode.frame_info(tc) if tc is not None else FrameInfo()
        extra = replace(frame, decoder="robust", margin=margin, evidence_utc_ns=ns(evidence_utc),
                        expected_ns=ns(expect), decoded_ns=ns(decoded),
                        confirmed=utc is not None and utc == rival)  # fmt: skip
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
        self, s: Second, tc: timecode.TimeCode | None
    ) -> tuple[float | None, int | None, Out]:
        """(evidence margin, its UTC minute if it leads, the lock's events)."""
        margin: float | None = None
        evidence_utc: int | None = None
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
            margin = round(v.margin, 1)
            if v.utc_s is not None and v.margin > 0:
                evidence_utc = v.utc_s
            if v.utc_s is not None and v.margin >= MARGIN:
                next_minute, how = v.utc_s, f"evidence margin {v.margin:.0f}"
        if next_minute is None or self.leaps.uncertain_minute(next_minute - 60):
            return margin, evidence_utc, []
        self._lock_minute = next_minute - 60  # the minute now ending
        self._lock_n0 = s.n - 59
        self._hold = False
        self._witness.reset()
        self._confirm = Confirmation(CONFIRM_STEADY_S if self.steady else CONFIRM_V1_S)
        matches = []
        for j in range(60):
            x = self._seconds.get(self._lock_n0 + j)
            sym = None if x is None else _symbol(x)
            if x is not None:
                self._witness.observe(self._lock_minute + j, sym)
            clean = x is not None and x.clean
            matches.append(self._confirm.predictor.match(self._lock_minute + j, sym, clean))
        # The minute that just ended is now labelled too: both frames and an
        # unbroken count vouch for it.  Its seconds wait like any other, each
        # until the seconds after it have confirmed the count (dcf77shm.decode.confirm).
        out: Out = [StateChange(s.start_ns + NS_PER_S, True, how)]
        vote = self._a2_vote()
        for j in range(59):
            x = self._seconds.get(self._lock_n0 + j)
            if x is None or not x.clean or x.edge_ns is None or matches[j] < 0:
                continue
            label = self._lock_minute + j
            after = matches[j + 1 :]
            sample = Sample(x.edge_ns, label * NS_PER_S, self.leaps.flag(label, vote))
            self._confirm.add(label, sample, after.count(1), after.count(-1))
        out.extend(self._confirm.release(self._lock_minute + 59))
        return margin, evidence_utc, out

    def _verify(self, s: Second, tc: timecode.TimeCode | None) -> Out:
        assert self._lock_minute is not None
        expect = self._lock_minute + 60
        contra = tc is not None and tc.utc_s() != expect
        self._contra.append(contra)
        if sum(self._contra) >= 2:
            return self._unlock(s.start_ns, "frames contradict the count")
        out: Out = []
        if contra:
            # A valid frame that says another time: whatever the count labelled
            # meanwhile is not let out, and nothing new until a frame agrees.
            out = [Withheld(x, DropReason.UNVERIFIED) for x in self._confirm.drain()]
            self._hold, self._hold_frames = True, 0
        if self._hold and not contra:
            confirmed = tc is not None and tc.utc_s() == expect
            if not confirmed and len(self._frames) >= 2:
                v = self._evidence()
                confirmed = v.utc_s == expect and v.margin >= MARGIN
            self._hold_frames += 1
            if confirmed:
                self._hold = False
            elif self._hold_frames > 3:
                return self._unlock(s.start_ns, "count not confirmed after a frame")
        return out

    def _locked_second(self, s: Second) -> Out:
        assert self._lock_minute is not None
        k = s.n - self._lock_n0
        out: Out = []
        if k >= 60:
            month_end = self.leaps.inserted_after(self._lock_minute, True)
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
        missing: Out = []
        if k < 59 and s.presence < 0.5:
            # A second without a clear pulse: without a steady clock this is
            # also what a step of the system clock looks like (the guard decides).
            missing.append(Missing(s.start_ns))
        label = self._lock_minute + k
        sym = _symbol(s)
        match = self._witness.observe(label, sym) if k <= 59 else 0
        here, shifted = self._witness.lead()
        slip = "the bits fit a count shifted by a second"
        if not self.steady and self._witness.slipped(WITNESS_LEAD):
            return [*out, *self._unlock(s.start_ns, slip)]
        if self.steady and self._witness.slipped_for_long(PERSIST_LEAD):
            # On a steady timeline the count itself cannot slip: a shifted fit
            # that persists is another signal (a local transmitter in phase).
            return [*out, *self._unlock(s.start_ns, slip)]
        if self.steady and self._witness.slipped(WITNESS_LEAD):
            # A short one is more likely flipped bits: what waits is not let out.
            out.extend(Withheld(x, DropReason.UNVERIFIED) for x in self._confirm.drain())
            self._suspect_until = s.n + 1
        out.extend(missing)
        self._noisy.append(not s.quiet)
        if sum(self._noisy) > MAX_NOISY:
            # Noise on the line (the pauses are not pauses): nothing that waits
            # is let out, nothing new goes in, until it has been quiet again.
            out.extend(Withheld(x, DropReason.UNVERIFIED) for x in self._confirm.drain())
            self._suspect_until = s.n + 1
        if k <= 59:
            self._confirm.observe(label, sym, s.clean)
        if k == 59:
            return [*out, *self._frame_done(s, s.n - 59)]
        certain = here >= WITNESS_MIN and here - shifted >= WITNESS_LEAD and match >= 0
        certain = certain and s.n >= self._suspect_until
        if certain and not self._hold and s.clean and k <= 58 and s.edge_ns is not None:
            leap = self.leaps.flag(label, self._a2_vote())
            self._confirm.add(label, Sample(s.edge_ns, label * NS_PER_S, leap))
        out.extend(self._confirm.release(label))
        return out

    def _rotate_marker(self) -> None:
        self._witness.reset()
        if self._marker is not None:
            self._marker = (self._marker + 1) % 60
        self._silence = self._silence[-1:] + self._silence[:-1]

    def _a2_vote(self) -> bool:
        """A2 clear in two of the last three frames (A2 has no parity; the
        leap-seconds list, where it speaks, overrules it: dcf77shm.leapsecs)."""
        return sum(1 for a in list(self._a2)[-3:] if a == 1) >= 2

    def _a2_surely_clear(self) -> bool:
        return sum(1 for a in self._a2 if a == 0) >= 3
