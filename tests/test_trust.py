"""Never a wrong second (issue 9): clock steps, signal loss, spoofing, drift, false leap
warnings, a restart.  Every case is judged against the simulator's truth - the
genuine transmitter's marks - never against a decoder run, and counts wrong
samples (wrong label, more than 50 ms from the true mark, a leap that is not)."""

from __future__ import annotations

import random

import pytest
from truth import wrong_samples

from dcf77shm.decode.guard import GuardConfig, GuardState, JumpPolicy
from dcf77shm.decode.pipeline import DECODERS, Pipeline
from dcf77shm.leapsecs import LeapTable, posix_day_end
from dcf77shm.model import (
    NS_PER_MS,
    NS_PER_S,
    Alarm,
    AlarmKind,
    DropReason,
    Edge,
    Event,
    Leap,
    Sample,
    Withheld,
)
from dcf77shm.sources.simulate import Segment, SegmentKind, SimParams, SimResult, simulate

MIN = 60
# A start from which the decoders lock within ~3 minutes; 20 minutes later the
# held count has learned the oscillator (the attacks of the issue came after >= 15
# minutes of lock).
ATTACK_S = 20 * MIN


def _start(seed: int) -> int:
    rng = random.Random(seed)
    return rng.randrange(1_262_304_000, 1_735_689_600)  # 2010-2024: the leap list speaks


def _run(
    sim: SimResult,
    decoder: str,
    v1: bool = False,
    leaps: LeapTable | None = None,
    guard: GuardConfig | None = None,
) -> list[Event]:
    edges = sim.edges
    if v1:  # the same signal as a version 1 log: system clock only, never backwards
        kept: list[Edge] = []
        for e in edges:
            if not kept or e.time_ns >= kept[-1].time_ns:
                kept.append(Edge(e.time_ns, e.level))
        edges = kept
    p = Pipeline(decoder=decoder, leaps=leaps, guard=guard)
    out = [ev for e in edges for ev in p.feed(e)]
    return out + p.advance(edges[-1].time_ns + 2 * NS_PER_S)


def _samples(events: list[Event]) -> list[Sample]:
    return [e for e in events if isinstance(e, Sample)]


def _alarms(events: list[Event], kind: AlarmKind) -> list[Alarm]:
    return [e for e in events if isinstance(e, Alarm) and e.kind is kind]


def _mono_at(sim: SimResult, si_s: float) -> int:
    return sim.marks[0].mono_ns - sim.marks[0].mono_ns % NS_PER_S + round(si_s * NS_PER_S)


def _between(samples: list[Sample], sim: SimResult, a_s: float, b_s: float) -> list[Sample]:
    lo, hi = _mono_at(sim, a_s), _mono_at(sim, b_s)
    return [s for s in samples if s.mono_ns is not None and lo <= s.mono_ns < hi]


# --- W1: the system clock steps while locked -------------------------------------------

STEPS = [1, -1, 2, -2, 3, -3, 30, -30, 60, -60, 3600, -3600, 86400, -86400, 0.25, -0.5]


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("step", STEPS)
def test_w1_a_clock_step_while_locked(step: float, decoder: str) -> None:
    start = _start(int(step * 7) + 1)
    sim = simulate(
        SimParams(start, 35 * MIN, jitter_ms=3, clock_steps=((ATTACK_S + 17.3, step),), seed=2)
    )
    events = _run(sim, decoder)
    samples = _samples(events)
    assert wrong_samples(sim, samples) == []
    # The count runs on the steady clock: publishing goes on after the step,
    # with receive times of the new system clock.
    after = _between(samples, sim, ATTACK_S + 60, 35 * MIN)
    assert len(after) > 0.8 * (35 * MIN - ATTACK_S - 120)
    assert all(abs(s.offset_ns + round(step * NS_PER_S)) < 20 * NS_PER_MS for s in after)
    assert len(_alarms(events, AlarmKind.CLOCK_STEP)) == 1
    assert not _alarms(events, AlarmKind.JUMP)
    # Seconds received before the step and due after it are withheld, not relabelled.
    stepped = [
        e for e in events if isinstance(e, Withheld) and e.reason is DropReason.CLOCK_STEPPED
    ]
    assert all(w.sample.mono_ns is not None for w in stepped)


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("step", [1, 2, 3, 30, 60, 3600, 0.5])
def test_w1_a_step_forward_in_a_version_1_log_is_never_a_wrong_second(
    step: float, decoder: str
) -> None:
    # A version 1 log has only the system clock: the step is indistinguishable
    # from a jump of the radio's time.  It may cost samples, never a wrong one.
    for seed in range(3):
        at = ATTACK_S + 7.3 + 11 * seed
        sim = simulate(
            SimParams(
                _start(seed + 40), 30 * MIN, jitter_ms=3, clock_steps=((at, step),), seed=seed
            )
        )
        samples = _samples(_run(sim, decoder, v1=True))
        assert wrong_samples(sim, samples) == []
        assert samples  # it did lock before the step


