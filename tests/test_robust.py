"""The robust decoder's parts: evidence margin, count witness, tracker, and
"no false sample" on DCF77-shaped noise and on adversarial streams."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from truth import wrong_samples

from dcf77shm import timecode
from dcf77shm.decode.pipeline import decode_edges
from dcf77shm.decode.robust import fields
from dcf77shm.decode.robust.tracker import Tracker
from dcf77shm.decode.robust.witness import SILENT, CountWitness
from dcf77shm.model import NS_PER_MS, NS_PER_S, Alarm, AlarmKind, Edge, Sample, StateChange
from dcf77shm.sources.simulate import Segment, SegmentKind, SimParams, simulate

LAM = 4.0


def soft_frames(utc_minute: int, n: int, flips: int = 0, seed: int = 0) -> list[list[float]]:
    """n clean soft frames ending with the one that encodes ``utc_minute``."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        bits = timecode.encode(timecode.timecode_for(utc_minute - 60 * (n - 1 - i)))
        llr = [LAM if b else -LAM for b in bits[:59]]
        for j in rng.sample(range(17, 59), flips):
            llr[j] = -llr[j]
        out.append(llr)
    return out


# --- evidence margin --------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(946_684_800 // 60 + 60, 4_102_437_600 // 60).map(lambda m: m * 60))
def test_clean_frames_give_the_true_minute_with_a_margin(utc_minute: int) -> None:
    v = fields.evaluate(soft_frames(utc_minute, 4))
    if v.utc_s is None:  # a local midnight or DST change inside the window
        assert v.reason
        return
    assert v.utc_s == utc_minute
    # Every other hypothesis differs in >= 2 bits in every frame where it
    # differs at all; only an hour change inside the window leaves a rival
    # (another kind of change) that differs in the frames after it alone.
    hour_change_inside = (utc_minute // 60) % 60 < 3
    assert v.margin >= 2 * LAM * (1 if hour_change_inside else 4) - 1e-9


def test_margin_grows_with_frames_and_shrinks_with_errors() -> None:
    minute = 1_700_000_040 - 1_700_000_040 % 60
    m2 = fields.evaluate(soft_frames(minute, 2)).margin
    m6 = fields.evaluate(soft_frames(minute, 6)).margin
    assert m6 > m2 > 0
    noisy = fields.evaluate(soft_frames(minute, 6, flips=3, seed=1))
    assert noisy.margin < m6


def test_no_information_gives_no_margin() -> None:
    v = fields.evaluate([[0.0] * 59 for _ in range(5)])
    assert v.margin <= 0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.integers(2, 8))
def test_random_soft_frames_never_reach_the_lock_margin(seed: int, n: int) -> None:
    rng = random.Random(seed)
    frames = [[rng.choice((-LAM, LAM)) for _ in range(59)] for _ in range(n)]
    assert fields.evaluate(frames).margin < 20.0


def test_best_date_respects_the_calendar() -> None:
    # Scores that favour 31 February: the best real date must be another one.
    llr = [0.0] * 59
    bits = timecode.encode(timecode.TimeCode(2024, 2, 29, 12, 0, 4, False))
    for j in range(36, 59):
        llr[j] = LAM if bits[j] else -LAM
    choice = fields.best_date(fields.Tables.of(llr))
    assert choice.date is not None and str(choice.date) == "2024-02-29"
    assert choice.runner_up < choice.score


# --- count witness ------------------------------------------------------------


def _symbols(w: CountWitness, labels: range) -> list[int]:
    out = []
    for lab in labels:
        p = w.predict(lab)
        out.append(SILENT if p is None else p)
    return out


def test_witness_trusts_a_right_count_and_catches_a_slipped_one() -> None:
    w = CountWitness()
    start = 1_800_000_000 - 1_800_000_000 % 60
    truth = _symbols(CountWitness(), range(start, start + 180))
    for i in range(60):
        w.observe(start + i, truth[i])
    here, shifted = w.lead()
    assert here >= 20 and here - shifted >= 3
    assert not w.slipped(3)
    # The clock jumps one second: the count labels second k+1 as k.
    caught_after = None
    for i in range(60, 120):
        w.observe(start + i, truth[i + 1])
        if w.slipped(3):
            caught_after = i - 60
            break
    assert caught_after is not None and caught_after < 25


# --- tracker --------------------------------------------------------------------


def test_tracker_follows_a_500_ppm_rate_error() -> None:
    sim = simulate(SimParams(start_s=1_600_000_000, duration_s=300, jitter_ms=8, rate_ppm=500))
    tr = Tracker()
    from dcf77shm.decode.frontend import FrontEnd

    fe = FrontEnd()
    errors = []
    truth = {m.label_s: m for m in sim.marks}
    for e in sim.edges:
        for t in fe.feed(e):
            for s in tr.transition(t):
                if s.n > 150 and s.edge_ns is not None:
                    near = min(truth.values(), key=lambda m: abs(m.sys_ns - s.start_ns))
                    errors.append(abs(s.start_ns - near.sys_ns))
    assert errors
    errors.sort()
    # The loop's prediction stays within a few ms of the true mark.
    assert errors[len(errors) // 2] < 5 * NS_PER_MS
    assert errors[-1] < 25 * NS_PER_MS


# --- no false sample -----------------------------------------------------------------


def dcf77_shaped_noise(seed: int, seconds: int) -> list[Edge]:
    """1 Hz pulses of 100/200 ms with a silent 59th second, but random bits."""
    rng = random.Random(seed)
    t = 1_500_000_000 * NS_PER_S + rng.randrange(NS_PER_S)
    edges = []
    for k in range(seconds):
        if k % 60 != 59:
            width = (200 if rng.random() < 0.5 else 100) + rng.gauss(0, 8)
            edges.append(Edge(t, 1))
            edges.append(Edge(t + int(width * NS_PER_MS), 0))
        t += NS_PER_S
    return edges


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**32))
def test_dcf77_shaped_noise_never_yields_a_sample(seed: int) -> None:
    events = list(decode_edges(dcf77_shaped_noise(seed, 20 * 60), decoder="robust"))
    assert not [e for e in events if isinstance(e, Sample)]


def test_a_spoofed_time_after_a_lock_is_refused_and_alarmed() -> None:
    # A signal that suddenly encodes another time (a transmitter fault or a
    # spoofer), in phase with the old one: the decoder must drop its lock, and
    # the held count must refuse the new time when the decoder locks on it.
    start = 1_650_000_000 - 1_650_000_000 % 60
    spoof = Segment(600, 900, SegmentKind.SPOOF, shift_s=86_400 + 17 * 60)
    sim = simulate(SimParams(start_s=start, duration_s=1500, segments=(spoof,)))
    events = list(decode_edges(sim.edges, decoder="robust"))
    samples = [e for e in events if isinstance(e, Sample)]
    assert wrong_samples(sim, samples) == []
    spoof_mono = sim.marks[0].mono_ns + 600 * NS_PER_S
    assert [s for s in samples if (s.mono_ns or 0) < spoof_mono]  # published before
    # In phase with the genuine marks, the spoofer's first seconds carry the held
    # count's (true) labels; once its bits contradict the count, nothing more.
    assert not [s for s in samples if (s.mono_ns or 0) > spoof_mono + 60 * NS_PER_S]
    assert any(isinstance(e, StateChange) and not e.locked for e in events)
    assert [e.kind for e in events if isinstance(e, Alarm)][:1] == [AlarmKind.JUMP]
