"""Judging published samples against the simulator's truth (the genuine transmitter).

A sample is wrong when its label is not the UTC second of the genuine mark it was
taken at, when its receive time lies more than 50 ms from that mark, or when it
announces a leap second that the transmitter does not insert.  The truth comes
from :mod:`dcf77shm.sources.simulate` (or a ``--truth`` file), never from a
decoder run.
"""

from __future__ import annotations

from collections.abc import Iterable

from dcf77shm.model import NS_PER_MS, NS_PER_S, Leap, Sample
from dcf77shm.sources.simulate import SimResult

TOLERANCE_NS = 50 * NS_PER_MS


def why_wrong(sim: SimResult, s: Sample, leap_ends: Iterable[int] = ()) -> str | None:
    """None for a right sample, else what is wrong with it."""
    if s.mono_ns is not None:
        mark = sim.mark_at(s.mono_ns)
        if mark is not None and abs(s.receive_ns - mark.sys_ns) > TOLERANCE_NS:
            return f"receive time {(s.receive_ns - mark.sys_ns) / 1e6:+.1f} ms from the mark"
    else:
        label = sim.label_at(s.receive_ns, TOLERANCE_NS)
        mark = None if label is None else next(m for m in sim.marks if m.label_s == label)
    if mark is None:
        return "not within 500 ms of any genuine mark"
    dist = abs(
        (s.mono_ns if s.mono_ns is not None else s.receive_ns)
        - (mark.mono_ns if s.mono_ns is not None else mark.sys_ns)
    )
    if dist > TOLERANCE_NS:
        return f"{dist / 1e6:.1f} ms from the nearest genuine mark"
    if s.clock_ns != mark.label_s * NS_PER_S:
        return f"label {s.clock_ns // NS_PER_S - mark.label_s:+d} s off"
    label = s.clock_ns // NS_PER_S
    day_end = label - label % 86400 + 86400
    if s.leap is Leap.INSERT and day_end not in set(leap_ends):
        return "announces a leap second that does not exist"
    return None


def wrong_samples(
    sim: SimResult, samples: Iterable[Sample], leap_ends: Iterable[int] = ()
) -> list[tuple[Sample, str]]:
    ends = list(leap_ends)
    out = []
    for s in samples:
        why = why_wrong(sim, s, ends)
        if why is not None:
            out.append((s, why))
    return out