# --- W2: the receiver falls into noise after a long lock -------------------------------


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("kind", ["noise", "glitches"])
def test_w2_noise_after_a_long_lock_gives_no_sample(kind: str, decoder: str) -> None:
    for seed in range(3):
        if kind == "noise":  # pulse-like junk of any length at random
            params = SimParams(
                _start(seed + 10),
                50 * MIN,
                jitter_ms=5,
                segments=(Segment(ATTACK_S, 15 * MIN, SegmentKind.NOISE, rate=2.0 + seed),),
                seed=seed,
            )
        else:  # the antenna unplugged: no pulses, short glitches only
            params = SimParams(
                _start(seed + 20),
                50 * MIN,
                jitter_ms=5,
                fades=((ATTACK_S, 15 * MIN),),
                glitch_rate=0.5 + 0.5 * seed,
                glitch_ms=20.0,
                seed=seed,
            )
        sim = simulate(params)
        samples = _samples(_run(sim, decoder))
        assert wrong_samples(sim, samples) == []
        # No sample decoded from the noise (the first seconds of it may still be
        # the last genuine ones waiting for confirmation: none of them is later
        # than the noise's start).
        assert not _between(samples, sim, ATTACK_S + 1, ATTACK_S + 15 * MIN), seed
        # The genuine signal returns: publishing resumes on the held count.
        back = _between(samples, sim, ATTACK_S + 15 * MIN, 50 * MIN)
        if decoder == "robust":  # the strict decoder may never lock in such noise
            assert len(back) > 2 * MIN, seed


# --- W3, W4: a local transmitter overpowers DCF77 after >= 15 minutes of lock ------------

