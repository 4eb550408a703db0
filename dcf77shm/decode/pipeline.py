"""The pure pipeline that both ``decode`` and ``run`` use.

edges -> :class:`~dcf77shm.decode.frontend.FrontEnd` (polarity, lost edges)
      -> a :class:`Decoder` (marks, frames, lock; replaceable)
      -> events (samples, minute reports, lock changes)

No I/O and no clock reads here: time only moves when an edge or an explicit
``advance`` says so, which is what makes ``decode`` of a log and ``run`` on the
same log publish the same samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from dcf77shm.decode.frontend import FrontEnd, Transition
from dcf77shm.errors import BadInput
from dcf77shm.model import Edge, Event, Gap, Polarity


class Decoder(Protocol):
    """The replaceable bit/frame/lock stage."""

    name: str

    @property
    def locked(self) -> bool: ...

    def transition(self, tr: Transition) -> list[Event]: ...

    def advance(self, now_ns: int) -> list[Event]: ...

    def gap(self, time_ns: int, reason: str) -> list[Event]: ...


def _strict() -> Decoder:
    from dcf77shm.decode.strict import StrictDecoder

    return StrictDecoder()


def _robust() -> Decoder:
    from dcf77shm.decode.robust.decoder import RobustDecoder

    return RobustDecoder()


DECODERS: dict[str, Callable[[], Decoder]] = {"robust": _robust, "strict": _strict}
DEFAULT_DECODER = "robust"


def make_decoder(name: str) -> Decoder:
    try:
        return DECODERS[name]()
    except KeyError:
        raise BadInput(
            f"unknown decoder {name!r}: choose one of {', '.join(sorted(DECODERS))}"
        ) from None


class Pipeline:
    def __init__(self, polarity: Polarity = Polarity.AUTO, decoder: str = DEFAULT_DECODER) -> None:
        self.front = FrontEnd(polarity)
        self.decoder = make_decoder(decoder)
        self._last_ns: int | None = None

    @property
    def polarity(self) -> Polarity:
        return self.front.polarity

    def feed(self, item: Edge | Gap) -> list[Event]:
        if isinstance(item, Gap):
            self.front.reset()
            self._last_ns = None
            return self.decoder.gap(item.time_ns, item.reason)
        out: list[Event] = []
        if self._last_ns is not None and item.time_ns < self._last_ns:
            # The system clock went backwards under a live source: every
            # interval across the step is meaningless.
            self.front.reset()
            out.extend(self.decoder.gap(item.time_ns, "system clock stepped back"))
        self._last_ns = item.time_ns
        for tr in self.front.feed(item):
            out.extend(self.decoder.transition(tr))
        return out

    def advance(self, now_ns: int) -> list[Event]:
        """Tell the pipeline that time ``now_ns`` was reached with no further edge."""
        if self._last_ns is not None and now_ns < self._last_ns:
            return []
        return self.decoder.advance(now_ns)


def decode_edges(
    edges: Iterable[Edge | Gap], polarity: Polarity = Polarity.AUTO, decoder: str = DEFAULT_DECODER
) -> Iterator[Event]:
    """Run a whole edge stream through a fresh pipeline, yielding events in order."""
    p = Pipeline(polarity, decoder)
    for e in edges:
        yield from p.feed(e)
