"""``pigpio:GPIO``: edges from pigpiod (every Pi up to the 4; not the Pi 5).

pigpiod samples the GPIOs every 5 µs by DMA and reports each change with its
32-bit µs tick; :mod:`.tickmap` turns ticks into CLOCK_REALTIME (the label)
and CLOCK_MONOTONIC_RAW (the pipeline's steady timeline).  A change is
seen at the first sample after it, so the true edge lies within one sample
period before the tick: we take the middle.  With a glitch filter, pigpiod
reports a level once it has held for ``steady`` µs and stamps it then
("timestamped steady microseconds after it was first detected"), so that
time comes off too.

Quirks handled here: ``pigpio.pi()`` does not raise when it cannot connect
(``connected`` is False); its notification thread spins on a closed socket
instead of ending; command sockets block forever without a timeout.  On a
lost daemon (restart, dropped connection) we hand on what arrived, then a
:class:`Gap`, and reconnect with backoff under a new *generation*, so no edge
from the old connection can follow the gap.  pigpio's watchdog (TIMEOUT
reports every ``watchdog_ms`` without a change) is the notification stream's
heartbeat: silence beyond it means the stream is dead.  Loss of the radio
signal itself is *not* a gap: no edge is lost and the decoder rides out a
fade on its own, so the source only logs it.  Nor is a step of the system
clock: the ticks (and the timeline) run on, so it becomes a :class:`Step`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any

from dcf77shm.errors import BadInput, RuntimeFailure
from dcf77shm.model import NS_PER_MS, NS_PER_S, Bias, Edge, Gap, Step
from dcf77shm.sources.tickmap import Correlation, TickMap
from dcf77shm.spec import ascii_int

log = logging.getLogger(__name__)

PUD = {Bias.PULL_UP: 2, Bias.PULL_DOWN: 1, Bias.DISABLED: 0, Bias.AS_IS: None}  # pigpio PUD_*
CORRELATE_EVERY_NS = NS_PER_S
BURST = 5  # tick round trips per correlation; the tightest one counts
STEP_GAP_NS = NS_PER_MS  # smaller clock steps do not disturb the decoder
SIGNAL_LOST_NS = 3 * NS_PER_S


def raw_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)


class PigpioSource:
    live = True
    host_steady = True  # edges carry this host's CLOCK_MONOTONIC_RAW
    mono_clock = staticmethod(raw_ns)

    def __init__(
        self,
        gpio: int,
        host: str = "localhost",
        port: int = 8888,
        glitch_filter_us: int = 0,
        bias: Bias = Bias.AS_IS,
        sample_us: int = 5,
        watchdog_ms: int = 1000,
        realtime_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.gpio, self.host, self.port = gpio, host, port
        self.glitch_filter_us, self.bias, self.watchdog_ms = glitch_filter_us, bias, watchdog_ms
        self.description = f"pigpio GPIO {gpio} on {host}:{port}"
        steady_us = -(-glitch_filter_us // sample_us) * sample_us
        self._delay_ns = steady_us * 1000 + sample_us * 500
        self._rt = realtime_ns
        self._pi: Any = None
        self._cb: Any = None
        self._gen = 0
        self._q: queue.SimpleQueue[tuple[int, int, int]] = queue.SimpleQueue()
        self._map = TickMap()
        self._next_corr = 0
        self._heard = 0  # monotonic ns of the last report of any kind
        self._last_edge = time.monotonic_ns()
        self._retry_at = 0
        self._backoff_s = 0.25
        self.signal_lost = False

    @classmethod
    def from_spec(cls, arg: str, options: Mapping[str, object]) -> PigpioSource:
        gpio = ascii_int(arg, 2)
        if gpio is None or gpio > 31:
            raise BadInput(f"bad pigpio GPIO {arg!r}: use the BCM GPIO number 0-31, e.g. pigpio:17")
        bias = Bias.parse(options.get("bias"))
        gf = int(options.get("glitch_filter_us") or 0)  # type: ignore[call-overload]
        if not 0 <= gf <= 300_000:
            raise BadInput(f"bad glitch filter {gf} µs: pigpio takes 0-300000")
        host = os.environ.get("PIGPIO_ADDR") or "localhost"
        port_s = os.environ.get("PIGPIO_PORT") or "8888"
        port = ascii_int(port_s, 5)
        if port is None or not 1 <= port <= 65535:
            raise BadInput(f"bad PIGPIO_PORT {port_s!r}: use the port pigpiod listens on (8888)")
        return cls(gpio, host, port, gf, bias)

    def open(self) -> None:
        if not self._connect():
            raise RuntimeFailure(
                f"cannot connect to pigpiod at {self.host}:{self.port}: start it "
                "('sudo systemctl start pigpiod' or 'sudo pigpiod'), or set "
                "PIGPIO_ADDR/PIGPIO_PORT to where it listens"
            )

    def _connect(self) -> bool:
        import pigpio

        pi = pigpio.pi(self.host, self.port, show_errors=False)
        if not pi.connected:
            return False
        pi.sl.s.settimeout(2.0)  # a hung daemon must not hang us
        try:
            pi.set_mode(self.gpio, pigpio.INPUT)
            pud = PUD[self.bias]
            if pud is not None:
                pi.set_pull_up_down(self.gpio, pud)
            pi.set_glitch_filter(self.gpio, self.glitch_filter_us)
            pi.set_watchdog(self.gpio, self.watchdog_ms)
            self._pi = pi
            self._map = TickMap()
            self._correlate()
        except pigpio.error as e:
            self._teardown(pi)
            raise BadInput(f"pigpiod refused GPIO {self.gpio}: {e}") from None
        except (OSError, struct.error):  # struct.error: a short reply
            self._teardown(pi)
            return False
        self._gen += 1
        gen = self._gen

        def on_change(_gpio: int, level: int, tick: int) -> None:
            self._heard = time.monotonic_ns()
            if level != pigpio.TIMEOUT:
                self._q.put((gen, level, tick))

        self._heard = time.monotonic_ns()
        self._cb = pi.callback(self.gpio, pigpio.EITHER_EDGE, on_change)
        self._backoff_s = 0.25
        return True

    def _correlate(self) -> int:
        """A burst of tick round trips; feeds the best to the map, returns any clock step."""
        best: tuple[int, int, int, int] | None = None
        for _ in range(BURST):
            t1, r1 = self._rt(), raw_ns()
            tick = self._pi.get_current_tick()
            r2, t2 = raw_ns(), self._rt()
            if best is None or t2 - t1 < best[2]:
                best = (tick, (t1 + t2) // 2, t2 - t1, (r1 + r2) // 2)
        assert best is not None
        tick, rt, rtt, raw = best
        step = self._map.add(Correlation(tick, rt, rtt, self._rt_minus_mono(), raw))
        # Faster at first, so the rate is known within a second or two.
        every = CORRELATE_EVERY_NS if len(self._map) >= 6 else CORRELATE_EVERY_NS // 4
        self._next_corr = time.monotonic_ns() + every
        return step

    def _rt_minus_mono(self) -> int:
        for _ in range(5):  # retry a read pair broken up by preemption
            m1 = time.monotonic_ns()
            rt = self._rt()
            m2 = time.monotonic_ns()
            if m2 - m1 < 5_000:
                break
        return rt - (m1 + m2) // 2

    def read(self, timeout_s: float) -> list[Edge | Gap | Step] | None:
        out: list[Edge | Gap | Step] = []
        deadline = time.monotonic_ns() + round(timeout_s * NS_PER_S)
        while True:
            now = time.monotonic_ns()
            if self._pi is None:
                if now >= self._retry_at and not self._connect():
                    log.warning("pigpiod not reachable, retrying in %.1f s", self._backoff_s)
                    self._retry_at = now + round(self._backoff_s * NS_PER_S)
                    self._backoff_s = min(self._backoff_s * 2, 10.0)
                if self._pi is None:
                    time.sleep(max(0, min(deadline, self._retry_at) - now) / NS_PER_S)
                    if time.monotonic_ns() >= deadline:
                        return out
                    continue
            try:
                self._check_clock(out)
            except (OSError, struct.error) as e:  # struct.error: a short reply
                self._lost(out, f"pigpiod connection lost ({e or type(e).__name__})")
                continue
            if self.watchdog_ms and now - self._heard > (self.watchdog_ms + 1500) * NS_PER_MS:
                self._lost(out, "no reports from pigpiod (notification stream dead)")
                continue
            self._drain(out, min(deadline, self._next_corr) - now)
            self._watch_signal()
            if out or time.monotonic_ns() >= deadline:
                return out

    def _check_clock(self, out: list[Edge | Gap | Step]) -> None:
        # REALTIME-MONOTONIC checked before every mapping, so no edge is
        # labelled with a clock that has stepped since the last correlation.
        stepped = abs(self._rt_minus_mono() - self._map.rt_minus_mono_ns) > 20_000
        if stepped or time.monotonic_ns() >= self._next_corr:
            step = self._correlate()
            if abs(step) >= STEP_GAP_NS:
                # Edges still queued are mapped with the new offset, but some
                # may predate the step: the Step goes first, at "now", so the
                # pipeline takes none of them for a second after it.
                pending: list[Edge | Gap | Step] = []
                self._drain(pending, 0)
                out.append(Step(raw_ns(), step))
                out.extend(pending)

    def _drain(self, out: list[Edge | Gap | Step], wait_ns: int) -> None:
        try:
            item = self._q.get(timeout=max(wait_ns, 0) / NS_PER_S) if wait_ns > 0 else None
            while True:
                if item is not None and item[0] == self._gen:
                    _gen, level, tick = item
                    out.append(
                        Edge(
                            self._map.to_realtime_ns(tick) - self._delay_ns,
                            level,
                            self._map.to_raw_ns(tick) - self._delay_ns,
                        )
                    )
                    self._last_edge = time.monotonic_ns()
                item = self._q.get_nowait()
        except queue.Empty:
            pass

    def _watch_signal(self) -> None:
        lost = time.monotonic_ns() - self._last_edge > SIGNAL_LOST_NS
        if lost != self.signal_lost:
            log.info("GPIO %d: %s", self.gpio, "no edges: signal lost" if lost else "edges again")
            self.signal_lost = lost

    def _lost(self, out: list[Edge | Gap | Step], reason: str) -> None:
        self._drain(out, 0)  # what arrived before the loss is good: the map still holds
        out.append(Gap(self._rt(), reason, raw_ns()))
        log.warning("%s; reconnecting", reason)
        self._teardown(self._pi)
        self._pi = self._cb = None
        self._gen += 1  # anything the old connection still delivers is dropped
        self._retry_at = 0

    @staticmethod
    def _teardown(pi: Any) -> None:
        notify = pi._notify
        if notify is not None:
            # pigpio's notification thread spins on a closed socket: stop it ourselves.
            notify.go = False
            with contextlib.suppress(OSError):
                notify.sl.s.shutdown(socket.SHUT_RDWR)
            pi._notify = None
        with contextlib.suppress(OSError):
            pi.stop()

    def close(self) -> None:
        pi, self._pi = self._pi, None
        if pi is None:
            return
        try:  # leave the daemon as we found it: filters and watchdogs outlive clients
            self._cb.cancel()
            pi.set_watchdog(self.gpio, 0)
            pi.set_glitch_filter(self.gpio, 0)
            pi.stop()
        except Exception:
            self._teardown(pi)
