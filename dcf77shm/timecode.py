"""The DCF77 time code: one frame of 59 bits (60 in a leap minute).

Bit assignment (PTB, "DCF77 time code"):

====== ====================================================================
bit    meaning
====== ====================================================================
0      start of minute, always 0
1-14   civil warnings / weather (Meteotime), kept raw
15     call bit (R): transmitter irregularity
16     A1: CET/CEST change at the end of this hour
17/18  Z1/Z2: CEST / CET in effect for the encoded minute (exactly one set)
19     A2: leap second at the end of this hour
20     S: start of time information, always 1
21-27  minute, BCD 1 2 4 8 10 20 40;   28 P1 even parity over 21-28
29-34  hour, BCD 1 2 4 8 10 20;        35 P2 even parity over 29-35
36-41  day of month, BCD 1 2 4 8 10 20
42-44  day of week, 1 = Monday .. 7 = Sunday
45-49  month, BCD 1 2 4 8 10
50-57  year within the century, BCD 1 2 4 8 10 20 40 80
58     P3 even parity over 36-58
59     no modulation; in a leap minute bit 59 is 0 and second 60 is silent
====== ====================================================================

A frame sent during a minute encodes the local time (CET or CEST) of the
*following* minute.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from dcf77shm.model import FrameInfo

UTC = dt.UTC

FRAME_BITS = 59
LEAP_FRAME_BITS = 60

# (first bit, weights) of each BCD field.
_MINUTE = (21, (1, 2, 4, 8, 10, 20, 40))
_HOUR = (29, (1, 2, 4, 8, 10, 20))
_DAY = (36, (1, 2, 4, 8, 10, 20))
_WEEKDAY = (42, (1, 2, 4))
_MONTH = (45, (1, 2, 4, 8, 10))
_YEAR = (50, (1, 2, 4, 8, 10, 20, 40, 80))

# Even parity groups: (name, first, last parity bit), inclusive.
_PARITY = (("parity-minute", 21, 28), ("parity-hour", 29, 35), ("parity-date", 36, 58))


@dataclass(frozen=True, slots=True)
class TimeCode:
    """The content of one frame: local civil time of the encoded minute."""

    year: int  # full year, 2000-2099
    month: int
    day: int
    hour: int
    minute: int
    weekday: int  # ISO: 1 = Monday .. 7 = Sunday
    cest: bool  # Z1 set: CEST (UTC+2); else CET (UTC+1)
    dst_announce: bool = False  # A1
    leap_announce: bool = False  # A2
    call: bool = False  # R
    warning_bits: int = 0  # bits 1-14, bit 1 in the least significant place

    @property
    def utc_offset_s(self) -> int:
        return 7200 if self.cest else 3600

    def local(self) -> dt.datetime:
        return dt.datetime(self.year, self.month, self.day, self.hour, self.minute)

    def utc(self) -> dt.datetime:
        local = self.local().replace(tzinfo=UTC)
        return local - dt.timedelta(seconds=self.utc_offset_s)

    def utc_s(self) -> int:
        """The encoded minute as POSIX seconds."""
        return calendar.timegm(self.local().timetuple()) - self.utc_offset_s


class FrameInvalid(ValueError):
    """A frame failed validation; ``reasons`` names every check that failed."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = tuple(reasons)


def frame_info(tc: TimeCode) -> FrameInfo:
    """What a minute report says of a decoded frame besides its UTC minute: the
    local time it names (``2024-03-31T03:00 CEST``) and its flags (bits 15-19)."""
    return FrameInfo(
        local=tc.local().strftime("%Y-%m-%dT%H:%M") + (" CEST" if tc.cest else " CET"),
        dst_announce=tc.dst_announce,
        leap_announce=tc.leap_announce,
        call=tc.call,
    )


def _bcd_encode(value: int, weights: Sequence[int]) -> list[int]:
    bits = []
    tens, units = divmod(value, 10)
    for w in weights:
        if w >= 10:
            digit, weight = tens, w // 10
        else:
            digit, weight = units, w
        bits.append(1 if digit & weight else 0)
    return bits


def _bcd_decode(bits: Sequence[int], first: int, weights: Sequence[int]) -> tuple[int, bool]:
    """Return (value, digits_ok): digits_ok is False for a BCD digit over 9."""
    units = tens = 0
    for i, w in enumerate(weights):
        if bits[first + i]:
            if w >= 10:
                tens += w // 10
            else:
                units += w
    return tens * 10 + units, units <= 9 and tens <= 9


def encode(tc: TimeCode, leap_minute: bool = False) -> list[int]:
    """Encode a frame: 59 bits, or 60 when it is sent during a leap minute.

    ``leap_minute`` is True for the frame sent during the minute that ends with
    the inserted second (its second 59 carries a 0, second 60 is silent).
    """
    bits = [0] * FRAME_BITS
    for i in range(14):
        bits[1 + i] = (tc.warning_bits >> i) & 1
    bits[15] = int(tc.call)
    bits[16] = int(tc.dst_announce)
    bits[17] = int(tc.cest)
    bits[18] = int(not tc.cest)
    bits[19] = int(tc.leap_announce)
    bits[20] = 1
    for (first, weights), value in (
        (_MINUTE, tc.minute),
        (_HOUR, tc.hour),
        (_DAY, tc.day),
        (_WEEKDAY, tc.weekday),
        (_MONTH, tc.month),
        (_YEAR, tc.year % 100),
    ):
        if first == _WEEKDAY[0]:
            field = [(value >> i) & 1 for i in range(len(weights))]
        else:
            field = _bcd_encode(value, weights)
        bits[first : first + len(weights)] = field
    for _name, lo, hi in _PARITY:
        bits[hi] = sum(bits[lo:hi]) & 1
    if leap_minute:
        bits.append(0)
    return bits


