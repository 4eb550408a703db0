"""Hand an existing SHM segment to the service user (the unit's root ExecStartPre).

The packaged service runs as ``_dcf77`` and starts before chronyd, so it
normally creates the segment itself (0600, owner _dcf77) and chronyd, which
attaches while it is still root, reads it anyway.  But when chronyd started
first (it was running when the package was installed, or someone restarted
dcf77shm after chrony), the segment is chronyd's: owner root, mode 0600, and
_dcf77 may not write it.  Removing it is no fix: chronyd stays attached to the
removed segment and never sees another sample.  Changing its owner
(shmctl IPC_SET) is: chronyd keeps its attachment and, as root, still reads it.
"""

from __future__ import annotations

import pwd

import sysv_ipc

from dcf77shm.errors import BadInput, RuntimeFailure
from dcf77shm.sinks.shm import key_for, parse_unit


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
