"""`dcf77shm run`: the loop, the safety net, signals, and the CLI's errors."""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from chronystructs import chrony_sock_sample
from clirun import run_cli, wait_for_output

from dcf77shm.model import NS_PER_S, DropReason, Sample
from dcf77shm.service.runner import RunHooks, Runner, SampleCheck

MS = 1_000_000


def _why(found: tuple[DropReason, str] | None) -> str:
    return "" if found is None else found[1]


def test_safety_net_drops_with_reasons() -> None:
    c = SampleCheck()
    assert c.reason(Sample(10 * NS_PER_S + 5, 11 * NS_PER_S)) is None
    assert "whole second" in _why(c.reason(Sample(11 * NS_PER_S, 12 * NS_PER_S + 1)))
    assert "previous" in _why(c.reason(Sample(10 * NS_PER_S + 5, 12 * NS_PER_S)))
    assert "previous" in _why(c.reason(Sample(11 * NS_PER_S, 11 * NS_PER_S)))
    assert c.reason(Sample(11 * NS_PER_S, 12 * NS_PER_S)) is None
    assert "beyond" in _why(c.reason(Sample(12 * NS_PER_S, 2**33 * NS_PER_S)))
    assert "future" in _why(c.reason(Sample(20 * NS_PER_S, 21 * NS_PER_S), now_ns=18 * NS_PER_S))
    assert c.reason(Sample(20 * NS_PER_S, 21 * NS_PER_S), now_ns=20 * NS_PER_S) is None
    # chrony drops a refclock sample older than 2^(poll+1) s (32 s at poll 4)
    assert "chrony would drop" in _why(
        c.reason(Sample(21 * NS_PER_S, 22 * NS_PER_S), now_ns=52 * NS_PER_S)
    )


SockSample = chrony_sock_sample(ctypes.c_int64)


def test_replay_publishes_exactly_what_decode_reports(tmp_path: Path) -> None:
    log = tmp_path / "sim.edges"
    r = run_cli(
        "simulate",
        "--start",
        "2024-03-31T00:30:00Z",
        "--duration",
        "6m",
        "--jitter-ms",
        "4",
        "--glitch-rate",
        "0.05",
        "--seed",
        "3",
        "-o",
        str(log),
    )
    assert r.returncode == 0, r.stderr
    decoded = [json.loads(x) for x in run_cli("decode", "--json", str(log)).stdout.splitlines()]
    want = [(d["receive_ns"], d["clock_ns"]) for d in decoded if d["type"] == "sample"]
    assert len(want) > 100
    path = tmp_path / "chrony.sock"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))
    rx.settimeout(1.0)
    got: list[tuple[int, int]] = []

    def drain() -> None:
        # Like chronyd: read as they come (a unix datagram queue holds only
        # net.unix.max_dgram_qlen = 10 datagrams; beyond that the sink waits).
        while True:
            try:
                s = SockSample.from_buffer_copy(rx.recv(100))
            except TimeoutError:
                return
            receive_ns = s.tv.tv_sec * NS_PER_S + s.tv.tv_usec * 1000
            got.append((receive_ns, receive_ns + round(s.offset * NS_PER_S)))

    reader = threading.Thread(target=drain)
    reader.start()
    r = run_cli("run", "--source", f"replay:{log}", "--output", f"sock:{path}", "-v")
    reader.join()
    rx.close()
    assert r.returncode == 0, r.stderr
    assert "LOCK: " in r.stderr
    assert len(got) == len(want)  # a reading chronyd gets every sample
    wanted = {c: rc for rc, c in want}
    for gr, gc in got:
        assert 0 <= wanted[gc] - gr < 1000  # tv holds µs; the offset carries the rest


