"""A fake pigpiod on loopback, for tests and demos (gpiozero ships its mock pins too).

It speaks the daemon's socket protocol as the real ``pigpio`` client library
uses it (pigpio.c/command.c): a command is 16 bytes ``cmd p1 p2 p3`` (uint32,
little-endian) followed by ``p3`` bytes of extension; the reply is the same 16
bytes with ``p3`` replaced by the result (negative = error).  ``NOIB`` turns
the connection it arrives on into an in-band notification stream; ``NB`` sets
its GPIO bits, ``NC`` closes it; each report is 12 bytes ``seqno(H) flags(H)
tick(I) level(I)``, flags carrying WDOG/ALIVE and the GPIO number.

The tick is the daemon's 32-bit µs counter.  Here it runs off CLOCK_MONOTONIC
(optionally at a rate error) from a start the test picks, by default 30 s
before the wrap.  Like pigpiod, the fake sees the line only at its sample
instants (every ``sample_us``), so a change is stamped with the first sample
tick at or after it; with a glitch filter of ``steady`` µs, pigpiod reports a
level only once it has held for ``steady`` µs and stamps it then, i.e.
``steady`` µs after the change was first sampled (pigpio.c alertGlitchFilter;
set_glitch_filter docs: "timestamped steady microseconds after it was first
detected").  The watchdog reports (flags WDOG) come every ``timeout`` ms
after the last change or the last watchdog report (alertEmit).

Every played edge has a true CLOCK_REALTIME time; :attr:`FakePigpiod.reported`
lists what the daemon reported, with that truth, for tests and the benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from dcf77shm.model import Edge

WRAP = 1 << 32
NTFY_FLAGS_WDOG = 1 << 5
NTFY_FLAGS_ALIVE = 1 << 6
# pigpio command numbers and error codes (pigpio.h / pigpio.py)
MODES, MODEG, PUD, READ, WDOG, BR1, TICK, HWVER = 0, 1, 2, 3, 9, 10, 16, 17
NB, NC, PIGPV, FG, NOIB = 19, 21, 26, 97, 99
PI_BAD_USER_GPIO, PI_BAD_GPIO, PI_BAD_MODE, PI_BAD_PUD = -2, -3, -4, -6
PI_BAD_WDOG_TIMEOUT, PI_BAD_HANDLE, PI_UNKNOWN_COMMAND, PI_BAD_FILTER = -15, -25, -88, -125


@dataclass(frozen=True, slots=True)
class Reported:
    """One level change as the daemon reported it, with the truth behind it."""

    true_ns: int  # CLOCK_REALTIME of the real change on the line
    level: int
    tick: int  # the raw 32-bit tick in the report


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.handle: int | None = None  # set once NOIB made this a notification stream
        self.bits = 0
        self.seqno = 0

    def send(self, data: bytes) -> None:
        with self.lock, contextlib.suppress(OSError):
            self.sock.sendall(data)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class FakePigpiod:
    def __init__(
        self,
        gpio: int = 4,
        tick_start: int = WRAP - 30_000_000,
        rate_ppm: float = 0.0,
        sample_us: int = 5,
        port: int = 0,
        idle_level: int = 0,
    ) -> None:
        self.gpio = gpio
        self.rate_ppm = rate_ppm
        self.sample_us = sample_us
        self.reported: list[Reported] = []
        self.commands: list[tuple[int, int, int]] = []
        self._level = idle_level  # line level now (unfiltered, what READ sees)
        self._rlevel = idle_level  # last reported level
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = False
        self._conns: list[_Conn] = []
        self._edges: list[Edge] = []  # still to play, true times
        self._pending: tuple[int, int, int] | None = None  # report tick, level, true ns
        self._rt_mono = min(
            (time.time_ns() - time.monotonic_ns() for _ in range(5)), key=abs
        )  # the play-out assumes the system clock is not stepped meanwhile
        self._reset_state(tick_start)
        self._listener = self._listen(port)
        self.port = self._listener.getsockname()[1]
        self._threads = [
            threading.Thread(target=self._accept_loop, daemon=True),
            threading.Thread(target=self._play_loop, daemon=True),
        ]
        for t in self._threads:
            t.start()

    # --- control from tests --------------------------------------------------

    def play(self, edges: Iterable[Edge]) -> int:
        """Schedule edges at their true CLOCK_REALTIME times; past ones are skipped."""
        now = time.time_ns()
        new = [e for e in edges if e.time_ns > now]
        with self._lock:
            self._edges = sorted(self._edges + new, key=lambda e: e.time_ns)
        self._wake.set()
        return len(new)

    def tick_now(self) -> int:
        return self._tick_at_mono(time.monotonic_ns()) % WRAP

    def drop(self, which: str = "all") -> None:
        """Close client connections ('all', 'notify' or 'control'); the daemon runs on."""
        with self._lock:
            for c in list(self._conns):
                if which == "all" or (which == "notify") == (c.handle is not None):
                    c.kill()
                    self._conns.remove(c)

    def restart(self, tick_start: int | None = None, downtime_s: float = 0.0) -> None:
        """A daemon restart: connections and settings go, the tick restarts elsewhere."""
        with self._lock:
            self._close_listener()
            self.drop("all")
            self._reset_state(tick_start if tick_start is not None else 123_456_789)
        time.sleep(downtime_s)
        self._listener = self._listen(self.port)
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        with self._lock:
            self._close_listener()
            self.drop("all")

    def _close_listener(self) -> None:
        # shutdown wakes the thread blocked in accept(); close alone would
        # leave the port bound until that accept returned.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def __enter__(self) -> FakePigpiod:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- the tick clock --------------------------------------------------------

    def _reset_state(self, tick_start: int) -> None:
        self._mono0 = time.monotonic_ns()
        self._tick0 = tick_start
        self._modes: dict[int, int] = {}
        self._wdog_us = 0
        self._wd_tick = 0
        self._steady_us = 0
        self._pending = None
        self._next_handle = 0
        self._last_report_tick = self._tick0

    def _scaled(self, d_ns: int) -> int:
        """A CLOCK_MONOTONIC interval as the daemon's timer counts it (rate error)."""
        return d_ns + round(d_ns * self.rate_ppm * 1e-6)

    def _tick_at_mono(self, mono_ns: int) -> int:
        """Unwrapped tick (µs) at a CLOCK_MONOTONIC time: the daemon's free-running timer."""
        return self._tick0 + self._scaled(mono_ns - self._mono0) // 1000

    def _rt_of_tick(self, tick: int) -> int:
        """CLOCK_REALTIME at which the timer reaches an unwrapped tick (for sleeping)."""
        return (
            self._mono0
            + self._rt_mono
            + round((tick - self._tick0) * 1000 / (1 + self.rate_ppm * 1e-6))
        )

    def _sample_tick(self, true_ns: int) -> int:
        """The first sample instant at or after a change: when pigpiod sees it."""
        exact_ns = self._tick0 * 1000 + self._scaled(true_ns - self._rt_mono - self._mono0)
        return -(-exact_ns // (self.sample_us * 1000)) * self.sample_us

    # --- play-out --------------------------------------------------------------

    def _play_loop(self) -> None:
        while not self._stop:
            with self._lock:
                self._step()
                deadline = self._next_deadline_ns()
            wait = (deadline - time.time_ns()) / 1e9 if deadline is not None else 0.5
            if wait > 0:
                self._wake.wait(min(wait, 0.5))
                self._wake.clear()

    def _next_deadline_ns(self) -> int | None:
        ticks = [self._sample_tick(self._edges[0].time_ns)] if self._edges else []
        if self._pending is not None:
            ticks.append(self._pending[0])
        if self._wdog_us:
            ticks.append(self._wd_tick + self._wdog_us)
        return self._rt_of_tick(min(ticks) + 1) if ticks else None

    def _step(self) -> None:
        now_tick = self.tick_now_ext()
        while self._edges and self._sample_tick(self._edges[0].time_ns) <= now_tick:
            e = self._edges.pop(0)
            self._level = e.level
            c = self._sample_tick(e.time_ns)
            if self._pending is not None:
                if self._pending[0] < c:
                    self._report()
                else:
                    self._pending = None  # changed again before it was reported
            if e.level != self._rlevel:
                steady = -(-self._steady_us // self.sample_us) * self.sample_us
                self._pending = (c + steady, e.level, e.time_ns)
        if self._pending is not None and self._pending[0] <= now_tick:
            self._report()
        if self._wdog_us and now_tick - self._wd_tick >= self._wdog_us:
            self._wd_tick = now_tick
            self._emit(now_tick, NTFY_FLAGS_WDOG | self.gpio, self._level_word(self._rlevel))
        if now_tick - self._last_report_tick > 60_000_000:
            self._emit(now_tick, NTFY_FLAGS_ALIVE, self._level_word(self._rlevel))

    def _report(self) -> None:
        assert self._pending is not None
        tick, level, true_ns = self._pending
        self._pending = None
        self._rlevel = level
        self._wd_tick = tick
        self.reported.append(Reported(true_ns, level, tick % WRAP))
        self._emit(tick, 0, self._level_word(level))

    def tick_now_ext(self) -> int:
        return self._tick_at_mono(time.monotonic_ns())

    def _level_word(self, level: int) -> int:
        return level << self.gpio

    def _emit(self, tick: int, flags: int, level_word: int) -> None:
        self._last_report_tick = tick
        for c in self._conns:
            if c.handle is not None and c.bits & (1 << self.gpio):
                c.send(struct.pack("<HHII", c.seqno & 0xFFFF, flags, tick % WRAP, level_word))
                c.seqno += 1

    # --- the socket protocol ---------------------------------------------------

    @staticmethod
    def _listen(port: int) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(8)
        return s

    def _accept_loop(self) -> None:
        listener = self._listener
        while not self._stop:
            try:
                sock, _ = listener.accept()
            except OSError:
                return  # listener closed: stop or restart
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock)
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: _Conn) -> None:
        try:
            while True:
                head = _recv_exact(conn.sock, 16)
                if head is None:
                    break
                cmd, p1, p2, p3 = struct.unpack("<IIII", head)
                if p3 and _recv_exact(conn.sock, p3) is None:
                    break
                if cmd == TICK:
                    # Read as late as possible, as pigpiod (C) does just before
                    # its write: Python work after it would skew the round trip.
                    conn.send(struct.pack("<IIII", cmd, p1, p2, self.tick_now()))
                    continue
                with self._lock:
                    self.commands.append((cmd, p1, p2))
                    res = self._command(conn, cmd, p1, p2)
                conn.send(struct.pack("<IIII", cmd, p1, p2, res & 0xFFFFFFFF))
        except OSError:
            pass
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)
        conn.kill()

    def _command(self, conn: _Conn, cmd: int, p1: int, p2: int) -> int:
        if cmd in (BR1, READ):
            word = self._level_word(self._level)
            return word if cmd == BR1 else (word >> p1) & 1
        if cmd == NOIB:
            conn.handle = self._next_handle
            self._next_handle += 1
            # pigpiod turns Nagle back on for notification streams.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
            return conn.handle
        if cmd in (NB, NC):
            target = next((c for c in self._conns if c.handle == p1), None)
            if target is None:
                return PI_BAD_HANDLE
            target.bits = p2 if cmd == NB else 0
            return 0
        if cmd in (MODES, MODEG, PUD):
            if p1 > 53:
                return PI_BAD_GPIO
            if cmd == MODEG:
                return self._modes.get(p1, 0)
            if (cmd == MODES and p2 > 7) or (cmd == PUD and p2 > 2):
                return PI_BAD_MODE if cmd == MODES else PI_BAD_PUD
            if cmd == MODES:
                self._modes[p1] = p2
            return 0
        if cmd in (WDOG, FG):
            if p1 > 31:
                return PI_BAD_USER_GPIO
            if cmd == WDOG:
                if p2 > 60000:
                    return PI_BAD_WDOG_TIMEOUT
                if p1 == self.gpio:
                    self._wdog_us, self._wd_tick = p2 * 1000, self.tick_now_ext()
                return 0
            if p2 > 300000:
                return PI_BAD_FILTER
            if p1 == self.gpio:
                self._steady_us = p2
            return 0
        if cmd == HWVER:
            return 0xA02082  # a Pi 3 B
        if cmd == PIGPV:
            return 79
        return PI_UNKNOWN_COMMAND


