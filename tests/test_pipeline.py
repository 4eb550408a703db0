"""The pipeline (edges -> events) on simulated signals: correctness of every
sample against the simulator's truth, availability, causality, polarity, noise."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcf77shm.decode.pipeline import DECODERS, Pipeline, decode_edges
from dcf77shm.model import NS_PER_MS, NS_PER_S, Edge, Event, Gap, Polarity, Sample, StateChange
from dcf77shm.sources.simulate import SimParams, SimResult, simulate

FIRST_S = 946_684_800  # 2000-01-01
LAST_S = 4_102_444_800 - 2 * 86_400  # 2099-12-30


def samples_of(events: list[Event]) -> list[Sample]:
    return [e for e in events if isinstance(e, Sample)]


def assert_no_false_sample(sim: SimResult, samples: list[Sample]) -> None:
    """Every sample carries the true UTC label of the mark it was taken from."""
    for s in samples:
        label = sim.label_at(s.receive_ns)
        assert label is not None, f"sample at {s.receive_ns} is not near any second mark"
        assert s.clock_ns == label * NS_PER_S, (s, label)


def random_starts(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(FIRST_S, LAST_S) for _ in range(n)]


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("start", random_starts(3, seed=2024))
def test_clean_hour_from_a_random_start(start: int, decoder: str) -> None:
    sim = simulate(SimParams(start_s=start, duration_s=3600, seed=start % 1000))
    samples = samples_of(list(decode_edges(sim.edges, decoder=decoder)))
    assert_no_false_sample(sim, samples)
    assert samples, "no sample in a clean hour"
    first = samples[0].receive_ns
    assert first - start * NS_PER_S <= 180 * NS_PER_S
    # Marks after the first sample (the last one may still be undecided at the end).
    due = [m for m in sim.marks if first <= m.sys_ns < sim.edges[-1].time_ns - NS_PER_S]
    published = {s.receive_ns for s in samples}
    share = sum(m.sys_ns in published for m in due) / len(due)
    assert share >= 0.98, share
    assert all(s.leap == 0 for s in samples)


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("second", [0, 1, 2, 30, 58, 59])
def test_first_sample_within_180_s_whatever_the_second_of_the_start(
    second: int, decoder: str
) -> None:
    start = random_starts(1, seed=second)[0]
    start -= start % 60 - second
    sim = simulate(SimParams(start_s=start, duration_s=240))
    samples = samples_of(list(decode_edges(sim.edges, decoder=decoder)))
    assert_no_false_sample(sim, samples)
    assert samples and samples[0].receive_ns - start * NS_PER_S <= 180 * NS_PER_S


def _events_per_edge(edges: list[Edge], decoder: str) -> list[list[Event]]:
    p = Pipeline(Polarity.AUTO, decoder)
    return [p.feed(e) for e in edges]


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_causal_prefix_yields_the_same_events(decoder: str) -> None:
    sim = simulate(
        SimParams(
            start_s=random_starts(1, seed=9)[0],
            duration_s=900,
            jitter_ms=5,
            glitch_rate=0.05,
            flip_rate=0.01,
            seed=9,
        )
    )
    per_edge = _events_per_edge(sim.edges, decoder)
    assert sum(len(samples_of(evs)) for evs in per_edge) > 300
    rng = random.Random(1)
    cuts = [*sorted(rng.sample(range(1, len(sim.edges)), 8)), len(sim.edges)]
    for k in cuts:
        want = [ev for evs in per_edge[:k] for ev in evs]
        assert list(decode_edges(sim.edges[:k], decoder=decoder)) == want, k


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_causal_with_a_live_source_advancing_time(decoder: str) -> None:
    """``advance`` only releases what the edges already decided: feeding the same
    edges with clock ticks in between yields the same samples, no later."""
    sim = simulate(SimParams(start_s=random_starts(1, seed=3)[0], duration_s=400))
    plain = samples_of([ev for evs in _events_per_edge(sim.edges, decoder) for ev in evs])
    p = Pipeline(Polarity.AUTO, decoder)
    ticked: list[Sample] = []
    for a, b in zip(sim.edges, [*sim.edges[1:], None], strict=True):
        for ev in p.feed(a):
            if isinstance(ev, Sample):
                ticked.append(ev)
        if b is not None:
            for t in range(a.time_ns + 50 * NS_PER_MS, b.time_ns, 170 * NS_PER_MS):
                for ev in p.advance(t):
                    if isinstance(ev, Sample):
                        assert ev.receive_ns <= t
                        ticked.append(ev)
    assert_no_false_sample(sim, ticked)
    assert ticked[: len(plain)] == plain
    assert len(ticked) - len(plain) <= 1  # only the last mark, decided by the ticks


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("forced", [Polarity.AUTO, Polarity.LOW])
def test_inverted_polarity(forced: Polarity, decoder: str) -> None:
    sim = simulate(
        SimParams(start_s=random_starts(1, seed=5)[0], duration_s=600, polarity=Polarity.LOW)
    )
    p = Pipeline(forced, decoder)
    events = [ev for e in sim.edges for ev in p.feed(e)]
    assert p.polarity is Polarity.LOW
    samples = samples_of(events)
    assert_no_false_sample(sim, samples)
    assert len(samples) > 300


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_wrong_forced_polarity_publishes_nothing(decoder: str) -> None:
    sim = simulate(SimParams(start_s=random_starts(1, seed=6)[0], duration_s=600))
    samples = samples_of(list(decode_edges(sim.edges, Polarity.LOW, decoder)))
    assert samples == []


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_gap_drops_the_lock_and_nothing_is_built_across_it(decoder: str) -> None:
    sim = simulate(SimParams(start_s=random_starts(1, seed=8)[0], duration_s=900))
    cut = len(sim.edges) // 2
    gap_ns = sim.edges[cut].time_ns - 1
    items: list[Edge | Gap] = [*sim.edges[:cut], Gap(gap_ns, "test"), *sim.edges[cut:]]
    events = list(decode_edges(items, decoder=decoder))
    lost = [e for e in events if isinstance(e, StateChange) and not e.locked]
    assert [e.time_ns for e in lost] == [gap_ns]
    samples = samples_of(events)
    assert_no_false_sample(sim, samples)
    after = [s for s in samples if s.receive_ns > gap_ns]
    assert after
    # Relocking needs two fresh frames, so the new lock comes at least a
    # minute after the gap (a decoder may then label seconds of those frames).
    relock = [e for e in events if isinstance(e, StateChange) and e.locked and e.time_ns > gap_ns]
    assert relock and relock[0].time_ns - gap_ns >= 60 * NS_PER_S


# Every case has an availability floor, so none passes by publishing nothing
# ("no false sample" is empty then).  Floors are ~80% of what each decoder
# published over the two 12-minute runs when they were set (robust/strict):
# jitter 1225/1109, glitches 1135/414, flips 3% 596/-, flips 1% 918/982,
# drops 3% 850/-, drops 1% 1038/864, mixed 1066/566, +40 ms width offset
# with a 20 ms spread 843/295 (read through the learnt width offset,
# dcf77shm.decode.widths; with fixed thresholds both published 0).  The strict decoder
# needs two whole valid frames in a row: at 3% flipped or dropped pulses
# (P(59 clean bits) = 0.17) it publishes nothing in 24 minutes by design,
# so it is held to 1% instead.
_MIXED = {"jitter_ms": 10.0, "width_spread_ms": 12.0, "glitch_rate": 0.2, "flip_rate": 0.01}
_BIAS_SPREAD = {"width_bias_ms": 40.0, "width_spread_ms": 20.0, "drop_rate": 0.01, "delay_ms": 45.0}
NOISE_CASES = [
    ({"jitter_ms": 10.0}, "robust", 980),
    ({"jitter_ms": 10.0}, "strict", 890),  # 10 ms of jitter alone must not stop strict
    ({"glitch_rate": 0.3, "glitch_ms": 15.0}, "robust", 900),
    ({"glitch_rate": 0.3, "glitch_ms": 15.0}, "strict", 330),
    ({"flip_rate": 0.03}, "robust", 480),
    ({"flip_rate": 0.01}, "robust", 730),
    ({"flip_rate": 0.01}, "strict", 780),
    ({"drop_rate": 0.03}, "robust", 680),
    ({"drop_rate": 0.01}, "robust", 830),
    ({"drop_rate": 0.01}, "strict", 690),
    (_MIXED, "robust", 850),
    (_MIXED, "strict", 450),
    (_BIAS_SPREAD, "robust", 670),
    (_BIAS_SPREAD, "strict", 230),
]


def _noise_id(case: object) -> str:
    return ",".join(case) if isinstance(case, dict) else str(case)


@pytest.mark.parametrize(("noise", "decoder", "floor"), NOISE_CASES, ids=_noise_id)
def test_noise_gives_no_false_sample(noise: dict[str, float], decoder: str, floor: int) -> None:
    total = 0
    for i, start in enumerate(random_starts(2, seed=len(str(noise)))):
        params = SimParams(start_s=start, duration_s=720, seed=i, **noise)  # type: ignore[arg-type]
        sim = simulate(params)
        samples = samples_of(list(decode_edges(sim.edges, decoder=decoder)))
        assert_no_false_sample(sim, samples)
        total += len(samples)
    assert total >= floor, f"{total} samples in 2 x 12 min, expected at least {floor}"


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_flipped_pulses_never_announce_a_leap_second(decoder: str) -> None:
    # A2 (bit 19) has no parity: one flipped pulse must not announce a leap
    # second on an ordinary day (2084-10-10 14:52 UTC here).
    start = random_starts(1, seed=5)[0]
    sim = simulate(SimParams(start_s=start, duration_s=1800, seed=0, flip_rate=0.02))
    samples = samples_of(list(decode_edges(sim.edges, decoder=decoder)))
    assert_no_false_sample(sim, samples)
    assert samples
    assert [s for s in samples if s.leap != 0] == []


# --- arbitrary edge streams ------------------------------------------------------------

_durations = st.one_of(
    st.integers(0, 2 * NS_PER_S),
    st.sampled_from([100, 200, 800, 900, 1800, 1900]).map(lambda ms: ms * NS_PER_MS),
    st.integers(-30, 30).map(lambda ms: (1000 + ms) * NS_PER_MS),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_durations, st.integers(0, 1)), max_size=400),
    st.sampled_from(list(Polarity)),
    st.booleans(),
    st.sampled_from(sorted(DECODERS)),
)
def test_random_edges_never_crash_and_never_sample(
    steps: list[tuple[int, int]], polarity: Polarity, tick: bool, decoder: str
) -> None:
    p = Pipeline(polarity, decoder)
    t = 1_600_000_000 * NS_PER_S
    events: list[Event] = []
    for d, level in steps:
        if tick:  # a live source's clock tick between two edges
            events += p.advance(t + d // 2)
        t += d
        events += p.feed(Edge(t, level))
    events += p.advance(t + 10 * NS_PER_S)
    assert samples_of(events) == []