def test_sigterm_ends_run_cleanly(tmp_path: Path) -> None:
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dcf77shm",
            "run",
            "--source",
            "sim",
            "--output",
            f"sock:{tmp_path / 'none.sock'}",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stderr is not None
    # Logged once its signal handlers are in place and the source is open.
    started = wait_for_output(p, p.stderr, "reading sim")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=10)
    err = started + err
    assert p.returncode == 0, err
    assert "stopping on SIGTERM" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--source", "bogus:1", "--output", "shm:1"], "unknown source"),
        (["--source", "sim", "--output", "nfs:1"], "unknown output"),
        (["--source", "replay:/nonexistent.edges", "--output", "shm:1"], "cannot read"),
        (["--source", "sim", "--output", "sock:relative.sock"], "absolute"),
    ],
)
def test_bad_specs_are_one_line_exit_2(args: list[str], needle: str) -> None:
    r = run_cli("run", *args)
    assert r.returncode == 2
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_shm_status(tmp_path: Path) -> None:
    import sysv_ipc

    from dcf77shm.sinks.shm import ShmSink, key_for

    unit = 30000 + os.getpid() % 9000
    r = run_cli("shm", "status", str(unit))
    # A missing segment is a state (exit 1, like `status`), not a usage error.
    assert r.returncode == 1 and "refclock SHM" in r.stderr and "does not exist" in r.stderr
    sink = ShmSink(unit)
    try:
        sink.open()
        sink.publish(Sample(1_700_000_000 * NS_PER_S + 975 * MS, 1_700_000_001 * NS_PER_S))
        r = run_cli("shm", "status", str(unit))
        assert r.returncode == 0, r.stderr
        out = r.stdout
        assert "mode 0600" in out and "bytes" in out and "time_t layout" in out
        assert "mode 1  count 2  valid 1" in out
        assert "2023-11-14T22:13:21.000000Z" in out and "offset   +0.025000000 s" in out
    finally:
        sink.close()
        sysv_ipc.SharedMemory(key_for(unit)).remove()


