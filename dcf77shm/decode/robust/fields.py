"""Scoring the time fields of several soft frames, and the certainty margin.

A soft frame is 59 log-likelihood ratios (``llr > 0``: bit 1 more likely; 0:
no information).  The log-likelihood of a code is ``sum(sign * llr) / 2``, so
the difference between two hypotheses' scores is their log-likelihood ratio.

Hypothesis: the UTC minute the newest frame encodes; frame ``i`` of ``n``
encodes that minus ``n-1-i`` minutes.  The frame splits into disjoint fields:
minute (21-28 with P1), hour (29-35 with P2), zone (17, 18), date (36-58 with
P3).  A1, A2, the call bit and the warning bits are not scored: they follow
schedules we cannot know.

The margin is a *rigorous lower bound* on how far the best hypothesis beats
every other one, by relaxation: every other hypothesis differs in its minute
alignment, or in its hour/zone sequence, or in its date, and
* other alignments are bounded by the best hour/zone and date scores that any
  hypothesis with that alignment could reach (including a date change at its
  midnight);
* same alignment, other hour/zone: the exact runner-up among all hour/zone
  sequences (steady, +1 h, spring forward, fall back) at that alignment;
* same alignment and hour, other date: the exact runner-up over all real
  calendar dates 2000-2099 (weekday and P3 included).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from dcf77shm import timecode

NEG = float("-inf")
Frame = Sequence[float]  # 59 llrs


def _code(value: int, weights: Sequence[int]) -> list[int]:
    tens, units = divmod(value, 10)
    return [
        1 if ((tens if w >= 10 else units) & (w // 10 if w >= 10 else w)) else 0 for w in weights
    ]


def _signs(bits: Sequence[int]) -> tuple[int, ...]:
    return tuple(1 if b else -1 for b in bits)


def _with_parity(bits: list[int]) -> list[int]:
    return [*bits, sum(bits) & 1]


_MIN_SIGNS = [_signs(_with_parity(_code(v, (1, 2, 4, 8, 10, 20, 40)))) for v in range(60)]
_HOUR_SIGNS = [_signs(_with_parity(_code(v, (1, 2, 4, 8, 10, 20)))) for v in range(24)]
_DAY_BITS = [_code(v, (1, 2, 4, 8, 10, 20)) for v in range(32)]
_WD_BITS = [[(v >> i) & 1 for i in range(3)] for v in range(8)]
_MON_BITS = [_code(v, (1, 2, 4, 8, 10)) for v in range(13)]
_YR_BITS = [_code(v, (1, 2, 4, 8, 10, 20, 40, 80)) for v in range(100)]
_DAY_SIGNS = [_signs(b) for b in _DAY_BITS]
_WD_SIGNS = [_signs(b) for b in _WD_BITS]
_MON_SIGNS = [_signs(b) for b in _MON_BITS]
_YR_SIGNS = [_signs(b) for b in _YR_BITS]
_DAY_PAR = [sum(b) & 1 for b in _DAY_BITS]
_WD_PAR = [sum(b) & 1 for b in _WD_BITS]
# (yy, month, days, weekday of the 1st, parity of month+year bits)
_MONTHS = [
    (
        y,
        m,
        calendar.monthrange(2000 + y, m)[1],
        dt.date(2000 + y, m, 1).isoweekday(),
        (sum(_MON_BITS[m]) + sum(_YR_BITS[y])) & 1,
    )
    for y in range(100)
    for m in range(1, 13)
]


def _score(llr: Frame, first: int, signs: tuple[int, ...]) -> float:
    return 0.5 * sum(s * llr[first + k] for k, s in enumerate(signs))


@dataclass(slots=True)
class Tables:
    """Per-value field scores, summed over some frames."""

    minute: list[float]
    hour: list[float]
    zone: list[float]  # [CET, CEST]
    day: list[float]
    wd: list[float]
    mon: list[float]
    yr: list[float]
    p3: list[float]

    @classmethod
    def of(cls, llr: Frame) -> Tables:
        z = 0.5 * (llr[17] - llr[18])  # CEST: Z1=1, Z2=0
        return cls(
            [_score(llr, 21, s) for s in _MIN_SIGNS],
            [_score(llr, 29, s) for s in _HOUR_SIGNS],
            [-z, z],
            [_score(llr, 36, s) for s in _DAY_SIGNS],
            [_score(llr, 42, s) for s in _WD_SIGNS],
            [_score(llr, 45, s) for s in _MON_SIGNS],
            [_score(llr, 50, s) for s in _YR_SIGNS],
            [-0.5 * llr[58], 0.5 * llr[58]],
        )

    @classmethod
    def total(cls, tables: Sequence[Tables]) -> Tables:
        def add(name: str) -> list[float]:
            cols: list[list[float]] = [getattr(t, name) for t in tables]
            return [sum(c) for c in zip(*cols, strict=True)]

        names = ("minute", "hour", "zone", "day", "wd", "mon", "yr", "p3")
        return cls(*(add(n) for n in names))


@dataclass(frozen=True, slots=True)
class DateChoice:
    score: float
    date: dt.date | None
    runner_up: float  # best score of any other date


def best_date(t: Tables) -> DateChoice:
    """Exact best and runner-up calendar dates for one set of tables (branch and bound)."""
    max_rest = max(t.day[1:]) + max(t.wd[1:]) + max(t.p3)
    order = sorted(
        ((t.yr[y] + t.mon[m] + max_rest, y, m, nd, wd1, par) for y, m, nd, wd1, par in _MONTHS),
        reverse=True,
    )
    best, best_d, second = NEG, None, NEG
    day, wd, p3 = t.day, t.wd, t.p3
    for bound, y, m, nd, wd1, par in order:
        if bound <= second:
            break
        base = t.yr[y] + t.mon[m]
        for d in range(1, nd + 1):
            w = (wd1 + d - 2) % 7 + 1
            sc = base + day[d] + wd[w] + p3[(par + _DAY_PAR[d] + _WD_PAR[w]) & 1]
            if sc > best:
                best, best_d, second = sc, (y, m, d), best
            elif sc > second:
                second = sc
    date = dt.date(2000 + best_d[0], best_d[1], best_d[2]) if best_d else None
    return DateChoice(best, date, second)


def _relaxed_date(t: Tables) -> float:
    """An upper bound on any date's score (fields maximised independently)."""
    return max(t.day[1:32]) + max(t.wd[1:8]) + max(t.mon[1:13]) + max(t.yr) + max(t.p3)


