"""The DCF77 time code: encode/decode round trips, every validation reason, and
``timecode_for`` against what the real transmitter did (dcf77logs, see
tests/test_dcf77logs.py): A1 in the frames encoding 01:01 CET .. 03:00 CEST on a
spring-forward day and 02:01 CEST .. 02:00 CET in autumn; A2 in the frames
encoding the 60 minutes up to the end of the hour that ends with the leap second,
the last of which is the 60-bit frame.
"""

from __future__ import annotations

import calendar
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcf77shm import timecode
from dcf77shm.timecode import FrameInvalid, TimeCode, decode, encode, is_cest, timecode_for

BERLIN = ZoneInfo("Europe/Berlin")
# Local (CET) 2000-01-01 00:00 .. 2099-12-31 23:59: the frame's two-digit year
# is read as 20YY, so 2100-01-01 local would decode as 2000 (weekday mismatch).
FIRST_MINUTE = calendar.timegm((1999, 12, 31, 23, 0, 0))
LAST_MINUTE = calendar.timegm((2099, 12, 31, 22, 59, 0))


def _utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return calendar.timegm((y, mo, d, h, mi, 0))


def _local(y: int, mo: int, d: int, h: int, mi: int, cest: bool) -> int:
    """POSIX seconds of a German civil time given with its zone (independent of timecode)."""
    tz = dt.timezone(dt.timedelta(hours=2 if cest else 1))
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=tz).timestamp())


@st.composite
def timecodes(draw: st.DrawFn) -> TimeCode:
    day = draw(st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)))
    return TimeCode(
        year=day.year,
        month=day.month,
        day=day.day,
        hour=draw(st.integers(0, 23)),
        minute=draw(st.integers(0, 59)),
        weekday=day.isoweekday(),
        cest=draw(st.booleans()),
        dst_announce=draw(st.booleans()),
        leap_announce=draw(st.booleans()),
        call=draw(st.booleans()),
        warning_bits=draw(st.integers(0, (1 << 14) - 1)),
    )


@settings(max_examples=400)
@given(timecodes(), st.booleans())
def test_round_trip_all_fields_and_utc(tc: TimeCode, leap_minute: bool) -> None:
    bits = encode(tc, leap_minute=leap_minute)
    assert len(bits) == (60 if leap_minute else 59)
    assert set(bits) <= {0, 1}
    # Fixed bits and the zone pair (PTB bit assignment), read straight off the frame.
    assert bits[0] == 0 and bits[20] == 1
    assert (bits[17], bits[18]) == ((1, 0) if tc.cest else (0, 1))
    assert (bits[15], bits[16], bits[19]) == (
        int(tc.call),
        int(tc.dst_announce),
        int(tc.leap_announce),
    )
    if leap_minute:
        assert bits[59] == 0
    back = decode(bits)
    assert back == tc
    want = _local(tc.year, tc.month, tc.day, tc.hour, tc.minute, tc.cest)
    assert back.utc_s() == want
    assert back.utc() == dt.datetime.fromtimestamp(want, dt.UTC)


