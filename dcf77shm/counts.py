"""The one set of event counters: `decode`'s summary, `run`'s last line, the
status file and the metrics all count with :class:`Counts`.

A pipeline event is counted by :meth:`Counts.event`; what becomes of a sample
is the caller's to say - `decode` counts every sample as published, `run` only
what the sink delivered (:meth:`Counts.publish`, :meth:`Counts.drop`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from dcf77shm.model import Alarm, DropReason, Event, MinuteReport, Sample, StateChange, Withheld


@dataclass
class Counts:
    minutes: int = 0  # frames received
    valid: int = 0  # ... that passed every check
    rejected: Counter[str] = field(default_factory=Counter)  # failed checks, by name
    published: int = 0  # samples handed on
    dropped: Counter[str] = field(default_factory=Counter)  # samples not, by DropReason value
    locks: int = 0
    unlocks: int = 0
    locked: bool = False
    alarms: Counter[str] = field(default_factory=Counter)  # by AlarmKind value
    last_sample: Sample | None = None  # the newest published

    @property
    def invalid(self) -> int:
        return self.minutes - self.valid

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def event(self, ev: Event) -> None:
        """Count a pipeline event (a Sample here is not yet published)."""
        if isinstance(ev, MinuteReport):
            self.minutes += 1
            if ev.ok:
                self.valid += 1
            else:
                self.rejected.update(ev.reasons or ("unknown",))
        elif isinstance(ev, StateChange):
            self.locked = ev.locked
            if ev.locked:
                self.locks += 1
            else:
                self.unlocks += 1
        elif isinstance(ev, Withheld):
            self.drop(ev.reason)
        elif isinstance(ev, Alarm):
            self.alarms[ev.kind.value] += 1

    def publish(self, s: Sample) -> None:
        self.published += 1
        self.last_sample = s

    def drop(self, reason: DropReason) -> None:
        self.dropped[reason.value] += 1
