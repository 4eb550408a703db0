"""The monitor's pure view, on a simulated signal with known truth and on a real capture."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dcf77shm.formats.edgelog import read_edges
from dcf77shm.model import NS_PER_S, Gap
from dcf77shm.sources.simulate import SimParams, simulate
from dcf77shm.tools.monitor import MonitorView

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "real-signals" / "pollin-dcf1"
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