@settings(max_examples=400)
@given(st.integers(FIRST_MINUTE // 60, LAST_MINUTE // 60))
def test_timecode_for_matches_tzdata_and_round_trips(minute: int) -> None:
    utc_s = minute * 60
    tc = timecode_for(utc_s)
    local = dt.datetime.fromtimestamp(utc_s, BERLIN)
    assert (tc.year, tc.month, tc.day, tc.hour, tc.minute) == (
        local.year,
        local.month,
        local.day,
        local.hour,
        local.minute,
    )
    assert tc.weekday == local.isoweekday()
    assert tc.cest == bool(local.dst())
    assert is_cest(utc_s) == bool(local.dst())
    assert decode(encode(tc)).utc_s() == utc_s


# --- one test per validation reason ----------------------------------------------

_REF = TimeCode(2024, 2, 29, 13, 47, 4, cest=False)  # a Thursday


def _frame(tc: TimeCode = _REF) -> list[int]:
    return encode(tc)


def _reasons(bits: list[int | None] | list[int]) -> tuple[str, ...]:
    with pytest.raises(FrameInvalid) as ei:
        decode(bits)
    return ei.value.reasons


def _fix_parity(bits: list[int]) -> list[int]:
    for lo, hi in ((21, 28), (29, 35), (36, 58)):
        bits[hi] = sum(bits[lo:hi]) & 1
    return bits


def _set_field(bits: list[int], first: int, raw: list[int]) -> list[int]:
    bits[first : first + len(raw)] = raw
    return _fix_parity(bits)


def test_reference_frame_is_valid() -> None:
    assert decode(_frame()) == _REF


def test_start_bit() -> None:
    b = _frame()
    b[0] = 1
    assert _reasons(b) == ("start-bit",)


def test_time_start_bit() -> None:
    b = _frame()
    b[20] = 0
    assert _reasons(b) == ("time-start-bit",)


@pytest.mark.parametrize("z", [(0, 0), (1, 1)])
def test_zone(z: tuple[int, int]) -> None:
    b = _frame()
    b[17], b[18] = z
    assert _reasons(b) == ("zone",)


@pytest.mark.parametrize(
    ("bit", "reason"),
    [(21, "parity-minute"), (28, "parity-minute"), (30, "parity-hour"), (35, "parity-hour")]
    + [(i, "parity-date") for i in (36, 43, 47, 57, 58)],
)
def test_parity(bit: int, reason: str) -> None:
    b = _frame()
    b[bit] ^= 1
    assert reason in _reasons(b)
    # A flipped parity bit alone breaks nothing else.
    if bit in (28, 35, 58):
        assert _reasons(b) == (reason,)


def _bcd(units: int, tens: int, n_units: int, n_tens: int) -> list[int]:
    return [(units >> i) & 1 for i in range(n_units)] + [(tens >> i) & 1 for i in range(n_tens)]


@pytest.mark.parametrize(
    ("first", "raw", "reason"),
    [
        (21, _bcd(10, 0, 4, 3), "bcd-minute"),  # units digit 10
        (21, _bcd(15, 1, 4, 3), "bcd-minute"),  # the real 2012 frame "1111100": 15 units
        (21, _bcd(0, 6, 4, 3), "bcd-minute"),  # 60
        (21, _bcd(9, 7, 4, 3), "bcd-minute"),  # 79
        (29, _bcd(12, 0, 4, 2), "bcd-hour"),
        (29, _bcd(4, 2, 4, 2), "bcd-hour"),  # 24
        (29, _bcd(0, 3, 4, 2), "bcd-hour"),  # 30
        (36, _bcd(0, 0, 4, 2), "bcd-day"),  # 0
        (36, _bcd(11, 0, 4, 2), "bcd-day"),
        (36, _bcd(2, 3, 4, 2), "bcd-day"),  # 32
        (42, [0, 0, 0], "bcd-weekday"),
        (45, _bcd(0, 0, 4, 1), "bcd-month"),  # 0
        (45, _bcd(3, 1, 4, 1), "bcd-month"),  # 13
        (45, _bcd(13, 0, 4, 1), "bcd-month"),
        (50, _bcd(10, 2, 4, 4), "bcd-year"),
        (50, _bcd(4, 10, 4, 4), "bcd-year"),
    ],
)
def test_bcd(first: int, raw: list[int], reason: str) -> None:
    b = _set_field(_frame(), first, raw)
    assert reason in _reasons(b)


def _date_frame(y: int, mo: int, d: int, weekday: int) -> list[int]:
    return _frame(TimeCode(y, mo, d, 12, 0, weekday, cest=False))


@pytest.mark.parametrize(("y", "mo", "d"), [(2024, 4, 31), (2023, 2, 29), (2100 - 100, 2, 30)])
def test_date(y: int, mo: int, d: int) -> None:
    assert _reasons(_date_frame(y, mo, d, 1)) == ("date",)


def test_29_february() -> None:
    assert decode(_date_frame(2024, 2, 29, 4)).day == 29  # a Thursday
    assert decode(_date_frame(2000, 2, 29, 2)).day == 29  # 2000 was a leap year (a Tuesday)
    assert _reasons(_date_frame(2023, 2, 29, 3)) == ("date",)


def test_weekday_mismatch() -> None:
    assert _reasons(_date_frame(2024, 2, 29, 5)) == ("weekday",)


@pytest.mark.parametrize("n", [0, 58, 61, 100])
def test_length(n: int) -> None:
    (reason,) = _reasons([0] * n)
    assert reason.startswith("length")


@pytest.mark.parametrize("where", [0, 5, 21, 58])
def test_missing_bits(where: int) -> None:
    b: list[int | None] = list(_frame())
    b[where] = None
    assert _reasons(b) == ("missing-bits",)


def test_leap_bit() -> None:
    b = encode(_REF, leap_minute=True)
    assert decode(b) == _REF
    b[59] = 1
    assert _reasons(b) == ("leap-bit",)


def test_every_failure_is_named() -> None:
    b = _frame()
    b[0], b[20], b[17], b[18] = 1, 0, 1, 1
    b[28] ^= 1
    assert set(_reasons(b)) == {"start-bit", "time-start-bit", "zone", "parity-minute"}


# --- timecode_for against the transmitter's behaviour (dcf77logs) ------------------


def _a1_minutes(day: dt.date) -> list[int]:
    start = _utc(day.year, day.month, day.day)
    return [u for u in range(start, start + 86400, 60) if timecode_for(u).dst_announce]


def test_a1_spring_forward_2010() -> None:
    # 13-Sommerzeit.log / DCFLog00615: A1 from "28.03.10 01:01 WZ" to "03:00 SZ".
    a1 = _a1_minutes(dt.date(2010, 3, 28))
    assert a1[0] == _local(2010, 3, 28, 1, 1, cest=False)
    assert a1[-1] == _local(2010, 3, 28, 3, 0, cest=True)
    assert len(a1) == 60 and a1 == list(range(a1[0], a1[-1] + 60, 60))
    last = timecode_for(a1[-1])
    assert (last.hour, last.minute, last.cest) == (3, 0, True)
    before = timecode_for(a1[-1] - 60)
    assert (before.hour, before.minute, before.cest) == (1, 59, False)
    after = timecode_for(a1[-1] + 60)
    assert (after.hour, after.minute, after.cest, after.dst_announce) == (3, 1, True, False)
    first = timecode_for(a1[0] - 60)
    assert (first.hour, first.minute, first.dst_announce) == (1, 0, False)


def test_a1_fall_back_2010() -> None:
    # 19-Winterzeit.log / DCFLog00844: A1 from "31.10.10 02:01 SZ" to "02:00 WZ".
    a1 = _a1_minutes(dt.date(2010, 10, 31))
    assert a1[0] == _local(2010, 10, 31, 2, 1, cest=True)
    assert a1[-1] == _local(2010, 10, 31, 2, 0, cest=False)
    assert len(a1) == 60 and a1 == list(range(a1[0], a1[-1] + 60, 60))
    tcs = [timecode_for(u) for u in (a1[0] - 60, a1[-1] - 60, a1[-1], a1[-1] + 60)]
    assert [(t.hour, t.minute, t.cest, t.dst_announce) for t in tcs] == [
        (2, 0, True, False),
        (2, 59, True, True),
        (2, 0, False, True),
        (2, 1, False, False),
    ]


@pytest.mark.parametrize("year", [2008, 2010, 2024, 2037, 2099])
def test_a1_every_year_spring_and_autumn(year: int) -> None:
    for month in (3, 10):
        day = max(
            dt.date(year, month, d)
            for d in range(25, 32)
            if dt.date(year, month, d).isoweekday() == 7
        )
        a1 = _a1_minutes(day)
        assert len(a1) == 60
        # The change is at 01:00 UTC and A1 covers the frames up to and including it.
        assert a1[-1] == _utc(day.year, day.month, day.day, 1, 0)


@pytest.mark.parametrize(
    ("end", "first_local", "cest"),
    [
        # 06-Schaltsekunde.log: A2 "01.01.09 00:01 WZ" .. "01:00 WZ" (the 60-bit frame).
        (_utc(2009, 1, 1), (2009, 1, 1, 0, 1), False),
        # 30-Schaltsekunde.log: A2 "01.07.12 01:01 SZ" .. "02:00 SZ" (the 60-bit frame).
        (_utc(2012, 7, 1), (2012, 7, 1, 1, 1), True),
    ],
)
def test_a2_leap_hour(end: int, first_local: tuple[int, int, int, int, int], cest: bool) -> None:
    ends = frozenset({end})
    around = range(end - 7200, end + 3600, 60)
    a2 = [u for u in around if timecode_for(u, ends).leap_announce]
    assert a2[0] == _local(*first_local, cest=cest)
    assert a2[-1] == end  # the frame encoding 00:00 UTC is the one sent in the leap minute
    assert len(a2) == 60
    assert not any(timecode_for(u).leap_announce for u in around)


def test_is_cest_boundaries() -> None:
    start = _utc(2024, 3, 31, 1)
    end = _utc(2024, 10, 27, 1)
    assert (is_cest(start - 1), is_cest(start), is_cest(end - 1), is_cest(end)) == (
        False,
        True,
        True,
        False,
    )
    assert timecode.dst_changes(2024) == (start, end)
    assert not is_cest(_utc(2024, 1, 1)) and is_cest(_utc(2024, 7, 1))
