"""The held count: the last stage of the pipeline, shared by every decoder.

Once the decoder has locked, the label of every later second follows from
that lock and the elapsed time on the steady clock (``mono_ns``), which never
steps and which chrony does not slew.  The guard keeps that *held count* as a
small model - a reference mark, the period of the marks on the steady clock,
and how far both may have wandered since they were last confirmed - and lets a
decoded second through only when it agrees with it:

* **jump** - a second whose label or phase contradicts the held count (a
  relock on another time, a local transmitter, a count that slipped) is
  withheld and raises an alarm once per event.  Whether the radio's new time
  is ever followed is a policy (:class:`JumpPolicy`): by default never within
  one run of the service (and the held count survives a restart in the same
  boot: :mod:`dcf77shm.service.state`).
* **drift** - while locked, the marks' rate against the steady clock is the
  host oscillator's, which a crystal changes only slowly.  The model follows
  it through a slow loop whose frequency may move at most ``slew_ppm_per_h``
  and stay within ``band_ppm`` of the rate learned at lock; when the marks
  leave what that allows, the minute's mean deviation crosses ``DRIFT_NS``
  long before the published time has moved 50 ms, and publishing stops.
* **holdover** - without signal the model flywheels; its uncertainty grows by
  ``holdover_ppm`` of the elapsed time.  A relock is accepted only to the
  continued count within that uncertainty; once the uncertainty reaches half a
  second the count can no longer pin the label, and the radio must then agree
  with itself for ``REQUALIFY_NS`` before anything is published again (and
  still within the uncertainty).
* **clock steps** - a second received before a step of the system clock but
  let out after it would carry a receive time of the old clock: withheld.
* **edge logs without a steady clock** (version 1): the system clock is the
  only timeline, so a step forward in it looks exactly like a missing pulse
  followed by a shifted count.  After any missing pulse the decoder reports,
  seconds are held back until a valid frame received after it agrees with the
  count.

Everything here is pure: times come from the items, never from a clock.
"""

from __future__ import annotations

import calendar
import datetime as dt
import enum
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from dcf77shm.formats.events import iso_ns
from dcf77shm.leapsecs import LeapPolicy
from dcf77shm.model import (
    NS_PER_MS,
    NS_PER_S,
    Alarm,
    AlarmKind,
    DropReason,
    Event,
    MinuteReport,
    Sample,
    StateChange,
    Withheld,
)

# A published second's edge must lie this close to where the held count puts
# the mark: a sample more than 50 ms from the true mark is a wrong sample, and
# the held count's own error, averaged over minutes, is a millisecond or two.
PUBLISH_NS = 40 * NS_PER_MS
# While the rate is still being learned, the fit so far is less sure.
LEARN_PUBLISH_NS = 38 * NS_PER_MS
# Beyond this the edge is not the held count's mark at all: a jump, not noise.
JUMP_NS = 150 * NS_PER_MS
# The minute's mean deviation from the model that means drift (the mean of
# ~50 edges with 10 ms jitter scatters by ~1.4 ms), and at least this many
# times the scatter of such means for the jitter actually seen.
DRIFT_NS = 15 * NS_PER_MS
DRIFT_SIGMAS = 6.0
# ... and how close it must come back before publishing resumes after drift
# (plus what the oscillator may have wandered since, up to DRIFT_MAX_NS).
RESUME_NS = 5 * NS_PER_MS
DRIFT_MAX_NS = 250 * NS_PER_MS
# A drift resumes after this long on the held rate, judged by the upper
# bound (2 sigma) of the marks' rate against it: over 10 minutes with 5 ms
# jitter the rate scatters by ~1.2 ppm, so a drift that goes on (4.5 ppm from
# the held rate) once passed a plain "within half the band" by chance and was
# followed, 60 ms off after an hour (issue 13's W3b finding); over 20 minutes
# sigma is ~0.4 ppm.
RESUME_MINUTES = 20
RESUME_SIGMAS = 2.0
MIN_PER_MINUTE = 10  # samples a minute needs to count for the drift loop
LEARN_NS = 10 * 60 * NS_PER_S  # after the first lock the rate is learned freely
MIN_FIT = 1  # seconds in the fit before any is published (the anchor is not)
REQUALIFY_NS = 10 * 60 * NS_PER_S
UNVERIFIED_KEEP_NS = 180 * NS_PER_S  # version 1 logs: how long seconds wait for a frame
SNAPSHOT_BACK = 30  # minutes: the model restored after a drift alarm
# The held rate: a line through the minute means of the last hour.
FIT_MINUTES = 60
SLOPE_AFTER = 20
# The rate of the newest quarter hour against the rate of the minutes before
# it: a change beyond the band (or five sigma) is drift - a crystal does not.
RATE_MINUTES = 15
RATE_SIGMAS = 5.0
# Until the rate is learned, holdover assumes the tracker's own limit.
UNLEARNED_PPM = 2000.0


