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

import contextlib
import pwd
import time
from collections.abc import Callable, Iterator

import sysv_ipc

from dcf77shm.errors import BadInput, RuntimeFailure
from dcf77shm.formats.events import iso_ns
from dcf77shm.model import NS_PER_S
from dcf77shm.sinks import shmstruct as st
from dcf77shm.sinks.shm import SegmentInfo, key_for, parse_unit, segment_info, trusted_uids


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
    why = info.unsafe(trusted_uids())
    if why is not None:
        lines.insert(1, f"UNSAFE: {why}: another local user can write the time chrony reads")
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
