"""Running the real CLI in a child process, as a user would (shared by the tests)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO


def run_cli(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dcf77shm", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_until(ready: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    """Poll ``ready`` until it holds: readiness, not a guessed sleep (the suite
    also runs on a Raspberry Pi 3, ~10x slower than a desktop)."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert time.monotonic() < deadline, f"not within {timeout_s:g} s: {what}"
        time.sleep(0.05)


def wait_for_output(proc: subprocess.Popen[str], stream: IO[str], needle: str,
                    timeout_s: float = 60) -> str:  # fmt: skip
    """Read ``stream`` (a pipe of ``proc``) until ``needle`` appears; returns what was
    read.  Reads the descriptor directly, so nothing waits in a Python buffer, and
    what was read here is not seen again by ``communicate()``."""
    fd = stream.fileno()
    seen = b""
    deadline = time.monotonic() + timeout_s
    while needle.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {needle!r} within {timeout_s:g} s: {seen.decode(errors='replace')}"
        if select.select([fd], [], [], min(left, 0.5))[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"{proc.args!r} closed the pipe: {seen.decode(errors='replace')}"
            seen += chunk
    return seen.decode(errors="replace")


def edge_lines(path: Path) -> int:
    """Whole edge lines a recorder has flushed to an edge log so far (0 before it exists)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return 0
    return sum(1 for ln in text.splitlines(keepends=True) if ln.endswith("\n") and ln[:1] != "#")


def on_a_terminal(*args: str | Path, stdout_tty: bool, stderr_tty: bool,
                  timeout: float = 60) -> tuple[int, str]:  # fmt: skip
    """Run the CLI with stdout and/or stderr on a pseudo-terminal (the other
    discarded); its exit status and what the terminal got."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcf77shm", *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=slave if stdout_tty else subprocess.DEVNULL,
        stderr=slave if stderr_tty else subprocess.DEVNULL,
    )
    os.close(slave)
    got = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        got += chunk
    os.close(master)
    return proc.wait(timeout), got.decode(errors="replace")


def start_run_with_status(status: Path, output: str) -> subprocess.Popen[bytes]:
    """`run` on the simulated receiver with a status file, once that file exists."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcf77shm", "run", "--source", "sim", "--sim-start", "now",
         "--output", output, "--status-file", str(status)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until(lambda: status.exists() or proc.poll() is not None, "the status file", 30)
    assert proc.poll() is None, f"run exited {proc.returncode} before writing {status}"
    return proc
