"""The held count across a restart of the service, within one boot.

A restart must not reopen the door a held count closes: after ``systemctl
restart dcf77shm`` (an upgrade, a crash, the watchdog) the guard continues from
its last confirmed second instead of believing the first lock again.  The
steady clock (CLOCK_MONOTONIC_RAW) is only comparable within one boot, so the
file carries the kernel's boot id and is ignored after a reboot (a Pi without
an RTC also has no trustworthy time then: the first lock decides).

Only sources whose timeline is this host's steady clock (pigpio, gpiod, sim)
keep state; a replay's timeline is the log's own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from dcf77shm.decode.guard import Guard

log = logging.getLogger("dcf77shm.service.state")

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
FORMAT = 1
CLOCK = "CLOCK_MONOTONIC_RAW"
DEFAULT_STATE_FILE = Path("/var/lib/dcf77shm/state.json")


def boot_id(path: Path = BOOT_ID) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


class StateFile:
    def __init__(self, path: Path, boot: str | None = None) -> None:
        self.path = path
        self.boot = boot if boot is not None else boot_id()
        self._warned = False

    def restore(self, guard: Guard) -> str:
        """Continue the held count of an earlier run in this boot; one line saying what."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return f"{self.path}: no held count yet"
        except (OSError, ValueError) as e:
            return f"{self.path}: ignored ({e})"
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return f"{self.path}: ignored (not a dcf77shm state file of format {FORMAT})"
        if self.boot is None or data.get("boot_id") != self.boot or data.get("clock") != CLOCK:
            return f"{self.path}: from another boot, ignored (the first lock decides)"
        snap = data.get("guard")
        if not isinstance(snap, dict):
            return f"{self.path}: no held count in it"
        try:
            guard.restore(snap)
        except (KeyError, TypeError, ValueError) as e:
            return f"{self.path}: ignored (bad held count: {e})"
        return f"{self.path}: continuing the held count of the previous run ({guard.state.value})"

    def save(self, guard: Guard) -> None:
        snap = guard.snapshot()
        if snap is None or self.boot is None:
            return
        data: dict[str, Any] = {
            "format": FORMAT,
            "boot_id": self.boot,
            "clock": CLOCK,
            "guard": snap,
        }
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as e:
            if not self._warned:
                self._warned = True
                log.warning("cannot keep the held count in %s: %s", self.path, e)
