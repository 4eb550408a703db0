"""Second-phase tracking: acquisition by histogram, then a second-order PLL.

Acquisition: the leading edges of real pulses pile up at one phase of the
second, glitches spread evenly; a decaying 10 ms histogram of *qualified*
leading edges (the carrier stays reduced for most of the next 40 ms) finds the
pile.  Tracking: a type-2 loop (phase and period) follows the receiver and the
system clock through rate errors of +-500 ppm (the Pollin captures) and drift,
and flywheels through missing pulses and fades.

For each tracked second the tracker measures, after the fact, how much of a
few fixed windows the carrier was reduced: that is all the decoder needs for
soft bits, and it is what makes glitches and lost edges harmless.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from dcf77shm.decode.carrier import QUALIFY_NS, RunHistory
from dcf77shm.decode.frontend import Transition
from dcf77shm.decode.widths import WidthOffset
from dcf77shm.model import NS_PER_MS, NS_PER_S

MS = NS_PER_MS
BIN_NS = 10 * MS
BINS = NS_PER_S // BIN_NS
TAU_NS = 20.0 * NS_PER_S  # the acquisition histogram forgets with this time constant
ACQ_MIN_MASS = 6.0  # ~six recent clean pulses at one phase
ACQ_MIN_SHARE = 0.55  # and most of all the qualified edges
TRACK_WIN_NS = 60 * MS  # edges this close to the prediction steer the loop
DEADLINE_NS = 300 * MS  # a second is measured once this much of it has passed
ALPHA = 0.12  # loop gains: bandwidth ~0.08 Hz, damping ~0.7
BETA = 0.004
LOST_AFTER = 90  # seconds without a steering edge before re-acquiring
PERIOD_LIMIT = 2e-3  # +-2000 ppm: beyond this the loop is not following a DCF77 signal
PUBLISH_WIN_NS = 42 * MS
PAUSE_NOISE = 0.25  # reduced share of the pause between two marks that is noise


@dataclass(frozen=True, slots=True)
class Second:
    """One tracked second: the measurements the decoder builds on."""

    n: int  # running count of tracked seconds
    epoch: int  # bumped at every (re-)acquisition: counts of different epochs do not line up
    start_ns: int  # where the loop expected the leading edge
    edge_ns: int | None  # the leading edge taken for this second, if any
    clean: bool  # edge_ns is publishable (see RobustDecoder's rule)
    presence: float  # reduced fraction of [edge+20, edge+80] ms: "a pulse is here"
    one: float  # reduced fraction of [edge+125, edge+175] ms: "it is a long pulse"
    sigma_ns: float  # the loop's current jitter estimate
    quiet: bool = True  # the pause before this second's mark was mostly idle


class Tracker:
    def __init__(self) -> None:
        self.runs = RunHistory()
        self._pending: deque[int] = deque()  # leading edges waiting for their 40 ms
        # Decaying histogram, stored scaled by exp((t - _hist_t) / tau) so an
        # update touches one bin; rescaled now and then.
        self._hist = [0.0] * BINS
        self._hist_t: int | None = None
        self._recent: deque[int] = deque()  # qualified edges of the last ~30 s
        self.tracking = False
        self._pred = 0
        self._period = float(NS_PER_S)
        self._var = float(10 * MS) ** 2
        self._n = 0
        self._epoch = 0
        self._since_steer = 0
        self._last_ref: int | None = None
        self.offset = WidthOffset()  # the receiver's pulse-width offset

    def reset(self) -> None:
        epoch, n = self._epoch, self._n
        self.__init__()  # type: ignore[misc]
        self._epoch, self._n = epoch, n

    # --- input -----------------------------------------------------------

    def transition(self, tr: Transition) -> list[Second]:
        out = self.advance(tr.time_ns)
        if self.runs.add(tr):
            self._pending.append(tr.time_ns)
        return out

    def advance(self, now_ns: int) -> list[Second]:
        out: list[Second] = []
        while self._pending and now_ns >= self._pending[0] + QUALIFY_NS:
            t = self._pending.popleft()
            if self.runs.qualified(t):
                self._add_qualified(t)
        while self.tracking and now_ns >= self._pred + DEADLINE_NS:
            out.append(self._measure())
        return out

    # --- acquisition -----------------------------------------------------

    def _add_qualified(self, t: int) -> None:
        if self._hist_t is None:
            self._hist_t = t
        x = (t - self._hist_t) / TAU_NS
        if x > 30.0:  # rescale before the weights overflow
            f = math.exp(-x)
            self._hist = [h * f for h in self._hist]
            self._hist_t, x = t, 0.0
        self._hist[(t % NS_PER_S) // BIN_NS] += math.exp(x)
        self._recent.append(t)
        while self._recent[0] < t - 30 * NS_PER_S:
            self._recent.popleft()
        if not self.tracking:
            self._try_acquire(t)

    def _peak(self, now_ns: int) -> tuple[int, float, float]:
        """Best 30 ms phase, its decayed weight and the total weight at ``now_ns``."""
        h = self._hist
        best, mass = 0, -1.0
        for b in range(BINS):
            m = h[b - 1] + h[b] + h[(b + 1) % BINS]
            if m > mass:
                best, mass = b, m
        scale = math.exp(-(now_ns - (self._hist_t or now_ns)) / TAU_NS)
        return best, mass * scale, sum(h) * scale

    def _try_acquire(self, t: int) -> None:
        b, mass, total = self._peak(t)
        if mass < ACQ_MIN_MASS or mass < ACQ_MIN_SHARE * total:
            return
        centre = b * BIN_NS + BIN_NS // 2
        near = [e for e in self._recent if _phase_diff(e, centre) <= 20 * MS]
        if len(near) < 4:
            return
        # Period from a fit through the clean edges; phase from the newest.
        k = [round((e - near[0]) / NS_PER_S) for e in near]
        period = float(NS_PER_S)
        if k[-1] >= 8:
            mk, me = sum(k) / len(k), sum(near) / len(near)
            sxx = sum((x - mk) ** 2 for x in k)
            sxy = sum((x - mk) * (e - me) for x, e in zip(k, near, strict=True))
            fit = sxy / sxx
            if abs(fit / NS_PER_S - 1) < PERIOD_LIMIT:
                period = fit
        self.tracking = True
        self._epoch += 1
        self._period = period
        self._since_steer = 0
        self._var = float(10 * MS) ** 2
        # Measure the seconds already in the history too (up to a minute
        # back), on the fitted phase: a recording that starts early in a
        # minute then yields that minute's frame.
        first = self.runs.first_ns
        back = 0
        while first is not None and back < 59 and near[-1] - (back + 1) * period > first - 30 * MS:
            back += 1
        self._n += 100  # counts of a new epoch never meet the old ones
        self._pred = round(near[-1] - back * period)  # advance() measures them in order

    # --- tracking --------------------------------------------------------

    def _measure(self) -> Second:
        pred = self._pred
        runs = self.runs
        sigma = math.sqrt(self._var)
        win = 4 * sigma
        win = TRACK_WIN_NS if win < TRACK_WIN_NS else 150 * MS if win > 150 * MS else int(win)
        good = [e for e in runs.rising_in(pred - win, pred + win) if runs.qualified(e)]
        edge: int | None = None
        clean = False
        ref = pred
        quiet = self._quiet_since(pred)
        if good:
            edge = good[0]
            if len(good) > 1:
                edge = min(good, key=lambda e: abs(e - pred))
            err = edge - pred
            ref = edge
            # The publish window: the loop's own jitter estimate, 3.5 sigma, but
            # never so wide that the edge could lie 50 ms from the true mark
            # (which a wrong sample is): the loop's own error is a few ms.
            pub_win = min(PUBLISH_WIN_NS, max(10 * MS, 3.5 * sigma))
            clean = (
                -pub_win <= err <= pub_win
                # Two pulse-like rises inside the window: which one is the
                # second mark is a guess, so neither is published.
                and not (len(good) > 1 and [e for e in good if 0 < abs(e - edge) <= pub_win])
                # A pulse that ends within 60 ms is a glitch, not a mark.
                and not runs.falling_in(edge, edge + 60 * MS)
                # The pause before a mark is a pause: a line reduced for much
                # of it is noise (an unplugged antenna, interference), not DCF77.
                and quiet
            )
            cap = (win / 2) ** 2
            self._var += 0.05 * ((err * err if err * err < cap else cap) - self._var)
            self._pred = round(pred + self._period + ALPHA * err)
            period = self._period + BETA * err
            lim = NS_PER_S * PERIOD_LIMIT
            self._period = min(max(period, NS_PER_S - lim), NS_PER_S + lim)
            self._since_steer = 0
        else:
            self._pred = round(pred + self._period)
            self._since_steer += 1
        self._last_ref = ref
        presence = runs.active_ns(ref + 20 * MS, ref + 80 * MS) / (60 * MS)
        # The 0/1 window sits between the two widths this receiver gives.
        off = self.offset.ns
        one = runs.active_ns(ref + 125 * MS + off, ref + 175 * MS + off) / (50 * MS)
        if clean and presence > 0.9 and not runs.reduced_across(ref + 300 * MS):
            width = runs.active_ns(ref, ref + 300 * MS)
            self.offset.learn(width, int(one > 0.5))
        s = Second(self._n, self._epoch, pred, edge, clean, presence, one, sigma, quiet)
        self._n += 1
        if self._since_steer > LOST_AFTER:
            self.tracking = False
        elif self._n % 16 == 0:
            self._check_elsewhere()
        return s

    def _quiet_since(self, ref: int) -> bool:
        """Was the line mostly idle from the last mark's pause to this one?"""
        last = self._last_ref
        if last is None or ref - last > 2 * NS_PER_S:
            return True
        lo, hi = last + 300 * MS, ref - 100 * MS
        return hi <= lo or self.runs.active_ns(lo, hi) < PAUSE_NOISE * (hi - lo)

    def _check_elsewhere(self) -> None:
        """Re-acquire when the clean edges have clearly moved to another phase."""
        b, mass, total = self._peak(self._pred)
        centre = b * BIN_NS + BIN_NS // 2
        if (
            mass >= ACQ_MIN_MASS
            and mass >= 0.7 * total
            and _phase_diff(self._pred, centre) > 40 * MS
        ):
            self.tracking = False


def _phase_diff(t: int, phase: int) -> int:
    d = (t - phase) % NS_PER_S
    return min(d, NS_PER_S - d)
