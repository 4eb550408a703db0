"""The monitor's pure view, on a simulated signal with known truth and on a real capture."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from clirun import on_a_terminal, run_cli

from dcf77shm.formats.edgelog import read_edges
from dcf77shm.model import NS_PER_S, Gap
from dcf77shm.sources.simulate import SimParams, simulate
from dcf77shm.tools.monitor import MonitorView, screen

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "real-signals" / "pollin-dcf1"
START = 1_790_000_000
LINE = re.compile(r"^(\d\d:\d\d:\d\d)  pulse +(\S+)(?: ms)?  bit (\S)  .*quality +(\d+)%")


def run_view(edges: list) -> list[str]:  # type: ignore[type-arg]
    v = MonitorView()
    out: list[str] = []
    for e in edges:
        out += v.feed(e)
    return out


def test_bits_and_labels_match_the_simulated_truth() -> None:
    start = 1_700_000_000 - 1_700_000_000 % 60 + 20
    sim = simulate(SimParams(start, 280, jitter_ms=3, width_spread_ms=8, glitch_rate=0.05, seed=5))
    lines = run_view(sim.edges)
    truth = {m.sys_ns // NS_PER_S % 86400: m for m in sim.marks}
    seconds = [m for m in map(LINE.match, lines) if m]
    assert len(seconds) >= 270  # one line a second
    checked = 0
    for m in seconds:
        h, mi, s = map(int, m.group(1).split(":"))
        t = truth.get(h * 3600 + mi * 60 + s)
        if t is not None and m.group(3) in "01":
            assert int(m.group(3)) == t.bit, m.group(0)
            checked += 1
    assert checked >= 260
    assert any("== lock gained" in x for x in lines)
    assert sum("== minute" in x and " ok" in x for x in lines) >= 2
    # While locked, each second carries the label the decoder gave it: the truth.
    labelled = [x for x in lines if " = " in x]
    assert len(labelled) >= 60
    for x in labelled:
        shown = x.split(" = ")[1].removesuffix(" UTC")
        assert shown == x[:8]  # simulated system clock = radio clock here
    assert int(seconds[-1].group(4)) >= 90


def test_glitches_lower_the_quality_and_a_gap_is_shown() -> None:
    clean = simulate(SimParams(1_700_000_000, 90, seed=1)).edges
    noisy = simulate(SimParams(1_700_000_000, 90, glitch_rate=2, glitch_ms=20, seed=1)).edges
    q_clean = int([m for m in map(LINE.match, run_view(clean)) if m][-1].group(4))
    q_noisy = int([m for m in map(LINE.match, run_view(noisy)) if m][-1].group(4))
    assert q_clean >= 95 and q_noisy < q_clean - 20
    v = MonitorView()
    for e in clean[:40]:
        v.feed(e)
    assert v.feed(Gap(clean[40].time_ns, "pigpiod restarted")) == ["== gap: pigpiod restarted"]


def test_real_capture() -> None:
    path = REAL / "dcf77_480s.edges"
    if not path.exists():
        pytest.skip("../shared/real-signals absent")
    lines = run_view(read_edges(path))
    seconds = [m for m in map(LINE.match, lines) if m]
    assert 160 <= len(seconds) <= 180  # a 176 s capture
    widths = [float(m.group(2)) for m in seconds if m.group(2) != "-"]
    assert sum(60 <= w <= 260 for w in widths) >= 0.95 * len(widths)
    assert any("== lock gained" in x for x in lines)
    assert int(seconds[-1].group(4)) >= 80


def test_the_full_screen_view_shows_quality_widths_and_phase() -> None:
    # Pulses of 100 and 200 ms with 5 ms jitter: the histogram peaks there and
    # the phase chart is a flat line at 0; glitches lower the quality bar.
    def view_of(glitch_rate: float) -> list[str]:
        sim = simulate(SimParams(START, 700, jitter_ms=5, glitch_rate=glitch_rate, seed=2))
        v = MonitorView()
        for e in sim.edges:
            v.feed(e)
        v.advance(sim.edges[-1].time_ns + 3 * NS_PER_S)
        return screen(v, "title")

    clean = view_of(0.0)
    assert clean[0] == "title" and clean[1].startswith("LOCKED = ")
    rows = {ln.split("|")[0].strip(): ln for ln in clean if " ms |" in ln}
    counts = {k: int(v.split()[-1]) for k, v in rows.items()}
    assert max(counts, key=lambda k: counts[k]) == "100-120 ms"
    assert sorted(counts, key=lambda k: counts[k])[-2] == "200-220 ms"
    phase = {ln.split("|")[0].strip(): ln.split("|")[1] for ln in clean if ln.startswith("   ")
             and "|" in ln and " ms |" not in ln}  # fmt: skip
    assert phase["+0"].count("*") >= 55 and not phase["+40"].strip() and not phase["-40"].strip()
    assert any(ln.startswith("== minute") and ln.endswith(" ok") for ln in clean)

    def bar(lines: list[str]) -> int:
        return lines[1].split("[")[1].count("#")

    assert bar(clean) > bar(view_of(1.0)) > 0


def _on_a_terminal(*args: str | Path) -> str:
    """The CLI with stdout on a pseudo-terminal: what the terminal got."""
    rc, got = on_a_terminal(*args, stdout_tty=True, stderr_tty=False)
    assert rc == 0
    return got


def test_monitor_is_full_screen_on_a_terminal_and_lines_when_piped(tmp_path: Path) -> None:
    log = tmp_path / "s.edges"
    r = run_cli("simulate", "--start", "2024-05-01T10:00:00Z", "--duration", "4m", "-o", log)
    assert r.returncode == 0, r.stderr
    tty = _on_a_terminal("monitor", "--source", f"replay:{log}")
    assert tty.startswith("\x1b[?25l\x1b[H\x1b[2J") and tty.endswith("\x1b[?25h")
    assert "pulse widths, last" in tty and "quality" in tty and "LOCKED = " in tty
    piped = run_cli("monitor", "--source", f"replay:{log}")
    assert piped.returncode == 0 and "\x1b" not in piped.stdout
    assert sum(1 for ln in piped.stdout.splitlines() if LINE.match(ln)) > 200
    plain = _on_a_terminal("monitor", "--lines", "--source", f"replay:{log}")
    assert (
        "\x1b" not in plain and "pulse widths" not in plain and LINE.search(plain.replace("\r", ""))
    )
