"""The command line: version, help, `decode` output (INTERFACES §2) and bad options."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clirun import edge_lines, run_cli, wait_for_output, wait_until

from dcf77shm import __version__
from dcf77shm.cli.main import main
from dcf77shm.decode.pipeline import DECODERS
from dcf77shm.formats.edgelog import write_edges
from dcf77shm.model import NS_PER_S
from dcf77shm.sources.simulate import SimParams, SimResult, simulate

START_S = 1_709_164_817  # 2024-02-29T00:00:17Z


@pytest.fixture(scope="module")
def sim_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimResult]:
    sim = simulate(SimParams(start_s=START_S, duration_s=300, jitter_ms=3, seed=1))
    path = tmp_path_factory.mktemp("cli") / "five-minutes.edges.gz"
    write_edges(path, sim.edges)
    return path, sim


def test_version() -> None:
    r = run_cli("--version")
    assert r.returncode == 0 and __version__ in r.stdout and r.stderr == ""


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["decode", "--help"], ["simulate", "-h"]])
def test_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    main(args)
    out = capsys.readouterr().out
    assert "Usage:" in out
    if "decode" in args:
        assert "--json" in out and "--polarity" in out and "--decoder" in out


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_decode_table(
    sim_log: tuple[Path, SimResult], decoder: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = sim_log
    main(["decode", "--decoder", decoder, str(path)])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"{path}: ")
    summary = {ln.split(":", 1)[0] for ln in lines}
    assert {"minutes seen", "samples", "first sample", "polarity"} <= summary
    seen = next(ln for ln in lines if ln.startswith("minutes seen"))
    assert "valid" in seen and "rejected" in seen
    first = next(ln for ln in lines if ln.startswith("first sample"))
    assert "2024-02-29T00:0" in first  # a sample within the first minutes of the log
    # One table line per minute marker, each with the minute it encodes.
    assert sum("2024-02-29T00:0" in ln and " ok" in ln for ln in lines) >= 2


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_decode_json(
    sim_log: tuple[Path, SimResult], decoder: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path, sim = sim_log
    main(["decode", "--json", "--decoder", decoder, str(path)])
    records = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    samples = [r for r in records if r["type"] == "sample"]
    minutes = [r for r in records if r["type"] == "minute"]
    assert samples and minutes
    for r in samples:
        assert {"receive_ns", "clock_ns", "leap"} <= r.keys()
        assert all(type(r[k]) is int for k in ("receive_ns", "clock_ns", "leap"))
        assert r["leap"] in (0, 1, 2) and r["clock_ns"] % NS_PER_S == 0
        assert sim.label_at(r["receive_ns"]) == r["clock_ns"] // NS_PER_S
    for r in minutes:
        assert {"utc", "ok"} <= r.keys() and type(r["ok"]) is bool
        assert r["utc"] is None or (
            isinstance(r["utc"], str) and len(r["utc"]) == 20 and r["utc"].endswith(":00Z")
        )
    assert any(r["ok"] and r["utc"].startswith("2024-02-29T00:0") for r in minutes)
    # Event order: receive times of samples never go backwards.
    receive = [r["receive_ns"] for r in samples]
    assert receive == sorted(receive)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["decode", "--polarity", "sideways", "X"], ["--polarity", "sideways"]),
        (["decode", "--decoder", "nope", "X"], ["--decoder", "nope"]),
        (["decode", "/nonexistent/dir/log.edges"], ["/nonexistent/dir/log.edges"]),
        (["decode"], ["FILES"]),
        (["decode", "--bogus", "X"], ["--bogus"]),
        (["frobnicate"], ["frobnicate"]),
    ],
)
def test_bad_options(args: list[str], words: list[str], tmp_path: Path) -> None:
    log = tmp_path / "ok.edges"
    write_edges(log, simulate(SimParams(start_s=START_S, duration_s=5)).edges)
    r = run_cli(*[str(log) if a == "X" else a for a in args])
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0]


@pytest.mark.parametrize("args", [[], ["shm"]])
def test_no_arguments_print_the_normal_help(args: list[str]) -> None:
    r = run_cli(*args)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Usage: dcf77shm") and len(lines) > 8
    assert "Commands:" in lines and max(map(len, lines)) <= 100
    assert "status" in r.stdout


def test_decode_json_names_the_file_when_there_are_several(
    sim_log: tuple[Path, SimResult], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = sim_log
    other = tmp_path / 'we"ird name.edges'
    other.write_bytes(path.read_bytes())
    main(["decode", "--json", str(path)])
    single = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert single and all("file" not in r for r in single)
    main(["decode", "--json", str(path), str(other)])
    records = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in records] == [str(path)] * len(single) + [str(other)] * len(single)
    assert [{k: v for k, v in r.items() if k != "file"} for r in records] == single * 2


def test_legends_of_the_decode_table_and_the_monitor(
    sim_log: tuple[Path, SimResult], capsys: pytest.CaptureFixture[str]
) -> None:
    from dcf77shm.formats.events import TABLE_HEADER

    path, _ = sim_log
    main(["decode", "--legend", str(path)])
    out = capsys.readouterr().out
    legend, table = out.split(f"{path}: ", 1)
    # every column of the table header is explained
    for column in ("marker (system clock)", "frame encodes (UTC)", "local", "n ", "status"):
        assert column in TABLE_HEADER and any(ln.startswith(column) for ln in legend.splitlines())
    assert TABLE_HEADER in table
    main(["decode", "--help"])
    assert "marker (system clock)  when the minute marker" in capsys.readouterr().out
    main(["monitor", "--help"])
    helptext = capsys.readouterr().out
    for field in ("pulse", "bit", "phase", "glitches", "quality", "LOCKED", "== minute"):
        assert f"\n  {field} " in helptext, field
    r = run_cli("monitor", "--legend", "--source", f"replay:{path}")
    assert r.returncode == 0 and r.stdout.startswith("HH:MM:SS    the second"), r.stderr
    assert " quality " in r.stdout.split("\n\n", 1)[1]


def test_old_and_new_option_names(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    for name in ("--file", "--status-file"):
        r = run_cli("status", name, missing)
        assert r.returncode == 1 and str(missing) in r.stderr, r.stderr
    for name in ("--conf", "--config"):
        r = run_cli("calibrate", name, missing)
        assert r.returncode == 2 and str(missing) in r.stderr and "--config" in r.stderr


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_simulate_leaves_nothing(
    tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    # The edge log goes to a FIFO nobody reads, so simulate blocks opening it
    # with the truth already in its temp file: interrupt it right there.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    truth = tmp_path / "truth.jsonl"
    p = subprocess.Popen(
        [sys.executable, "-m", "dcf77shm", "simulate", "--duration", "10m", "-o", str(fifo),
         "--truth", str(truth)],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]:
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.05)
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    # (click puts a newline after the terminal's ^C first)
    assert p.returncode == status and err.strip() == "dcf77shm: interrupted", err
    assert sorted(f.name for f in tmp_path.iterdir()) == ["fifo"]


def test_sigterm_stops_shm_watch_and_record_cleanly(tmp_path: Path) -> None:
    import sysv_ipc

    from dcf77shm.sinks.shm import ShmSink, key_for

    unit = 38000 + os.getpid() % 900
    sink = ShmSink(unit)
    sink.open()
    log = tmp_path / "future.edges"
    write_edges(
        log, simulate(SimParams(start_s=time.time_ns() // NS_PER_S + 2, duration_s=60)).edges
    )
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "dcf77shm", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for args in (
                ["shm", "status", str(unit), "--watch"],
                ["record", "--source", f"replay:{log}", "--pace", "-o", str(tmp_path / "r.edges")],
                ["monitor", "--source", f"replay:{log}", "--pace"],
            )
        ]
        # Each is past its start (its signal handling in place) once it shows
        # its first output: the header, an edge in the file, a second's line.
        watch, _record, mon = procs
        assert watch.stdout is not None and mon.stdout is not None
        wait_for_output(watch, watch.stdout, "receive")
        wait_until(lambda: edge_lines(tmp_path / "r.edges.part") > 0, "record writes an edge")
        wait_for_output(mon, mon.stdout, "pulse")
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            _, err = p.communicate(timeout=30)
            assert p.returncode == 0 and "Traceback" not in err, (p.args, err)
        assert (tmp_path / "r.edges").exists() and not (tmp_path / "r.edges.part").exists()
    finally:
        sink.close()
        sysv_ipc.SharedMemory(key_for(unit)).remove()


def test_decode_json_minutes_local_time_and_times_in_ns(tmp_path: Path) -> None:
    """The robust decoder names the local time as strict does; every time key
    is in nanoseconds (`*_ns`), none in seconds."""
    log = tmp_path / "spoofed.edges"
    # A spoofer an hour ahead after 20 minutes: frames that contradict the count.
    r = run_cli(
        "simulate", "--start", "2024-05-01T10:00:00Z", "--duration", "40m", "--seed", "2",
        "--spoof", "1200:900:shift=+1h", "-o", log,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    minutes = {}
    for decoder in ("strict", "robust"):
        out = run_cli("decode", "--json", "--decoder", decoder, log)
        assert out.returncode == 0, out.stderr
        recs = [json.loads(line) for line in out.stdout.splitlines()]
        minutes[decoder] = {m["utc"]: m for m in recs if m["type"] == "minute" and m["ok"]}
        for m in (m for m in recs if m["type"] == "minute"):
            assert not {"expected", "evidence_utc", "decoded"} & m.keys(), m
            for k, v in m.items():
                if k.endswith("_ns"):
                    assert isinstance(v, int) and v > 1_700_000_000 * 10**9, (k, m)
    robust = minutes["robust"]
    assert len(robust) > 10
    for utc, m in robust.items():
        assert m["local"].endswith(" CEST")
        if utc in minutes["strict"]:
            assert m["local"] == minutes["strict"][utc]["local"]
    keys = {k for m in robust.values() for k in m}
    assert "expected_ns" in keys
    text = run_cli("decode", "--json", log).stdout
    assert '"decoded_ns": ' in text and '"disagrees-with-count"' in text
