"""Progress of long work (`decode` of a big log, `simulate` of days): one line
on stderr, rewritten in place, only when stderr is a terminal.  Piped or
under journald there is none: a log file full of carriage returns helps no one.
As curl's meter, none either when the command's own output goes to that
terminal: the line would be drawn across the output.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_EVERY_S = 0.2  # a terminal redrawn five times a second looks alive, not busy


class Progress:
    """``progress(fraction, detail)`` shows ``what: 42% detail``; ``close()``
    wipes the line so that what follows starts on a clean one."""

    def __init__(
        self, what: str, stream: TextIO | None = None, output: TextIO | None = None
    ) -> None:
        """``output``: where the command writes its own output, if it may be the terminal."""
        self._stream = sys.stderr if stream is None else stream
        self.shown = _isatty(self._stream) and not (output is not None and _isatty(output))
        self._what = what
        self._next = 0.0
        self._drawn = False

    def __call__(self, fraction: float, detail: str = "") -> None:
        if not self.shown:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + _EVERY_S
        pct = max(0.0, min(1.0, fraction)) * 100
        line = f"{self._what}: {pct:3.0f}%" + (f" {detail}" if detail else "")
        # \r to the start, ESC [K erases the rest of what was there (ECMA-48 EL).
        self._write(f"\r{line}\x1b[K")
        self._drawn = True

    def status(self, text: str) -> None:
        """A line without a percentage (a step whose length is not known)."""
        if self.shown:
            self._write(f"\r{self._what}: {text}\x1b[K")
            self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._write("\r\x1b[K")
            self._drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except OSError:  # the terminal went away: the work goes on
            self.shown = False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real stream
        return False
