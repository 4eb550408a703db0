"""``dcf77shm monitor``: one line per second about the received signal, for aiming an antenna.

:class:`MonitorView` is pure (no I/O, no clock reads): it runs the same
:class:`~dcf77shm.decode.pipeline.Pipeline` as ``run`` for lock, samples and minutes,
and measures each second itself from the edges: the pulse width and bit, the
phase of the leading edge (against the UTC second while locked, counted on
from the decoder's latest sample, else against a running estimate of the
second's phase), the number of
extra pulses (glitches), and a quality figure: the share of the last 60
seconds that held exactly one clean pulse in phase (second 59, silent by
design, counts as clean once a minute).
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from dcf77shm.decode.carrier import RunHistory
from dcf77shm.decode.frontend import PULSE_NS, Transition
from dcf77shm.decode.pipeline import DEFAULT_DECODER, Pipeline
from dcf77shm.formats.events import utc_minute
from dcf77shm.model import (
    NS_PER_MS,
    NS_PER_S,
    Edge,
    Event,
    Gap,
    MinuteReport,
    Polarity,
    Sample,
    StateChange,
    Step,
)

ONE_NS = 150 * NS_PER_MS
IN_PHASE_NS = 50 * NS_PER_MS
SLOT_LEAD_NS = 200 * NS_PER_MS  # a second's slot opens this long before its pulse
# The decoder labels a mark up to about a second after its leading edge; a
# second's line waits for that, so it can show the label.
REPORT_LAG_NS = 700 * NS_PER_MS
MAX_LABEL_AGE_NS = 300 * NS_PER_S
HISTORY_S = 600  # seconds the screen looks back on
NOTES = 4


@dataclass(frozen=True, slots=True)
class SecondInfo:
    """One second as the monitor measured it (what a line or the screen shows)."""

    when_s: int  # the second, by the system clock (UTC)
    width_ms: float | None  # the main pulse's length; None: no pulse
    bit: str  # "0", "1", "?" (a pulse of neither length) or "-"
    phase_ms: float | None  # the leading edge against the second
    phase_utc: bool  # against the UTC second (locked), else the running estimate
    glitches: int
    quality: int  # percent of the last 60 s with one clean pulse in phase
    locked: bool
    label_s: int | None  # the second's UTC label while locked

    def line(self) -> str:
        when = _hms(self.when_s)
        width = "-" if self.width_ms is None else f"{self.width_ms:4.0f} ms"
        phase = "-"
        if self.phase_ms is not None:
            phase = f"{self.phase_ms:+7.1f} ms {'utc' if self.phase_utc else 'est'}"
        label = "" if self.label_s is None else f" = {_hms(self.label_s)} UTC"
        return (
            f"{when}  pulse {width:>7}  bit {self.bit}  phase {phase:>16}  glitches "
            f"{self.glitches:2d}  quality {self.quality:3d}%  "
            f"{'LOCKED' if self.locked else 'unlocked'}{label}"
        )


def _hms(t_s: int) -> str:
    return dt.datetime.fromtimestamp(t_s, dt.UTC).strftime("%H:%M:%S")


class MonitorView:
    def __init__(self, polarity: Polarity = Polarity.AUTO, decoder: str = DEFAULT_DECODER) -> None:
        self.pipe = Pipeline(polarity, decoder)
        self.locked = False
        self._runs = RunHistory()  # reduced-carrier (pulse) segments
        self._done: int | None = None  # segments starting before this were reported
        self._phase: int | None = None  # running estimate of the second's phase (ns mod 1 s)
        self._slot: int | None = None  # start of the next second slot to report
        self._latest: Sample | None = None  # the decoder's newest labelled mark
        self._clean: deque[bool] = deque(maxlen=60)
        self.seconds: deque[SecondInfo] = deque(maxlen=HISTORY_S)  # for the screen
        self.notes: deque[str] = deque(maxlen=NOTES)  # the newest "==" lines
        self._silent_used = 0  # slots since a silent second last counted as clean

    def feed(self, item: Edge | Gap | Step) -> list[str]:
        if isinstance(item, Step):
            return self._events(self.pipe.feed(item))
        if isinstance(item, Gap):
            self.pipe.feed(item)
            self.locked = False
            self._runs.reset()
            self._done, self._slot = None, None
            self._latest = None
            self.notes.append(f"== gap: {item.reason}")
            return [self.notes[-1]]
        out = self._events(self.pipe.feed(item))
        # Until the pipeline has decided the polarity, its front end's best guess.
        active = item.level == self.pipe.front.likely_level
        start = self._runs.open_ns
        self._runs.add(Transition(item.time_ns, active))
        if not active and start is not None:
            self._add_segment(start, item.time_ns)
        return out + self._close_slots(item.time_ns)

    def advance(self, now_ns: int) -> list[str]:
        return self._events(self.pipe.advance(now_ns)) + self._close_slots(now_ns)

    def _add_segment(self, start: int, end: int) -> None:
        if not PULSE_NS[0] <= end - start <= PULSE_NS[1]:
            return
        if self._phase is None:
            self._phase = start % NS_PER_S
        else:
            d = (start - self._phase + NS_PER_S // 2) % NS_PER_S - NS_PER_S // 2
            if abs(d) < 100 * NS_PER_MS:
                self._phase = (self._phase + d // 8) % NS_PER_S  # a slow follower
        if self._slot is None:
            self._slot = start - SLOT_LEAD_NS

    def _events(self, events: Iterable[Event]) -> list[str]:
        out = []
        for ev in events:
            if isinstance(ev, Sample):
                if self._latest is None or ev.receive_ns > self._latest.receive_ns:
                    self._latest = ev
            elif isinstance(ev, MinuteReport):
                utc = utc_minute(ev.utc_s) or "-"
                local = ev.extra.local or ""
                status = "ok" if ev.ok else "rejected: " + ", ".join(ev.reasons)
                out.append(f"== minute {utc} {local} {status}".replace("  ", " "))
                self.notes.append(out[-1])
            elif isinstance(ev, StateChange):
                self.locked = ev.locked
                out.append(f"== lock {'gained' if ev.locked else 'lost'}: {ev.reason}")
                self.notes.append(out[-1])
        return out

    def _close_slots(self, now_ns: int) -> list[str]:
        out = []
        while self._slot is not None and self._phase is not None:
            # Realign the slot to the phase estimate, then wait until it is over.
            nominal = self._slot + SLOT_LEAD_NS
            d = (self._phase - nominal + NS_PER_S // 2) % NS_PER_S - NS_PER_S // 2
            start = self._slot + d
            end = start + NS_PER_S
            if now_ns < end + REPORT_LAG_NS:
                break
            out.append(self._line(start, end))
            self._slot = end
        return out

    def _line(self, start: int, end: int) -> str:
        segs = self._runs.runs_in(start if self._done is None else max(start, self._done), end)
        self._done = end
        expected = start + SLOT_LEAD_NS
        pulses = [s for s in segs if PULSE_NS[0] <= s[1] - s[0] <= PULSE_NS[1]]
        main = min(pulses or segs, key=lambda s: abs(s[0] - expected), default=None)
        self._silent_used += 1
        # The decoder may publish a second's sample well after it (the robust
        # one confirms first), so the label comes from the latest sample,
        # counted on by whole seconds; while locked that count is the lock's.
        ref = self._latest
        label_ns = None
        if self.locked and ref is not None and abs(expected - ref.receive_ns) < MAX_LABEL_AGE_NS:
            k = (expected - ref.receive_ns + NS_PER_S // 2) // NS_PER_S
            label_ns = ref.clock_ns + k * NS_PER_S
        width_ms = phase_ms = None
        phase_utc = False
        if main is None:
            clean = self._silent_used >= 59
            if clean:
                self._silent_used = 0
            bit = "-"
        else:
            w = main[1] - main[0]
            clean = len(segs) == 1 and main in pulses and abs(main[0] - expected) <= IN_PHASE_NS
            width_ms = w / NS_PER_MS
            bit = "?" if main not in pulses else str(int(w >= ONE_NS))
            if label_ns is not None:
                # The leading edge against the whole UTC second, on the system clock.
                off = (main[0] - label_ns + NS_PER_S // 2) % NS_PER_S - NS_PER_S // 2
                phase_ms, phase_utc = off / NS_PER_MS, True
            else:
                phase_ms = (main[0] - expected) / NS_PER_MS
        self._clean.append(clean)
        info = SecondInfo(
            when_s=(expected + NS_PER_S // 2) // NS_PER_S,
            width_ms=width_ms,
            bit=bit,
            phase_ms=phase_ms,
            phase_utc=phase_utc,
            glitches=len(segs) - (main is not None),
            quality=round(100 * sum(self._clean) / 60),
            locked=self.locked,
            label_s=None if label_ns is None else label_ns // NS_PER_S,
        )
        self.seconds.append(info)
        return info.line()


# --- the full-screen view (`monitor` on a terminal) -------------------------------------

WIDTH_BINS = tuple(range(40, 280, 20))  # pulse-width histogram, 20 ms bins from 40 ms
PHASE_ROWS = (40, 30, 20, 10, 0, -10, -20, -30, -40)  # ms, the phase chart's rows
PHASE_COLUMN_S = 10  # one column of the phase chart: the median of this many seconds
BAR = 40


def screen(view: MonitorView, title: str) -> list[str]:
    """The steady full-screen picture, pure: the state and quality (a bar to aim
    the antenna by), the newest second, the pulse widths of the last ten
    minutes as a histogram (two sharp peaks at 100 and 200 ms is a good
    signal), the phase of the leading edges over the last ten minutes (a flat
    line is good), and the newest minute and lock lines."""
    secs = list(view.seconds)
    last = secs[-1] if secs else None
    q = last.quality if last else 0
    fill = round(BAR * q / 100)
    state = "no signal yet"
    if last is not None and last.label_s is not None:
        state = f"LOCKED = {_hms(last.label_s)} UTC"
    elif last is not None:
        state = "LOCKED" if last.locked else "unlocked"
    out = [
        title,
        f"{state:<28} quality {q:3d}% [{'#' * fill}{'.' * (BAR - fill)}]",
        last.line() if last else "-",
        "",
        f"pulse widths, last {len(secs) // 60} min (0: ~100 ms, 1: ~200 ms)",
    ]
    widths = [x.width_ms for x in secs if x.width_ms is not None]
    counts = [sum(1 for w in widths if lo <= w < lo + 20) for lo in WIDTH_BINS]
    top = max(counts, default=0) or 1
    for lo, n in zip(WIDTH_BINS, counts, strict=True):
        out.append(f"  {lo:3d}-{lo + 20:3d} ms |{'#' * round(BAR * n / top):<{BAR}} {n:5d}")
    minutes = len(secs) // 60
    out += [
        "",
        f"phase of the leading edge (ms), last {minutes} min, a column = {PHASE_COLUMN_S} s",
    ]
    cols = []
    for k in range(0, len(secs), PHASE_COLUMN_S):
        ph = sorted(x.phase_ms for x in secs[k : k + PHASE_COLUMN_S] if x.phase_ms is not None)
        cols.append(ph[len(ph) // 2] if ph else None)
    cols = cols[-(80 - 8) :]
    for row in PHASE_ROWS:
        out.append(f"  {row:+4d} |" + "".join(_cell(c, row) for c in cols))
    out += ["", *view.notes]
    return out


def _cell(phase_ms: float | None, row: int) -> str:
    """'*' where the column's phase falls in the row (the edge rows take what is beyond)."""
    if phase_ms is None:
        return " "
    edge = PHASE_ROWS[0]
    if abs(phase_ms - row) < 5 or (abs(row) == edge and phase_ms * row > edge * edge):
        return "*"
    return " "
