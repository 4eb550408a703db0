"""``dcf77shm calibrate``: the receiver delay (chrony's refclock ``offset``) from
chrony's own view of the DCF source against the other sources it has.

An AM DCF77 receiver's second marks come 10-50 ms late (its filter), the same
every second.  chrony cannot see that: the DCF source then sits that far from
the NTP servers or GPS, and with error bounds of a few ms neither side's
interval contains the other's, so chrony marks one of them a falseticker (x)
-- often the good DCF clock.  The cure is the refclock's ``offset`` option,
which chrony adds to every sample (raw offset + offset).  ``chronyc
sourcestats`` gives each source's estimated offset from the local clock
(positive: the local clock is ahead of the source); the DCF's minus the
others' is what the current ``offset`` fails to correct.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from dcf77shm.chronyc import SourceRow, StatsRow
from dcf77shm.errors import BadInput, RuntimeFailure

DEFAULT_CONF = Path("/etc/chrony/conf.d/dcf77shm.conf")
MIN_SAMPLES = 4  # sourcestats NP: below this chrony's offset estimate is too young
GOOD_STATES = "*+-"  # selected, combined, selectable but not combined


@dataclass(frozen=True, slots=True)
class Calibration:
    correction_s: float  # add to the refclock's current `offset`
    sigma_s: float  # 1 sigma, from the scatter of DCF's and the references' samples
    ref_bound_s: float  # the references' own error bound, which chrony cannot see past
    references: tuple[str, ...]
    note: str = ""


def compute(sources: list[SourceRow], stats: dict[str, StatsRow], refid: str) -> Calibration:
    """The correction to the DCF refclock's offset, or RuntimeFailure saying what is missing."""
    dcf = stats.get(refid)
    src = {s.name: s for s in sources}
    if refid not in src or dcf is None:
        names = ", ".join(sorted(src)) or "none"
        raise RuntimeFailure(
            f"chrony has no source {refid!r} (its sources: {names}); fix: install the "
            "refclock line (/etc/chrony/conf.d/dcf77shm.conf) and restart chrony, or use --refid"
        )
    if src[refid].reach == 0 or dcf.samples < MIN_SAMPLES:
        raise RuntimeFailure(
            f"{refid}: {dcf.samples} measurements (reach {src[refid].reach:o}), need "
            f"{MIN_SAMPLES}; wait a few minutes after dcf77shm locks (`dcf77shm status`)"
        )
    usable = [
        s
        for s in sources
        if s.name != refid and s.reach and s.name in stats and stats[s.name].samples >= MIN_SAMPLES
    ]
    refs = [s for s in usable if s.state in GOOD_STATES]
    note = ""
    if not refs:
        refs = [s for s in usable if s.state == "x"]
        if refs:
            # Two sources that disagree are both falsetickers to chrony: the
            # typical picture of an uncalibrated DCF clock against one server.
            note = (
                "the other sources are falsetickers too (x): assuming they are right; "
                "with 3 or more NTP servers chrony can tell"
            )
    if not refs:
        raise RuntimeFailure(
            f"no other source with {MIN_SAMPLES}+ measurements to compare {refid} with; fix: "
            "add NTP servers (e.g. `pool 2.debian.pool.ntp.org iburst`) or GPS, wait, retry"
        )
    # Inverse-variance mean of the references; an NTP server's path asymmetry
    # (up to its error bound) is as real as its scatter, so it counts too.
    var = [stats[s.name].std_dev_s ** 2 + (s.error_s / 2) ** 2 for s in refs]
    weights = [1 / max(v, 1e-18) for v in var]
    ref_offset = sum(w * stats[s.name].offset_s for w, s in zip(weights, refs, strict=True))
    ref_offset /= sum(weights)
    ref_sd = math.sqrt(1 / sum(weights))
    return Calibration(
        correction_s=dcf.offset_s - ref_offset,
        sigma_s=math.hypot(dcf.std_dev_s, ref_sd),
        ref_bound_s=min(s.error_s for s in refs),
        references=tuple(s.name for s in refs),
        note=note,
    )


_REFCLOCK = re.compile(r"^\s*refclock\s")


def current_line(conf_text: str, refid: str) -> str:
    for line in conf_text.splitlines():
        words = line.split("#", 1)[0].split()
        if _REFCLOCK.match(line) and _option(words, "refid") == refid:
            return line.split("#", 1)[0].strip()
    raise BadInput(f"no `refclock ... refid {refid}` line; fix: --config FILE naming chrony's file")


def _option(words: list[str], name: str) -> str | None:
    for i, w in enumerate(words[:-1]):
        if w == name:
            return words[i + 1]
    return None


def new_line(line: str, cal: Calibration) -> tuple[str, float, float]:
    """``line`` with ``offset`` corrected and ``delay`` fitted to what remains uncertain."""
    words = line.split()
    try:
        old = float(_option(words, "offset") or 0.0)
    except ValueError:
        raise BadInput(f"bad offset in {line!r}") from None
    offset = old + cal.correction_s
    # delay/2 enters the root distance NTP clients see: make it an honest
    # bound on what is left (3 sigma plus the references' own bound), >= 2 ms.
    delay = max(0.002, math.ceil(2 * (3 * cal.sigma_s + cal.ref_bound_s) * 1000) / 1000)
    for name, value in (("offset", f"{offset:.4f}"), ("delay", f"{delay:.3f}")):
        if name in words[:-1]:
            words[words.index(name) + 1] = value
        else:
            words += [name, value]
    return " ".join(words), old, offset
