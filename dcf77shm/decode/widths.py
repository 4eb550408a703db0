"""The receiver's pulse-width offset, learnt from the pulses themselves.

DCF77 reduces the carrier for 100 ms (bit 0) or 200 ms (bit 1).  A receiver's
filter stretches or shortens every pulse by about the same amount (tens of ms
on cheap modules, which also spread the widths): with fixed thresholds at the
nominal widths, a +40 ms offset and a 20 ms spread read a third of the zeros as
ones and a sixth of the ones as too long, and no frame passes parity.  Both
decoders therefore take widths relative to this running estimate.

Within ``DEADBAND_NS`` of the nominal widths the thresholds stay where they
were (they have 50 ms of margin either side; the Pollin captures' offset wanders
between 0 and 8 ms), so a near-nominal receiver is read exactly as before.

The estimate only moves where the 0/1 boundary lies.  What a second is labelled still
rests on parity, on whole frames agreeing and on the held count, so a wrong
estimate costs bits (availability), never a wrong second.
"""

from __future__ import annotations

from dcf77shm.model import NS_PER_MS

NOMINAL_NS = (100 * NS_PER_MS, 200 * NS_PER_MS)  # bit 0, bit 1
LIMIT_NS = 60 * NS_PER_MS  # receivers seen stretch by up to ~50 ms
# A pulse this far from where the estimate puts its nominal width is not
# learnt from (a glitch merged into it, a dropout inside it).
OUTLIER_NS = 50 * NS_PER_MS
GAIN = 32  # 1/32 per pulse: settles in two or three minutes, a flipped bit moves it < 2 ms
DEADBAND_NS = 15 * NS_PER_MS


class WidthOffset:
    __slots__ = ("_estimate",)

    def __init__(self) -> None:
        self._estimate = 0

    def reset(self) -> None:
        self._estimate = 0

    @property
    def ns(self) -> int:
        """The offset to take off a width before judging it (0 inside the deadband)."""
        return self._estimate if abs(self._estimate) > DEADBAND_NS else 0

    def learn(self, width_ns: int, bit: int) -> None:
        """A pulse taken as ``bit`` lasted ``width_ns``: move towards its offset."""
        r = width_ns - NOMINAL_NS[bit] - self._estimate
        if abs(r) <= OUTLIER_NS:
            self._estimate = max(-LIMIT_NS, min(LIMIT_NS, self._estimate + r // GAIN))
