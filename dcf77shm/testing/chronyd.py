"""A private chronyd for the demo and the end-to-end tests.

Never the system one and never the system clock: its own config, pid file and
drift file in a work folder, ``-x`` (no clock control), the command socket in a
0700 folder (no UDP command port), NTP served on a loopback port only.  It
runs as root (``-u root``) because dropping to _chrony would need the work
folder to belong to _chrony.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import sysv_ipc

from dcf77shm import chronyc
from dcf77shm.chronyc import SourceRow, Tracking
from dcf77shm.errors import RuntimeFailure
from dcf77shm.sinks.shm import key_for, segment_info

CHRONY_DIR = Path(__file__).resolve().parents[2] / "chrony"  # the shipped drop-ins
# Where the Debian package puts them (an installed package has no chrony/ next
# to its source): the SHM drop-in is installed, the others are examples.
INSTALLED = (Path("/etc/chrony/conf.d"), Path("/usr/share/doc/dcf77shm/examples"))


def find_chronyd() -> str | None:
    return shutil.which("chronyd") or (
        "/usr/sbin/chronyd" if os.access("/usr/sbin/chronyd", os.X_OK) else None
    )


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def shipped_refclock(kind: str, param: str) -> str:
    """The ``refclock`` line of our drop-in (SHM or SOCK) with another unit/path,
    so tests and demo run exactly the options users install."""
    name = {"SHM": "dcf77shm.conf", "SOCK": "dcf77shm-sock.conf"}[kind]
    tried = [d / name for d in (CHRONY_DIR, *INSTALLED)]
    path = next((p for p in tried if p.is_file()), None)
    if path is None:
        raise RuntimeFailure(
            f"no {name} (looked in {', '.join(str(p.parent) for p in tried)}): run this from "
            "a checkout of dcf77shm, or install the package"
        )
    for line in path.read_text().splitlines():
        if line.startswith(f"refclock {kind} "):
            return re.sub(rf"^refclock {kind} \S+", f"refclock {kind} {param}", line)
    raise RuntimeFailure(f"{path}: no `refclock {kind}` line")


class PrivateChronyd:
    def __init__(
        self,
        workdir: Path,
        refclocks: list[str],
        ntp_port: int | None = None,
        address: str = "127.0.0.1",
    ) -> None:
        self.workdir = workdir
        self.refclocks = refclocks
        self.address = address  # on loopback; chrony tells sources apart by address
        self.ntp_port = ntp_port if ntp_port is not None else free_udp_port()
        self.rundir = workdir / "run"
        self.cmd_socket = self.rundir / "chronyd.sock"
        self.conf = workdir / "chronyd.conf"
        self.log_path = workdir / "chronyd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def config_text(self) -> str:
        w = self.workdir
        return "\n".join(
            [
                f"pidfile {w}/chronyd.pid",
                f"driftfile {w}/chronyd.drift",
                f"bindcmdaddress {self.cmd_socket}",
                "cmdport 0",
                f"port {self.ntp_port}",
                f"bindaddress {self.address}",
                "allow 127.0.0.0/8",
                *self.refclocks,
                "",
            ]
        )

    def start(self, timeout_s: float = 10.0) -> None:
        exe = find_chronyd()
        if exe is None:
            raise RuntimeFailure("chronyd not found; install Debian's chrony (make chrony)")
        self.rundir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.rundir, 0o700)
        self.conf.write_text(self.config_text())
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [exe, "-d", "-x", "-u", "root", "-f", str(self.conf)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeFailure(f"chronyd exited at start: {self.last_log_line()}")
            if self.cmd_socket.exists() and self._chronyc_ok():
                return
            time.sleep(0.1)
        raise RuntimeFailure(f"chronyd did not answer within {timeout_s:g} s")

    def last_log_line(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(no output)"

    def _chronyc_ok(self) -> bool:
        try:
            self.chronyc("tracking")
        except RuntimeFailure:
            return False
        return True

    def chronyc(self, *args: str, csv: bool = True) -> str:
        return chronyc.run(list(args), self.cmd_socket, csv, timeout_s=10)

    def sources(self) -> list[SourceRow]:
        return chronyc.parse_sources(self.chronyc("sources"))

    def tracking(self) -> Tracking:
        return chronyc.parse_tracking(self.chronyc("tracking"))

    def selected(self, name: str) -> bool:
        return any(r.name == name and r.state == "*" for r in self.sources())

    def stop(self) -> int | None:
        proc, self.proc = self.proc, None
        rc = None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        if proc is not None:
            self._remove_segments(proc.pid)
        if self._log is not None:
            self._log.close()
            self._log = None
        return rc

    def _remove_segments(self, pid: int) -> None:
        """Remove the SHM segments this chronyd created and nobody holds: chronyd
        never removes them, and a harness that starts hundreds would leave them
        all behind (a unit's stale root-owned segment then greets the next user)."""
        for line in self.refclocks:
            f = line.split()
            if len(f) < 3 or f[:2] != ["refclock", "SHM"] or not f[2].isdigit():
                continue
            info = segment_info(key_for(int(f[2])))
            if info is not None and info.cpid == pid and info.nattch == 0:
                with contextlib.suppress(sysv_ipc.Error):
                    sysv_ipc.remove_shared_memory(info.shmid)

    def __enter__(self) -> PrivateChronyd:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class Driver:
    """``dcf77shm run ...`` as a child process, its log in a file."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dcf77shm", "run", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def locked(self) -> bool:
        return "LOCK:" in self.log_text()

    def stop(self, timeout_s: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run went: seconds from the driver's start, None if not reached."""

    lock_s: float | None
    selected_s: float | None
    tracking: Tracking | None


def wait_selected(
    chronyd: PrivateChronyd,
    driver: Driver,
    refid: str,
    timeout_s: float,
    progress: Callable[[float, str], None] | None = None,
    settle_s: float = 0.0,
) -> Outcome:
    """Poll until ``refid`` is selected (``*``) and tracking says stratum 1.

    ``settle_s``: after selection, wait this long for one more measurement
    before reading tracking (its first estimate rests on few samples).
    """
    t0 = time.monotonic()
    lock_s = selected_s = None
    last, last_t = "", 0.0
    while (now := time.monotonic() - t0) < timeout_s:
        if driver.proc.poll() is not None:
            raise RuntimeFailure(f"dcf77shm run exited ({driver.proc.returncode})")
        if lock_s is None and driver.locked():
            lock_s = now
        tr = chronyd.tracking()
        if chronyd.selected(refid) and tr.stratum == 1:
            selected_s = now
            if settle_s:
                time.sleep(settle_s)
                tr = chronyd.tracking()
            return Outcome(lock_s, selected_s, tr)
        state = "locked" if lock_s is not None else "waiting for lock"
        line = f"{state}; chrony: " + " ".join(
            f"{r.state}{r.name} reach {r.reach:o}" for r in chronyd.sources()
        )
        if progress is not None and (line != last or now - last_t >= 15):
            progress(now, line)
            last, last_t = line, now
        time.sleep(1.0)
    return Outcome(lock_s, selected_s, None)
