"""Tools for NTP SHM segments: ``shm status`` (every NTP segment, or what one
holds, like gpsd's ntpshmmon) and ``shm adopt`` (hand an existing segment to the service user).

``status`` attaches read-only, so it never disturbs chrony or the writer.

``adopt`` is the unit's root ExecStartPre.  The packaged service runs as
``_dcf77`` and starts before chronyd, so it normally creates the segment itself
(0600, owner _dcf77) and chronyd, which attaches while it is still root, reads
it anyway.  But when chronyd started first (it was running when the package was
installed, or someone restarted dcf77shm after chrony), the segment is
chronyd's: owner root, mode 0600, and _dcf77 may not write it.  Removing it is
no fix: chronyd stays attached to the removed segment and never sees another
sample.  Changing its owner (shmctl IPC_SET) is: chronyd keeps its attachment
and, as root, still reads it.
"""

from __future__ import annotations

import contextlib
import pwd
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sysv_ipc

from dcf77shm.errors import BadInput, RuntimeFailure
from dcf77shm.formats.events import iso_ns
from dcf77shm.model import NS_PER_S
from dcf77shm.sinks import shmstruct as st
from dcf77shm.sinks.shm import (
    SERVICE_USER,
    SegmentInfo,
    key_for,
    parse_unit,
    segment_info,
    segments,
    trusted_uids,
    user_name,
)

# chrony's `refclock SHM UNIT` takes any unit; ntpd and gpsd use 0-255.
MAX_UNIT = 65535

# The programs that read NTP SHM segments (NTPsec's daemon is ntpd too).
READERS = frozenset({"chronyd", "ntpd"})


@dataclass(frozen=True, slots=True)
class Attachment:
    """One process's mapping of a SysV segment, from /proc/PID/maps: the
    kernel names it ``/SYSV<key in hex>`` and gives the shmid as its inode,
    even after the segment was removed (then the key at that name is a new one
    or none: the process reads a segment no writer reaches)."""

    pid: int
    name: str  # /proc/PID/comm
    key: int
    shmid: int


def attachments(proc: Path = Path("/proc")) -> list[Attachment]:
    """Every SysV mapping of the processes whose maps we may read (all of them as root)."""
    out = []
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            maps = (d / "maps").read_text()
            name = (d / "comm").read_text().strip() if "/SYSV" in maps else ""
        except OSError:  # another user's process, or gone meanwhile
            continue
        for line in maps.splitlines():
            f = line.split()
            if len(f) >= 6 and f[5].startswith("/SYSV"):
                with contextlib.suppress(ValueError):
                    out.append(Attachment(int(d.name), name, int(f[5][5:], 16), int(f[4])))
    return out


def reader_notes(info: SegmentInfo, atts: list[Attachment]) -> list[str]:
    """What is wrong with who reads segment ``info``, as far as we can see."""
    notes = []
    here = [a for a in atts if a.shmid == info.shmid]
    # nattch counts every attachment; when we saw as many, we know them all.
    if info.nattch == 0 or (len(here) >= info.nattch and not any(a.name in READERS for a in here)):
        notes.append("no reader attached")
    for a in atts:
        # A writer left on an old segment is its own business (dcf77shm
        # re-attaches; `dcf77shm status` says so): a reader there gets nothing.
        if a.key == info.key and a.shmid != info.shmid and a.name in READERS:
            notes.append(
                f"{a.name} (pid {a.pid}) reads a removed segment of this key (shmid "
                f"{a.shmid}): segment replaced since it attached"
            )
    return notes


def attached_names(info: SegmentInfo, atts: list[Attachment]) -> str:
    here = [f"{a.name} (pid {a.pid})" for a in atts if a.shmid == info.shmid]
    if len(here) < info.nattch:
        here.append(f"{info.nattch - len(here)} more (run as root to see them)")
    return ", ".join(here) if here else "nothing"


def _fix(unit: int, note: str) -> str:
    if note.startswith("no reader"):
        return (
            f"WARNING: no reader attached: chronyd does not read shm:{unit}; it needs "
            f"`refclock SHM {unit}` and, if the segment was removed, a restart"
        )
    return f"WARNING: {note}; restart that reader (chronyd: `systemctl restart chrony`)"


def writer_notes(output: str, writer_shmid: int | None) -> list[str]:
    """For ``dcf77shm status``: the segment ``run`` writes, as the status file
    names it (``output``, and the shmid the writer attached), against the one
    at its key now and who reads that."""
    scheme, _, arg = output.partition(":")
    if scheme != "shm" or writer_shmid is None:
        return []
    try:
        unit = parse_unit(arg)
    except BadInput:
        return []
    info = segment_info(key_for(unit))
    if info is None or info.shmid != writer_shmid:
        now = "none" if info is None else f"shmid {info.shmid}"
        return [
            f"WARNING: shm:{unit}: segment replaced since our writer attached (shmid "
            f"{writer_shmid}, now {now}): samples reach no reader until the writer "
            "re-attaches (it checks every 10 samples); if this stays, restart dcf77shm"
        ]
    return [_fix(unit, n) for n in reader_notes(info, attachments())]


