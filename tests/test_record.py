"""``dcf77shm record``: issue 4's done-when (pigpio against the fake daemon), clean stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from clirun import edge_lines, wait_until

from dcf77shm.formats.edgelog import read_edges, write_edges
from dcf77shm.testing.fake_pigpiod import WRAP, FakePigpiodProcess, simulated_signal

GPIO = 22
MAX_US = 300  # see test_pigpio_source: single edges only catch mapping bugs; the bench measures µs
MEDIAN_US = 15


def dcf77shm(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dcf77shm", *args],
        env={**os.environ, **(env or {})},
        stderr=subprocess.PIPE,
        text=True,
    )


def test_record_from_pigpio_matches_the_played_edges(tmp_path: Path) -> None:
    out = tmp_path / "capture.edges.gz"
    with FakePigpiodProcess(gpio=GPIO, tick_start=WRAP - 4_000_000, rate_ppm=-25) as fake:
        env = {"PIGPIO_ADDR": "127.0.0.1", "PIGPIO_PORT": str(fake.port)}
        p = dcf77shm(
            "record", "--source", f"pigpio:{GPIO}", "-o", str(out), "--duration", "7", env=env
        )
        # Played from 2.5 s on: the recorder is connected and correlated by then.
        fake.play(simulated_signal(time.time_ns() + 2_500_000_000, 4))
        _, err = p.communicate(timeout=60)
        truth = fake.reported
    assert p.returncode == 0, err
    assert not out.with_name(out.name + ".part").exists()
    edges = read_edges(out)
    assert [e.level for e in edges] == [r.level for r in truth] and len(edges) >= 6
    errors = sorted(abs(e.time_ns - r.true_ns) / 1000 for e, r in zip(edges, truth, strict=True))
    assert errors[len(errors) // 2] <= MEDIAN_US and errors[-1] <= MAX_US, errors
    assert f"{len(edges)} edges" in err


def test_sigint_stops_cleanly_and_keeps_what_was_recorded(tmp_path: Path) -> None:
    log = tmp_path / "future.edges"
    played = simulated_signal(time.time_ns() + 500_000_000, 20)
    write_edges(log, played)
    out = tmp_path / "rec.edges"
    p = dcf77shm("record", "--source", f"replay:{log}", "--pace", "-o", str(out))
    # Stopped once a few edges are on disk (flushed every second), whatever the
    # machine's speed; the log runs 20 s, far longer.
    part = out.with_name(out.name + ".part")
    wait_until(lambda: edge_lines(part) >= 3, "three edges recorded")
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    got = read_edges(out)
    assert 2 <= len(got) < len(played)
    assert got == played[: len(got)]


def test_record_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    for args in (
        ["--source", "nosuch:1"],
        ["--source", "pigpio:99"],
        ["--source", "sim", "--duration", "soon"],
    ):
        p = dcf77shm("record", *args, "-o", str(tmp_path / "x.edges"))
        _, err = p.communicate(timeout=30)
        assert p.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert not list(tmp_path.iterdir())


def test_record_without_pigpiod_says_how_to_fix(tmp_path: Path) -> None:
    env = {"PIGPIO_ADDR": "127.0.0.1", "PIGPIO_PORT": "1"}  # nothing listens on port 1
    p = dcf77shm("record", "--source", "pigpio:4", "-o", str(tmp_path / "x.edges"), env=env)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 1 and err.count("\n") == 1 and "start it" in err, err
    assert not list(tmp_path.iterdir())
