"""Progress of long work: one updating line on a terminal's stderr, none when
stderr is piped or when the output itself goes to the terminal."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

from clirun import on_a_terminal, run_cli

from dcf77shm.cli.progress import Progress


def _with_tty_stderr(*args: str | Path, stdout: int | None = subprocess.DEVNULL) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; its exit status and what the terminal got."""
    return on_a_terminal(*args, stdout_tty=stdout is None, stderr_tty=True)


def _log(tmp_path: Path) -> Path:
    log = tmp_path / "day.edges"
    r = run_cli("simulate", "--start", "2024-05-01T00:00:00Z", "--duration", "3h", "-o", log)
    assert r.returncode == 0, r.stderr
    return log


def test_decode_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    log = _log(tmp_path)
    rc, tty = _with_tty_stderr("decode", "--json", log)
    assert rc == 0
    assert f"\rdecode {log}: " in tty and "%" in tty and "edges)" in tty
    assert tty.endswith("\r\x1b[K")  # the line wiped at the end
    piped = run_cli("decode", "--json", log)
    assert piped.returncode == 0 and piped.stderr == ""
    # The table on the same terminal: no line drawn across it.
    rc, tty = _with_tty_stderr("decode", log, stdout=None)
    assert rc == 0 and "%" not in tty and "\x1b[K" not in tty and "polarity:" in tty


def test_simulate_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    out = tmp_path / "x.edges"
    rc, tty = _with_tty_stderr("simulate", "--duration", "2d", "--seed", "1", "-o", out)
    assert rc == 0 and out.exists()
    assert "\rsimulate: " in tty and "of 2.0 days)" in tty
    assert "\r\x1b[Kwrote " in tty  # the line wiped, the summary in its place
    r = run_cli("simulate", "--duration", "2d", "--seed", "1", "-o", out)
    assert r.returncode == 0 and "%" not in r.stderr and "\r" not in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("wrote ")


def test_progress_is_silent_without_a_terminal() -> None:
    buf = io.StringIO()
    p = Progress("x", stream=buf)
    p(0.5, "half")
    p.status("busy")
    p.close()
    assert buf.getvalue() == ""