@dataclass(frozen=True, slots=True)
class Missing:
    """From a decoder: a pulse was due at ``mono_ns`` (timeline) and none came."""

    mono_ns: int


DEFAULT_FOLLOW_NS = 6 * 3600 * NS_PER_S


class JumpPolicy(enum.Enum):
    NEVER = "never"  # the held count wins for as long as it can pin the label
    AFTER = "after"  # follow the radio once it has agreed with itself for follow_ns


class GuardState(enum.Enum):
    ACQUIRING = "acquiring"  # no held count yet
    LEARNING = "learning"  # locked, learning the marks' rate
    LOCKED = "locked"  # publishing
    HOLDOVER = "holdover"  # no signal (or no lock): the count flywheels
    REQUALIFY = "requalify"  # the count is ambiguous: the radio must agree with itself
    UNVERIFIED = "unverified"  # version 1 log after a missing pulse: waiting for a frame
    JUMP = "jump"  # the radio's time contradicts the held count
    DRIFT = "drift"  # the marks left the rate the oscillator allows


@dataclass(frozen=True, slots=True)
class GuardConfig:
    jump_policy: JumpPolicy = JumpPolicy.NEVER
    follow_ns: int = DEFAULT_FOLLOW_NS  # JumpPolicy.AFTER: agreement needed
    band_ppm: float = 5.0  # the held rate may move this far from the rate at lock
    slew_ppm_per_h: float = 10.0  # ... and this fast
    holdover_ppm: float = 10.0  # uncertainty growth without signal


