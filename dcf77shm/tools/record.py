"""``dcf77shm record``: a live source to an edge log (INTERFACES §1), for bug reports.

The log goes to ``NAME.part`` and is renamed when the recording ends (duration
reached, SIGINT/SIGTERM, or a replay ran out), so a file under its final name is
always complete; a device, FIFO or ``-`` is written directly
(:mod:`dcf77shm.fileio`).  The v1 format cannot carry a source gap; a gap is counted and
reported on stderr, and an edge whose time went backwards (system clock stepped
back) is left out, since a v1 log never goes backwards.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from dcf77shm import __version__
from dcf77shm.decode.frontend import PULSE_NS
from dcf77shm.formats.edgelog import EdgeLogWriter
from dcf77shm.formats.events import iso_ns
from dcf77shm.model import NS_PER_S, Edge, Step
from dcf77shm.sources import Source


@dataclass
class RecordStats:
    edges: int = 0
    pulses: int = 0
    gaps: int = 0
    steps: int = 0
    backwards: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        s = f"{self.edges} edges, {self.seconds:.0f} s, {self.pulses} pulse-like"
        if self.gaps:
            s += f", {self.gaps} gaps"
        if self.steps:
            s += f", {self.steps} steps of the system clock"
        if self.backwards:
            s += f", {self.backwards} edges dropped (clock stepped back)"
        return s


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set the event (a clean stop) instead of killing the recording."""
    stop = threading.Event()

    def handler(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def record(
    source: Source,
    path: Path,
    duration_s: float | None,
    stop: threading.Event,
    progress: Callable[[RecordStats], None] = lambda _s: None,
) -> RecordStats:
    """Record an opened source until ``stop``, the duration or its end; closes it."""
    st = RecordStats()
    comments = [
        f"recorded by dcf77shm {__version__} from {source.description}",
        f"started {iso_ns(time.time_ns())}",
    ]
    try:
        # Version 2 (both clocks) unless the source has only the system clock
        # (a replayed version 1 log).
        writer = EdgeLogWriter(path, comments, 2 if getattr(source, "steady", True) else 1)
    except BaseException:
        source.close()
        raise
    start = time.monotonic()
    next_report = start + 1
    last: Edge | None = None
    try:
        while not stop.is_set():
            items = source.read(0.25)
            if items is None:
                break  # a replay ran out
            for it in items:
                if isinstance(it, Step):
                    st.steps += 1  # the log's two clocks show it: nothing to write
                    continue
                if not isinstance(it, Edge):
                    st.gaps += 1
                    last = None
                    continue
                if it.mono_ns is None and last is not None and it.time_ns < last.time_ns:
                    st.backwards += 1
                    continue
                if last is not None and last.level != it.level:
                    st.pulses += PULSE_NS[0] <= it.time_ns - last.time_ns <= PULSE_NS[1]
                writer.write(it)
                st.edges += 1
                last = it
            now = time.monotonic()
            st.seconds = now - start
            if now >= next_report:
                writer.flush()
                progress(st)
                next_report = now + 1
            if duration_s is not None and st.seconds >= duration_s:
                break
    finally:
        source.close()
        writer.close()
    st.seconds = round((time.monotonic() - start) * NS_PER_S) / NS_PER_S
    return st
