"""Data that crosses stage boundaries: frozen dataclasses and enums.

Times are integer nanoseconds.  ``*_ns`` stamps taken from the system clock
(CLOCK_REALTIME, Unix epoch) are labels; intervals inside the decoder are
differences of those stamps within one unbroken edge stream.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


class Polarity(enum.Enum):
    """The line level while the carrier is reduced (a pulse)."""

    AUTO = "auto"
    HIGH = "high"
    LOW = "low"


class Leap(enum.IntEnum):
    """NTP leap indicator, as chrony's SHM ``leap`` field and SOCK ``leap`` take it."""

    NONE = 0
    INSERT = 1
    DELETE = 2


@dataclass(frozen=True, slots=True)
class Edge:
    """A change of the receiver's output line.

    ``time_ns`` is the system-clock time of the change; ``level`` the level
    after it (0 or 1).
    """

    time_ns: int
    level: int


@dataclass(frozen=True, slots=True)
class Gap:
    """A source's word that edges were lost (daemon restart, kernel overflow).

    The decoder drops its phase: no sample is built across a gap.
    """

    time_ns: int
    reason: str


@dataclass(frozen=True, slots=True)
class Sample:
    """One second mark, labelled with the UTC second it marks.

    ``receive_ns``: system-clock time of the mark's leading edge.
    ``clock_ns``: the true UTC time of that mark (a whole second, POSIX ns).
    """

    receive_ns: int
    clock_ns: int
    leap: Leap = Leap.NONE

    @property
    def offset_ns(self) -> int:
        """clock - receive: how far the system clock is behind the radio clock."""
        return self.clock_ns - self.receive_ns


@dataclass(frozen=True, slots=True)
class MinuteReport:
    """One received frame, reported at its minute marker.

    ``utc`` is the UTC minute the frame encodes (POSIX seconds), the minute
    that starts at ``marker_ns``; None when it could not be decoded.
    """

    marker_ns: int
    utc_s: int | None
    ok: bool
    reasons: tuple[str, ...] = ()
    bits: str = ""
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class StateChange:
    """Lock gained or lost, with the reason (for logs and monitors)."""

    time_ns: int
    locked: bool
    reason: str


Event = Sample | MinuteReport | StateChange
SourceItem = Edge | Gap
