"""``gpiod:CHIP:LINE``: edges from the kernel's GPIO character device (libgpiod v2).

The path for the Pi 5 (its GPIOs sit behind the RP1 chip, which pigpio cannot
drive) and for any Linux board.  The kernel stamps each edge in its interrupt
handler on the clock we ask for, CLOCK_REALTIME, so no mapping is needed.
Each event carries a per-line sequence number: a jump means the kernel's event
buffer overflowed and edges were lost, which becomes a :class:`Gap`.

With ``debounce`` the kernel debounces in software and reports a level once it
has held for the period, stamped then; the period is taken off again (the
stamp is then as late as the kernel's work queue ran, so prefer no debounce
and let the decoder reject glitches).

Debian bookworm's ``python3-libgpiod`` (1.6) is the old v1 API under the same
module name: it is detected and the fix is named.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from dcf77shm.errors import BadInput, RuntimeFailure
from dcf77shm.model import NS_PER_S, Edge, Gap
from dcf77shm.spec import ascii_int

BIASES = ("as-is", "pull-up", "pull-down", "disabled")
V1_FIX = (
    "the installed Python module 'gpiod' is the old libgpiod v1 API (Debian bookworm's "
    "python3-libgpiod 1.6); install v2: 'pip install \"gpiod>=2\"' in dcf77shm's "
    "environment, or on Debian trixie 'apt install python3-libgpiod'"
)


def parse_spec(arg: str) -> tuple[str, int | str]:
    """'gpiochip0:17' or '/dev/gpiochip4:GPIO17' -> (chip path, line offset or name)."""
    chip, sep, line = arg.rpartition(":")
    if not sep or not chip or not line:
        raise BadInput(f"bad gpiod source {arg!r}: use gpiod:CHIP:LINE, e.g. gpiod:gpiochip0:17")
    path = chip if chip.startswith("/") else f"/dev/{chip}"
    offset = ascii_int(line)
    return path, line if offset is None else offset


def check_api(mod: ModuleType | Any) -> None:
    """Refuse libgpiod v1 (no request_lines; Chip.get_line) with the install line."""
    if not hasattr(mod, "request_lines") or hasattr(getattr(mod, "Chip", None), "get_line"):
        raise RuntimeFailure(V1_FIX)


def lost_between(prev_seqno: int | None, seqno: int) -> int:
    """Events lost between two consecutive events of one line (sequence numbers from 1)."""
    if prev_seqno is None:
        return 0
    return max(0, seqno - prev_seqno - 1)


class GpiodSource:
    def __init__(self, chip: str, line: int | str, bias: str = "as-is", debounce_us: int = 0):
        self.chip, self.line, self.bias, self.debounce_us = chip, line, bias, debounce_us
        self.description = f"gpiod {chip} line {line}"
        self._req: Any = None
        self._seqno: int | None = None

    @classmethod
    def from_spec(cls, arg: str, options: Mapping[str, object]) -> GpiodSource:
        chip, line = parse_spec(arg)
        bias = str(options.get("bias") or "as-is")
        if bias not in BIASES:
            raise BadInput(f"bad bias {bias!r}: use one of {', '.join(BIASES)}")
        debounce = options.get("glitch_filter_us") or 0
        if not isinstance(debounce, int) or not 0 <= debounce <= 1_000_000:
            raise BadInput(f"bad debounce {debounce!r} µs: use 0-1000000")
        return cls(chip, line, bias, debounce)

    def open(self) -> None:
        try:
            import gpiod
        except ImportError:
            raise RuntimeFailure(
                "no libgpiod Python bindings: 'pip install \"gpiod>=2\"' or on Debian trixie "
                "'apt install python3-libgpiod'"
            ) from None
        check_api(gpiod)
        from gpiod.line import Bias, Clock, Direction
        from gpiod.line import Edge as GEdge

        bias = {"as-is": Bias.AS_IS, "pull-up": Bias.PULL_UP, "pull-down": Bias.PULL_DOWN}
        settings = gpiod.LineSettings(
            direction=Direction.INPUT,
            edge_detection=GEdge.BOTH,
            bias=bias.get(self.bias, Bias.DISABLED),
            debounce_period=dt.timedelta(microseconds=self.debounce_us),
            event_clock=Clock.REALTIME,
        )
        try:
            with gpiod.Chip(self.chip) as chip:
                offset = chip.line_offset_from_id(self.line)
            self._req = gpiod.request_lines(
                self.chip, consumer="dcf77shm", config={offset: settings}
            )
        except FileNotFoundError:
            raise BadInput(f"{self.chip}: no such GPIO chip (see 'gpiodetect')") from None
        except PermissionError:
            raise RuntimeFailure(
                f"{self.chip}: permission denied: run as root or add the user to group 'gpio'"
            ) from None
        except (OSError, ValueError) as e:
            raise RuntimeFailure(f"{self.description}: cannot request the line: {e}") from None
        self._seqno = None

    def read(self, timeout_s: float) -> list[Edge | Gap] | None:
        out: list[Edge | Gap] = []
        if not self._req.wait_edge_events(dt.timedelta(seconds=timeout_s)):
            return out
        for ev in self._req.read_edge_events():
            lost = lost_between(self._seqno, ev.line_seqno)
            self._seqno = ev.line_seqno
            if lost:
                out.append(Gap(ev.timestamp_ns, f"kernel dropped {lost} GPIO events"))
            level = 1 if ev.event_type is ev.Type.RISING_EDGE else 0
            out.append(Edge(ev.timestamp_ns - self.debounce_us * (NS_PER_S // 1_000_000), level))
        return out

    def close(self) -> None:
        req, self._req = self._req, None
        if req is not None:
            req.release()
