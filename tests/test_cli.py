"""The command line: version, help, `decode` output (INTERFACES §2) and bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import run_cli

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
