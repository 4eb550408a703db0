"""Parsers for what the checks read inside the container (pure, unit-tested)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dcf77shm import chronyc

# The SHM key of unit 77: NTP's 0x4e545030 ("NTP0") + unit.
SHM_KEY_77 = 0x4E545030 + 77


def key_values(text: str, sep: str = "=") -> dict[str, str]:
    """`systemctl show` (KEY=VALUE) or /proc/PID/status (Key:\\tvalue) lines."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        k, s, v = line.partition(sep)
        if s:
            out[k.strip()] = v.strip()
    return out


# chronyc -c output: the driver's own parser (one copy).
chrony_sources = chronyc.parse_sources
chrony_tracking = chronyc.tracking_or_none


@dataclass(frozen=True, slots=True)
class Segment:
    key: int
    shmid: int
    mode: int
    size: int
    nattch: int
    uid: int


def shm_segments(proc_sysvipc_shm: str) -> dict[int, Segment]:
    """/proc/sysvipc/shm by key (perms are printed in octal)."""
    lines = proc_sysvipc_shm.splitlines()
    if not lines:
        return {}
    head = lines[0].split()
    out = {}
    for line in lines[1:]:
        row = dict(zip(head, line.split(), strict=False))
        try:
            seg = Segment(
                int(row["key"]),
                int(row["shmid"]),
                int(row["perms"], 8),
                int(row["size"]),
                int(row["nattch"]),
                int(row["uid"]),
            )
        except (KeyError, ValueError):
            continue
        out[seg.key] = seg
    return out


def segment_is_safe(seg: Segment, allowed_uids: set[int]) -> bool:
    """0600 and owned by root or the service: nobody else may write a sample."""
    return seg.mode & 0o777 == 0o600 and seg.uid in allowed_uids


_CAPS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def capabilities_zero(status: dict[str, str]) -> bool:
    return all(k in status and int(status[k], 16) == 0 for k in _CAPS)


EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?) (\w+)")


def exposure(text: str) -> tuple[float, str] | None:
    """The last line of ``systemd-analyze security UNIT``: (1.3, 'OK')."""
    m = EXPOSURE.search(text)
    return (float(m.group(1)), m.group(2)) if m else None


# A line that starts with a date and a time: the timestamp journald adds already.
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")