def decode(bits: Sequence[int | None]) -> TimeCode:
    """Validate and decode a frame; raise :class:`FrameInvalid` naming every failure.

    ``bits`` has 59 entries (60 in a leap minute, where bit 59 must be 0);
    ``None`` marks a bit that was not received.
    """
    reasons: list[str] = []
    if len(bits) not in (FRAME_BITS, LEAP_FRAME_BITS):
        raise FrameInvalid([f"length-{len(bits)}"])
    if any(b is None for b in bits):
        raise FrameInvalid(["missing-bits"])
    b: list[int] = [int(x) for x in bits]  # type: ignore[arg-type]
    if b[0] != 0:
        reasons.append("start-bit")
    if b[20] != 1:
        reasons.append("time-start-bit")
    if len(b) == LEAP_FRAME_BITS and b[59] != 0:
        reasons.append("leap-bit")
    if b[17] == b[18]:
        reasons.append("zone")
    for name, lo, hi in _PARITY:
        if sum(b[lo : hi + 1]) & 1:
            reasons.append(name)

    minute, ok_m = _bcd_decode(b, *_MINUTE)
    hour, ok_h = _bcd_decode(b, *_HOUR)
    day, ok_d = _bcd_decode(b, *_DAY)
    month, ok_mo = _bcd_decode(b, *_MONTH)
    year, ok_y = _bcd_decode(b, *_YEAR)
    weekday = b[42] | (b[43] << 1) | (b[44] << 2)
    if not ok_m or minute > 59:
        reasons.append("bcd-minute")
    if not ok_h or hour > 23:
        reasons.append("bcd-hour")
    if not ok_d or not 1 <= day <= 31:
        reasons.append("bcd-day")
    if not 1 <= weekday <= 7:
        reasons.append("bcd-weekday")
    if not ok_mo or not 1 <= month <= 12:
        reasons.append("bcd-month")
    if not ok_y:
        reasons.append("bcd-year")
    if reasons:
        raise FrameInvalid(reasons)
    full_year = 2000 + year
    if day > calendar.monthrange(full_year, month)[1]:
        raise FrameInvalid(["date"])
    if dt.date(full_year, month, day).isoweekday() != weekday:
        raise FrameInvalid(["weekday"])
    warning = 0
    for i in range(14):
        warning |= b[1 + i] << i
    return TimeCode(
        year=full_year,
        month=month,
        day=day,
        hour=hour,
        minute=minute,
        weekday=weekday,
        cest=bool(b[17]),
        dst_announce=bool(b[16]),
        leap_announce=bool(b[19]),
        call=bool(b[15]),
        warning_bits=warning,
    )


# --- German civil time (EU rules since 1996) ---------------------------------


def _last_sunday_0100_utc(year: int, month: int) -> int:
    last = calendar.monthrange(year, month)[1]
    day = dt.date(year, month, last)
    day -= dt.timedelta(days=(day.isoweekday() % 7))
    return calendar.timegm((day.year, day.month, day.day, 1, 0, 0))


def dst_changes(year: int) -> tuple[int, int]:
    """POSIX seconds of the CET->CEST and CEST->CET changes (01:00 UTC)."""
    return _last_sunday_0100_utc(year, 3), _last_sunday_0100_utc(year, 10)


def is_cest(utc_s: int) -> bool:
    year = dt.datetime.fromtimestamp(utc_s, UTC).year
    start, end = dst_changes(year)
    return start <= utc_s < end


def timecode_for(
    utc_minute_s: int,
    leap_second_ends: frozenset[int] = frozenset(),
    warning_bits: int = 0,
    call: bool = False,
) -> TimeCode:
    """The frame a correct transmitter sends to encode the UTC minute ``utc_minute_s``.

    A1 is set in the frames encoding the 60 minutes up to and including the
    change (observed in real logs: 01:01 CET .. 03:00 CEST).  A2 likewise for
    the hour ending with a leap second; ``leap_second_ends`` holds the POSIX
    second that follows each inserted leap second (00:00:00 UTC of the next day).
    """
    cest = is_cest(utc_minute_s)
    local = dt.datetime.fromtimestamp(utc_minute_s + (7200 if cest else 3600), UTC)
    year = local.year
    changes = dst_changes(year)
    dst_announce = any(0 <= c - utc_minute_s < 3600 for c in changes)
    leap_announce = any(0 <= e - utc_minute_s < 3600 for e in leap_second_ends)
    return TimeCode(
        year=year,
        month=local.month,
        day=local.day,
        hour=local.hour,
        minute=local.minute,
        weekday=local.isoweekday(),
        cest=cest,
        dst_announce=dst_announce,
        leap_announce=leap_announce,
        call=call,
        warning_bits=warning_bits,
    )


@functools.lru_cache(maxsize=256)
def is_month_end_minute(minute_s: int) -> bool:
    """True for 23:59 UTC on the last day of a month: where a leap second can go.

    ITU-R TF.460 puts leap seconds at the end of a UTC month (June and December
    first, March and September next); DCF77 announces them with A2.
    """
    return dt.datetime.fromtimestamp(minute_s + 60, UTC).strftime("%d%H%M") == "010000"


@functools.lru_cache(maxsize=256)
def in_leap_hour(minute_s: int) -> bool:
    """True in the last UTC hour of a month: the only hour A2 can rightly be set.

    A2 is outside every parity group, so one flipped pulse can fake it; a
    decoder honours it only here (and only when frames repeat it).
    """
    end = minute_s - minute_s % 3600 + 3600
    return dt.datetime.fromtimestamp(end, UTC).strftime("%d%H") == "0100"
