"""The shipped fixtures decode to what the transmitter's rules say they must.

Expectations come from ``fixtures/NAME.expected.json`` and the simulator's truth
(``NAME.truth.jsonl.gz``), never from a previous decoder run.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from dcf77shm.decode.pipeline import DECODERS, decode_edges
from dcf77shm.formats.edgelog import read_edges
from dcf77shm.formats.events import utc_minute
from dcf77shm.model import NS_PER_S, Leap, MinuteReport, Sample

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NAMES = sorted(p.name.removesuffix(".expected.json") for p in FIXTURES.glob("*.expected.json"))
CLEAN = [n for n in NAMES if not n.startswith("noisy")]


def _load(name: str) -> tuple[dict[str, object], dict[int, int], list[dict[str, int]]]:
    exp = json.loads((FIXTURES / f"{name}.expected.json").read_text())
    with gzip.open(FIXTURES / f"{name}.truth.jsonl.gz", "rt") as f:
        truth = [json.loads(line) for line in f]
    return exp, {t["sys_ns"]: t["label_s"] for t in truth}, truth


def _label_near(truth: dict[int, int], receive_ns: int, tol_ns: int) -> int | None:
    best = min(truth, key=lambda t: abs(t - receive_ns))
    return truth[best] if abs(best - receive_ns) <= tol_ns else None


def test_fixture_set_is_complete() -> None:
    wanted = {"dst-start", "dst-end", "leap", "year-change", "feb29", "inverted", "noisy"}
    assert all(any(n.startswith(w) for n in NAMES) for w in wanted)


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("name", NAMES)
def test_fixture_decodes_to_truth(name: str, decoder: str) -> None:
    exp, truth, _ = _load(name)
    events = list(decode_edges(read_edges(FIXTURES / f"{name}.edges.gz"), decoder=decoder))
    minutes = [e for e in events if isinstance(e, MinuteReport) and e.ok]
    samples = [e for e in events if isinstance(e, Sample)]
    expected_minutes = exp["minutes"]
    assert isinstance(expected_minutes, list)
    got = [utc_minute(m.utc_s) or "(none)" for m in minutes]
    # Every valid minute is one the log really holds, in order.
    assert all(g in expected_minutes for g in got), got
    assert got == sorted(got)
    # Every sample carries the label of the mark it was taken from.
    for s in samples:
        assert s.clock_ns % NS_PER_S == 0
        assert _label_near(truth, s.receive_ns, 60_000_000) == s.clock_ns // NS_PER_S, s
    if name in CLEAN:
        assert got == expected_minutes[: len(got)]
        assert len(got) >= len(expected_minutes) - 1
        duration = exp["duration_s"]
        assert isinstance(duration, int)
        # After at most ~3 minutes to lock, nearly every second is published
        # (fewer in the minute held after a leap second).
        assert len(samples) >= 0.9 * (duration - 240)


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("leap")])
def test_leap_flag_and_no_sample_in_the_inserted_second(name: str, decoder: str) -> None:
    exp, _, truth_list = _load(name)
    ends = exp["leap_second_ends"]
    assert isinstance(ends, list) and len(ends) == 1
    leap_end = ends[0]
    samples = [
        e
        for e in decode_edges(read_edges(FIXTURES / f"{name}.edges.gz"), decoder=decoder)
        if isinstance(e, Sample)
    ]
    before = [s for s in samples if s.clock_ns < leap_end * NS_PER_S]
    after = [s for s in samples if s.clock_ns >= leap_end * NS_PER_S]
    assert before and after
    # Leap indicator 1 during the announcement hour (once two frames have
    # repeated A2, which has no parity), 0 once it is done.
    assert all(s.leap is Leap.INSERT for s in before if s.clock_ns >= (leap_end - 3420) * NS_PER_S)
    assert all(s.leap is Leap.NONE for s in after)
    # 23:59:60 has no pulse and no label: nothing may be received during it.
    # The truth lists two marks labelled 23:59:59 at most once; the inserted
    # second lies between the 23:59:59 mark and the 00:00:00 mark.
    t59 = next(t["sys_ns"] for t in truth_list if t["label_s"] == leap_end - 1)
    t00 = next(t["sys_ns"] for t in truth_list if t["label_s"] == leap_end)
    assert not [s for s in samples if t59 + NS_PER_S // 2 < s.receive_ns < t00 - NS_PER_S // 2]
