"""What a running ``dcf77shm run`` has done: counters, a status file, a Prometheus
textfile and systemd's STATUS=/WATCHDOG=.

The daemon calls :class:`Monitor` (a :class:`~dcf77shm.service.runner.RunHooks`) at
each event; once a second the monitor writes the status file (JSON, read by
``dcf77shm status``) and, if asked, a textfile for node_exporter's textfile
collector.  Both are written to a temporary file and renamed, so a reader
never sees half a file (the collector's documented requirement).

Why a textfile and not an HTTP endpoint: a time server should listen on as
few sockets as possible (the unit even forbids binding), node_exporter is
what a Pi already runs, and its collector adds host labels and staleness for
free.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dcf77shm import __version__
from dcf77shm.counts import Counts
from dcf77shm.decode.guard import Guard, GuardState
from dcf77shm.errors import BadInput, Dcf77Error, RuntimeFailure
from dcf77shm.fileio import open_output, printable
from dcf77shm.formats.events import iso_ns
from dcf77shm.leapsecs import LeapTable
from dcf77shm.model import NS_PER_S, Alarm, AlarmKind, DropReason, MinuteReport, Sample, StateChange
from dcf77shm.service.notify import Notifier
from dcf77shm.service.runner import RunHooks
from dcf77shm.service.state import StateFile

log = logging.getLogger("dcf77shm.service.status")

DEFAULT_STATUS_FILE = Path("/run/dcf77shm/status.json")
# The status file, metrics and systemd's STATUS= are rewritten when the state
# changes (lock, guard state, alarm, a new kind of drop, the first sample) and
# otherwise at this interval, for the counters: a write a second was most of
# the daemon's cost (issue 12: CPU).
WRITE_EVERY_NS = 10 * NS_PER_S
SAVE_EVERY_NS = 60 * NS_PER_S  # the held count, for a restart (dcf77shm.service.state)
# Written at least every WRITE_EVERY_NS: older than this and the writer is gone
# (killed -9, hung: the watchdog would restart it within WatchdogSec=30).
STALE_NS = 30 * NS_PER_S
FORMAT = 1


def _label(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "_", text.lower()) or "unknown"


def _labelled(c: Counter[str]) -> dict[str, int]:
    """Failed checks by name, each a safe metrics label."""
    out: Counter[str] = Counter()
    for name, n in c.items():
        out[_label(name)] += n
    return dict(sorted(out.items()))


class Monitor(RunHooks):
    def __init__(
        self,
        source: str,
        output: str,
        decoder: str,
        status_file: Path | None = None,
        metrics_file: Path | None = None,
        notifier: Notifier | None = None,
        clock: Callable[[], int] = time.time_ns,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        guard: Guard | None = None,
        leaps: LeapTable | None = None,
        state_file: StateFile | None = None,
        output_shmid: Callable[[], int | None] | None = None,
    ) -> None:
        self.source, self.output, self.decoder = source, output, decoder
        self._output_shmid = output_shmid  # the SHM segment the sink writes now
        self.status_file, self.metrics_file = status_file, metrics_file
        self.notifier = notifier if notifier is not None else Notifier()
        self._clock, self._mono = clock, monotonic_ns
        self.started_ns = clock()
        self.counts = Counts()  # as decode's summary and run's last line count
        self.lock_reason = "waiting for the first valid minute"
        self.guard = guard
        self.leaps = leaps
        self.state_file = state_file
        self._next_save_ns: int | None = None
        self.alarm: Alarm | None = None  # the newest alarm not yet recovered from
        self.running = True
        self._next_write_ns: int | None = None
        self._written: tuple[object, ...] | None = None  # the state last written
        self._write_failed: set[Path] = set()

    # --- RunHooks ---------------------------------------------------------------

    def attached(self) -> None:
        leaps = self.leaps
        if leaps is None:
            log.warning(
                "no leap-seconds list: A2 is honoured by the old rule (two frames in a row)"
            )
        elif leaps.expired(self._clock() // NS_PER_S):
            log.warning(
                "%s has expired: A2 is honoured by the old rule; update tzdata", leaps.describe()
            )
        self.notifier.ready(self.status_line())
        self.write()

    def tick(self) -> None:
        self.notifier.tick()
        now = self._mono()
        due = self._next_write_ns is None or now >= self._next_write_ns
        if due or self._state() != self._written:
            self._next_write_ns = now + WRITE_EVERY_NS
            self.notifier.status(self.status_line())
            self.write()
        due = self._next_save_ns is None or now >= self._next_save_ns
        if self.state_file is not None and self.guard is not None and due:
            self._next_save_ns = now + SAVE_EVERY_NS
            self.state_file.save(self.guard)

    @property
    def locked(self) -> bool:
        return self.counts.locked

    def published(self, s: Sample) -> None:
        self.counts.publish(s)

    def dropped(self, s: Sample, reason: DropReason) -> None:
        self.counts.drop(reason)

    def alarm_raised(self, ev: Alarm) -> None:
        self.counts.event(ev)
        self.alarm = None if ev.kind is AlarmKind.RECOVERED else ev
        # Say it now, not at the next tick: systemctl status shows STATUS=.
        self.notifier.status(self.status_line())

    def minute(self, ev: MinuteReport) -> None:
        self.counts.event(ev)

    def state(self, ev: StateChange) -> None:
        self.counts.event(ev)
        self.lock_reason = ev.reason

    def stopped(self) -> None:
        self.running = False
        if self.state_file is not None and self.guard is not None:
            self.state_file.save(self.guard)
        # The last word in `systemctl status`, however short the run was.
        self.notifier.status(self.status_line())
        self.notifier.stopping()
        self.write()
        self.notifier.close()

    # --- output -------------------------------------------------------------------

    def status_line(self) -> str:
        """systemd's STATUS= (shown by `systemctl status`): lock state, last second."""
        state = "locked" if self.locked else f"no lock ({self.lock_reason})"
        if self.alarm is not None:
            state = f"{self.alarm.kind.value.upper()}: {self.alarm.detail}; {state}"
        c = self.counts
        last = c.last_sample
        if last is None:
            return f"{state}; no sample published yet"
        return (
            f"{state}; last second {iso_ns(last.clock_ns)} "
            f"offset {last.offset_ns / NS_PER_S:+.3f} s; {c.published} published"
        )

    def snapshot(self) -> dict[str, Any]:
        c = self.counts
        last = c.last_sample
        return {
            "format": FORMAT,
            "version": __version__,
            "pid": os.getpid(),
            "running": self.running,
            "started_ns": self.started_ns,
            "updated_ns": self._clock(),
            "source": self.source,
            "output": self.output,
            "output_shmid": None if self._output_shmid is None else self._output_shmid(),
            "decoder": self.decoder,
            "locked": self.locked,
            "lock_reason": self.lock_reason,
            "locks": c.locks,
            "unlocks": c.unlocks,
            "samples_published": c.published,
            "samples_dropped": dict(sorted(c.dropped.items())),
            "minutes_valid": c.valid,
            "minutes_rejected": _labelled(c.rejected),
            "guard": self.guard.state.value if self.guard is not None else None,
            "alarm": None
            if self.alarm is None
            else {
                "kind": self.alarm.kind.value,
                "time_ns": self.alarm.time_ns,
                "detail": self.alarm.detail,
            },
            "alarms": dict(sorted(c.alarms.items())),
            "leap_list": None
            if self.leaps is None
            else {
                "source": self.leaps.source,
                "expires_ns": self.leaps.expires_s * NS_PER_S,
                "expired": self.leaps.expired(self._clock() // NS_PER_S),
            },
            "last_sample": None
            if last is None
            else {
                "clock_ns": last.clock_ns,
                "receive_ns": last.receive_ns,
                "offset_ns": last.offset_ns,
            },
        }

    def _state(self) -> tuple[object, ...]:
        """What makes a write due now, not at the next interval."""
        guard = self.guard.state if self.guard is not None else None
        c = self.counts
        return (c.locked, self.lock_reason, guard, self.alarm, len(c.dropped),
                len(c.alarms), c.last_sample is None, self.running)  # fmt: skip

    def write(self) -> None:
        self._written = self._state()
        if self.status_file is None and self.metrics_file is None:
            return
        snap = self.snapshot()
        if self.status_file is not None:
            self._atomic(self.status_file, json.dumps(snap, indent=1) + "\n")
        if self.metrics_file is not None:
            self._atomic(self.metrics_file, prometheus_text(snap))

    def _atomic(self, path: Path, text: str) -> None:
        try:
            # A regular file renamed into place, never through a symlink; a FIFO
            # only while someone reads it (the clock must not wait for a reader).
            # Not fsync'd: a snapshot of a running daemon is worthless after a
            # power cut (its pid is gone), and in /run (tmpfs) an fsync does
            # nothing; on a disk the two fsyncs were most of a write's cost.
            with open_output(path, wait=False, durable=False) as f:
                f.write(text.encode("utf-8"))
        except Dcf77Error as e:
            # Observability must never stop the clock: warn once per file.
            if path not in self._write_failed:
                self._write_failed.add(path)
                log.warning("%s (samples are still published)", e)
            return
        self._write_failed.discard(path)


_METRICS: list[tuple[str, str, str, Callable[[dict[str, Any]], object]]] = [
    # (name, type, help, value from the snapshot)
    ("up", "gauge", "1 while dcf77shm run is running.", lambda s: int(s["running"])),
    ("locked", "gauge", "1 while the decoder has a time lock.", lambda s: int(s["locked"])),
    ("locks_total", "counter", "Time locks gained.", lambda s: s["locks"]),
    ("unlocks_total", "counter", "Time locks lost.", lambda s: s["unlocks"]),
    ("samples_published_total", "counter", "Samples handed to chrony.",
     lambda s: s["samples_published"]),
    ("minutes_valid_total", "counter", "Frames that passed every check.",
     lambda s: s["minutes_valid"]),
    ("started_timestamp_seconds", "gauge", "When this run started.",
     lambda s: s["started_ns"] / NS_PER_S),
    ("updated_timestamp_seconds", "gauge", "When this file was written.",
     lambda s: s["updated_ns"] / NS_PER_S),
]  # fmt: skip


def prometheus_text(snap: dict[str, Any]) -> str:
    """The Prometheus text exposition format (version 0.0.4), all series prefixed dcf77shm_."""
    out: list[str] = []

    def family(name: str, kind: str, help_: str, rows: list[tuple[str, object]]) -> None:
        out.append(f"# HELP dcf77shm_{name} {help_}")
        out.append(f"# TYPE dcf77shm_{name} {kind}")
        out.extend(f"dcf77shm_{name}{labels} {value}" for labels, value in rows)

    for name, kind, help_, get in _METRICS:
        family(name, kind, help_, [("", get(snap))])
    family(
        "samples_dropped_total",
        "counter",
        "Samples not handed to chrony, by reason.",
        [(f'{{reason="{k}"}}', v) for k, v in snap["samples_dropped"].items()],
    )
    family(
        "alarms_total",
        "counter",
        "Alarms raised by the held count (jump, drift, clock_step, recovered, ...).",
        [(f'{{kind="{k}"}}', v) for k, v in snap.get("alarms", {}).items()],
    )
    alarm = snap.get("alarm")
    family(
        "alarm",
        "gauge",
        "1 while an alarm is open (a jump refused, drift): publishing has stopped.",
        [(f'{{kind="{k.value}"}}', int(alarm is not None and alarm["kind"] == k.value))
         for k in (AlarmKind.JUMP, AlarmKind.DRIFT)],
    )  # fmt: skip
    if snap.get("guard") is not None:
        family(
            "guard_state",
            "gauge",
            "The held count's state (1 for the current one).",
            [(f'{{state="{st.value}"}}', int(snap["guard"] == st.value)) for st in GuardState],
        )
    leap_list = snap.get("leap_list")
    if leap_list is not None:
        family(
            "leap_list_expiry_timestamp_seconds",
            "gauge",
            "Until when the leap-seconds list is authoritative (tzdata).",
            [("", leap_list["expires_ns"] / NS_PER_S)],
        )
        family(
            "leap_list_expired",
            "gauge",
            "1 when the leap-seconds list has expired: A2 is honoured by the old rule.",
            [("", int(leap_list["expired"]))],
        )
    family(
        "minutes_rejected_reasons_total",
        "counter",
        "Failed checks of rejected frames (a frame can fail several).",
        [(f'{{reason="{k}"}}', v) for k, v in snap["minutes_rejected"].items()],
    )
    last = snap["last_sample"]
    if last is not None:
        family(
            "last_sample_timestamp_seconds",
            "gauge",
            "The second (radio clock, UTC) of the last published sample.",
            [("", last["clock_ns"] / NS_PER_S)],
        )
        family(
            "last_sample_offset_seconds",
            "gauge",
            "Radio clock minus system clock at the last published sample.",
            [("", last["offset_ns"] / NS_PER_S)],
        )
    return "\n".join(out) + "\n"


# --- reading (dcf77shm status) ---------------------------------------------------


MAX_STATUS_BYTES = 1024 * 1024  # a real one is under 2 KB


def read_status(path: Path, now_ns: int | None = None) -> dict[str, Any]:
    """The status file, or RuntimeFailure (one line) when no live daemon wrote it;
    BadInput when the file is not a status file at all."""
    try:
        with path.open("rb") as f:  # bounded: --file may name anything
            data = f.read(MAX_STATUS_BYTES + 1)
    except FileNotFoundError:
        raise RuntimeFailure(
            f"{path}: no status file; dcf77shm is not running "
            "(`systemctl status dcf77shm`), or runs without --status-file"
        ) from None
    except OSError as e:
        raise RuntimeFailure(f"{path}: cannot read the status file: {e.strerror or e}") from None
    except ValueError as e:  # a NUL byte in the path
        raise BadInput(f"{printable(path)}: not a usable path: {e}") from None
    try:
        snap = json.loads(data) if len(data) <= MAX_STATUS_BYTES else None
    except (ValueError, RecursionError):
        snap = None
    if (
        not isinstance(snap, dict)
        or snap.get("format") != FORMAT
        or not isinstance(snap.get("running"), bool)
        or not all(_is_int(snap.get(k)) for k in ("pid", "started_ns", "updated_ns"))
    ):
        raise BadInput(f"{path}: not a dcf77shm status file (format {FORMAT})")
    now = time.time_ns() if now_ns is None else now_ns
    if not snap["running"]:
        raise RuntimeFailure(
            f"{path}: dcf77shm stopped at {_when(snap['updated_ns'])}; "
            "`systemctl start dcf77shm` or `journalctl -u dcf77shm` for why"
        )
    if not _alive(snap["pid"]):
        raise RuntimeFailure(
            f"{path}: says running, but pid {snap['pid']} is gone (killed without a "
            "clean stop); `systemctl status dcf77shm` or `journalctl -u dcf77shm` for why"
        )
    age_ns = now - snap["updated_ns"]
    if age_ns > STALE_NS:
        raise RuntimeFailure(
            f"{path}: last written {age_ns / NS_PER_S:.0f} s ago (pid {snap['pid']}); "
            "dcf77shm is hung or was killed: `systemctl restart dcf77shm`"
        )
    return snap


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (signal 0: asks, sends nothing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or a pid we cannot judge)
    return True


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _when(t_ns: int) -> str:
    try:
        return iso_ns(t_ns)
    except (OverflowError, OSError, ValueError):
        return f"{t_ns} ns (not a date)"


def status_lines(snap: dict[str, Any], now_ns: int | None = None) -> list[str]:
    now = time.time_ns() if now_ns is None else now_ns
    up_s = (now - snap["started_ns"]) // NS_PER_S
    lines = [
        f"dcf77shm {snap['version']}, pid {snap['pid']}, up {up_s // 3600}h"
        f"{up_s % 3600 // 60:02d}m{up_s % 60:02d}s",
        f"source:   {snap['source']} -> {snap['output']} ({snap['decoder']} decoder)",
        "lock:     "
        + ("locked" if snap["locked"] else f"no lock ({snap['lock_reason']})")
        + f"; {snap['locks']} locks, {snap['unlocks']} losses",
    ]
    if snap.get("guard") is not None:
        lines.append(f"count:    {snap['guard']}; " + _counts(snap.get("alarms", {}), "alarms"))
    alarm = snap.get("alarm")
    if alarm is not None:
        lines.append(
            f"ALARM:    {alarm['kind'].upper()} since {iso_ns(alarm['time_ns'])}: {alarm['detail']}"
        )
    leap_list = snap.get("leap_list")
    if leap_list is not None and leap_list["expired"]:
        lines.append(
            f"leaps:    {leap_list['source']} expired {iso_ns(leap_list['expires_ns'])[:10]}: "
            "A2 is honoured by the old rule; update tzdata"
        )
    last = snap["last_sample"]
    if last is None:
        lines.append("last:     no sample published yet")
    else:
        age = (now - last["receive_ns"]) / NS_PER_S
        lines.append(
            f"last:     {iso_ns(last['clock_ns'])}, offset {last['offset_ns'] / NS_PER_S:+.6f} s, "
            f"received {age:.0f} s ago"
        )
    lines.append(
        f"samples:  {snap['samples_published']} published, "
        + _counts(snap["samples_dropped"], "dropped")
    )
    lines.append(
        f"minutes:  {snap['minutes_valid']} valid, "
        + _counts(snap["minutes_rejected"], "rejected checks")
    )
    return lines


def _counts(c: dict[str, int], what: str) -> str:
    total = sum(c.values())
    if not total:
        return f"0 {what}"
    return f"{total} {what} (" + ", ".join(f"{k} {n}" for k, n in c.items()) + ")"
