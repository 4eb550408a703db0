"""Log lines under journald: no second timestamp, syslog priorities ("<N>" prefix).

The real CLI in a child process whose stderr is a file; JOURNAL_STREAM names
that file's device and inode, as systemd does for the stream it connects to
journald.  A JOURNAL_STREAM that names another file (a child of the service
whose stderr was redirected) must not switch the format.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import run_cli

from dcf77shm.cli.run import stderr_is_journal, syslog_priority

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def run_with_stderr(args: list[str], err: Path, journal_of: Path | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with err.open("w") as f:
        if journal_of is not None:
            st = os.stat(journal_of)
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        return subprocess.run(
            [sys.executable, "-m", "dcf77shm", *args], stderr=f, env=env, timeout=120
        ).returncode


@pytest.fixture(scope="module")
def edge_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    log = tmp_path_factory.mktemp("journal") / "sim.edges"
    r = run_cli("simulate", "--start", "2024-05-01T10:00:00Z", "--duration", "4m", "-o", str(log))
    assert r.returncode == 0, r.stderr
    return log


def run_args(log: Path, tmp: Path) -> list[str]:
    # No chronyd behind the socket: every sample is dropped with a warning.
    return ["run", "--source", f"replay:{log}", "--output", f"sock:{tmp / 'none.sock'}"]


def test_journal_lines_carry_priority_and_no_timestamp(edge_log: Path, tmp_path: Path) -> None:
    err = tmp_path / "stderr"
    assert run_with_stderr(run_args(edge_log, tmp_path), err, journal_of=err) == 0
    lines = err.read_text().splitlines()
    assert lines, "nothing logged"
    assert all(re.match(r"^<[0-7]>", x) for x in lines), lines
    assert not any(STAMP.match(x[3:]) for x in lines), lines
    warnings = [x for x in lines if x.startswith("<4>")]
    assert any("chronyd not reachable" in x for x in warnings), lines
    assert any(x.startswith("<6>reading replay:") for x in lines), lines


def test_other_stream_keeps_timestamps(edge_log: Path, tmp_path: Path) -> None:
    err, elsewhere = tmp_path / "stderr", tmp_path / "journal-of-the-parent"
    elsewhere.touch()
    assert run_with_stderr(run_args(edge_log, tmp_path), err, journal_of=elsewhere) == 0
    lines = err.read_text().splitlines()
    assert lines and all(STAMP.match(x) for x in lines), lines
    assert any(" WARNING " in x and "chronyd not reachable" in x for x in lines), lines


def test_fatal_line_is_an_error_under_the_journal(tmp_path: Path) -> None:
    err = tmp_path / "stderr"
    args = ["run", "--source", "sim", "--output", "sock:relative.sock"]
    assert run_with_stderr(args, err, journal_of=err) == 2
    assert err.read_text().splitlines() == [err.read_text().strip()]
    assert err.read_text().startswith("<3>dcf77shm: ")


def test_priority_map_and_bad_journal_stream(tmp_path: Path) -> None:
    assert [syslog_priority(n) for n in (50, 40, 30, 20, 10, 5, 35)] == [2, 3, 4, 6, 7, 7, 4]
    for value in ("", "12", "a:b", "1:", ":1"):
        assert not stderr_is_journal({"JOURNAL_STREAM": value})
    assert not stderr_is_journal({})
