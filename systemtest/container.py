"""A booted container: systemd-nspawn -b, commands inside through nsenter.

The container has a private network (loopback only): its chronyd serves NTP
on its own 127.0.0.1:123 and nothing reaches the host's ports.  Packages are
fetched before the boot, in the same root directory with the host's network
(``prepare``), so that apt inside installs them from its cache.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# systemd >= 258 (forky) refuses the legacy/hybrid cgroup hierarchy that a
# host may still mount; the unified one is what Raspberry Pi OS runs anyway.
NSPAWN_ENV = {"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
NSPAWN = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit"]


class BootError(Exception):
    """The container did not come up: the machine cannot run the test."""


@dataclass(frozen=True, slots=True)
class Proc:
    rc: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def text(self) -> str:
        return (self.out + self.err).strip()


class Container:
    def __init__(self, name: str, root: Path, log: Path) -> None:
        self.name, self.root, self.log = name, root, log
        self._nspawn: subprocess.Popen[bytes] | None = None
        self.leader = 0

    # --- before the boot -------------------------------------------------------

    def extract(self, tarball: Path) -> None:
        self.remove()
        self.root.mkdir(parents=True)
        subprocess.run(["tar", "-C", str(self.root), "-xf", str(tarball)], check=True)

    def prepare(self, script: str, timeout: float) -> Proc:
        """Run ``script`` in the root directory, not booted, with the host's network."""
        cmd = [*NSPAWN, "-D", str(self.root), "--resolv-conf=replace-host", "--pipe"]
        cmd += ["/usr/bin/env", "-i", f"PATH={PATH}", "DEBIAN_FRONTEND=noninteractive"]
        cmd += ["/bin/sh", "-ec", script]
        return self._run(cmd, timeout)

    def put(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        """Write a file into the container (its root is this directory)."""
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        target.chmod(mode)

    # --- booted ------------------------------------------------------------------

    def boot(self, timeout: float) -> str:
        """Boot; return `systemctl is-system-running` once it is running or degraded."""
        cmd = [*NSPAWN, "-D", str(self.root), "-b", "-M", self.name, "--private-network"]
        cmd += ["--resolv-conf=off"]
        with self.log.open("ab") as f:
            self._nspawn = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                env={**os.environ, **NSPAWN_ENV},
            )
        deadline = time.monotonic() + timeout
        state = "no init"
        while time.monotonic() < deadline:
            if self._nspawn.poll() is not None:
                raise BootError(
                    f"systemd-nspawn exited with status {self._nspawn.returncode} (see {self.log})"
                )
            if not self.leader:
                self.leader = _init_of(self._nspawn.pid)
            if self.leader:
                state = self.sh("systemctl is-system-running", timeout=10).out.strip()
                if state in ("running", "degraded"):
                    return state
            time.sleep(0.5)
        raise BootError(f"not booted after {timeout:.0f} s (state {state!r}; see {self.log})")

    def sh(self, script: str, timeout: float = 60, stdin: str | None = None) -> Proc:
        """``sh -c script`` inside, as root, with a clean environment."""
        cmd = ["nsenter", "-t", str(self.leader), "-a", "--", "/usr/bin/env", "-i"]
        cmd += [f"PATH={PATH}", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"]
        cmd += ["SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "/bin/sh", "-c", script]
        return self._run(cmd, timeout, stdin)

    def poweroff(self, timeout: float = 60) -> None:
        p, self._nspawn = self._nspawn, None
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)  # nspawn: an orderly shutdown of the container
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.leader = 0

    def remove(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)

    def _run(self, cmd: list[str], timeout: float, stdin: str | None = None) -> Proc:
        try:
            r = subprocess.run(
                cmd,
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, **NSPAWN_ENV},
            )
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            return Proc(124, out, f"timed out after {timeout:.0f} s")
        with self.log.open("a") as f:
            f.write(f"$ {cmd[-1] if cmd[-3:-1] == ['/bin/sh', '-c'] else ' '.join(cmd)}\n")
            f.write(f"[rc {r.returncode}]\n{r.stdout}{r.stderr}")
        return Proc(r.returncode, r.stdout, r.stderr)


def _init_of(nspawn_pid: int) -> int:
    """The host PID of the container's PID 1: nspawn's descendant whose NSpid ends in 1."""
    todo, seen = [nspawn_pid], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            children = []
            for task in Path(f"/proc/{pid}/task").iterdir():
                children += (task / "children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and pid != nspawn_pid:
                ids = line.split()[1:]
                if len(ids) > 1 and ids[-1] == "1":
                    return pid
        todo += [int(c) for c in children]
    return 0
