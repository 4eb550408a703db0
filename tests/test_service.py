"""The service side of `run`: config file, systemd notify, status file and metrics,
`dcf77shm status`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from clirun import start_run_with_status

from dcf77shm.cli.config import load
from dcf77shm.cli.run import run
from dcf77shm.errors import BadInput
from dcf77shm.model import NS_PER_S, DropReason, MinuteReport, Sample, StateChange
from dcf77shm.service.notify import Notifier
from dcf77shm.service.runner import SampleCheck
from dcf77shm.service.status import Monitor, prometheus_text, read_status

EXAMPLE = Path(__file__).resolve().parent.parent / "etc" / "dcf77shm.toml"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dcf77shm", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


# --- config ---------------------------------------------------------------------


def params(*args: str) -> dict[str, object]:
    ctx = run.make_context("run", list(args))
    return dict(ctx.params)


def test_config_sets_options_and_the_command_line_wins(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text(
        'source = "gpiod:gpiochip0:17"\noutput = "shm:78"\ndecoder = "strict"\n'
        'polarity = "low"\nglitch_filter_us = 500\nbias = "pull-up"\nverbose = 1\n'
        'status_file = "/run/x/status.json"\n'
    )
    p = params("--config", str(conf))
    assert p["source_spec"] == "gpiod:gpiochip0:17" and p["output_spec"] == "shm:78"
    assert p["decoder"] == "strict" and p["polarity"] == "low" and p["bias"] == "pull-up"
    assert p["glitch_filter_us"] == 500 and p["verbose"] == 1
    assert p["status_file"] == Path("/run/x/status.json")
    # Order on the command line does not matter: --config is read first.
    p = params("--decoder", "robust", "--output", "sock:/x", "--config", str(conf))
    assert p["decoder"] == "robust" and p["output_spec"] == "sock:/x"
    assert p["polarity"] == "low"


def test_shipped_example_config_is_valid() -> None:
    got = load(EXAMPLE, run)
    assert got["source_spec"].startswith(("pigpio:", "gpiod:"))
    assert got["output_spec"] == "shm:77"  # the unit of chrony/dcf77shm.conf
    assert "refclock SHM 77 " in (EXAMPLE.parent.parent / "chrony" / "dcf77shm.conf").read_text()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('sourec = "sim"\n', "unknown key 'sourec'"),
        ('polarity = "sideways"\n', "key 'polarity'"),
        ("polarity = 1\n", "expected a string"),
        ('glitch_filter_us = "5"\n', "expected an integer"),
        ("glitch_filter_us = 400000\n", "key 'glitch_filter_us'"),
        ("glitch_filter_us = true\n", "got a boolean"),
        ("pace = 1\n", "expected true or false"),
        ("sim_offset_ms = 1.5\nsim_seed = 2.5\n", "key 'sim_seed'"),
        ("[daemon]\nx = 1\n", "tables are not used"),
        ('source = "sim"\nsource = "sim"\n', "not valid TOML"),
        ("config = 'x'\n", "unknown key 'config'"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text(text)
    with pytest.raises(BadInput) as e:
        load(conf, run)
    assert str(conf) in str(e.value) and needle in str(e.value)
    r = cli("run", "--config", str(conf))
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and needle in r.stderr and str(conf) in r.stderr


def test_missing_config_file_is_exit_2(tmp_path: Path) -> None:
    r = cli("run", "--config", str(tmp_path / "none.toml"))
    assert r.returncode == 2 and "no such config file" in r.stderr
    assert r.stderr.count("\n") == 1


# --- systemd notify -----------------------------------------------------------------


def listener(addr: str | bytes) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(addr)
    s.settimeout(0.05)
    return s


def drain(s: socket.socket) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    while True:
        try:
            msg = s.recv(4096).decode()
        except TimeoutError:
            return out
        out.append(dict(line.split("=", 1) for line in msg.split("\n")))


def test_notify_ready_status_and_watchdog_at_half_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    rx = listener(str(path))
    now = [0]
    n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "30000000"}, lambda: now[0])
    assert n.watchdog_ns == 30 * NS_PER_S
    n.ready("no lock")
    n.status("no lock")  # unchanged: not sent again
    n.status("locked")
    pings = 0
    for t_s in range(0, 61):
        now[0] = t_s * NS_PER_S
        n.tick()
    msgs = drain(rx)
    assert msgs[0] == {"READY": "1", "STATUS": "no lock"}
    assert msgs[1] == {"STATUS": "locked"}
    pings = sum(1 for m in msgs if m == {"WATCHDOG": "1"})
    assert pings == 5  # t = 0, 15, 30, 45, 60 s
    n.close()
    rx.close()


def test_notify_abstract_socket_and_noop_without_socket() -> None:
    name = f"dcf77shm-test-{os.getpid()}"
    rx = listener(b"\0" + name.encode())
    n = Notifier({"NOTIFY_SOCKET": "@" + name})
    n.ready("x")
    assert drain(rx) == [{"READY": "1", "STATUS": "x"}]
    rx.close()
    quiet = Notifier({})
    assert not quiet.enabled and quiet.watchdog_ns is None
    quiet.ready("x")
    quiet.tick()  # nothing to send to, nothing raised
    other = Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "100", "WATCHDOG_PID": "1"})
    assert other.watchdog_ns is None  # meant for pid 1, not us


# --- counters, status file, metrics ---------------------------------------------------


def test_drop_reasons_cover_every_safety_net_reason() -> None:
    c = SampleCheck()
    assert c.reason(Sample(10 * NS_PER_S + 5, 11 * NS_PER_S)) is None
    found = [
        c.reason(Sample(11 * NS_PER_S, 12 * NS_PER_S + 1)),
        c.reason(Sample(10 * NS_PER_S + 5, 12 * NS_PER_S)),
        c.reason(Sample(12 * NS_PER_S, 2**33 * NS_PER_S)),
        c.reason(Sample(20 * NS_PER_S, 21 * NS_PER_S), now_ns=18 * NS_PER_S),
        c.reason(Sample(20 * NS_PER_S, 21 * NS_PER_S), now_ns=51 * NS_PER_S),
    ]
    kinds = [f[0] if f else None for f in found]
    assert kinds == [
        DropReason.NOT_WHOLE_SECOND,
        DropReason.NOT_MONOTONIC,
        DropReason.OFFSET_RANGE,
        DropReason.FUTURE,
        DropReason.TOO_OLD,
    ]
    assert all(f is not None and f[1] for f in found)  # each with a line for the log


def test_monitor_counts_and_writes_atomically(tmp_path: Path) -> None:
    st, prom = tmp_path / "status.json", tmp_path / "dcf77shm.prom"
    now, mono = [100 * NS_PER_S], [0]
    m = Monitor("sim", "shm:77", "robust", st, prom, Notifier({}), lambda: now[0], lambda: mono[0])
    m.attached()
    assert json.loads(st.read_text())["samples_published"] == 0
    m.state(StateChange(1, True, "two frames agree"))
    m.published(Sample(99 * NS_PER_S + 7_000_000, 99 * NS_PER_S))
    m.dropped(Sample(1, 1), DropReason.FUTURE)
    m.minute(MinuteReport(0, None, False, ("parity-minute", "bcd-hour")))
    m.minute(MinuteReport(0, None, False, ("parity-minute",)))
    m.minute(MinuteReport(0, 60, True))
    m.tick()
    mono[0] = 5 * NS_PER_S
    m.published(Sample(100 * NS_PER_S + 7_000_000, 100 * NS_PER_S))
    m.tick()  # only a counter changed, within the interval: not written again
    snap = json.loads(st.read_text())
    assert snap["samples_published"] == 1 and snap["locked"] and snap["locks"] == 1
    assert snap["samples_dropped"] == {"future": 1}
    assert snap["minutes_rejected"] == {"bcd-hour": 1, "parity-minute": 2}
    assert snap["minutes_valid"] == 1
    m.dropped(Sample(2, 2), DropReason.FUTURE)
    m.tick()  # nor a known kind of drop
    assert json.loads(st.read_text())["samples_dropped"] == {"future": 1}
    m.dropped(Sample(3, 3), DropReason.SUPERSEDED)
    m.tick()  # a new kind of drop is news: written at once
    snap = json.loads(st.read_text())
    assert snap["samples_dropped"] == {"future": 2, "superseded": 1}
    assert snap["samples_published"] == 2
    m.published(Sample(101 * NS_PER_S + 7_000_000, 101 * NS_PER_S))
    mono[0] = 15 * NS_PER_S  # the interval (10 s) after the last write
    m.tick()
    snap = read_status(st, now_ns=now[0])
    assert snap["samples_published"] == 3
    assert snap["last_sample"]["offset_ns"] == -7_000_000
    assert not list(tmp_path.glob(".*tmp"))  # the temporary files were renamed
    text = prom.read_text()
    assert "dcf77shm_samples_published_total 3\n" in text
    assert 'dcf77shm_minutes_rejected_reasons_total{reason="parity-minute"} 2\n' in text
    assert "dcf77shm_last_sample_offset_seconds -0.007\n" in text
    check_exposition(text)
    with pytest.raises(Exception, match="ago"):
        read_status(st, now_ns=now[0] + 31 * NS_PER_S)
    m.stopped()
    with pytest.raises(Exception, match="stopped"):
        read_status(st, now_ns=now[0])


def test_unwritable_status_file_does_not_stop_the_monitor(tmp_path: Path) -> None:
    m = Monitor("sim", "shm:77", "robust", tmp_path / "no" / "dir" / "s.json", None, Notifier({}))
    m.attached()
    m.tick()
    m.stopped()


_SAMPLE = re.compile(r'^[a-z_:][a-z0-9_:]*(\{[a-z_]+="[^"\\]*"\})? -?[0-9.e+-]+$')


def check_exposition(text: str) -> None:
    """Every line is a HELP/TYPE comment or `name{label="v"} number`; each family typed once."""
    typed = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            assert name not in typed
            typed.add(name)
        elif not line.startswith("# HELP "):
            assert _SAMPLE.match(line), line
            assert line.split("{")[0].split()[0] in typed, line


def test_prometheus_text_without_a_sample() -> None:
    m = Monitor("sim", "shm:77", "robust", None, None, Notifier({}))
    text = prometheus_text(m.snapshot())
    check_exposition(text)
    assert "last_sample" not in text and "dcf77shm_up 1\n" in text


# --- the real run loop ------------------------------------------------------------


def test_run_replay_notifies_systemd_and_counts_what_it_published(tmp_path: Path) -> None:
    log = tmp_path / "sim.edges"
    r = cli("simulate", "--start", "2024-03-31T00:30:00Z", "--duration", "5m",
            "--jitter-ms", "3", "--seed", "4", "-o", str(log))  # fmt: skip
    assert r.returncode == 0, r.stderr
    decoded = [json.loads(x) for x in cli("decode", "--json", str(log)).stdout.splitlines()]
    n_samples = sum(1 for d in decoded if d["type"] == "sample")
    n_valid = sum(1 for d in decoded if d["type"] == "minute" and d["ok"])
    assert n_samples > 60
    rx_path = tmp_path / "chrony.sock"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(rx_path))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    notify = listener(str(tmp_path / "notify"))
    conf = tmp_path / "run.toml"
    conf.write_text(
        f'source = "replay:{log}"\noutput = "sock:{rx_path}"\n'
        f'status_file = "{tmp_path}/status.json"\nmetrics_textfile = "{tmp_path}/m.prom"\n'
    )
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "100000"}
    received: list[bytes] = []
    rx.settimeout(5)

    def read_like_chronyd() -> None:  # as they come: the queue holds only 10
        with contextlib.suppress(TimeoutError):
            while True:
                received.append(rx.recv(100))

    reader = threading.Thread(target=read_like_chronyd)
    reader.start()
    r = cli("run", "--config", str(conf), env=env)
    reader.join()
    assert r.returncode == 0, r.stderr
    assert len(received) == n_samples  # what the counters below call published
    msgs = drain(notify)
    assert msgs[0]["READY"] == "1"
    assert {"STOPPING": "1"} in msgs
    assert any("locked; last second 2024-03-31T00:3" in m.get("STATUS", "") for m in msgs)
    snap = json.loads((tmp_path / "status.json").read_text())
    assert not snap["running"]
    assert snap["samples_published"] == n_samples and snap["minutes_valid"] == n_valid
    assert snap["locks"] >= 1 and snap["locked"]
    assert f"dcf77shm_samples_published_total {n_samples}\n" in (tmp_path / "m.prom").read_text()


def test_status_command_on_a_running_daemon(tmp_path: Path) -> None:
    proc, st = _run_with_status(tmp_path)
    try:
        r = cli("status", "--file", str(st))
        assert r.returncode == 0, r.stderr
        assert "no lock" in r.stdout and "0 published" in r.stdout
        assert f"pid {proc.pid}" in r.stdout
        j = json.loads(cli("status", "--file", str(st), "--json").stdout)
        assert j["running"] and j["source"] == "sim"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    r = cli("status", "--file", str(st))
    assert r.returncode == 1 and "stopped" in r.stderr and r.stderr.count("\n") == 1
    r = cli("status", "--file", str(tmp_path / "none.json"))
    assert r.returncode == 1 and "not running" in r.stderr


def _run_with_status(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    st = tmp_path / "status.json"
    return start_run_with_status(st, f"sock:{tmp_path}/absent.sock"), st


def test_sighup_stops_cleanly_and_the_status_file_says_so(tmp_path: Path) -> None:
    proc, st = _run_with_status(tmp_path)
    try:
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(20) == 0
    finally:
        proc.kill()
    assert json.loads(st.read_text())["running"] is False
    r = cli("status", "--file", str(st))
    assert r.returncode == 1 and "stopped" in r.stderr


def test_status_of_a_killed_run_names_the_dead_pid(tmp_path: Path) -> None:
    proc, st = _run_with_status(tmp_path)
    proc.kill()  # SIGKILL: no chance to write "stopped"
    proc.wait(20)
    assert json.loads(st.read_text())["running"] is True  # the file still says running
    r = cli("status", "--file", str(st))
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert f"pid {proc.pid} is gone" in r.stderr