def test_shm_status_watch_prints_each_new_sample() -> None:
    import sysv_ipc

    from dcf77shm.sinks.shm import ShmSink, key_for

    unit = 39000 + os.getpid() % 900
    sink = ShmSink(unit)
    sink.open()
    try:
        p = subprocess.Popen(
            [sys.executable, "-m", "dcf77shm", "shm", "status", str(unit), "--watch"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert p.stdout is not None
        out = wait_for_output(p, p.stdout, "receive")  # the header: it is watching
        t = 1_700_000_000 * NS_PER_S
        for i in range(3):
            sink.publish(Sample(t + i * NS_PER_S - 40 * MS, t + i * NS_PER_S))
            # Each sample shown before the next (count 2, 4, 6: two per write).
            out += wait_for_output(p, p.stdout, f" {2 * (i + 1)} 1\n")
        p.send_signal(signal.SIGINT)
        rest, err = p.communicate(timeout=10)
        out += rest
        assert p.returncode == 0, err
        rows = [ln for ln in out.splitlines() if ln.endswith(" 1") and "+0.040000000 s" in ln]
        assert [r.split()[-2] for r in rows] == ["2", "4", "6"]
    finally:
        sink.close()
        sysv_ipc.SharedMemory(key_for(unit)).remove()


def _small_log(tmp_path: Path, start_s: int = 1_709_208_030) -> Path:
    from dcf77shm.formats.edgelog import write_edges
    from dcf77shm.sources.simulate import SimParams, simulate

    log = tmp_path / "small.edges"
    write_edges(log, simulate(SimParams(start_s=start_s, duration_s=20)).edges)
    return log


def test_packaged_unit_and_socket_are_the_shipped_chrony_lines() -> None:
    from dcf77shm.sinks.shm import PACKAGED_UNIT
    from dcf77shm.sinks.sock import PACKAGED_SOCK
    from dcf77shm.testing.chronyd import CHRONY_DIR

    shm_line = (CHRONY_DIR / "dcf77shm.conf").read_text()
    sock_line = (CHRONY_DIR / "dcf77shm-sock.conf").read_text()
    assert re.search(rf"^refclock SHM {PACKAGED_UNIT} ", shm_line, re.M)
    assert re.search(rf"^refclock SOCK {re.escape(PACKAGED_SOCK)} ", sock_line, re.M)


@pytest.mark.parametrize(
    ("source", "output"),
    [("sim", "shm:77"), ("replay:LOG", "shm:77"), ("sim", "shm:0077"),
     ("replay:LOG", "sock:/run/dcf77shm-sock/dcf77.sock"),
     ("sim", "sock:/run/dcf77shm-sock//dcf77.sock")],
)  # fmt: skip
def test_test_sources_refuse_the_live_unit_without_force(
    tmp_path: Path, source: str, output: str
) -> None:
    source = source.replace("LOG", str(_small_log(tmp_path)))
    r = run_cli("run", "--source", source, "--output", output)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "--force" in r.stderr and "packaged chrony config" in r.stderr
    # --force lifts the refusal (shown with a log that then fails to open, so
    # that nothing is ever written to the live unit here).
    r = run_cli("run", "--source", "replay:/nonexistent.edges", "--output", output, "--force")
    assert r.returncode == 2 and "cannot read" in r.stderr, r.stderr


def test_shm_without_a_unit_is_refused() -> None:
    for output in ("shm", "shm:"):
        r = run_cli("run", "--source", "replay:/x.edges", "--output", output)
        assert r.returncode == 2 and "needs a unit" in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--source", "sim", "--bias", "pull-up"], "--bias does nothing with --source sim"),
        (["--source", "replay:LOG", "--glitch-filter-us", "50"], "--glitch-filter-us does"),
        (["--source", "sim", "--pace"], "--pace does nothing"),
        (["--source", "pigpio:17", "--pace"], "--pace does nothing"),
        (["--source", "replay:LOG", "--sim-jitter-ms", "3"], "--sim-jitter-ms does nothing"),
    ],
)
def test_options_the_source_ignores_are_refused(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    log = str(_small_log(tmp_path))
    args = [a.replace("LOG", log) for a in args]
    r = run_cli("run", *args, "--output", f"sock:{tmp_path}/absent.sock")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert needle in r.stderr
    if "--sim-jitter-ms" not in args:
        r = run_cli("monitor", *args)
        assert r.returncode == 2 and needle in r.stderr, r.stderr


def test_source_options_from_the_config_file_only_warn(tmp_path: Path) -> None:
    conf = tmp_path / "d.toml"
    conf.write_text('bias = "pull-up"\n')
    log = _small_log(tmp_path)
    r = run_cli(
        "run", "--config", conf, "--source", f"replay:{log}", "--output", f"sock:{tmp_path}/a.sock"
    )
    assert r.returncode == 0, r.stderr
    assert "warning: --bias does nothing with --source replay" in r.stderr


def test_sock_path_in_a_missing_directory_fails_at_start(tmp_path: Path) -> None:
    log = _small_log(tmp_path)
    r = run_cli(
        "run", "--source", f"replay:{log}", "--output", f"sock:{tmp_path}/nodir/chrony.sock"
    )
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert f"no directory {tmp_path}/nodir" in r.stderr


def test_pace_warns_when_the_log_is_far_from_now(tmp_path: Path) -> None:
    log = _small_log(tmp_path)  # 2024: long past
    r = run_cli("run", "--source", f"replay:{log}", "--pace", "--output", f"sock:{tmp_path}/a.sock")
    assert r.returncode == 0, r.stderr
    assert "warning:" in r.stderr and "h before now" in r.stderr and "chrony drops" in r.stderr
    assert r.stderr.count("warning") == 1  # once, not per edge
    # Two minutes back: already more than chrony keeps (2^(poll+1) = 32 s).
    recent = _small_log(tmp_path, time.time_ns() // NS_PER_S - 120)
    r = run_cli(
        "run", "--source", f"replay:{recent}", "--pace", "--output", f"sock:{tmp_path}/a.sock"
    )
    assert r.returncode == 0 and r.stderr.count("warning") == 1, r.stderr
    assert " s before now" in r.stderr and "chrony drops" in r.stderr
    near = _small_log(tmp_path, time.time_ns() // NS_PER_S - 25)
    r = run_cli(
        "run", "--source", f"replay:{near}", "--pace", "--output", f"sock:{tmp_path}/a.sock"
    )
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


def test_samples_chronyd_never_got_are_not_counted_as_published(tmp_path: Path) -> None:
    log = tmp_path / "sim.edges"
    r = run_cli("simulate", "--start", "2024-05-01T10:00:00Z", "--duration", "5m", "-o", log)
    assert r.returncode == 0, r.stderr
    st = tmp_path / "status.json"
    # No chronyd behind the socket: every sample is lost.
    r = run_cli("run", "--source", f"replay:{log}", "--output", f"sock:{tmp_path}/none.sock",
                "--status-file", st)  # fmt: skip
    assert r.returncode == 0, r.stderr
    snap = json.loads(st.read_text())
    lost = snap["samples_dropped"].get(DropReason.UNDELIVERED.value, 0)
    assert lost > 60  # minutes of decoded seconds, each one lost
    assert snap["samples_published"] == 0
    assert "0 samples published" in r.stderr


class _Items:
    """A source whose reads hand out given batches (the runner's naps move the clock)."""

    description = "items"

    def __init__(self, batches: list[list[Sample]], live: bool) -> None:
        self.batches, self.live = batches, live
        self.timeouts: list[float] = []

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self, timeout_s: float) -> list[Sample] | None:
        self.timeouts.append(timeout_s)
        return self.batches.pop(0) if self.batches else None


class _Passing:
    """A pipeline that passes samples through (the runner's part is under test)."""

    def feed(self, item: Sample) -> list[Sample]:
        return [item]

    def advance(self, now_ns: int, mono_ns: int | None = None) -> list[Sample]:
        return []


class _SpacedSink:
    description = "spaced"
    min_spacing_ns = 600 * MS
    dropped = 0

    def __init__(self, mono: list[int]) -> None:
        self.mono = mono
        self.got: list[tuple[int, Sample]] = []

    def open(self) -> None: ...

    def close(self) -> None: ...

    def publish(self, s: Sample) -> None:
        self.got.append((self.mono[0], s))


class _Hooks(RunHooks):
    def __init__(self) -> None:
        self.drops: list[tuple[Sample, DropReason]] = []

    def dropped(self, s: Sample, reason: DropReason) -> None:
        self.drops.append((s, reason))


@pytest.mark.parametrize("live", [True, False])
def test_shm_samples_are_spaced_for_chronys_reads(live: bool) -> None:
    # An SHM segment holds one sample and chrony reads it every 0.5 s: a burst
    # (the seconds confirmed together at lock) would leave chrony the last one
    # only.  Live, the runner writes them >= 0.6 s apart; of three released at
    # once the middle one is superseded - counted, not silently overwritten.
    # And live it reads once a second, never blocking in the source, waking
    # between only for a waiting sample.
    t0 = 1_700_000_000 * NS_PER_S
    s = [Sample(t0 + k * NS_PER_S + 30 * MS, t0 + k * NS_PER_S) for k in range(5)]
    mono = [0]
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        mono[0] += round(seconds * NS_PER_S)

    src = _Items([[s[0], s[1], s[2]], [], [s[3]], [s[4]], []], live)
    sink, hooks = _SpacedSink(mono), _Hooks()
    runner = Runner(src, sink, _Passing(), lambda: t0 + 6 * NS_PER_S, hooks,  # type: ignore[arg-type]
                    mono_clock=lambda: mono[0], sleep=nap)  # fmt: skip
    st = runner.run()
    written = [x for _, x in sink.got]
    if not live:  # an unpaced replay: as fast as it goes, nothing held, no naps
        assert written == s and not hooks.drops and not naps
        return
    assert written == [s[0], s[2], s[3], s[4]]
    assert hooks.drops == [(s[1], DropReason.SUPERSEDED)]
    assert st.published == 4 and st.dropped == {"superseded": 1}
    times = [t for t, _ in sink.got]
    assert all(b - a >= 600 * MS for a, b in itertools.pairwise(times))
    assert set(src.timeouts) == {0.0}  # never blocks in the source
    assert all(0 < n <= 1.0 for n in naps) and 0.6 in [round(n, 3) for n in naps]