def _open(unit: int) -> tuple[SegmentInfo, sysv_ipc.SharedMemory, st.Layout | None]:
    key = key_for(unit)
    info = segment_info(key)
    if info is None:
        # A state, not a usage error: exit 1, as `status` when nothing runs.
        raise RuntimeFailure(
            f"shm:{unit} (key {key:#x}) does not exist; chronyd creates it when its "
            f"configuration has `refclock SHM {unit}`, dcf77shm run when it writes to it"
        )
    try:
        mem = sysv_ipc.attach(info.shmid, None, sysv_ipc.SHM_RDONLY)
    except sysv_ipc.PermissionsError:
        raise RuntimeFailure(
            f"shm:{unit}: cannot read it ({info.describe()}); run as root"
        ) from None
    except sysv_ipc.Error as e:
        raise RuntimeFailure(
            f"shm:{unit}: cannot attach ({e}); it may just have been removed"
        ) from None
    return info, mem, st.Layout.from_size(info.size)


def _offset(t: st.ShmTime) -> str:
    return f"{(t.clock_ns - t.receive_ns) / NS_PER_S:+.9f} s"


def status_lines(unit: int) -> list[str]:
    info, mem, layout = _open(unit)
    try:
        head = (
            f"shm:{unit} key {info.key:#x} shmid {info.shmid}: {info.describe()}, "
            f"{info.nattch} attached, "
        )
        if layout is None:
            return [head + "size fits neither layout (80 or 96 bytes): not an NTP segment?"]
        t = st.unpack(mem.read(layout.value), layout)
    finally:
        mem.detach()
    why = info.unsafe(trusted_uids(me=False))
    atts = attachments()
    lines = [
        head + f"{layout.time_bits}-bit time_t layout",
        f"attached {attached_names(info, atts)}",
        f"creator  {user_name(info.cuid)}; "
        + (
            f"UNSAFE: {why}: another local user can write the time chrony reads"
            if why
            else f"SAFE (only root or {SERVICE_USER})"
        ),
        f"mode {t.mode}  count {t.count}  valid {t.valid}  leap {t.leap}  "
        f"precision {t.precision}  nsamples {t.nsamples}",
    ]
    if t.clock_sec == 0 and t.receive_sec == 0:
        lines.append("no sample written yet")
    else:
        lines += [
            f"clock    {iso_ns(t.clock_ns)}",
            f"receive  {iso_ns(t.receive_ns)}",
            f"offset   {_offset(t)} (clock - receive)",
        ]
    return lines + [_fix(unit, n) for n in reader_notes(info, atts)]


LIST_LEGEND = [
    "unit      chrony's `refclock SHM UNIT` (key 0x4e545030 + UNIT)",
    "owner     the segment's owner; creator: who created it (IPC_SET cannot change that)",
    "mode      permissions; layout: struct shmTime for a 32- or 64-bit time_t (80/96 bytes)",
    "att       processes attached (chronyd, a writer)",
    "count     the writer's counter (+2 per sample); valid: 1 until the reader takes the sample",
    "last      the last sample's clock time (UTC); age: system clock now - its receive time",
    "safety    UNSAFE: writable by group/others, or owned or created by a user other than",
    f"          root or {SERVICE_USER}: that user could feed chrony any time;",
    "          then: no reader attached (no chronyd or ntpd reads it), or a reader that",
    "          still reads a removed segment of this key (segment replaced since it attached)",
]


def list_lines(now_ns: int | None = None, legend: bool = False) -> list[str]:
    """Every NTP SHM segment on this machine, one line each, like gpsd's ntpshmmon."""
    now = time.time_ns() if now_ns is None else now_ns
    base = key_for(0)
    found = sorted((s for s in segments() if base <= s.key <= base + MAX_UNIT), key=lambda s: s.key)
    out = [
        f"{'unit':>5} {'key':10} {'owner':10} {'creator':10} {'mode':4} {'layout':6} "
        f"{'att':>3} {'count':>10} {'valid':>5} {'last (clock)':27} {'age':>8}  safety"
    ]
    trusted = trusted_uids(me=False)
    atts = attachments() if found else []
    for info in found:
        out.append("; ".join([_list_row(info, now, trusted), *reader_notes(info, atts)]))
    if not found:
        out.append("(no NTP SHM segment: chronyd creates one per `refclock SHM UNIT` line)")
    if legend:
        out += ["", *LIST_LEGEND]
    return out


