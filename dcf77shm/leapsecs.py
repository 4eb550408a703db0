"""Leap seconds: the IERS list that tzdata ships, and what to believe of DCF77's A2.

A2 (bit 19) announces a leap second at the end of the hour, but it is outside
every parity group and has no authentication: one flipped pulse, or a local
transmitter, sets it.  A false leap indicator makes chrony insert a second that
does not exist.  The authoritative source is the IERS's Bulletin C, which tzdata
ships as ``leap-seconds.list`` (NIST format): data lines ``NTP_SECONDS TAI-UTC``
give the moment each new offset takes effect (00:00:00 UTC after an inserted
second), and ``#@ NTP_SECONDS`` says until when the file is authoritative.

Before that expiry the list decides: A2 is ignored, a listed leap second is
announced even if A2 is never received.  After it (or with no list) the decoder
falls back to DCF77's own rule: A2 honoured in the last UTC hour of a month when
two of the last three frames repeat it, and the operator is told that the list
has expired (``LeapTable.expired``).
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from dcf77shm import timecode
from dcf77shm.errors import BadInput
from dcf77shm.model import Leap

NTP_TO_POSIX = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
SYSTEM_LISTS = (
    Path("/usr/share/zoneinfo/leap-seconds.list"),
    Path("/usr/share/zoneinfo/right/leap-seconds.list"),
)
_FIRST_LEAP_S = 78_796_800  # 1972-07-01: the 1972-01-01 line is the initial offset, not a leap


@dataclass(frozen=True, slots=True)
class LeapTable:
    """``ends``: POSIX second that follows each inserted leap second; ``expires_s``:
    the list is authoritative for UTC times before this."""

    ends: frozenset[int]
    expires_s: int
    source: str = ""

    def authoritative(self, utc_s: int) -> bool:
        return utc_s < self.expires_s

    def expired(self, now_s: int) -> bool:
        return now_s >= self.expires_s

    def describe(self) -> str:
        expiry = dt.datetime.fromtimestamp(self.expires_s, dt.UTC).strftime("%Y-%m-%d")
        return f"{self.source or 'leap-seconds list'} (authoritative until {expiry})"


def parse(text: str, source: str = "") -> LeapTable:
    """A ``leap-seconds.list`` file; BadInput naming the line for anything else."""
    ends: set[int] = set()
    expires: int | None = None
    offsets: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#@"):
            try:
                expires = int(line[2:].split()[0]) - NTP_TO_POSIX
            except (ValueError, IndexError):
                raise BadInput(f"{source}:{lineno}: bad expiry line {line!r}") from None
            continue
        body = line.split("#", 1)[0].split()
        if not body:
            continue
        try:
            ntp_s, offset = int(body[0]), int(body[1])
        except (ValueError, IndexError):
            raise BadInput(
                f"{source}:{lineno}: expected 'NTP_SECONDS TAI-UTC', got {line!r}"
            ) from None
        posix = ntp_s - NTP_TO_POSIX
        if offsets and offset != offsets[-1] + 1:
            # Only positive leap seconds have ever happened; a negative one
            # would need a 59-second minute that no decoder here handles.
            raise BadInput(f"{source}:{lineno}: TAI-UTC goes from {offsets[-1]} to {offset}")
        offsets.append(offset)
        if posix >= _FIRST_LEAP_S:
            ends.add(posix)
    if expires is None:
        raise BadInput(f"{source}: no '#@' expiry line: not a leap-seconds.list file")
    return LeapTable(frozenset(ends), expires, source)


def load(path: Path) -> LeapTable:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: cannot read the leap-seconds list: {e}") from None
    return parse(text, str(path))


def load_system() -> LeapTable | None:
    """tzdata's list, or None when this system has none (the old rule then applies)."""
    for path in SYSTEM_LISTS:
        if path.is_file():
            try:
                return load(path)
            except BadInput:
                continue
    return None


class LeapPolicy:
    """What the decoders believe about leap seconds, given the list (or none)."""

    def __init__(self, table: LeapTable | None = None) -> None:
        self.table = table
        # Sorted once: the guard counts the leaps between two labels for every
        # sample (issue 12: CPU).
        self._ends = sorted(table.ends) if table is not None else []

    def inserted_between(self, lo: int, hi: int) -> int:
        """Leap seconds the list speaks for whose following second lies in (lo, hi]."""
        table, ends = self.table, self._ends
        if table is None:
            return 0
        i, j = bisect.bisect_right(ends, lo), bisect.bisect_right(ends, hi)
        return sum(1 for e in ends[i:j] if table.authoritative(e - 1))

    def authoritative(self, utc_s: int) -> bool:
        return self.table is not None and self.table.authoritative(utc_s)

    def uncertain_minute(self, minute_s: int) -> bool:
        """A minute after which a second may be inserted that we cannot rule out
        (any month's last minute, unless the list speaks for it)."""
        if self.authoritative(minute_s):
            return False
        return timecode.is_month_end_minute(minute_s)

    def inserted_after(self, minute_s: int, a2: bool) -> bool:
        """Is a second inserted after the UTC minute starting at ``minute_s``?
        ``a2``: the frames' vote for A2 (the old rule, used past the list)."""
        if self.table is not None and self.authoritative(minute_s):
            return minute_s + 60 in self.table.ends
        return a2 and timecode.is_month_end_minute(minute_s)

    def flag(self, label_s: int, a2: bool) -> Leap:
        """The NTP leap indicator for a sample labelled ``label_s``.

        From the list: INSERT for the whole UTC day that ends with a listed leap
        second (as NTP servers announce it).  Past the list: INSERT in the last
        UTC hour of a month when the frames vote for A2."""
        if self.table is not None and self.authoritative(label_s):
            day_end = label_s - label_s % 86400 + 86400
            return Leap.INSERT if day_end in self.table.ends else Leap.NONE
        if a2 and timecode.in_leap_hour(label_s) and label_s % 3600 >= 60:
            return Leap.INSERT
        return Leap.NONE


def posix_day_end(date: dt.date) -> int:
    nxt = date + dt.timedelta(days=1)
    return calendar.timegm((nxt.year, nxt.month, nxt.day, 0, 0, 0))
