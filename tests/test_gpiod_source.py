"""The libgpiod v2 source: checks without a GPIO chip, open() and read() against a fake
LineRequest carrying the real bindings' EdgeEvent, and a live test where a chip exists."""

from __future__ import annotations

import datetime as dt
import glob
import types

import gpiod
import pytest
from gpiod import EdgeEvent
from gpiod.line import Bias as GBias
from gpiod.line import Clock

from dcf77shm.errors import BadInput, RuntimeFailure
from dcf77shm.model import NS_PER_S, Bias, Edge, Gap, Step
from dcf77shm.sources import open_source
from dcf77shm.sources.gpiod_source import GpiodSource, check_api, lost_between, parse_spec


def test_spec_parsing() -> None:
    assert parse_spec("gpiochip0:17") == ("/dev/gpiochip0", 17)
    assert parse_spec("/dev/gpiochip4:GPIO17") == ("/dev/gpiochip4", "GPIO17")
    for bad in ("gpiochip0", ":17", "gpiochip0:", ""):
        with pytest.raises(BadInput):
            parse_spec(bad)
    src = open_source("gpiod:gpiochip0:4", {"bias": "pull-up", "glitch_filter_us": 50})
    assert isinstance(src, GpiodSource)
    assert (src.chip, src.line, src.debounce_us) == ("/dev/gpiochip0", 4, 50)
    assert src.bias is Bias.PULL_UP
    with pytest.raises(BadInput):
        open_source("gpiod:gpiochip0:4", {"bias": "up"})


def test_v1_api_is_refused_with_the_fix() -> None:
    class ChipV1:
        def get_line(self, n: int) -> None: ...

    v1 = types.SimpleNamespace(Chip=ChipV1, LINE_REQ_EV_BOTH_EDGES=3)
    with pytest.raises(RuntimeFailure) as e:
        check_api(v1)
    assert "pip install" in str(e.value) and "apt install python3-libgpiod" in str(e.value)
    assert "-t bookworm-backports python3-libgpiod" in str(e.value)  # 2.x there

    class ChipV2:
        def line_offset_from_id(self, x: object) -> int:
            return 0

    check_api(types.SimpleNamespace(Chip=ChipV2, request_lines=lambda *a: None))
    import gpiod  # the venv's real bindings are v2

    check_api(gpiod)


def test_sequence_numbers_reveal_lost_events() -> None:
    assert lost_between(None, 7) == 0
    assert lost_between(7, 8) == 0
    assert lost_between(7, 11) == 3
    assert lost_between(7, 7) == 0


def test_missing_chip_is_one_clear_line() -> None:
    src = GpiodSource("/dev/gpiochip-none", 4)
    with pytest.raises(BadInput, match="no such GPIO chip"):
        src.open()


@pytest.mark.skipif(not glob.glob("/dev/gpiochip*"), reason="no GPIO chip on this machine")
def test_live_chip_opens_and_reads() -> None:
    src = GpiodSource(sorted(glob.glob("/dev/gpiochip*"))[0], 0)
    try:
        src.open()
    except RuntimeFailure as e:
        pytest.skip(f"line not available: {e}")
    try:
        assert src.read(0.2) is not None
    finally:
        src.close()


# --- read() against a fake of gpiod v2's LineRequest --------------------------------

MS = 1_000_000
RISING, FALLING = EdgeEvent.Type.RISING_EDGE.value, EdgeEvent.Type.FALLING_EDGE.value


class FakeRequest:
    """gpiod v2's LineRequest as the source uses it: wait_edge_events(timeout)
    -> bool, read_edge_events() -> list[EdgeEvent] (the real bindings' event
    class, so type, timestamp_ns, line_offset and line_seqno are gpiod's own)."""

    def __init__(self, batches: list[list[EdgeEvent]]) -> None:
        self.batches = batches
        self.waits: list[dt.timedelta] = []
        self.released = False

    def wait_edge_events(self, timeout: dt.timedelta | float | None = None) -> bool:
        assert isinstance(timeout, dt.timedelta)
        self.waits.append(timeout)
        return bool(self.batches) and bool(self.batches[0])

    def read_edge_events(self, max_events: int | None = None) -> list[EdgeEvent]:
        return self.batches.pop(0)

    def release(self) -> None:
        self.released = True


class FakeChip:
    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> FakeChip:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def line_offset_from_id(self, line: int | str) -> int:
        return {"GPIO17": 17}.get(str(line), int(line) if isinstance(line, int) else -1)


def _event(kind: int, mono_ns: int, seqno: int, offset: int = 17) -> EdgeEvent:
    return EdgeEvent(kind, mono_ns, offset, seqno, seqno)


