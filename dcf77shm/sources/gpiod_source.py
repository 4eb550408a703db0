"""``gpiod:CHIP:LINE``: edges from the kernel's GPIO character device (libgpiod v2).

The path for the Pi 5 (its GPIOs sit behind the RP1 chip, which pigpio cannot
drive) and for any Linux board.  The kernel stamps each edge in its interrupt
handler on the clock we ask for.  We ask for CLOCK_MONOTONIC, which never
steps, and label each edge on the two clocks the pipeline needs from one
reading of all three taken right after the events are read:

* the system clock (CLOCK_REALTIME): stamp + (REALTIME - MONOTONIC), which
  changes only when the system clock steps;
* the steady timeline (CLOCK_MONOTONIC_RAW, which chrony does not slew):
  stamp + (RAW - MONOTONIC), which changes only as fast as chrony slews.

When REALTIME - MONOTONIC changed since the last read, the system clock
stepped somewhere in between: a :class:`Step` goes out before the edges of
that read, so none of them is taken for a second after the step.
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
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from dcf77shm.errors import BadInput, RuntimeFailure
from dcf77shm.model import NS_PER_S, Bias, Edge, Gap, Step
from dcf77shm.spec import ascii_int

STEP_NOISE_NS = 20_000  # REALTIME - MONOTONIC read jitter; beyond it, a step
Clocks = tuple[int, int, int]  # (REALTIME, MONOTONIC, MONOTONIC_RAW), read together


def read_clocks() -> Clocks:
    """The three clocks, read as close together as Python allows (retried when
    a read pair is broken up by preemption)."""
    best: tuple[int, Clocks] | None = None
    for _ in range(3):
        m1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        rt = time.clock_gettime_ns(time.CLOCK_REALTIME)
        raw = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
        m2 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        if best is None or m2 - m1 < best[0]:
            best = (m2 - m1, (rt, (m1 + m2) // 2, raw))
        if m2 - m1 < 5_000:
            break
    assert best is not None
    return best[1]


def raw_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)


# Debian: bookworm's python3-libgpiod is 1.6 (v1); bookworm-backports has 2.x
# (2.1.3 when checked), trixie 2.x.
INSTALL_V2 = (
    "on Debian trixie 'apt install python3-libgpiod', on bookworm "
    "'apt install -t bookworm-backports python3-libgpiod' (2.x; add bookworm-backports "
    "to your apt sources first), or 'pip install \"gpiod>=2\"' in dcf77shm's environment"
)
V1_FIX = (
    "the installed Python module 'gpiod' is the old libgpiod v1 API (Debian bookworm's "
    f"python3-libgpiod 1.6); install v2: {INSTALL_V2}"
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
    live = True
    host_steady = True  # edges carry this host's CLOCK_MONOTONIC_RAW
    mono_clock = staticmethod(raw_ns)

    def __init__(
        self,
        chip: str,
        line: int | str,
        bias: Bias = Bias.AS_IS,
        debounce_us: int = 0,
        clocks: Callable[[], Clocks] = read_clocks,
    ):
        self.chip, self.line, self.bias, self.debounce_us = chip, line, bias, debounce_us
        self.description = f"gpiod {chip} line {line}"
        self._req: Any = None
        self._seqno: int | None = None
        self._clocks = clocks
        self._rt_minus_mono: int | None = None

    @classmethod
    def from_spec(cls, arg: str, options: Mapping[str, object]) -> GpiodSource:
        chip, line = parse_spec(arg)
        bias = Bias.parse(options.get("bias"))
        debounce = options.get("glitch_filter_us") or 0
        if not isinstance(debounce, int) or not 0 <= debounce <= 1_000_000:
            raise BadInput(f"bad debounce {debounce!r} µs: use 0-1000000")
        return cls(chip, line, bias, debounce)

    def open(self) -> None:
        try:
            import gpiod
        except ImportError:
            raise RuntimeFailure(f"no libgpiod Python bindings: {INSTALL_V2}") from None
        check_api(gpiod)
        from gpiod.line import Bias as GBias
        from gpiod.line import Clock, Direction
        from gpiod.line import Edge as GEdge

        bias = {
            Bias.AS_IS: GBias.AS_IS,
            Bias.PULL_UP: GBias.PULL_UP,
            Bias.PULL_DOWN: GBias.PULL_DOWN,
            Bias.DISABLED: GBias.DISABLED,
        }
        settings = gpiod.LineSettings(
            direction=Direction.INPUT,
            edge_detection=GEdge.BOTH,
            bias=bias[self.bias],
            debounce_period=dt.timedelta(microseconds=self.debounce_us),
            # Never steps: the pipeline's timeline (see the module doc).
            event_clock=Clock.MONOTONIC,
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

    def read(self, timeout_s: float) -> list[Edge | Gap | Step] | None:
        out: list[Edge | Gap | Step] = []
        if not self._req.wait_edge_events(dt.timedelta(seconds=timeout_s)):
            self._check_step(out, self._clocks())
            return out
        events = self._req.read_edge_events()
        rt, mono, raw = clocks = self._clocks()
        self._check_step(out, clocks)
        to_rt, to_raw = rt - mono, raw - mono
        debounce_ns = self.debounce_us * (NS_PER_S // 1_000_000)
        for ev in events:
            stamp = ev.timestamp_ns - debounce_ns
            lost = lost_between(self._seqno, ev.line_seqno)
            self._seqno = ev.line_seqno
            if lost:
                out.append(Gap(stamp + to_rt, f"kernel dropped {lost} GPIO events", stamp + to_raw))
            level = 1 if ev.event_type is ev.Type.RISING_EDGE else 0
            out.append(Edge(stamp + to_rt, level, stamp + to_raw))
        return out

    def _check_step(self, out: list[Edge | Gap | Step], clocks: Clocks) -> None:
        rt, mono, raw = clocks
        prev, self._rt_minus_mono = self._rt_minus_mono, rt - mono
        if prev is not None and abs(rt - mono - prev) > STEP_NOISE_NS:
            # Stepped since the last read: edges read now may predate it.
            out.append(Step(raw, rt - mono - prev))

    def close(self) -> None:
        req, self._req = self._req, None
        if req is not None:
            req.release()