SPOOFS = {
    "+1s": dict(shift_s=1),
    "-1s": dict(shift_s=-1),
    "+1min": dict(shift_s=60),
    "+1h": dict(shift_s=3600),
    "+1d": dict(shift_s=86400),
    "-1y": dict(shift_s=-365 * 86400),
    "replay-2min": dict(shift_s=-120),
    "wrong-date": dict(shift_s=17 * 86400),
    "+1s-phase": dict(shift_s=1, phase_ms=300.0),
    "same-time-phase": dict(shift_s=0, phase_ms=-180.0),
}


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("name", sorted(SPOOFS))
def test_w3_w4_a_spoofed_time_is_refused_alarmed_and_genuine_time_resumes(
    name: str, decoder: str
) -> None:
    spoof = Segment(ATTACK_S, 12 * MIN, SegmentKind.SPOOF, **SPOOFS[name])  # type: ignore[arg-type]
    sim = simulate(SimParams(_start(len(name)), 45 * MIN, jitter_ms=4, segments=(spoof,), seed=1))
    events = _run(sim, decoder)
    samples = _samples(events)
    assert wrong_samples(sim, samples) == []
    # Nothing from the spoofer once its bits have contradicted the count (a
    # spoofer in phase with DCF77 whose code differs in a few bits only - a
    # replay - may first be published at the held count's true labels).
    assert not _between(samples, sim, ATTACK_S + 150, ATTACK_S + 12 * MIN)
    # The operator hears of it at WARNING level (a jump refused), unless the
    # spoofer sends the true time (then only its phase is refused).
    kinds = {e.kind for e in events if isinstance(e, Alarm)}
    assert AlarmKind.JUMP in kinds or name == "same-time-phase", kinds
    # W4: the spoofer stops, DCF77 returns: publishing resumes on the held count
    # (once the decoder has given up the spoofed time and locked again).
    back = _between(samples, sim, ATTACK_S + 12 * MIN, 45 * MIN)
    assert len(back) > 4 * MIN


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_w3c_genuine_and_spoofed_alternate(decoder: str) -> None:
    rng = random.Random(7)
    segs, t = [], float(ATTACK_S)
    while t < 70 * MIN:
        length = rng.uniform(2, 8) * MIN
        shift = rng.choice([1, -1, 60, 3600, 86400])
        segs.append(Segment(t, length, SegmentKind.SPOOF, shift_s=shift))
        t += length + rng.uniform(2, 8) * MIN
    sim = simulate(SimParams(_start(70), 80 * MIN, jitter_ms=4, segments=tuple(segs), seed=3))
    samples = _samples(_run(sim, decoder))
    assert wrong_samples(sim, samples) == []
    assert len(samples) > 20 * MIN  # the genuine stretches are published


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("ms_per_min", [0.5, 1.0, 3.0, 20.0])
def test_w3b_a_slow_drift_is_flagged_before_50_ms(ms_per_min: float, decoder: str) -> None:
    # The spoofer delays the genuine signal by a growing amount (up to 1 s).
    length = min(1000 / ms_per_min, 120) * MIN
    spoof = Segment(ATTACK_S, length, SegmentKind.SPOOF, drift_ms_per_min=ms_per_min)
    sim = simulate(
        SimParams(_start(int(ms_per_min)), ATTACK_S + length, jitter_ms=5, segments=(spoof,))
    )
    events = _run(sim, decoder)
    samples = _samples(events)
    assert wrong_samples(sim, samples) == []
    drift = _alarms(events, AlarmKind.DRIFT) + _alarms(events, AlarmKind.JUMP)
    assert drift, "a drift beyond the crystal's must be flagged"
    # Flagged before the marks had moved 50 ms: the published time never did.
    first = min(a.time_ns for a in drift)
    assert first < sim.marks[0].sys_ns + round((ATTACK_S + 50 / ms_per_min * 60) * NS_PER_S)


# Found with bench/attacks.py seeds 705 and 777 (not its default 9): after the
# DRIFT alarm the guard once declared RECOVERED while the drift went on - the
# marks' rate against the held one passed "within half the band" by chance over
# 10 minutes - and published 1219 seconds 53-75 ms off.
def test_w3b_no_recovery_onto_a_drift_that_goes_on() -> None:
    length = 120 * MIN
    spoof = Segment(ATTACK_S, length, SegmentKind.SPOOF, drift_ms_per_min=0.5)
    sim = simulate(
        SimParams(_start(777), ATTACK_S + length, jitter_ms=5.0, width_spread_ms=8.0,
                  seed=777, segments=(spoof,))
    )  # fmt: skip
    events = _run(sim, "robust")
    assert _alarms(events, AlarmKind.DRIFT)
    assert wrong_samples(sim, _samples(events)) == []


# --- W3d: a false leap warning -------------------------------------------------------------

