"""One writer per output: a second ``run`` on the same unit or socket refuses to start.

Two writers on one SHM unit (or one SOCK path) interleave their samples, and
chrony serves the mix.  Each ``run`` therefore claims its output under a
Linux abstract socket name (``@dcf77shm-writer shm:77``): a name exists while
the process that bound it lives, whatever user it runs as, with no file to
leave behind or clean up after ``kill -9``.  The socket listens only so that a
second ``run`` can ask the kernel who holds the name (``SO_PEERCRED``); it
never accepts a connection and carries no data.

A name held by a user who could not write to our output anyway (not root,
not us, not the service user: the SHM segment is 0600 and checked) is not a
second writer but a squatter: that is logged and the run goes on, so a local
user cannot stop the service by taking the name first.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import struct

from dcf77shm.errors import RuntimeFailure
from dcf77shm.sinks.shm import trusted_uids, user_name

PREFIX = "dcf77shm-writer "
_MAX_NAME = 100  # abstract names may have up to 107 bytes


def lock_name(output_spec: str) -> str:
    """The name a writer of ``output_spec`` claims: the same output, the same name."""
    kind, _, arg = output_spec.partition(":")
    if kind == "shm":
        key = f"shm:{int(arg)}"
    else:
        key = f"{kind}:{os.path.realpath(arg)}"
    name = PREFIX + key
    if len(name.encode()) > _MAX_NAME:
        name = PREFIX + kind + ":sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return name


def _holder(address: bytes) -> tuple[int, int] | None:
    """(pid, uid) of the process that holds ``address``, or None if unknown."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    try:
        probe.connect(address)
        raw = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    finally:
        probe.close()
    pid, uid, _gid = struct.unpack("3i", raw)
    return pid, uid


def claim(output_spec: str) -> socket.socket | None:
    """Claim ``output_spec`` for this process; keep the socket open while writing.

    Raises RuntimeFailure (exit 1) when another trusted writer holds it.  Returns
    None when the name is squatted by an untrusted user (logged as a warning).
    """
    name = lock_name(output_spec)
    address = b"\0" + name.encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(address)
        sock.listen(1)
    except OSError as e:
        sock.close()
        if e.errno != errno.EADDRINUSE:
            raise RuntimeFailure(f"{output_spec}: cannot claim the output ({e.strerror})") from e
        who = _holder(address)
        if who is not None and who[1] not in trusted_uids():
            logging.getLogger("dcf77shm.run").warning(
                "%s: the writer name @%s is held by %s (PID %d), who cannot write this "
                "output; going on without the one-writer check",
                output_spec,
                name,
                user_name(who[1]),
                who[0],
            )
            return None
        pid = f"PID {who[0]}" if who is not None and who[0] > 0 else "PID unknown"
        raise RuntimeFailure(
            f"{output_spec}: another dcf77shm run ({pid}) already writes it; two writers "
            "mix their samples: stop that one first (systemctl stop dcf77shm) or use "
            "another unit or path"
        ) from None
    return sock