class FakePigpiodProcess:
    """The same fake in a child process, so it shares no GIL with the client under
    test (the real daemon does not either: in-process, the fake's threads skew
    the tick round trips by several µs).  Same control methods, by message."""

    def __init__(self, **kwargs: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(child, kwargs), daemon=True)
        self._proc.start()
        self.port: int = self._conn.recv()

    def _call(self, name: str, *args: Any) -> Any:
        self._conn.send((name, args))
        return self._conn.recv()

    def play(self, edges: Iterable[Edge]) -> int:
        return int(self._call("play", list(edges)))

    def tick_now(self) -> int:
        return int(self._call("tick_now"))

    def drop(self, which: str = "all") -> None:
        self._call("drop", which)

    def restart(self, tick_start: int | None = None, downtime_s: float = 0.0) -> None:
        self._call("restart", tick_start, downtime_s)

    @property
    def reported(self) -> list[Reported]:
        return list(self._call("reported"))

    @property
    def commands(self) -> list[tuple[int, int, int]]:
        return list(self._call("commands"))

    def close(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(OSError, EOFError):
                self._call("close")
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()

    def __enter__(self) -> FakePigpiodProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _child(conn: Connection, kwargs: dict[str, Any]) -> None:
    fake = FakePigpiod(**kwargs)
    conn.send(fake.port)
    while True:
        try:
            name, args = conn.recv()
        except EOFError:
            name, args = "close", ()
        attr = getattr(fake, name)
        conn.send(attr(*args) if callable(attr) else attr)
        if name == "close":
            return


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def simulated_signal(start_ns: int, seconds: float, seed: int = 0) -> list[Edge]:
    """A clean simulated receiver output whose second marks start at ``start_ns``."""
    from dcf77shm.model import NS_PER_S
    from dcf77shm.sources.simulate import SimParams, simulate

    utc_s = 1_700_000_000 + seed * 60
    edges = simulate(SimParams(start_s=utc_s, duration_s=seconds, seed=seed)).edges
    return [Edge(e.time_ns - utc_s * NS_PER_S + start_ns, e.level) for e in edges]


def main(argv: list[str] | None = None) -> None:
    """Run a fake pigpiod playing a simulated signal, for demos: Ctrl-C stops it."""
    ap = argparse.ArgumentParser(prog="python -m dcf77shm.testing.fake_pigpiod")
    ap.add_argument("--port", type=int, default=8888)
    ap.add_argument("--gpio", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=3600)
    ap.add_argument("--rate-ppm", type=float, default=0.0)
    ap.add_argument("--truth", help="write the reported edges' true times here (edge log)")
    args = ap.parse_args(argv)
    with FakePigpiod(args.gpio, rate_ppm=args.rate_ppm, port=args.port) as fake:
        fake.play(simulated_signal(time.time_ns() + 1_000_000_000, args.seconds))
        print(f"fake pigpiod on 127.0.0.1:{fake.port}, GPIO {args.gpio}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(args.seconds + 2)
        if args.truth:
            from dcf77shm.formats.edgelog import write_edges

            write_edges(args.truth, [Edge(r.true_ns, r.level) for r in fake.reported])


if __name__ == "__main__":
    main()
