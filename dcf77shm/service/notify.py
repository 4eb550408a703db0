"""systemd's notify protocol without a dependency (sd_notify(3)).

One AF_UNIX datagram of ``KEY=VALUE`` lines to ``$NOTIFY_SOCKET``; a leading
``@`` names a socket in the abstract namespace (a NUL byte on the wire).  With
no ``$NOTIFY_SOCKET`` (not started by systemd with Type=notify) every call is a
no-op.  ``$WATCHDOG_USEC`` is the unit's WatchdogSec; systemd kills and, with
Restart=on-failure, restarts the service if no WATCHDOG=1 arrives in time, so
the main loop pings at half the interval, as sd_watchdog_enabled(3) advises.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("dcf77shm.service.notify")


class Notifier:
    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        env = os.environ if env is None else env
        self._mono = monotonic_ns
        self._addr = _address(env.get("NOTIFY_SOCKET", ""))
        self._sock: socket.socket | None = None
        self.watchdog_ns = _watchdog_ns(env)
        self._last_ping_ns: int | None = None
        self._last_status = ""
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    def send(self, **fields: str) -> None:
        if self._addr is None:
            return
        msg = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(msg, self._addr)
        except OSError as e:
            # systemd gone or socket not writable: the service runs on; a
            # missed watchdog is systemd's business, not a reason to stop.
            if not self._warned:
                log.warning("cannot notify systemd at %r: %s", self._addr, e)
                self._warned = True

    def ready(self, status: str) -> None:
        self._last_status = status
        self.send(READY="1", STATUS=status)

    def status(self, status: str) -> None:
        if status != self._last_status:
            self._last_status = status
            self.send(STATUS=status)

    def tick(self) -> None:
        """From the main loop: WATCHDOG=1 when half the interval has passed."""
        if self.watchdog_ns is None or self._addr is None:
            return
        now = self._mono()
        if self._last_ping_ns is None or now - self._last_ping_ns >= self.watchdog_ns // 2:
            self._last_ping_ns = now
            self.send(WATCHDOG="1")

    def stopping(self) -> None:
        self.send(STOPPING="1")

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def _address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()  # abstract namespace
    if value.startswith("/"):
        return value
    return None  # vsock addresses and the like: not for a Pi


def _watchdog_ns(env: Mapping[str, str]) -> int | None:
    """WatchdogSec in ns, or None: unset, malformed, or meant for another process
    (WATCHDOG_PID names the main process; a child must not ping for it)."""
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec * 1000 if usec > 0 else None