def _list_row(info: SegmentInfo, now: int, trusted: frozenset[int]) -> str:
    layout = st.Layout.from_size(info.size)
    count = valid = last = age = "-"
    if layout is None:
        last = f"({info.size} bytes: not NTP)"
    else:
        try:
            mem = sysv_ipc.attach(info.shmid, None, sysv_ipc.SHM_RDONLY)
        except sysv_ipc.Error:
            last = "(cannot read: run as root)"
        else:
            try:
                t = st.unpack(mem.read(layout.value), layout)
            finally:
                mem.detach()
            count, valid = str(t.count), str(t.valid)
            if t.clock_sec == 0 and t.receive_sec == 0:
                last = "none yet"
            else:
                last = iso_ns(t.clock_ns)
                age_s = (now - t.receive_ns) / NS_PER_S
                age = f"{age_s:.0f} s" if abs(age_s) < 1e7 else "-"
    unsafe = info.unsafe_reasons(trusted)
    return (
        f"{info.key - key_for(0):5} {info.key:#010x} {user_name(info.uid):10.10} "
        f"{user_name(info.cuid):10.10} {info.mode:04o} "
        f"{f'{layout.time_bits}-bit' if layout else '?':6} {info.nattch:3} {count:>10} "
        f"{valid:>5} {last:27} {age:>8}  " + ("UNSAFE: " + ", ".join(unsafe) if unsafe else "SAFE")
    )


def watch(
    unit: int, interval_s: float = 0.1, sleep: Callable[[float], None] = time.sleep
) -> Iterator[str]:
    """One line per new sample (a count change), until interrupted."""
    info, mem, layout = _open(unit)
    if layout is None:
        mem.detach()
        raise RuntimeFailure(f"shm:{unit}: {info.size} bytes fits neither layout (80 or 96)")
    yield f"{'receive':32} {'clock':32} {'offset':15} count valid"
    last: int | None = None
    try:
        while True:
            t = st.unpack(mem.read(layout.value), layout)
            again = st.unpack(mem.read(layout.value), layout)
            if t == again and t.count != last:  # differing copies: a write in progress
                last = t.count
                yield (
                    f"{iso_ns(t.receive_ns):32} {iso_ns(t.clock_ns):32} {_offset(t):15} "
                    f"{t.count:5} {t.valid}"
                )
            sleep(interval_s)
    finally:
        mem.detach()


def adopt(output_spec: str, user: str) -> str:
    """Make the output's segment, if it exists, safe and ``user``'s; one line saying what.

    Safe means mode 0600 and owner ``user``.  A segment *created* by anyone but
    root or ``user`` can never be made safe (its creator keeps the right to
    change it): with nothing attached it is removed, so the service creates its
    own; with chronyd attached, this refuses with the fix (exit 1).
    """
    scheme, _, arg = output_spec.partition(":")
    if scheme != "shm":
        return f"output {output_spec}: not a SHM segment, nothing to do"
    unit = parse_unit(arg)
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        raise BadInput(f"no user {user!r}; fix: `systemd-sysusers` creates it") from None
    key = key_for(unit)
    name = f"shm:{unit} (key {key:#x})"
    info = segment_info(key)
    try:
        mem = sysv_ipc.SharedMemory(key)
    except sysv_ipc.ExistentialError:
        return f"{name}: no segment yet; dcf77shm creates it"
    except sysv_ipc.PermissionsError:
        raise RuntimeFailure(f"{name}: permission denied; run this as root") from None
    try:
        creator = info.cuid if info is not None else mem.cuid
        if creator not in (0, uid):
            return _remove_foreign(mem, name, info)
        changed = []
        try:
            if mem.uid != uid:
                changed.append(f"owner uid {mem.uid} -> {user}")
                mem.uid = uid  # IPC_SET: chronyd stays attached
            if mem.mode & 0o777 != 0o600:
                changed.append(f"mode {mem.mode & 0o777:04o} -> 0600")
                mem.mode = 0o600
        except sysv_ipc.PermissionsError:
            raise RuntimeFailure(
                f"{name}: cannot change owner or mode (owner uid {mem.uid}); run this as root"
            ) from None
        if not changed:
            return f"{name}: already {user}'s, mode 0600"
        return f"{name}: " + ", ".join(changed)
    finally:
        with contextlib.suppress(sysv_ipc.Error):
            mem.detach()


def _remove_foreign(mem: sysv_ipc.SharedMemory, name: str, info: SegmentInfo | None) -> str:
    what = info.describe() if info is not None else f"created by uid {mem.cuid}"
    # info was read before we attached; without it, do not count ourselves.
    attached = info.nattch if info is not None else mem.number_attached - 1
    if attached > 0:
        raise RuntimeFailure(
            f"{name}: refusing a segment another user made ({what}, {attached} attached): "
            f"anyone who made it can write the time; fix: `systemctl stop chrony dcf77shm`, "
            f"`ipcrm -M {mem.key:#x}`, `systemctl start dcf77shm chrony`"
        )
    mem.remove()
    return f"{name}: removed a segment another user made ({what}); dcf77shm creates its own"
