"""The libgpiod v2 source: checks without a GPIO chip, and a live test where one exists."""

from __future__ import annotations

import glob
import types

import pytest

from dcf77shm.errors import BadInput, RuntimeFailure
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
    assert (src.chip, src.line, src.bias, src.debounce_us) == ("/dev/gpiochip0", 4, "pull-up", 50)
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
