"""Rendering decoder events: JSON Lines (INTERFACES §2) and the human table."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from dcf77shm.counts import Counts
from dcf77shm.model import NS_PER_S, Alarm, Event, MinuteReport, Sample, Withheld


def utc_minute(utc_s: int | None) -> str | None:
    if utc_s is None:
        return None
    return dt.datetime.fromtimestamp(utc_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:00Z")


def iso_ns(t_ns: int) -> str:
    s, ns = divmod(t_ns, NS_PER_S)
    try:
        day = dt.datetime.fromtimestamp(s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):  # a garbage segment, a hostile log
        return f"{s} s since 1970 (not a date)"
    return day + f".{ns // 1000:06d}Z"


def _sample_json(s: Sample) -> dict[str, object]:
    d: dict[str, object] = {"receive_ns": s.receive_ns, "clock_ns": s.clock_ns, "leap": int(s.leap)}
    if s.mono_ns is not None:
        d["mono_ns"] = s.mono_ns
    return d


def to_json(ev: Event) -> dict[str, object]:
    if isinstance(ev, Sample):
        return {"type": "sample", **_sample_json(ev)}
    if isinstance(ev, Withheld):
        return {"type": "withheld", **_sample_json(ev.sample), "reason": ev.reason.value}
    if isinstance(ev, Alarm):
        return {"type": "alarm", "kind": ev.kind.value, "time_ns": ev.time_ns, "detail": ev.detail}
    if isinstance(ev, MinuteReport):
        d: dict[str, object] = {
            "type": "minute",
            "utc": utc_minute(ev.utc_s),
            "ok": ev.ok,
            "reasons": list(ev.reasons),
            "bits": ev.bits,
            "marker_ns": ev.marker_ns,
        }
        d.update(ev.extra.json())
        return d
    return {"type": "lock", "locked": ev.locked, "time_ns": ev.time_ns, "reason": ev.reason}


def json_line(ev: Event) -> str:
    if isinstance(ev, Sample):  # the hot path: one per second
        mono = "" if ev.mono_ns is None else f', "mono_ns": {ev.mono_ns}'
        return (
            f'{{"type": "sample", "receive_ns": {ev.receive_ns}, '
            f'"clock_ns": {ev.clock_ns}, "leap": {int(ev.leap)}{mono}}}'
        )
    return json.dumps(to_json(ev), separators=(", ", ": "))


@dataclass
class Summary:
    """`decode`'s closing lines: the counts (dcf77shm.counts, as `run` and the
    status file keep them), the alarms and the first sample."""

    counts: Counts = field(default_factory=Counts)
    first_sample: Sample | None = None
    first_edge_ns: int | None = None
    alarms: list[Alarm] = field(default_factory=list)
    _minute_samples: int = 0

    def add(self, ev: Event) -> None:
        self.counts.event(ev)
        if isinstance(ev, Sample):
            self.counts.publish(ev)  # decode: what run would hand on
            self._minute_samples += 1
            if self.first_sample is None:
                self.first_sample = ev
        elif isinstance(ev, Alarm):
            self.alarms.append(ev)

    def take_minute_samples(self) -> int:
        n, self._minute_samples = self._minute_samples, 0
        return n

    def lines(self) -> list[str]:
        c = self.counts
        out = [f"minutes seen: {c.minutes}, valid: {c.valid}, rejected: {c.invalid}"]
        if c.rejected:
            reasons = ", ".join(f"{r} {n}" for r, n in c.rejected.most_common())
            out.append(f"rejected by reason: {reasons}")
        out.append(f"samples: {c.published}; locks: {c.locks}, lock losses: {c.unlocks}")
        if c.dropped:
            reasons = ", ".join(f"{r} {n}" for r, n in c.dropped.most_common())
            out.append(f"withheld: {c.dropped_total} ({reasons})")
        for a in self.alarms:
            out.append(f"ALARM {a.kind.value} at {iso_ns(a.time_ns)}: {a.detail}")
        if self.first_sample is not None:
            s = self.first_sample
            after = ""
            if self.first_edge_ns is not None:
                after = (
                    f", {(s.receive_ns - self.first_edge_ns) / NS_PER_S:.1f} s after the first edge"
                )
            out.append(
                f"first sample: {iso_ns(s.clock_ns)} received at {iso_ns(s.receive_ns)}{after}"
            )
        else:
            out.append("first sample: none")
        return out


TABLE_HEADER = (
    f"{'marker (system clock)':<28} {'frame encodes (UTC)':<20} {'local':<22} {'n':>3}  status"
)


def table_line(ev: MinuteReport, samples_before: int) -> str:
    local = ev.extra.local or "-"
    status = "ok" if ev.ok else "rejected: " + ", ".join(ev.reasons)
    utc = utc_minute(ev.utc_s) or "-"
    return f"{iso_ns(ev.marker_ns):<28} {utc:<20} {local:<22} {samples_before:>3}  {status}"