@dataclass(slots=True)
class HeldClock:
    """Marks on the steady clock: ``predict(label)`` = where the mark of UTC
    second ``label`` lies.  Seconds inserted by leap seconds are counted."""

    mono0: int  # a reference mark
    label0: int
    period: float  # ns of steady clock per second of marks
    f0: float  # the period learned at lock (centre of the band)
    last_mono: int  # the last confirmed mark
    started_mono: int
    learned: bool = True  # the rate was learned for LEARN_NS
    hold_ppm: float = UNLEARNED_PPM  # until then: how well the rate is known
    f0_unc: float = 0.0  # how well f0 is known (ns/s)

    def predict(self, label: int, leaps: LeapPolicy) -> float:
        return (
            self.mono0 + (label - self.label0 + _inserted(self.label0, label, leaps)) * self.period
        )

    def uncertainty(self, mono: int, holdover_ppm: float) -> float:
        ppm = holdover_ppm if self.learned else max(holdover_ppm, self.hold_ppm)
        return PUBLISH_NS + ppm * 1e-6 * max(0, mono - self.last_mono)

    def to_json(self) -> dict[str, Any]:
        return {
            "mono0": self.mono0,
            "label0": self.label0,
            "period": self.period,
            "f0": self.f0,
            "last_mono": self.last_mono,
            "started_mono": self.started_mono,
            "learned": self.learned,
            "hold_ppm": self.hold_ppm,
            "f0_unc": self.f0_unc,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> HeldClock:
        return cls(
            int(d["mono0"]),
            int(d["label0"]),
            float(d["period"]),
            float(d["f0"]),
            int(d["last_mono"]),
            int(d["started_mono"]),
            bool(d.get("learned", True)),
            float(d.get("hold_ppm", UNLEARNED_PPM)),
            float(d.get("f0_unc", 0.0)),
        )


def _inserted(a: int, b: int, leaps: LeapPolicy) -> int:
    """Leap seconds inserted between labels a and b (signed), as far as the list knows."""
    if a <= b:
        return leaps.inserted_between(a, b)
    return -leaps.inserted_between(b, a)


@dataclass(slots=True)
class _Fit:
    """Least-squares line through (label, mono) while the rate is learned."""

    n: int = 0
    sx: float = 0.0
    sy: float = 0.0
    sxx: float = 0.0
    sxy: float = 0.0
    x0: int = 0
    y0: int = 0

    def add(self, x: int, y: int) -> None:
        if self.n == 0:
            self.x0, self.y0 = x, y
        dx, dy = float(x - self.x0), float(y - self.y0)
        self.n += 1
        self.sx += dx
        self.sy += dy
        self.sxx += dx * dx
        self.sxy += dx * dy

    def rate_ppm_bound(self, jitter_ns: float = 20e6) -> float:
        """A bound on the fitted rate's error: three sigma of the slope for edges
        of this jitter (20 ms unless known) over the labels seen (ppm)."""
        if self.n < 3:
            return UNLEARNED_PPM
        sxx = self.sxx - self.sx * self.sx / self.n  # spread of the labels, s^2
        if sxx <= 0:
            return UNLEARNED_PPM
        return float(min(UNLEARNED_PPM, 3 * jitter_ns / NS_PER_S / sxx**0.5 * 1e6))

    def line(self) -> tuple[int, float, float] | None:
        """(label x0, mono at x0, slope) or None with too little spread."""
        if self.n < 3:
            return None
        den = self.n * self.sxx - self.sx * self.sx
        if den <= 0 or self.sxx < 400.0:
            return None
        slope = (self.n * self.sxy - self.sx * self.sy) / den
        icpt = (self.sy - slope * self.sx) / self.n
        return self.x0, self.y0 + icpt, slope


class Guard:
    """Filters the decoder's events through the held count (see the module doc)."""

    def __init__(
        self,
        config: GuardConfig | None = None,
        leaps: LeapPolicy | None = None,
        monotonic: bool = True,
    ) -> None:
        self.config = config or GuardConfig()
        self.leaps = leaps or LeapPolicy()
        self.monotonic = monotonic
        self.model: HeldClock | None = None
        self.state = GuardState.ACQUIRING
        self.decoder_locked = False
        self.alarm: Alarm | None = None  # the open alarm, until recovered
        self._fit = _Fit()
        self._minute: int | None = None  # the minute being accumulated
        self._acc: list[tuple[int, int]] = []  # (label, mono) of the minute's seconds
        self._points: deque[tuple[float, float, int]] = deque(maxlen=FIT_MINUTES)
        self._snapshots: deque[tuple[int, HeldClock]] = deque(maxlen=SNAPSHOT_BACK + 1)
        self._step_mono: int | None = None
        self._drift_since: int | None = None  # steady time of the snapshot restored at drift
        self._qual_since: int | None = None  # requalification (or jump-following) start
        self._shadow: HeldClock | None = None  # the radio's other time, while it is refused
        self._shadow_fit = _Fit()
        self._qual_fit = _Fit()
        self._unverified_since: int | None = None  # version 1: a missing pulse
        self._held: list[Sample] = []  # version 1: seconds waiting for a frame
        self._pending_resume: list[tuple[int, float]] = []  # (mono, error) since a drift
        self._jitter_var = float(10 * NS_PER_MS) ** 2  # of single edges around the model

    # --- inputs ------------------------------------------------------------------------

    def step(self, mono_ns: int, delta_ns: int) -> list[Event]:
        """The system clock stepped at or before ``mono_ns``."""
        self._step_mono = mono_ns if self._step_mono is None else max(self._step_mono, mono_ns)
        detail = f"system clock stepped by {delta_ns / NS_PER_S:+.6f} s"
        return [Alarm(mono_ns, AlarmKind.CLOCK_STEP, detail)]

    def missing(self, mono_ns: int) -> None:
        """The decoder expected a pulse and none came (matters without a steady clock)."""
        if not self.monotonic and self.model is not None and self._unverified_since is None:
            self._unverified_since = mono_ns
            if self.state is GuardState.LOCKED:
                self.state = GuardState.UNVERIFIED

    def state_change(self, ev: StateChange) -> list[Event]:
        self.decoder_locked = ev.locked
        out: list[Event] = []
        if not ev.locked:
            out += self._drop_held(DropReason.UNVERIFIED)
            self._close_minute()
            if self.state is GuardState.LEARNING and self._fit.line() is None:
                # Lost within a minute of the first lock: nothing worth holding.
                self.model, self.state = None, GuardState.ACQUIRING
            elif self.state in (GuardState.LOCKED, GuardState.LEARNING, GuardState.UNVERIFIED):
                if self.state is GuardState.LEARNING and self.model is not None:
                    self.model.hold_ppm = self._fit.rate_ppm_bound()
                self.state = GuardState.HOLDOVER
        return out

    def minute(self, ev: MinuteReport, mono_ns: int) -> list[Event]:
        """A frame at ``mono_ns`` (steady clock of its marker)."""
        out: list[Event] = []
        m = self.model
        if m is None or ev.utc_s is None:
            return out
        expect = self._label_at(mono_ns)
        if not ev.ok:
            return out
        if (
            self.decoder_locked
            and expect is not None
            and ev.utc_s != expect - expect % 60
            and self.alarm is None
            and self._count_pins(mono_ns)
        ):
            # The decoder has locked on another time: say so at once, not 25 s
            # later with its first second.
            out.append(self._raise(AlarmKind.JUMP, mono_ns, _jump_detail(ev.utc_s, expect)))
            self.state = GuardState.JUMP
        if (
            self._unverified_since is not None
            and mono_ns > self._unverified_since
            and expect is not None
            and ev.utc_s == expect - expect % 60
        ):
            # Version 1 log: a valid frame after the missing pulse agrees with
            # the count, so no step of the system clock hid in it.
            self._unverified_since = None
            if self.state is GuardState.UNVERIFIED:
                self.state = GuardState.LOCKED
            held, self._held = self._held, []
            for s in held:
                out += self._sample(s)
        return out

    def sample(self, s: Sample) -> list[Event]:
        since = self._unverified_since
        if since is not None and s.mono_ns is not None and s.mono_ns > since:
            self._held.append(s)
            out: list[Event] = []
            while self._held and s.mono_ns - (self._held[0].mono_ns or 0) > UNVERIFIED_KEEP_NS:
                out.append(Withheld(self._held.pop(0), DropReason.UNVERIFIED))
            return out
        return self._sample(s)

    # --- the rule -----------------------------------------------------------------------

    def _sample(self, s: Sample) -> list[Event]:
        mono = s.mono_ns
        assert mono is not None, "the pipeline stamps every sample with its timeline"
        if self._step_mono is not None and mono <= self._step_mono:
            return [Withheld(s, DropReason.CLOCK_STEPPED)]
        label = s.clock_ns // NS_PER_S
        m = self.model
        if m is None:
            self._start(mono, label)
            return [Withheld(s, DropReason.UNVERIFIED)]
        err = mono - m.predict(label, self.leaps)
        unc = m.uncertainty(mono, self.config.holdover_ppm)
        if self.state is GuardState.LEARNING:
            return self._learning(s, mono, label, err)
        if abs(err) > unc and self._leap_unknown(m.label0, label):
            for k in (-1, 1):
                if abs(err - k * m.period) <= unc:
                    # A leap second the list cannot speak for (or, without a
                    # steady clock, a kernel that stepped back at it): the
                    # decoders held the count until a frame confirmed it.
                    m.mono0, m.label0 = round(m.predict(label, self.leaps) + err), label
                    err -= k * m.period
                    self._relabel_before(label, k)
                    break
        if abs(err) > max(unc, JUMP_NS) or (abs(err) > unc and self.state is not GuardState.LOCKED):
            return self._contradicts(s, mono, label, err)
        self._shadow = None
        if self.state is GuardState.DRIFT:
            return self._after_drift(s, mono, label, err, unc)
        if unc >= NS_PER_S // 2 or self.state is GuardState.REQUALIFY:
            return self._requalify(s, mono, label, err)
        if self.state in (GuardState.HOLDOVER, GuardState.JUMP, GuardState.ACQUIRING):
            out = self._resume(mono, label, err, "the radio agrees with the held count again")
            return [*out, *self._accept(s, mono, label)]
        if abs(err) > PUBLISH_NS:
            return [Withheld(s, DropReason.PHASE)]
        return self._accept(s, mono, label)

    def _relabel_before(self, label: int, k: int) -> None:
        """The model now counts a leap second (k = +1 inserted, -1 deleted) that
        it did not before ``label``: the minute and the rate points taken before
        it move by k labels, so that they stay on the model's line - else the
        minute of the leap reads as a 1 s drift.  The snapshots (models from
        before it) can no longer be restored."""
        self._acc = [(x - k if x < label else x, y) for x, y in self._acc]
        self._points = deque(
            (((x - k if x < label else x), y, n) for x, y, n in self._points), maxlen=FIT_MINUTES
        )
        self._snapshots.clear()

    def _start(self, mono: int, label: int) -> None:
        """The first lock: its first second anchors the fit (and is not published)."""
        self.model = HeldClock(mono, label, float(NS_PER_S), float(NS_PER_S), mono, mono, False)
        self._fit = _Fit()
        self._fit.add(label, mono)
        self.state = GuardState.LEARNING

    def _learning(self, s: Sample, mono: int, label: int, err: float) -> list[Event]:
        """The first minutes after the first lock: the rate is fitted freely (a
        host crystal may be tens of ppm off), each second checked against the
        fit so far."""
        m = self.model
        assert m is not None
        line = self._fit.line()
        if line is not None:
            x0, y0, slope = line
            err = mono - (y0 + (label - x0 + _inserted(x0, label, self.leaps)) * slope)
        # The fit so far (its own error shrinks as seconds come in, and is
        # measured by their scatter), and how far the tracker's +-2000 ppm
        # could have moved the marks since the last one.
        n = self._fit.n
        if n >= 3:
            self._jitter_var += 0.05 * (min(err * err, JUMP_NS**2) - self._jitter_var)
        fit_err = 3 * (self._jitter_var / max(n, 1)) ** 0.5
        drift = 2e-3 * max(0, abs(mono - m.last_mono) - NS_PER_S)
        if abs(err) > max(LEARN_PUBLISH_NS + drift, JUMP_NS):
            return self._contradicts(s, mono, label, err)
        if abs(err) > LEARN_PUBLISH_NS + drift:
            return [Withheld(s, DropReason.PHASE)]
        self._fit.add(label, mono)
        # The first seconds make the fit; they go out only once the fit is sure
        # enough that their own edge lies near the true mark.
        publish = n >= MIN_FIT and abs(err) <= LEARN_PUBLISH_NS + drift - fit_err
        m.last_mono = mono
        line = self._fit.line()
        if line is not None:
            x0, y0, slope = line
            m.mono0, m.label0, m.period = round(y0), x0, slope
        out = self._minute_of(label)
        self._acc.append((label, mono))
        if mono - m.started_mono >= LEARN_NS and line is not None:
            m.f0 = m.period
            m.f0_unc = self._fit.rate_ppm_bound(self._jitter_var**0.5) * 1e-6 * NS_PER_S
            m.learned = True
            self.state = GuardState.LOCKED
        return [*out, s if publish else Withheld(s, DropReason.UNVERIFIED)]

    def _accept(self, s: Sample, mono: int, label: int) -> list[Event]:
        """A confirmed second: publish it and feed the drift loop."""
        m = self.model
        assert m is not None
        out: list[Event] = []
        out += self._minute_of(label)
        if self.state is GuardState.DRIFT:
            return [*out, Withheld(s, DropReason.DRIFT)]
        self._acc.append((label, mono))
        m.last_mono = mono
        self.state = GuardState.LOCKED
        return [*out, s]

    def _minute_of(self, label: int) -> list[Event]:
        """A second of a new minute closes the one accumulated so far."""
        minute = label - label % 60
        out = self._close_minute() if self._minute not in (None, minute) else []
        self._minute = minute
        return out

    def _close_minute(self) -> list[Event]:
        """The finished minute against the held rate: drift, or one more point for it.

        The held rate is a straight line through the minute means of the last
        ``FIT_MINUTES``.  A minute whose mean lies off that line by more than
        chance allows is a jump of the marks; a quarter hour whose own rate
        left the band around the hour before it is a drift (_rate_change)."""
        acc, self._acc, self._minute = self._acc, [], None
        m = self.model
        if (
            m is None
            or len(acc) < MIN_PER_MINUTE
            or self.state
            not in (
                GuardState.LOCKED,
                GuardState.LEARNING,
            )
        ):
            return []
        n = len(acc)
        resid = [y - m.predict(x, self.leaps) for x, y in acc]
        d = sum(resid) / n
        # The jitter of the edges (a running estimate) sets how far a minute's
        # mean may stray by chance.
        var = sum((r - d) ** 2 for r in resid) / (n - 1)
        self._jitter_var += 0.2 * (var - self._jitter_var)
        limit = max(DRIFT_NS, DRIFT_SIGMAS * (self._jitter_var / n) ** 0.5)
        if self.state is GuardState.LOCKED and abs(d) > limit:
            return self._drift(m.last_mono, d, limit)
        x0 = acc[0][0]
        self._points.append(
            (
                x0 + sum(x - x0 for x, _ in acc) / n,
                sum(y - m.mono0 for _, y in acc) / n + m.mono0,
                n,
            )
        )
        if self.state is GuardState.LOCKED:
            return self._refit()
        return []

    def _refit(self) -> list[Event]:
        m = self.model
        assert m is not None
        pts = list(self._points)
        drift = self._rate_change(pts)
        if drift:
            return drift
        if len(pts) < 5:
            return []  # too few minutes yet: the rate learned at lock holds
        xr, yr = pts[-1][0], pts[-1][1]  # relative to the newest point (precision)
        fit = _line(pts, xr, yr)
        if fit is None:
            return []
        slope, (mx, my), unit = fit
        # The fitted rate, weighed against the rate learned at lock by how well
        # each is known (the learned one matters while the fit is short).
        var_fit = (unit * self._point_sigma()) ** 2
        var_f0 = (m.f0_unc / 3) ** 2
        if var_fit > 0 and var_f0 > 0:
            slope = (slope / var_fit + m.f0 / var_f0) / (1 / var_fit + 1 / var_f0)
        elif len(pts) < SLOPE_AFTER:
            slope = m.period
        # A crystal's rate stays near where it was at lock (that centre
        # following slowly, over a day): the held rate may not go further.
        allowed = self.config.band_ppm * 1e-6 * NS_PER_S + m.f0_unc
        slope = max(m.f0 - allowed, min(m.f0 + allowed, slope))
        label0 = round(xr)
        m.mono0 = round(yr + my + (label0 - xr - mx) * slope)
        m.label0, m.period = label0, slope
        m.f0 += (slope - m.f0) / (24 * 60)
        self._snapshots.append((m.last_mono, replace(m)))
        return []

    def _rate_change(self, pts: list[tuple[float, float, int]]) -> list[Event]:
        """The rate of the newest quarter hour against the rate of the minutes
        before it: a change beyond the band (or five sigma) is drift."""
        m = self.model
        assert m is not None
        if len(pts) < 2 * RATE_MINUTES:
            return []
        new, old = pts[-RATE_MINUTES:], pts[:-RATE_MINUTES]
        a = _line(new, new[-1][0], new[-1][1])
        b = _line(old, old[-1][0], old[-1][1])
        if a is None or b is None:
            return []
        sigma = (a[2] ** 2 + b[2] ** 2) ** 0.5 * self._point_sigma()
        limit = max(self.config.band_ppm * 1e-6 * NS_PER_S, RATE_SIGMAS * sigma)
        change = a[0] - b[0]
        if abs(change) <= limit:
            return []
        return self._drift(
            m.last_mono,
            0.0,
            0.0,
            f"the marks' rate changed by {change / NS_PER_S * 1e6:+.1f} ppm within "
            f"{RATE_MINUTES} minutes (limit {limit / NS_PER_S * 1e6:.1f} ppm)",
        )

    def _point_sigma(self) -> float:
        """The scatter of a full minute's mean (ns), from the edges' jitter (a
        little more: the estimate does not see the edges the window cut off)."""
        return float(1.3 * (self._jitter_var / 50) ** 0.5)

    def _drift(self, mono: int, d: float, limit: float, why: str = "") -> list[Event]:
        m = self.model
        assert m is not None
        # Back to the model of half an hour ago: the loop may already have
        # followed the first part of the drift.
        if self._snapshots:
            _, old = self._snapshots[0]
            self.model = m = replace(old)
        self._drift_since = mono
        self._pending_resume = []
        self.state = GuardState.DRIFT
        return [
            self._raise(
                AlarmKind.DRIFT,
                mono,
                (
                    why
                    or f"the second marks moved {d / NS_PER_MS:+.1f} ms in a minute from "
                    f"where the held rate puts them (limit {limit / NS_PER_MS:.0f} ms)"
                )
                + ": publishing stopped",
            )
        ]

    def _after_drift(self, s: Sample, mono: int, label: int, err: float, unc: float) -> list[Event]:
        """Resume only once the marks have kept the held rate again for
        ``RESUME_MINUTES`` (their rate against it, plus two sigma, within half
        the band) and the last minute lies where it puts them.

        What the crystal may have done meanwhile is the band, not the holdover
        allowance: a drift faster than the band (which is what was flagged)
        never comes back within it, however long it goes on; and never more
        than DRIFT_MAX_NS - a time that far off is followed by jump_policy only."""
        m = self.model
        assert m is not None
        if self.config.jump_policy is JumpPolicy.AFTER and self._follow(mono, label):
            return self._contradicts(s, mono, label, err)
        since = self._drift_since if self._drift_since is not None else m.last_mono
        band = self.config.band_ppm * 1e-6
        allow = min(RESUME_NS + band * (mono - since), DRIFT_MAX_NS)
        resume = self._pending_resume
        resume.append((mono, err))
        while resume and mono - resume[0][0] > RESUME_MINUTES * 60 * NS_PER_S:
            resume.pop(0)
        span = mono - resume[0][0]
        if span >= (RESUME_MINUTES - 1) * 60 * NS_PER_S and len(resume) >= 60 * RESUME_MINUTES // 2:
            last = [e for t, e in resume if mono - t <= 60 * NS_PER_S]
            d = sum(last) / len(last)
            fit = _line([(t / NS_PER_S, e, 50) for t, e in resume], mono / NS_PER_S, 0.0)
            rate = 1.0
            if fit is not None:  # each point one edge: the jitter is its scatter
                sigma = fit[2] * self._jitter_var**0.5
                rate = (abs(fit[0]) + RESUME_SIGMAS * sigma) / NS_PER_S
            if abs(d) <= allow and rate <= band / 2:
                resume.clear()
                out = self._resume(mono, label, d, "the second marks are back on the held rate")
                return [*out, *self._accept(s, mono, label)]
        return [Withheld(s, DropReason.DRIFT)]

    def _requalify(self, s: Sample, mono: int, label: int, err: float) -> list[Event]:
        """The held count is too old to pin the second: wait for the radio to agree with itself."""
        if self.state is not GuardState.REQUALIFY:
            self.state = GuardState.REQUALIFY
            self._qual_since = mono
            self._qual_fit = _Fit()
        line = self._qual_fit.line()
        if line is not None:
            x0, y0, slope = line
            if abs(mono - (y0 + (label - x0) * slope)) > PUBLISH_NS:
                self._qual_since, self._qual_fit = mono, _Fit()
        self._qual_fit.add(label, mono)
        if self._qual_since is not None and mono - self._qual_since >= REQUALIFY_NS:
            out = self._resume(mono, label, err, "the radio agreed with itself for 10 min")
            return [*out, *self._accept(s, mono, label)]
        return [Withheld(s, DropReason.UNVERIFIED)]

    def _resume(self, mono: int, label: int, err: float, why: str) -> list[Event]:
        """Back to publishing: the model's phase moves to the radio's (within the
        uncertainty that was allowed), its rate stays."""
        m = self.model
        assert m is not None
        m.mono0 = round(m.predict(label, self.leaps) + err)
        m.label0 = label
        m.last_mono = mono
        self._minute, self._acc = None, []
        self._snapshots.clear()
        self._points.clear()  # the phase moved: the rate holds, the old points do not
        self.state = GuardState.LOCKED
        self._drift_since = self._qual_since = None
        if self.alarm is not None and self.alarm.kind in (AlarmKind.JUMP, AlarmKind.DRIFT):
            self.alarm = None
            return [Alarm(mono, AlarmKind.RECOVERED, why)]
        self.alarm = None
        return []

    def _contradicts(self, s: Sample, mono: int, label: int, err: float) -> list[Event]:
        """A second the held count cannot have: refused; followed only by policy."""
        m = self.model
        assert m is not None
        out: list[Event] = []
        if self.alarm is None or self.alarm.kind is not AlarmKind.JUMP:
            expect = self._label_at(mono)
            out.append(self._raise(AlarmKind.JUMP, mono, _jump_detail(label, expect, err)))
        if self.state is not GuardState.DRIFT:
            self.state = GuardState.JUMP
        if self.config.jump_policy is JumpPolicy.AFTER and self._follow(mono, label):
            self.model = HeldClock(mono, label, m.period, m.f0, mono, m.started_mono)
            self._snapshots.clear()
            self._points.clear()
            self._minute, self._acc = None, []
            self.state = GuardState.LOCKED
            self.alarm = Alarm(mono, AlarmKind.JUMP_FOLLOWED, "")
            out.append(
                Alarm(
                    mono,
                    AlarmKind.JUMP_FOLLOWED,
                    f"following the radio's time {iso_ns(s.clock_ns)} after it agreed with "
                    f"itself for {self.config.follow_ns / NS_PER_S / 3600:g} h (jump_policy)",
                )
            )
            return [*out, s]
        return [*out, Withheld(s, DropReason.JUMP)]

    def _follow(self, mono: int, label: int) -> bool:
        """Has the refused time agreed with itself long enough to follow it?"""
        fit = self._shadow_fit
        line = fit.line() if self._shadow is not None else None
        if line is not None:
            x0, y0, slope = line
            if abs(mono - (y0 + (label - x0) * slope)) > PUBLISH_NS:
                self._shadow = None
        if self._shadow is None:
            m = self.model
            assert m is not None
            self._shadow = HeldClock(mono, label, m.period, m.f0, mono, mono)
            self._shadow_fit = _Fit()
        self._shadow_fit.add(label, mono)
        return mono - self._shadow.started_mono >= self.config.follow_ns

    def _raise(self, kind: AlarmKind, mono: int, detail: str) -> Alarm:
        self.alarm = Alarm(mono, kind, detail)
        return self.alarm

    def _drop_held(self, reason: DropReason) -> list[Event]:
        held, self._held = self._held, []
        return [Withheld(s, reason) for s in held]

    # --- helpers ------------------------------------------------------------------------

    def _label_at(self, mono: int) -> int | None:
        """The UTC second the held count gives the mark nearest ``mono``."""
        m = self.model
        if m is None:
            return None
        return m.label0 + round((mono - m.mono0) / m.period)

    def _leap_unknown(self, a: int, b: int) -> bool:
        """Might a leap second lie between labels a < b that the model did not count?"""
        if b <= a:
            return False
        end = _next_month_start(a)
        while end <= b:
            if not self.monotonic or not self.leaps.authoritative(end - 1):
                return True
            end = _next_month_start(end)
        return False

    def _count_pins(self, mono: int) -> bool:
        m = self.model
        return m is not None and m.uncertainty(mono, self.config.holdover_ppm) < NS_PER_S // 2

    # --- persistence (dcf77shm.service.state) -------------------------------------------

    def snapshot(self) -> dict[str, Any] | None:
        """What survives a restart: the held count, if there is one that was confirmed."""
        m = self.model
        if m is None or self.state in (GuardState.ACQUIRING, GuardState.LEARNING):
            return None
        return {"model": m.to_json(), "state": self.state.value}

    def restore(self, snap: dict[str, Any]) -> None:
        """Continue a held count from a previous run in the same boot: holdover
        from its last confirmed second."""
        self.model = HeldClock.from_json(snap["model"])
        self.state = GuardState.HOLDOVER
        if snap.get("state") in (GuardState.DRIFT.value, GuardState.JUMP.value):
            self.state = GuardState(snap["state"])
            self._drift_since = self.model.last_mono


def _line(
    pts: list[tuple[float, float, int]], xr: float, yr: float
) -> tuple[float, tuple[float, float], float] | None:
    """Weighted least squares through minute points: (slope, (mean x, mean y) relative
    to (xr, yr), sigma of the slope for a unit scatter of one point)."""
    w = sum(n for _, _, n in pts)
    mx = sum(n * (x - xr) for x, _, n in pts) / w
    my = sum(n * (y - yr) for _, y, n in pts) / w
    # Weights n/50: a point of a full minute counts one.
    sxx = sum(n / 50 * (x - xr - mx) ** 2 for x, _, n in pts)
    if sxx <= 0:
        return None
    sxy = sum(n / 50 * (x - xr - mx) * (y - yr - my) for x, y, n in pts)
    return sxy / sxx, (mx, my), sxx**-0.5


def _next_month_start(t: int) -> int:
    d = dt.datetime.fromtimestamp(t, dt.UTC)
    y, mo = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return calendar.timegm((y, mo, 1, 0, 0, 0))


def _jump_detail(radio_s: int, held_s: int | None, err: float | None = None) -> str:
    radio = iso_ns(radio_s * NS_PER_S)
    if held_s is None:
        return f"the radio says {radio}, the held count has no time: refused"
    diff = radio_s - held_s
    if diff == 0 and err is not None:
        return (
            f"the radio's second marks moved {err / NS_PER_MS:+.1f} ms from where the held "
            "count puts them: refused"
        )
    return (
        f"the radio says {radio}, the held count says {iso_ns(held_s * NS_PER_S)} "
        f"({diff:+d} s): refused"
    )