@dataclass(frozen=True, slots=True)
class Verdict:
    utc_s: int | None  # the best hypothesis: UTC minute the newest frame encodes
    margin: float  # lower bound on its lead over every other hypothesis
    reason: str = ""


def evaluate(frames: Sequence[Frame], scale: float = 1.0) -> Verdict:
    """Best hypothesis for consecutive soft frames (oldest first) and its margin."""
    return evaluate_tables([Tables.of(f) for f in frames], scale)


def evaluate_tables(per: Sequence[Tables], scale: float = 1.0) -> Verdict:
    """:func:`evaluate` on each frame's tables.

    Every score is linear in the llrs, so frames scored once with unit
    confidence serve any confidence cap: the margin is multiplied by ``scale``.
    """
    n = len(per)
    # Prefix sums of hour/zone scores: hz[k][h][z] over frames < k.
    hz = [[[0.0, 0.0] for _ in range(24)]]
    for t in per:
        prev = hz[-1]
        hz.append([[prev[h][z] + t.hour[h] + t.zone[z] for z in (0, 1)] for h in range(24)])
    allt = Tables.total(per)
    date_all = best_date(allt)
    relaxed_two: dict[int, float] = {}

    def hz_options(c: int | None) -> list[tuple[float, tuple[int, int, str]]]:
        if c is None:
            return [(hz[n][h][z], (h, z, "steady")) for h in range(24) for z in (0, 1)]
        opts = []
        for h in range(24):
            for z in (0, 1):
                sc = hz[c][(h - 1) % 24][z] + hz[n][h][z] - hz[c][h][z]
                opts.append((sc, (h, z, "+1h")))
        # 01:59 CET -> 03:00 CEST, and 02:59 CEST -> 02:00 CET.
        opts.append((hz[c][1][0] + hz[n][3][1] - hz[c][3][1], (3, 1, "spring")))
        opts.append((hz[c][2][1] + hz[n][2][0] - hz[c][2][0], (2, 0, "autumn")))
        return opts

    best_total, best_a, best_info = NEG, -1, None
    bounds: list[float] = []
    for a in range(60):
        s_min = sum(per[i].minute[(a - (n - 1 - i)) % 60] for i in range(n))
        c = next((i for i in range(1, n) if (a - (n - 1 - i)) % 60 == 0), None)
        opts = hz_options(c)
        top = max(opts)
        ub_date = date_all.score
        if c is not None:
            if c not in relaxed_two:
                relaxed_two[c] = _relaxed_date(Tables.total(per[:c])) + _relaxed_date(
                    Tables.total(per[c:])
                )
            ub_date = max(ub_date, relaxed_two[c])
        bounds.append(s_min + top[0] + ub_date)
        exact = s_min + top[0] + date_all.score
        if exact > best_total:
            best_total, best_a, best_info = exact, a, (c, opts, top, ub_date)
    assert best_info is not None
    c, opts, top, own_ub_date = best_info
    h, z, kind = top[1]
    if c is not None and kind == "+1h" and h == 0:
        return Verdict(None, 0.0, "date changes inside the window")
    others = max((b for a, b in enumerate(bounds) if a != best_a), default=NEG)
    hz_runner = max((o[0] for o in opts if o[1] != top[1]), default=NEG)
    # Same alignment, other hour/zone: it may also pair with a date change.
    hz_margin = top[0] + date_all.score - hz_runner - own_ub_date
    margin = min(best_total - others, hz_margin, date_all.score - date_all.runner_up)
    if date_all.date is None:
        return Verdict(None, 0.0, "no date")
    local = dt.datetime.combine(date_all.date, dt.time(h, best_a))
    utc_s = calendar.timegm(local.timetuple()) - (7200 if z else 3600)
    # The hypothesis must be what a correct transmitter sends in every frame.
    for i in range(n):
        tc = timecode.timecode_for(utc_s - 60 * (n - 1 - i))
        hh = h if c is None or i >= c else {"+1h": (h - 1) % 24, "spring": 1, "autumn": 2}[kind]
        zz = z if c is None or i >= c else {"+1h": z, "spring": 0, "autumn": 1}[kind]
        if (tc.hour, int(tc.cest), tc.minute) != (hh, zz, (best_a - (n - 1 - i)) % 60):
            return Verdict(None, 0.0, "not a sequence the transmitter sends")
        if (tc.year, tc.month, tc.day) != (
            date_all.date.year,
            date_all.date.month,
            date_all.date.day,
        ):
            return Verdict(None, 0.0, "date changes inside the window")
    return Verdict(utc_s, margin * scale)
