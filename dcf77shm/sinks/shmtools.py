"""Tools for NTP SHM segments: ``shm status`` (what a segment holds, like gpsd's
ntpshmmon) and ``shm adopt`` (hand an existing segment to the service user).

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

import pwd
import time
from collections.abc import Callable, Iterator

import sysv_ipc

from dcf77shm.errors import BadInput, RuntimeFailure
from dcf77shm.formats.events import iso_ns
from dcf77shm.model import NS_PER_S
from dcf77shm.sinks import shmstruct as st
from dcf77shm.sinks.shm import SegmentInfo, key_for, parse_unit, segment_info


def _open(unit: int) -> tuple[SegmentInfo, sysv_ipc.SharedMemory, st.Layout | None]:
    key = key_for(unit)
    info = segment_info(key)
    if info is None:
        raise BadInput(
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
    lines = [
        head + f"{layout.time_bits}-bit time_t layout",
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
    return lines


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
    """Make ``user`` the owner of the output's segment if it exists; one line saying what."""
    scheme, _, arg = output_spec.partition(":")
    if scheme != "shm":
        return f"output {output_spec}: not a SHM segment, nothing to do"
    unit = parse_unit(arg)
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        raise BadInput(f"no user {user!r}; fix: `systemd-sysusers` creates it") from None
    key = key_for(unit)
    try:
        mem = sysv_ipc.SharedMemory(key)
    except sysv_ipc.ExistentialError:
        return f"shm:{unit} (key {key:#x}): no segment yet; dcf77shm creates it"
    except sysv_ipc.PermissionsError:
        raise RuntimeFailure(
            f"shm:{unit} (key {key:#x}): permission denied; run this as root"
        ) from None
    try:
        if mem.uid == uid:
            return f"shm:{unit} (key {key:#x}): already owned by {user}"
        old = mem.uid
        try:
            mem.uid = uid  # IPC_SET: the mode (0600) stays, chronyd stays attached
        except sysv_ipc.PermissionsError:
            raise RuntimeFailure(
                f"shm:{unit} (key {key:#x}): cannot change the owner (uid {old}); run this as root"
            ) from None
        return f"shm:{unit} (key {key:#x}): owner changed from uid {old} to {user}"
    finally:
        mem.detach()
