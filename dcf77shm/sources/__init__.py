"""Edge sources, chosen by a URL-like spec (INTERFACES §3), as pyserial chooses ports.

=================  ==================================================  ==========================
spec               what                                                module
=================  ==================================================  ==========================
``pigpio:GPIO``    pigpiod (PIGPIO_ADDR/PIGPIO_PORT), BCM GPIO number  :mod:`.pigpio_source`
``gpiod:CHIP:LINE``  libgpiod v2, kernel CLOCK_REALTIME timestamps     :mod:`.gpiod_source`
``replay:FILE``    an edge log; ``pace`` hands edges on in real time   :mod:`.replay`
``sim``            the built-in simulated receiver, real time          :mod:`.sim`
=================  ==================================================  ==========================

Every source is small and does only I/O: it delivers :class:`~dcf77shm.model.Edge`
items stamped on the system clock and, for live sources, on this host's
CLOCK_MONOTONIC_RAW (the pipeline's steady timeline), plus
:class:`~dcf77shm.model.Gap` when it knows edges were lost and
:class:`~dcf77shm.model.Step` when it saw the system clock step; it never decodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from dcf77shm.model import SourceItem
from dcf77shm.spec import load_class, split_spec


class Source(Protocol):
    """An edge source.

    ``open`` attaches to the hardware or file and raises a
    :class:`~dcf77shm.errors.Dcf77Error` with one clear line when it cannot.
    ``read`` waits at most ``timeout_s`` and returns the items that arrived, in
    time order ([] on a timeout), or None once the source has ended (a replay
    ran out).  ``close`` is idempotent.
    """

    description: str
    live: bool  # its times are now (chrony's age limit applies)
    host_steady: bool  # mono_ns is this host's CLOCK_MONOTONIC_RAW (state survives restarts)

    def open(self) -> None: ...

    def read(self, timeout_s: float) -> list[SourceItem] | None: ...

    def close(self) -> None: ...


# scheme -> "module:Class"; the class has from_spec(arg, options) -> Source.
SCHEMES: dict[str, str] = {
    "pigpio": "dcf77shm.sources.pigpio_source:PigpioSource",
    "gpiod": "dcf77shm.sources.gpiod_source:GpiodSource",
    "replay": "dcf77shm.sources.replay:ReplaySource",
    "sim": "dcf77shm.sources.sim:SimSource",
}


def open_source(spec: str, options: Mapping[str, object] | None = None) -> Source:
    """Build (not yet open) the source named by ``spec``."""
    _scheme, arg, target = split_spec(spec, SCHEMES, "source")
    source: Source = load_class(target).from_spec(arg, dict(options or {}))  # type: ignore[attr-defined]
    return source
