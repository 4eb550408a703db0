"""``shm:UNIT``: NTP shared memory, the way chrony's ``refclock SHM UNIT`` reads it.

Start order.  chronyd creates the segment (owner root, mode 0600 unless its
refclock line says ``perm=``) when it starts; a writer started first creates
it itself, mode 0600, with this machine's ``time_t`` layout, and chronyd then
attaches to it.  Either way works when dcf77shm runs as root; otherwise start
dcf77shm before chronyd, so the segment is ours and chronyd (root) can still
read it.  The segment is never removed: chronyd may be attached to it.

The packaged unit is 77 (chrony/dcf77shm.conf): gpsd claims units 0-7
(NTP0..NTP7, two per device), and a unit of its own means a gpsd on the same
machine never writes into our segment.  No unit is implied: ``shm:`` without
one is refused, since a slip would send a test's samples into the live unit.

Two writers on one unit would hand chrony a mix of two clocks, so a count
that moved without us is reported (``foreign_writes``).

A segment anyone else can write is a way for any local user to set the time
of every machine this server serves: the key is predictable and SHM has no
authentication.  So an existing segment is used only when it is safe: not
group- or other-writable, and owned *and created* by root or by us (the
creator of a System V segment may change its mode and owner at any time).
Otherwise ``open`` refuses with the fix.  While running, the segment is
looked up again every ``RECHECK_S``: if another segment took its key (an
``ipcrm`` and a chronyd restart) the sink attaches to the new one, and if the
segment became unsafe it stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import sysv_ipc

from dcf77shm.errors import BadInput, RuntimeFailure
from dcf77shm.model import Sample
from dcf77shm.sinks import shmstruct as st
from dcf77shm.spec import ascii_int

log = logging.getLogger("dcf77shm.shm")

# The unit of the shipped `refclock SHM 77` line (chrony/dcf77shm.conf; a test
# keeps the two equal): the one a production chronyd reads.
PACKAGED_UNIT = 77
# 2^-10 s ~ 1 ms: the leading-edge jitter of a good DCF77 AM receiver.  chrony
# ignores this field (its refclock `precision` option counts); ntpd reads it.
DEFAULT_PRECISION = -10
RECHECK_S = 10


def key_for(unit: int) -> int:
    return st.SHM_KEY_BASE + unit


def parse_unit(arg: str) -> int:
    """``shm:UNIT``'s UNIT: ASCII digits (str.isdigit also takes '²' and '٣'), 0-65535."""
    if arg == "":
        raise BadInput(
            f"shm needs a unit: shm:UNIT, the number of chrony's `refclock SHM UNIT` line "
            f"(the packaged one is shm:{PACKAGED_UNIT})"
        )
    unit = ascii_int(arg, 5)
    if unit is None or unit > 65535:
        raise BadInput(f"bad SHM unit {arg!r}: use a number 0-65535, as in shm:{PACKAGED_UNIT}")
    return unit


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A segment as /proc/sysvipc/shm lists it (readable without permission)."""

    key: int
    shmid: int
    mode: int
    size: int
    nattch: int
    uid: int
    cuid: int  # the creator: IPC_SET may change the owner, never this
    cpid: int = 0  # the creating process

    @property
    def owner(self) -> str:
        return user_name(self.uid)

    def describe(self) -> str:
        creator = "" if self.cuid == self.uid else f", created by {user_name(self.cuid)}"
        return f"owner {self.owner}{creator}, mode {self.mode:04o}, {self.size} bytes"

    def unsafe_reasons(self, trusted: Iterable[int]) -> list[str]:
        """Why another local user could write samples into this segment (none: safe).

        Write permission for group or others; an owner other than root or a
        trusted user (the owner may change the mode); a creator other than them
        (the creator keeps that right whoever the owner becomes)."""
        ok = {0, *trusted}
        out = []
        if self.mode & 0o022:
            who = "/".join(w for w, bit in (("group", 0o020), ("others", 0o002)) if self.mode & bit)
            out.append(f"writable by {who} (mode {self.mode:04o})")
        if self.uid not in ok:
            out.append(f"owner {user_name(self.uid)}")
        if self.cuid not in ok and self.cuid != self.uid:
            out.append(f"creator {user_name(self.cuid)}")
        return out

    def unsafe(self, trusted: Iterable[int]) -> str | None:
        reasons = self.unsafe_reasons(trusted)
        return ", ".join(reasons) if reasons else None


SERVICE_USER = "_dcf77"  # the packaged service's system user (systemd/dcf77shm.sysusers)


def trusted_uids(me: bool = True) -> frozenset[int]:
    """Who may own or have created a segment: root, the service user and (``me``)
    whoever runs this."""
    out = {0, os.geteuid()} if me else {0}
    with contextlib.suppress(KeyError):
        out.add(pwd.getpwnam(SERVICE_USER).pw_uid)
    return frozenset(out)


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _table(proc: Path) -> list[list[str]]:
    """The rows of /proc/sysvipc/shm, split (none when it cannot be read)."""
    try:
        lines = proc.read_text().splitlines()[1:]
    except OSError:
        return []
    # key shmid perms size cpid lpid nattch uid gid cuid ...
    return [f for f in map(str.split, lines) if len(f) >= 10]


def _info(f: list[str]) -> SegmentInfo:
    # perms is octal and may carry SHM_DEST/SHM_LOCKED bits above 0777
    return SegmentInfo(
        int(f[0]), int(f[1]), int(f[2], 8) & 0o777, int(f[3]), int(f[6]), int(f[7]), int(f[9]),
        int(f[4]),
    )  # fmt: skip


def segments(proc: Path = Path("/proc/sysvipc/shm")) -> list[SegmentInfo]:
    """Every segment of this IPC namespace (an empty list when /proc cannot be read)."""
    return [_info(f) for f in _table(proc)]


def segment_info(key: int, proc: Path = Path("/proc/sysvipc/shm")) -> SegmentInfo | None:
    # Only the row of ``key`` is parsed whole: the sink looks its segment up
    # every RECHECK_S samples, and a host may list hundreds (issue 12: CPU).
    return next((_info(f) for f in _table(proc) if int(f[0]) == key), None)


# The segment holds one sample and chrony reads it every 2^dpoll s (0.5 s with
# the shipped dpoll -1): the run loop writes live samples at least this far
# apart, so two seconds released together (at lock, or 59 and 00 of the
# robust decoder) both reach chrony instead of the first being overwritten.
MIN_SPACING_NS = 600_000_000


class ShmSink:
    min_spacing_ns = MIN_SPACING_NS
    dropped = 0  # a write to the segment cannot go undelivered

    def __init__(self, unit: int, precision: int = DEFAULT_PRECISION) -> None:
        self.unit = unit
        self.key = key_for(unit)
        self.precision = precision
        self.description = f"shm:{unit} (key {self.key:#x})"
        self.layout: st.Layout | None = None
        self.foreign_writes = 0
        self._mem: sysv_ipc.SharedMemory | None = None
        self._count = 0
        self._shmid: int | None = None
        self._published = 0

    @classmethod
    def from_spec(cls, arg: str, options: Mapping[str, object]) -> ShmSink:
        precision = options.get("precision", DEFAULT_PRECISION)
        if not isinstance(precision, int) or not -30 <= precision <= 0:
            raise BadInput(f"bad SHM precision {precision!r}: use log2 seconds, e.g. -10")
        return cls(parse_unit(arg), precision)

    def open(self) -> None:
        mem = self._attach()
        info = segment_info(self.key)
        why = None if info is None else info.unsafe(trusted_uids())
        if why is not None:
            mem.detach()
            raise RuntimeFailure(
                f"{self.description}: refusing an unsafe segment: {why} ({self._info()}); "
                f"fix: stop chronyd and dcf77shm, `ipcrm -M {self.key:#x}`, start dcf77shm "
                "then chronyd (as root, `dcf77shm shm adopt` removes it if nothing is attached)"
            )
        self._shmid = mem.id
        layout = st.Layout.from_size(mem.size)
        if layout is None:
            mem.detach()
            raise RuntimeFailure(
                f"{self.description}: segment has {mem.size} bytes, not 80 (32-bit time_t) or "
                f"96 (64-bit); {self._info()}; fix: stop whatever created it, "
                f"`ipcrm -M {self.key:#x}`, then start chronyd or dcf77shm again"
            )
        self._mem, self.layout = mem, layout
        self._count = st.unpack(mem.read(layout.value), layout).count
        log.info("%s: attached, %d-bit time_t layout", self.description, layout.time_bits)

    def _attach(self) -> sysv_ipc.SharedMemory:
        for _ in range(2):
            try:
                return sysv_ipc.SharedMemory(self.key)
            except sysv_ipc.ExistentialError:
                pass
            except sysv_ipc.PermissionsError:
                raise RuntimeFailure(
                    f"{self.description}: permission denied ({self._info()}); fix: run dcf77shm "
                    "as root, or stop chronyd, `ipcrm -M "
                    f"{self.key:#x}` and start dcf77shm before chronyd so the segment is its own"
                ) from None
            try:
                size = st.platform_layout().value
                mem = sysv_ipc.SharedMemory(self.key, sysv_ipc.IPC_CREX, mode=0o600, size=size)
            except sysv_ipc.ExistentialError:
                continue  # chronyd created it in between: attach to its segment
            # sysv_ipc fills a new segment with spaces; chrony needs zeros
            # (valid=0) until the first sample.
            mem.write(bytes(size))
            log.info("%s: created, mode 0600, %d bytes", self.description, size)
            return mem
        raise RuntimeFailure(f"{self.description}: segment keeps vanishing; is ipcrm running?")

    @property
    def shmid(self) -> int | None:
        """The segment this sink writes (``dcf77shm status`` compares it with the key's)."""
        return self._shmid

    def _info(self) -> str:
        info = segment_info(self.key)
        return info.describe() if info else "segment not listed in /proc/sysvipc/shm"

    def _recheck(self) -> None:
        """Is the segment we write still the one at the key, and still safe?"""
        info = segment_info(self.key)
        if info is not None and info.shmid == self._shmid:
            why = info.unsafe(trusted_uids())
            if why is not None:
                raise RuntimeFailure(
                    f"{self.description}: the segment became unsafe: {why}; stopping "
                    f"(fix: `ipcrm -M {self.key:#x}`, restart dcf77shm, then chronyd)"
                )
            return
        # Removed (ipcrm) and perhaps made anew by a restarted chronyd: what we
        # wrote no longer reaches it.  Attach to what is at the key now.
        log.warning(
            "%s: the segment was replaced (shmid %s -> %s); attaching to the new one",
            self.description,
            self._shmid,
            "none" if info is None else info.shmid,
        )
        old, self._mem = self._mem, None
        if old is not None:
            old.detach()
        self.open()

    def publish(self, sample: Sample) -> None:
        if self._mem is not None and self._published % RECHECK_S == 0:
            self._recheck()
        self._published += 1
        mem, layout = self._mem, self.layout
        if mem is None or layout is None:
            raise RuntimeFailure(f"{self.description}: publish before open")
        img = st.pack(
            st.fields_for(sample.receive_ns, sample.clock_ns, int(sample.leap), self.precision),
            layout,
        )
        # Only the count is checked: 4 bytes, not the whole segment unpacked.
        (found,) = _INT.unpack(mem.read(4, st.COUNT_OFFSET))
        if found != self._count:
            # chrony only ever clears `valid`; a count we did not write is a
            # second writer (gpsd, another dcf77shm) on this unit.
            self.foreign_writes += 1
            if self.foreign_writes == 1:
                log.warning(
                    "%s: another program writes this segment (count %d, expected %d); "
                    "chrony would mix two clocks: give one of them another unit",
                    self.description,
                    found,
                    self._count,
                )
        voff = st.valid_offset(layout)
        # gpsd's order, so that a reader in mode 1 (count before == after) or
        # one that only checks valid never takes a half-written sample.
        # Python cannot issue a memory barrier; each write is a separate C
        # call, and samples come one per second, far from the reader's race.
        count = st.int32(found + 1)
        mem.write(_i32(0), voff)
        mem.write(_i32(count), st.COUNT_OFFSET)
        mem.write(img[8:voff], 8)
        mem.write(img[voff + 4 :], voff + 4)
        mem.write(img[:4], 0)  # mode 1
        count = st.int32(count + 1)
        mem.write(_i32(count), st.COUNT_OFFSET)
        mem.write(_i32(1), voff)
        self._count = count

    def close(self) -> None:
        mem, self._mem = self._mem, None
        if mem is not None:
            mem.detach()  # never remove: chronyd may be attached


_INT = struct.Struct("=i")  # a C int, as count and valid are
_i32 = _INT.pack
