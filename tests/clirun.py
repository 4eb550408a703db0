"""Running the real CLI in a child process, as a user would (shared by the tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_cli(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dcf77shm", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
