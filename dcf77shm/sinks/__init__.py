"""Sample sinks, chosen by a URL-like spec (INTERFACES §3).

=============  ===================================================  ===============
spec           what                                                 module
=============  ===================================================  ===============
``shm:UNIT``   NTP shared memory, key 0x4e545030 + UNIT (chrony SHM)  :mod:`.shm`
``sock:PATH``  chrony's SOCK refclock datagram socket                 :mod:`.sock`
=============  ===================================================  ===============

A sink only writes: validation happens once, in the pipeline, before a sample
gets here (chrony's shared-layer rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from dcf77shm.model import Sample
from dcf77shm.spec import load_class, split_spec


class Sink(Protocol):
    """``open`` attaches (one clear line on failure), ``publish`` hands one sample
    on, ``close`` is idempotent and never destroys what chrony is attached to."""

    description: str
    dropped: int  # samples it could not deliver (SOCK: no reader); an SHM write cannot fail

    def open(self) -> None: ...

    def publish(self, sample: Sample) -> None: ...

    def close(self) -> None: ...


SCHEMES: dict[str, str] = {
    "shm": "dcf77shm.sinks.shm:ShmSink",
    "sock": "dcf77shm.sinks.sock:SockSink",
}


def open_sink(spec: str, options: Mapping[str, object] | None = None) -> Sink:
    """Build (not yet open) the sink named by ``spec``."""
    _scheme, arg, target = split_spec(spec, SCHEMES, "output")
    sink: Sink = load_class(target).from_spec(arg, dict(options or {}))  # type: ignore[attr-defined]
    return sink
