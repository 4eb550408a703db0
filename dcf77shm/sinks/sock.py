"""``sock:PATH``: chrony's SOCK refclock (``refclock SOCK PATH``).

chronyd creates PATH, a unix datagram socket, when it starts (and removes it
when it stops); we send one ``struct sock_sample`` per second mark::

    struct timeval tv;   /* receive time, system clock */
    double offset;       /* true time - system time at tv, seconds */
    int pulse;           /* 0: a full time sample, not a bare PPS edge */
    int leap;            /* 0 normal, 1 insert, 2 delete */
    int _pad;
    int magic;           /* 0x534f434b "SOCK" */

chronyd may restart under us: a missing or refused socket drops that one
sample (debug log) and the next sample tries again.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import struct
from collections.abc import Mapping

from dcf77shm.errors import BadInput, RuntimeFailure
from dcf77shm.model import NS_PER_S, Sample
from dcf77shm.sinks.shmstruct import platform_layout

log = logging.getLogger("dcf77shm.sock")

SOCK_MAGIC = 0x534F434B
# The path of the shipped `refclock SOCK` line (chrony/dcf77shm-sock.conf; a
# test keeps the two equal): the one a production chronyd reads.
PACKAGED_SOCK = "/run/dcf77shm-sock/dcf77.sock"
# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_PATH = 107
SEND_TIMEOUT_S = 0.1
# timeval is two time_t-sized words (glibc widens suseconds_t along with
# time_t); the double that follows is 8-byte aligned in either case.
_FORMATS = {32: struct.Struct("=ii d iiii"), 64: struct.Struct("=qq d iiii")}


def pack_sample(receive_ns: int, clock_ns: int, leap: int, time_bits: int) -> bytes:
    """One datagram.  ``tv`` holds only microseconds, so the offset is taken
    against the truncated ``tv``: no precision is lost."""
    sec, ns = divmod(receive_ns, NS_PER_S)
    usec = ns // 1000
    offset = (clock_ns - (sec * NS_PER_S + usec * 1000)) / NS_PER_S
    if time_bits == 32 and not -(2**31) <= sec < 2**31:
        raise ValueError(f"second {sec} does not fit a 32-bit time_t (year 2038)")
    return _FORMATS[time_bits].pack(sec, usec, offset, 0, leap, 0, SOCK_MAGIC)


class SockSink:
    def __init__(self, path: str, time_bits: int | None = None) -> None:
        self.path = path
        self.time_bits = time_bits or platform_layout().time_bits
        self.description = f"sock:{path}"
        self.sent = 0
        self.dropped = 0
        self._sock: socket.socket | None = None
        self._opened = False
        self._down = False  # the last send failed (log once per outage)

    @classmethod
    def from_spec(cls, arg: str, options: Mapping[str, object]) -> SockSink:
        if not arg.startswith("/"):
            raise BadInput(
                f"bad SOCK path {arg!r}: give the absolute path of chrony's "
                "`refclock SOCK` line, e.g. sock:/run/dcf77shm-sock/dcf77.sock"
            )
        if len(os.fsencode(arg)) > MAX_PATH:
            raise BadInput(f"SOCK path {arg!r} is longer than {MAX_PATH} bytes (unix socket limit)")
        bits = options.get("time_bits")
        if bits not in (None, 32, 64):
            raise BadInput(f"bad time_bits {bits!r}: 32 or 64")
        return cls(arg, bits if isinstance(bits, int) else None)

    def open(self) -> None:
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            # chronyd creates the socket, never its directory: waiting would be
            # forever.  Exit 1, not 2: at boot chronyd may create its own
            # /run/chrony a moment later, and systemd's Restart= tries again.
            raise RuntimeFailure(
                f"{self.path}: no directory {parent}; fix: the path of chrony's "
                f"`refclock SOCK` line (the packaged one is {PACKAGED_SOCK}), and start chronyd"
            )
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            log.info("%s: no socket yet; samples go there once chronyd creates it", self.path)
        else:
            if not stat.S_ISSOCK(st.st_mode):
                raise RuntimeFailure(
                    f"{self.path} is not a socket; fix: point sock: at the path of chrony's "
                    "`refclock SOCK` line"
                )
            if not os.access(self.path, os.W_OK):
                raise RuntimeFailure(
                    f"{self.path}: permission denied (owner uid {st.st_uid}, mode "
                    f"{stat.S_IMODE(st.st_mode):04o}); fix: put the socket in "
                    "/run/dcf77shm-sock/ (the package's chrony.service drop-in gives it to "
                    "_dcf77 at each chronyd start) and restart chrony, or run dcf77shm as root"
                )
        self._opened = True

    def _connect(self) -> socket.socket:
        # Connected, so that a full queue (chronyd busy, or a burst of
        # samples: a unix datagram queue holds only net.unix.max_dgram_qlen,
        # 10 by default) blocks the send briefly instead of failing at once.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.settimeout(SEND_TIMEOUT_S)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        return sock

    def publish(self, sample: Sample) -> None:
        if not self._opened:
            raise RuntimeFailure(f"{self.description}: publish before open")
        data = pack_sample(sample.receive_ns, sample.clock_ns, int(sample.leap), self.time_bits)
        for attempt in (1, 2):
            try:
                if self._sock is None:
                    self._sock = self._connect()
                self._sock.send(data)
                break
            except OSError as e:
                # ENOENT/ECONNREFUSED: chronyd is not running, or restarted
                # (its new socket is another inode: reconnect once at once);
                # timeout: it is not reading.  The sample is dropped and the
                # next one tries again.
                self.close()
                if attempt == 1 and e.errno == errno.ECONNREFUSED:
                    continue
                self._dropped(sample, e)
                return
        if self._down:
            log.info("%s: chronyd reachable again", self.path)
        self._down = False
        self.sent += 1

    def _dropped(self, sample: Sample, e: OSError) -> None:
        self.dropped += 1
        reason = (
            "timeout" if isinstance(e, TimeoutError) else errno.errorcode.get(e.errno or 0, "?")
        )
        log.debug("%s: sample %d dropped: %s (%s)", self.path, sample.clock_ns, reason, e)
        if not self._down:
            log.warning("%s: chronyd not reachable (%s); retrying each second", self.path, reason)
        self._down = True

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
