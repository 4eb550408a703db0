"""One readable line per check, and the summary that closes the run."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from enum import Enum
from typing import TextIO


class Outcome(Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True, slots=True)
class Result:
    suite: str
    name: str
    outcome: Outcome
    detail: str


class Report:
    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.results: list[Result] = []
        self.timings: list[tuple[str, float]] = []
        self._t0 = time.monotonic()

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def check(self, suite: str, name: str, ok: bool, detail: str = "") -> bool:
        r = Result(suite, name, Outcome.PASS if ok else Outcome.FAIL, detail)
        self.results.append(r)
        self._line(f"{r.outcome.value} [{suite}] {name}" + (f": {detail}" if detail else ""))
        return ok

    def skip(self, suite: str, name: str, why: str) -> None:
        self.results.append(Result(suite, name, Outcome.SKIP, why))
        self._line(f"SKIP [{suite}] {name}: {why}")

    def note(self, suite: str, text: str) -> None:
        """A measured figure or a version, not a check."""
        self._line(f"  .. [{suite}] {text}")

    def timing(self, what: str, seconds: float) -> None:
        self.timings.append((what, seconds))

    def count(self, outcome: Outcome) -> int:
        return sum(r.outcome is outcome for r in self.results)

    @property
    def failed(self) -> bool:
        return self.count(Outcome.FAIL) > 0

    def summary(self) -> None:
        for r in self.results:
            if r.outcome is Outcome.FAIL:
                self._line(f"failed: [{r.suite}] {r.name}: {r.detail}")
        parts = [f"{what} {s:.0f} s" for what, s in self.timings]
        total = time.monotonic() - self._t0
        self._line(f"timings: {', '.join([*parts, f'total {total:.0f} s'])}")
        self._line(
            f"system-test: {self.count(Outcome.PASS)} passed, {self.count(Outcome.FAIL)} failed, "
            f"{self.count(Outcome.SKIP)} skipped"
        )
