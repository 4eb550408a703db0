"""The ``run`` loop: source -> pipeline -> sample check -> sink.

Sample validation lives here, once, in front of every sink (chrony's
shared-layer rule); a sink only writes.  Every dropped sample gets a typed
reason (:class:`~dcf77shm.model.DropReason`, one counter each) and a one-line
debug message; every alarm of the pipeline's guard is one WARNING line.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from types import FrameType

from dcf77shm.counts import Counts
from dcf77shm.decode.pipeline import Pipeline
from dcf77shm.formats.events import iso_ns, utc_minute
from dcf77shm.model import (
    NS_PER_S,
    Alarm,
    AlarmKind,
    DropReason,
    Event,
    Leap,
    MinuteReport,
    Sample,
    StateChange,
    Withheld,
)
from dcf77shm.sinks import Sink
from dcf77shm.sources import Source

log = logging.getLogger("dcf77shm.run")
sample_log = logging.getLogger("dcf77shm.run.samples")  # one line per second: -vv

# A live source is read once per POLL_NS, on a steady grid, taking what came
# since: the kernel (gpiod) or pigpiod stamped every edge when it happened, so
# reading late costs no accuracy, and a pulse's two edges and the decoding of
# its second cost one wake-up instead of two or three (issue 12: CPU).  A
# sample waits at most this long more (4 s median, chrony allows 64 s).
POLL_NS = NS_PER_S
# chrony accepts any offset it can represent (a Pi without RTC boots decades
# off and needs the step), so only an impossible one is refused: more than
# ~136 years is beyond NTP's era.
MAX_OFFSET_NS = 2**32 * NS_PER_S
# chrony drops refclock samples older than 2^(poll+1) s: 32 s with the shipped
# poll 4.  One that old is not handed on (and is counted as too old).
MAX_AGE_NS = 30 * NS_PER_S


class SampleCheck:
    """The safety net before the sink: drop what can only be a bug, with a reason."""

    def __init__(self, max_age_ns: int | None = MAX_AGE_NS) -> None:
        self._last: Sample | None = None
        self.max_age_ns = max_age_ns

    def reason(self, s: Sample, now_ns: int | None = None) -> tuple[DropReason, str] | None:
        if s.clock_ns % NS_PER_S:
            return DropReason.NOT_WHOLE_SECOND, f"clock time {s.clock_ns} ns is not a whole second"
        if s.leap not in (Leap.NONE, Leap.INSERT, Leap.DELETE):
            return DropReason.BAD_LEAP, f"bad leap indicator {s.leap!r}"
        if abs(s.offset_ns) >= MAX_OFFSET_NS:
            return (
                DropReason.OFFSET_RANGE,
                f"offset {s.offset_ns / NS_PER_S:.0f} s is beyond any clock",
            )
        if now_ns is not None and s.receive_ns > now_ns + NS_PER_S:
            # chrony refuses a sample from the future; a source stamping
            # edges ahead of the clock is broken (or an unpaced replay).
            return DropReason.FUTURE, f"receive time {iso_ns(s.receive_ns)} is in the future"
        if (
            now_ns is not None
            and self.max_age_ns is not None
            and now_ns - s.receive_ns > self.max_age_ns
        ):
            age = (now_ns - s.receive_ns) / NS_PER_S
            return DropReason.TOO_OLD, f"received {age:.1f} s ago: chrony would drop it"
        last = self._last
        if last is not None and (s.receive_ns <= last.receive_ns or s.clock_ns <= last.clock_ns):
            return (
                DropReason.NOT_MONOTONIC,
                f"not after the previous sample ({iso_ns(last.clock_ns)})",
            )
        self._last = s
        return None


def spacing_ns(sink: Sink) -> int:
    """How far apart the sink's samples must be for chrony to read each one:
    an SHM segment holds one sample and chrony reads it every 2^dpoll s."""
    v = getattr(sink, "min_spacing_ns", 0)
    return v if isinstance(v, int) and v > 0 else 0


class RunHooks:
    """Told of every event (counters, status file, systemd notify: dcf77shm.service.status).

    ``attached`` once source and sink are open; ``tick`` from every pass of the
    main loop (at least once a second); ``stopped`` after both are closed.
    """

    def attached(self) -> None: ...

    def tick(self) -> None: ...

    def published(self, s: Sample) -> None: ...

    def dropped(self, s: Sample, reason: DropReason) -> None: ...

    def alarm_raised(self, ev: Alarm) -> None: ...

    def minute(self, ev: MinuteReport) -> None: ...

    def state(self, ev: StateChange) -> None: ...

    def stopped(self) -> None: ...


class Runner:
    def __init__(
        self,
        source: Source,
        sink: Sink,
        pipeline: Pipeline,
        clock: Callable[[], int] = time.time_ns,
        hooks: RunHooks | None = None,
        mono_clock: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source, self.sink, self.pipeline = source, sink, pipeline
        self.hooks = hooks if hooks is not None else RunHooks()
        self.check = SampleCheck()
        self.counts = Counts()
        self._clock = clock
        self._mono = mono_clock
        self._sleep = sleep
        self._stop: str | None = None
        # A live SHM sink: a second released less than the sink's spacing after
        # the last write waits for it; one waits at most, an older one waiting
        # is superseded (counted): chrony would only have seen the newer one.
        self._spacing_ns = 0
        self._next_write_ns = 0
        self._waiting: Sample | None = None

    def stop(self, why: str) -> None:
        self._stop = why

    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop(signal.Signals(signum).name)

    def run(self) -> Counts:
        """Until the source ends or SIGTERM/SIGINT/SIGHUP; closes sink and source."""
        live = getattr(self.source, "live", True)
        if not live:
            # A replay as fast as it goes: its times are not now, and chrony's
            # age limit is not ours to apply, nor its reading rhythm.
            self.check.max_age_ns = None
        self._spacing_ns = spacing_ns(self.sink) if live else 0
        mono_clock = getattr(self.source, "mono_clock", None)
        # SIGHUP (a closed terminal, `kill -HUP`) stops cleanly too: the status
        # file then says stopped, never a dead process that looks alive.
        stops = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        old = {s: signal.signal(s, self._signal) for s in stops}
        try:
            self.source.open()
            self.sink.open()
            log.info("reading %s, publishing to %s", self.source.description, self.sink.description)
            self.hooks.attached()
            poll = POLL_NS if live else 0
            next_poll = self._mono()
            while self._stop is None:
                self.hooks.tick()
                self._flush()
                # Never blocking: live, the nap below paces the loop; a replay
                # as fast as it goes hands out its next batch at once.
                items = self.source.read(0.0)
                if items is None:
                    log.info("%s ended", self.source.description)
                    break
                for item in items:
                    self._handle(self.pipeline.feed(item))
                self._flush()
                if not items:
                    # No edge for a while: let the decoder decide the marks
                    # whose window has passed now, not at the next edge.
                    mono = mono_clock() if mono_clock is not None else None
                    self._handle(self.pipeline.advance(self._clock(), mono))
                if poll:
                    next_poll = self._nap(next_poll, poll)
            if self._waiting is not None:  # the source ended or we stop: it is due
                self._next_write_ns = 0
                self._flush()
            if self._stop:
                log.info("stopping on %s", self._stop)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.sink.close()
            self.source.close()
            self.hooks.stopped()
        c = self.counts
        log.info(
            "%d samples published, %d dropped; %d frames valid, %d rejected",
            c.published,
            c.dropped_total,
            c.valid,
            c.invalid,
        )
        return c

    def _handle(self, events: list[Event]) -> None:
        for ev in events:
            if not isinstance(ev, Sample | Withheld):  # samples: counted where they end
                self.counts.event(ev)
            if isinstance(ev, Sample):
                self._publish(ev)
            elif isinstance(ev, Withheld):
                self._drop(ev.sample, ev.reason, "withheld by the guard")
            elif isinstance(ev, Alarm):
                self.hooks.alarm_raised(ev)
                level = logging.INFO if ev.kind is AlarmKind.RECOVERED else logging.WARNING
                log.log(level, "%s: %s", ev.kind.value.upper().replace("_", " "), ev.detail)
            elif isinstance(ev, MinuteReport):
                self.hooks.minute(ev)
                if ev.ok:
                    log.debug("frame %s ok", utc_minute(ev.utc_s))
                else:
                    log.info(
                        "frame at %s rejected: %s",
                        iso_ns(ev.marker_ns),
                        ", ".join(ev.reasons) or "unknown",
                    )
            else:
                self.hooks.state(ev)
                log.info("%s: %s", "LOCK" if ev.locked else "UNLOCK", ev.reason)

    def _drop(self, s: Sample, reason: DropReason, why: str) -> None:
        self.hooks.dropped(s, reason)
        self.counts.drop(reason)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("sample %s dropped (%s): %s", iso_ns(s.clock_ns), reason.value, why)

    def _nap(self, next_poll: int, poll: int) -> int:
        """Sleep to the next point of the grid (or to when a waiting sample may
        go out, if sooner); returns the grid point after that."""
        now = self._mono()
        while next_poll <= now:
            next_poll += poll
        until = next_poll
        if self._waiting is not None:
            until = min(until, max(self._next_write_ns, now))
        if until > now and self._stop is None:
            self._sleep((until - now) / NS_PER_S)
        return next_poll

    def _publish(self, s: Sample) -> None:
        found = self.check.reason(s, self._clock())
        if found is not None:
            self._drop(s, *found)
            return
        if self._spacing_ns:
            if self._waiting is not None:
                self._drop(self._waiting, DropReason.SUPERSEDED, "a newer second came first")
            self._waiting = s
            self._flush()
        else:
            self._write(s)

    def _flush(self) -> None:
        s = self._waiting
        if s is None:
            return
        now = self._mono()
        if now < self._next_write_ns:
            return
        self._waiting = None
        self._next_write_ns = now + self._spacing_ns
        self._write(s)

    def _write(self, s: Sample) -> None:
        lost_before = self.sink.dropped
        try:
            self.sink.publish(s)
        except ValueError as e:  # a time the sink's format cannot hold (32-bit time_t)
            self._drop(s, DropReason.SINK_REFUSED, str(e))
            return
        if self.sink.dropped != lost_before:
            # Counted as what it is: a second chronyd never got (SOCK: no
            # socket, refused, or not reading), not as published.
            self._drop(s, DropReason.UNDELIVERED, "the sink could not deliver it")
            return
        self.counts.publish(s)
        self.hooks.published(s)
        if sample_log.isEnabledFor(logging.DEBUG):
            sample_log.debug("sample %s offset %+.6f s", iso_ns(s.clock_ns), s.offset_ns / NS_PER_S)
