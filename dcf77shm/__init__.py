"""dcf77shm: a DCF77 radio-clock refclock driver for chrony.

Data flow (one module per stage): edges -> pulses -> second marks -> frames ->
time lock -> samples -> sink.  The middle is pure (no I/O, no clock reads);
I/O lives only in :mod:`dcf77shm.sources` and :mod:`dcf77shm.sinks`.
"""

__version__ = "0.1.0"