LIST = LeapTable(
    frozenset({posix_day_end(__import__("datetime").date(2016, 12, 31))}),
    expires_s=1_782_604_800,  # 2026-06-28, as Debian bookworm's tzdata 2025b
    source="test list",
)


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_w3d_a2_without_a_leap_is_ignored_where_the_list_speaks(decoder: str) -> None:
    # A2 set for the last hour of 30 June 2024 (no leap second then), from a
    # spoofer in phase with DCF77, after a long lock.
    start = 1_719_784_800 - 50 * MIN  # 2024-06-30 21:10 UTC
    spoof = Segment(50 * MIN, 75 * MIN, SegmentKind.SPOOF, leap_announce=True)
    sim = simulate(SimParams(start, 130 * MIN, jitter_ms=3, segments=(spoof,), seed=4))
    samples = _samples(_run(sim, decoder, leaps=LIST))
    assert wrong_samples(sim, samples) == []
    assert not [s for s in samples if s.leap is not Leap.NONE]
    assert len(samples) > 100 * MIN  # and nothing else was lost for it


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_w3d_a_listed_leap_is_announced_even_without_a2(decoder: str) -> None:
    start = 1_483_228_800 - 80 * MIN  # 2016-12-31 22:40 UTC, a leap second at its end
    end = 1_483_228_800
    sim = simulate(SimParams(start, 100 * MIN, jitter_ms=3, leap_second_ends=frozenset({end})))
    # The receiver never decodes A2: the spoofer's code has it clear... here the
    # list alone must announce it.
    events = _run(sim, decoder, leaps=LIST)
    samples = _samples(events)
    assert wrong_samples(sim, samples, [end]) == []
    before = [s for s in samples if end - 86400 <= s.clock_ns // NS_PER_S < end]
    assert before and all(s.leap is Leap.INSERT for s in before)
    assert all(s.leap is Leap.NONE for s in samples if s.clock_ns // NS_PER_S >= end)


# --- the held count across a restart ----------------------------------------------------------


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_a_restart_does_not_reopen_the_door(decoder: str) -> None:
    # Run 1 locks for 20 minutes; run 2 (same boot, its held count restored)
    # then hears only a spoofer sending another time: it publishes nothing.
    start = _start(99)
    sim = simulate(
        SimParams(
            start,
            45 * MIN,
            jitter_ms=4,
            segments=(Segment(ATTACK_S + 60, 25 * MIN, SegmentKind.SPOOF, shift_s=3600),),
        )
    )
    first = Pipeline(decoder=decoder)
    cut = next(i for i, e in enumerate(sim.edges) if (e.mono_ns or 0) > _mono_at(sim, ATTACK_S))
    for e in sim.edges[:cut]:
        first.feed(e)
    snap = first.guard.snapshot()
    assert snap is not None
    second = Pipeline(decoder=decoder)
    second.guard.restore(snap)
    assert second.guard.state is GuardState.HOLDOVER
    events = [ev for e in sim.edges[cut:] for ev in second.feed(e)]
    samples = _samples(events)
    assert wrong_samples(sim, samples) == []
    assert not _between(samples, sim, ATTACK_S + 120, ATTACK_S + 26 * MIN)
    assert _alarms(events, AlarmKind.JUMP)
    # A fresh start without the held count would have believed the spoofer:
    third = Pipeline(decoder=decoder)
    fresh = [ev for e in sim.edges[cut:] for ev in third.feed(e)]
    assert wrong_samples(sim, _samples(fresh))


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_jump_policy_after_follows_a_radio_that_agrees_with_itself(decoder: str) -> None:
    # The held count itself was wrong (a spoofer before the first lock): with
    # jump_policy after:20m the true time is followed once it has agreed with
    # itself for 20 minutes; with the default, never.
    spoof = Segment(0, 15 * MIN, SegmentKind.SPOOF, shift_s=3600)
    sim = simulate(SimParams(_start(5), 60 * MIN, jitter_ms=3, segments=(spoof,), seed=8))
    follow = GuardConfig(jump_policy=JumpPolicy.AFTER, follow_ns=20 * MIN * NS_PER_S)
    events = _run(sim, decoder, guard=follow)
    assert _alarms(events, AlarmKind.JUMP_FOLLOWED)
    late = _between(_samples(events), sim, 50 * MIN, 60 * MIN)
    assert late and wrong_samples(sim, late) == []
    never = _samples(_run(sim, decoder))
    assert not _between(never, sim, 20 * MIN, 60 * MIN)


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_w3b_publishing_resumes_when_the_drift_stops(decoder: str) -> None:
    # The other side of the resume rule: it must not be so strict that the
    # genuine signal, back after a drifting spoofer, is never published again.
    spoof = Segment(ATTACK_S, 30 * MIN, SegmentKind.SPOOF, drift_ms_per_min=1.0)
    sim = simulate(
        SimParams(_start(1), ATTACK_S + 100 * MIN, jitter_ms=5.0, width_spread_ms=8.0,
                  seed=1, segments=(spoof,))
    )  # fmt: skip
    events = _run(sim, decoder)
    samples = _samples(events)
    assert _alarms(events, AlarmKind.DRIFT)
    assert wrong_samples(sim, samples) == []
    back = _between(samples, sim, ATTACK_S + 30 * MIN, ATTACK_S + 100 * MIN)
    assert len(back) > 50 * MIN
