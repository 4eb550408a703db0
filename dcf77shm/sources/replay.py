"""``replay:FILE``: an edge log (INTERFACES §1) as a source.

Without ``pace`` the edges go as fast as the pipeline takes them (what
``decode`` does).  With ``pace`` each edge is handed on when the system clock
reaches its ``time_ns``, edges already in the past at once: a log whose times
lie just ahead of the clock then looks to chrony like a live receiver.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from dcf77shm.errors import BadInput
from dcf77shm.formats.edgelog import read_edges
from dcf77shm.model import NS_PER_S, Edge, Gap

BATCH = 4096  # unpaced: edges per read, so the daemon's loop stays responsive


class ReplaySource:
    host_steady = False  # the log's steady clock is the recording host's, not ours

    def __init__(
        self,
        path: Path,
        pace: bool = False,
        clock: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = path
        self.pace = pace
        self.live = pace  # paced: its times are now, and chrony's age limit applies
        self.steady = True
        self.description = f"replay:{path}" + (" (paced)" if pace else "")
        self._clock = clock
        self._sleep = sleep
        self._edges: list[Edge] = []
        self._i = 0

    @classmethod
    def from_spec(cls, arg: str, options: Mapping[str, object]) -> ReplaySource:
        if not arg:
            raise BadInput("replay needs a file: replay:FILE")
        return cls(Path(arg), bool(options.get("pace", False)))

    def open(self) -> None:
        # The whole log is checked before the first edge goes out (INTERFACES §1).
        self._edges = read_edges(self.path)
        self._i = 0
        # A version 1 log carries the system clock only.
        self.steady = bool(self._edges) and self._edges[0].mono_ns is not None

    def read(self, timeout_s: float) -> list[Edge | Gap] | None:
        n = len(self._edges)
        if self._i >= n:
            return None
        if not self.pace:
            out: list[Edge | Gap] = list(self._edges[self._i : self._i + BATCH])
            self._i += len(out)
            return out
        now = self._clock()
        due = self._edges[self._i].time_ns
        if due > now:
            wait_ns = min(due - now, round(timeout_s * NS_PER_S))
            self._sleep(wait_ns / NS_PER_S)
            now = self._clock()
        j = self._i
        while j < n and self._edges[j].time_ns <= now:
            j += 1
        out = list(self._edges[self._i : j])
        self._i = j
        return out

    def close(self) -> None:
        self._edges = []
