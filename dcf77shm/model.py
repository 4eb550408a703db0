"""Data that crosses stage boundaries: frozen dataclasses and enums.

Times are integer nanoseconds.  Two clocks:

* ``time_ns`` / ``receive_ns``: the system clock (CLOCK_REALTIME, Unix epoch).
  It is only a *label*: it steps (chrony's makestep at boot on a Pi without
  an RTC, an admin's ``date -s``, the kernel at a leap second).
* ``mono_ns``: a clock that never steps and that chrony does not slew
  (CLOCK_MONOTONIC_RAW of the host for live sources; whatever the edge log
  carries for a replay).  Every interval the decoder measures, and the held
  count of seconds, comes from it.  ``None`` when the source has no such
  clock (an edge log of version 1): then the system clock is the only
  timeline, and a step in it looks like a jump.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields

from dcf77shm.errors import BadInput

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


class Polarity(enum.Enum):
    """The line level while the carrier is reduced (a pulse)."""

    AUTO = "auto"
    HIGH = "high"
    LOW = "low"


class Bias(enum.Enum):
    """The GPIO's internal pull resistor, set by the pigpio and gpiod sources (--bias)."""

    AS_IS = "as-is"  # leave it as the device tree or an earlier user set it
    PULL_UP = "pull-up"
    PULL_DOWN = "pull-down"
    DISABLED = "disabled"

    @classmethod
    def parse(cls, value: object) -> Bias:
        """A source option's value (a Bias, its name, or None for as-is), or BadInput."""
        if value is None or isinstance(value, Bias):
            return value or cls.AS_IS
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(b.value for b in cls)
            raise BadInput(f"bad bias {value!r}: use one of {names}") from None


class Leap(enum.IntEnum):
    """NTP leap indicator, as chrony's SHM ``leap`` field and SOCK ``leap`` take it."""

    NONE = 0
    INSERT = 1
    DELETE = 2


@dataclass(frozen=True, slots=True)
class Edge:
    """A change of the receiver's output line.

    ``time_ns`` is the system-clock time of the change; ``level`` the level
    after it (0 or 1); ``mono_ns`` the same moment on the steady clock.
    """

    time_ns: int
    level: int
    mono_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Gap:
    """A source's word that edges were lost (daemon restart, kernel overflow).

    The decoder drops its phase: no sample is built across a gap.
    """

    time_ns: int
    reason: str
    mono_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """A source's word that the system clock stepped by ``delta_ns`` at or
    before ``mono_ns`` (REALTIME - MONOTONIC changed; no edge was lost).

    A second received before the step but published after it would carry a
    receive time of the old clock: the pipeline withholds it."""

    mono_ns: int
    delta_ns: int


@dataclass(frozen=True, slots=True)
class Sample:
    """One second mark, labelled with the UTC second it marks.

    ``receive_ns``: system-clock time of the mark's leading edge.
    ``clock_ns``: the true UTC time of that mark (a whole second, POSIX ns).
    ``mono_ns``: the leading edge on the decoder's steady timeline.
    """

    receive_ns: int
    clock_ns: int
    leap: Leap = Leap.NONE
    mono_ns: int | None = None

    @property
    def offset_ns(self) -> int:
        """clock - receive: how far the system clock is behind the radio clock."""
        return self.clock_ns - self.receive_ns


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """What a decoder says about a frame beyond its verdict: the extra keys of a
    minute event (INTERFACES §2), each present when not None, in this order;
    times in ns like every time key."""

    # What a decoded frame says (both decoders; dcf77shm.timecode.frame_fields).
    local: str | None = None  # local time and zone, e.g. "2024-03-31T03:00 CEST"
    dst_announce: bool | None = None  # A1, bit 16
    leap_announce: bool | None = None  # A2, bit 19
    call: bool | None = None  # R, bit 15: the call bit
    # The robust decoder: where the frame stands against the lock.
    decoder: str | None = None
    margin: float | None = None  # evidence margin (nats) while acquiring
    evidence_utc_ns: int | None = None  # the best hypothesis, when it leads at all
    expected_ns: int | None = None  # the minute the running count expects (locked)
    decoded_ns: int | None = None  # what the frame said, when that was refused
    confirmed: bool | None = None  # the frame agrees with the count or the evidence

    def json(self) -> dict[str, object]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


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
    extra: FrameInfo = field(default_factory=FrameInfo, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class StateChange:
    """Lock gained or lost, with the reason (for logs and monitors)."""

    time_ns: int
    locked: bool
    reason: str


class DropReason(enum.Enum):
    """Why a second was not handed to chrony (one counter each in status and metrics)."""

    # The pipeline's guard (the held count, dcf77shm.decode.guard)
    CLOCK_STEPPED = "clock_stepped"  # received before a system-clock step
    JUMP = "jump"  # the radio's time contradicts the held count
    DRIFT = "drift"  # the marks left the rate the oscillator allows
    PHASE = "phase"  # the edge is too far from where the held count puts the mark
    UNVERIFIED = "unverified"  # after a gap the count is not yet confirmed again
    # The daemon's last check before the sink (dcf77shm.service.runner)
    NOT_WHOLE_SECOND = "not_whole_second"
    BAD_LEAP = "bad_leap"
    OFFSET_RANGE = "offset_range"
    FUTURE = "future"
    NOT_MONOTONIC = "not_monotonic"
    TOO_OLD = "too_old"  # older than chrony accepts (2^(poll+1) s)
    SINK_REFUSED = "sink_refused"  # a time the sink's format cannot hold
    UNDELIVERED = "undelivered"  # the sink could not hand it over (chronyd not reachable)
    SUPERSEDED = "superseded"  # a newer second came before chrony could read this one (SHM)


@dataclass(frozen=True, slots=True)
class Withheld:
    """A second the pipeline decoded but does not publish, and why."""

    sample: Sample
    reason: DropReason


class AlarmKind(enum.Enum):
    """Events an operator must hear about (logged at WARNING, in status and metrics)."""

    JUMP = "jump"  # the radio's time contradicts the held count: refused
    JUMP_FOLLOWED = "jump_followed"  # ... and followed, by the configured policy
    DRIFT = "drift"  # the marks' rate left what a crystal does: publishing stopped
    CLOCK_STEP = "clock_step"  # the system clock stepped
    RECOVERED = "recovered"  # the radio agrees with the held count again
    LEAP_LIST_EXPIRED = "leap_list_expired"  # A2 is honoured by the old rule


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm (``time_ns`` on the system clock)."""

    time_ns: int
    kind: AlarmKind
    detail: str


Event = Sample | MinuteReport | StateChange | Withheld | Alarm
SourceItem = Edge | Gap | Step
