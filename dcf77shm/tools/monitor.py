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
            return [f"== gap: {item.reason}"]
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
            elif isinstance(ev, StateChange):
                self.locked = ev.locked
                out.append(f"== lock {'gained' if ev.locked else 'lost'}: {ev.reason}")
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
        if main is None:
            clean = self._silent_used >= 59
            if clean:
                self._silent_used = 0
            width = bit = phase = "-"
        else:
            w = main[1] - main[0]
            clean = len(segs) == 1 and main in pulses and abs(main[0] - expected) <= IN_PHASE_NS
            width = f"{w / NS_PER_MS:4.0f} ms"
            bit = "?" if main not in pulses else str(int(w >= ONE_NS))
            if label_ns is not None:
                # The leading edge against the whole UTC second, on the system clock.
                off = (main[0] - label_ns + NS_PER_S // 2) % NS_PER_S - NS_PER_S // 2
                phase = f"{off / NS_PER_MS:+7.1f} ms utc"
            else:
                phase = f"{(main[0] - expected) / NS_PER_MS:+7.1f} ms est"
        self._clean.append(clean)
        quality = round(100 * sum(self._clean) / 60)
        when = dt.datetime.fromtimestamp((expected + NS_PER_S // 2) // NS_PER_S, dt.UTC).strftime(
            "%H:%M:%S"
        )
        label = ""
        if label_ns is not None:
            label = " = " + dt.datetime.fromtimestamp(label_ns // NS_PER_S, dt.UTC).strftime(
                "%H:%M:%S UTC"
            )
        extra = len(segs) - (main is not None)
        return (
            f"{when}  pulse {width:>7}  bit {bit}  phase {phase:>16}  glitches {extra:2d}  "
            f"quality {quality:3d}%  {'LOCKED' if self.locked else 'unlocked'}{label}"
        )