def _opened(
    monkeypatch: pytest.MonkeyPatch,
    batches: list[list[EdgeEvent]],
    clocks: list[tuple[int, int, int]],
    debounce_us: int = 0,
) -> tuple[GpiodSource, FakeRequest, dict[int, gpiod.LineSettings]]:
    """A GpiodSource opened through the real open() on GPIO17 of a fake chip."""
    req = FakeRequest(batches)
    asked: dict[int, gpiod.LineSettings] = {}

    def request_lines(
        path: str, consumer: str, config: dict[int, gpiod.LineSettings]
    ) -> FakeRequest:
        assert (path, consumer) == ("/dev/gpiochip0", "dcf77shm")
        asked.update(config)
        return req

    monkeypatch.setattr(gpiod, "Chip", FakeChip)
    monkeypatch.setattr(gpiod, "request_lines", request_lines)
    readings = iter(clocks)
    src = GpiodSource("/dev/gpiochip0", "GPIO17", Bias.PULL_UP, debounce_us, lambda: next(readings))
    src.open()
    return src, req, asked


# CLOCK_MONOTONIC at 1000 s; REALTIME 1.7e9 s ahead of it; MONOTONIC_RAW 2 ms behind.
T = 1000 * NS_PER_S
TO_RT = 1_700_000_000 * NS_PER_S
TO_RAW = -2 * MS


def _clocks(mono: int, to_rt: int = TO_RT) -> tuple[int, int, int]:
    return (mono + to_rt, mono, mono + TO_RAW)


def test_read_maps_kernel_stamps_onto_both_clocks(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = [_event(RISING, T, 1), _event(FALLING, T + 100 * MS, 2)]
    src, req, settings = _opened(monkeypatch, [batch, []], [_clocks(T + 150 * MS)] * 2)
    assert list(settings) == [17]
    assert settings[17].event_clock is Clock.MONOTONIC
    assert settings[17].bias is GBias.PULL_UP
    assert src.read(0.5) == [
        Edge(T + TO_RT, 1, T + TO_RAW),
        Edge(T + 100 * MS + TO_RT, 0, T + 100 * MS + TO_RAW),
    ]
    assert req.waits == [dt.timedelta(seconds=0.5)]
    assert src.read(0.25) == []  # a timeout: nothing, and the clocks did not step
    assert req.waits[-1] == dt.timedelta(seconds=0.25)
    src.close()
    assert req.released
    src.close()  # idempotent


def test_read_turns_a_sequence_jump_into_a_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    batches = [[_event(RISING, T, 1)], [_event(FALLING, T + 100 * MS, 2)],
               [_event(RISING, T + 1000 * MS, 5)]]  # fmt: skip
    src, _, _ = _opened(monkeypatch, batches, [_clocks(T + 1200 * MS)] * 3)
    src.read(1.0)
    assert src.read(1.0) == [Edge(T + 100 * MS + TO_RT, 0, T + 100 * MS + TO_RAW)]
    t = T + 1000 * MS
    assert src.read(1.0) == [
        Gap(t + TO_RT, "kernel dropped 2 GPIO events", t + TO_RAW),
        Edge(t + TO_RT, 1, t + TO_RAW),
    ]


def test_read_reports_a_system_clock_step_before_the_edges(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    step = 3 * NS_PER_S
    batches = [[_event(RISING, T, 1)], [_event(FALLING, T + 100 * MS, 2)]]
    clocks = [
        _clocks(T + 50 * MS),
        _clocks(T + 150 * MS, TO_RT + step),
        _clocks(T + 2 * NS_PER_S, TO_RT + step),
    ]
    src, _, _ = _opened(monkeypatch, [*batches, []], clocks)
    assert src.read(1.0) == [Edge(T + TO_RT, 1, T + TO_RAW)]
    # The edge is stamped with the new offset; a Step (at the raw time of the
    # read) goes out first, so the decoder never takes it for a second after it.
    assert src.read(1.0) == [
        Step(T + 150 * MS + TO_RAW, step),
        Edge(T + 100 * MS + TO_RT + step, 0, T + 100 * MS + TO_RAW),
    ]
    assert src.read(1.0) == []  # the offset holds: no second step


def test_read_takes_the_debounce_period_off_the_stamps(monkeypatch: pytest.MonkeyPatch) -> None:
    src, _, asked = _opened(monkeypatch, [[_event(RISING, T, 1)]], [_clocks(T)], debounce_us=50)
    assert asked[17].debounce_period == dt.timedelta(microseconds=50)
    assert src.read(1.0) == [Edge(T - 50_000 + TO_RT, 1, T - 50_000 + TO_RAW)]
