"""Options and value parsers shared by the commands (durations, times, the source options)."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import click

from dcf77shm.errors import BadInput
from dcf77shm.model import Polarity

POLARITY = click.Choice([p.value for p in Polarity])

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise BadInput(
            f"bad duration {text!r}: use seconds or a number with s, m, h or d (e.g. 90m)"
        )
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def parse_utc(text: str, what: str) -> int:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(
            f"bad {what} {text!r}: use ISO 8601 UTC, e.g. 2024-03-31T00:30:00Z"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp())


def parse_fade(text: str) -> tuple[float, float]:
    try:
        a, b = text.split(":")
        start, length = float(a), float(b)
    except ValueError:
        raise BadInput(f"bad --fade {text!r}: use START:LENGTH in seconds, e.g. 600:90") from None
    if start < 0 or length <= 0:
        raise BadInput(f"bad --fade {text!r}: START must be >= 0 and LENGTH > 0")
    return start, length


def parse_leap_day(text: str) -> int:
    """A leap second inserted at the end of UTC day TEXT: returns the POSIX second after it."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"bad --leap-second {text!r}: use the UTC date, e.g. 2016-12-31") from None
    nxt = day + dt.timedelta(days=1)
    return calendar.timegm((nxt.year, nxt.month, nxt.day, 0, 0, 0))


def bounded(name: str, lo: float, hi: float) -> Callable[[Any, Any, float], float]:
    def check(_ctx: Any, _param: Any, value: float) -> float:
        if not lo <= value <= hi:
            raise click.BadParameter(f"must be between {lo} and {hi}, got {value}")
        return value

    return check


F = Callable[..., Any]


def source_options(f: F) -> F:
    """--source and the options the live and replay sources take."""
    for opt in reversed(
        [
            click.option(
                "--source",
                "source_spec",
                required=True,
                help="pigpio:GPIO, gpiod:CHIP:LINE, replay:FILE or sim.",
            ),
            click.option(
                "--glitch-filter-us",
                type=click.IntRange(0, 300_000),
                default=0,
                show_default=True,
                help="pigpio/gpiod: ignore level changes shorter than this (µs).",
            ),
            click.option(
                "--bias",
                type=click.Choice(["as-is", "pull-up", "pull-down", "disabled"]),
                default="as-is",
                show_default=True,
                help="pigpio/gpiod: the GPIO's internal pull resistor.",
            ),
            click.option(
                "--pace", is_flag=True, help="replay: hand each edge on when the clock reaches it."
            ),
        ]
    ):
        f = opt(f)
    return f


def open_cli_source(source_spec: str, glitch_filter_us: int, bias: str, pace: bool) -> Any:
    from dcf77shm.sources import open_source

    return open_source(
        source_spec, {"glitch_filter_us": glitch_filter_us, "bias": bias, "pace": pace}
    )
