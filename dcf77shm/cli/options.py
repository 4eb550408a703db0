"""Options and value parsers shared by the commands (durations, times, the source options)."""

from __future__ import annotations

import calendar
import datetime as dt
import glob
import math
import os
import re
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource
from click.shell_completion import CompletionItem

from dcf77shm.errors import BadInput
from dcf77shm.model import Bias, Polarity
from dcf77shm.sinks.shm import PACKAGED_UNIT
from dcf77shm.sinks.sock import PACKAGED_SOCK

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


# DCF77 sends a two-digit year, read as 2000-2099, and each frame encodes the
# next minute in local time (CET, one hour ahead of UTC at new year): the last
# frame that still says 2099 is sent at 2099-12-31T22:58Z.
DCF77_FIRST_S = calendar.timegm((2000, 1, 1, 0, 0, 0))
DCF77_END_S = calendar.timegm((2099, 12, 31, 22, 59, 0))
# `--start random` draws from years that have passed, whatever the date today,
# so that the same --seed gives the same log on every day.
RANDOM_END_S = calendar.timegm((2025, 1, 1, 0, 0, 0))


def _iso(t_s: int) -> str:
    return dt.datetime.fromtimestamp(t_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_dcf77_range(start_s: int, duration_s: float) -> None:
    """Refuse a simulated log that leaves the years a DCF77 frame can name."""
    if start_s < DCF77_FIRST_S or start_s + duration_s > DCF77_END_S:
        raise BadInput(
            "a DCF77 frame names the year with two digits (2000-2099): the simulated log "
            f"must lie between {_iso(DCF77_FIRST_S)} and {_iso(DCF77_END_S)}; "
            "fix --start or --duration"
        )


def random_start(seed: int, duration_s: float) -> int:
    """`--start random`: a UTC second from --seed such that the whole log lies in the past."""
    import random

    hi = max(DCF77_FIRST_S + 1, RANDOM_END_S - math.ceil(duration_s))
    return random.Random(seed).randrange(DCF77_FIRST_S, hi)


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


SOURCE_SCHEMES = ("pigpio:", "gpiod:", "replay:", "sim")
OUTPUT_SCHEMES = ("shm:", "sock:")


def _complete_spec(schemes: tuple[str, ...], incomplete: str) -> list[CompletionItem]:
    """The scheme itself, then what follows it where we can list it here."""
    if ":" not in incomplete:
        return [CompletionItem(s) for s in schemes if s.startswith(incomplete)]
    scheme, _, rest = incomplete.partition(":")
    if scheme == "replay":
        found = sorted(glob.glob(glob.escape(rest) + "*"))[:200]
        return [
            CompletionItem(f"replay:{f}/" if os.path.isdir(f) else f"replay:{f}") for f in found
        ]
    if scheme == "gpiod":
        chips = sorted(p.removeprefix("/dev/") for p in glob.glob("/dev/gpiochip*"))
        return [CompletionItem(f"gpiod:{c}:") for c in chips if c.startswith(rest)]
    if scheme == "sock":
        return [CompletionItem(f"sock:{p}") for p in [PACKAGED_SOCK] if p.startswith(rest)]
    if scheme == "shm":
        return (
            [CompletionItem(f"shm:{PACKAGED_UNIT}")] if str(PACKAGED_UNIT).startswith(rest) else []
        )
    return []


def complete_source(_ctx: Any, _param: Any, incomplete: str) -> list[CompletionItem]:
    return _complete_spec(SOURCE_SCHEMES, incomplete)


def complete_output(_ctx: Any, _param: Any, incomplete: str) -> list[CompletionItem]:
    return _complete_spec(OUTPUT_SCHEMES, incomplete)


# Options that only some sources use; given for another source they would do
# nothing, silently.  (option name, default, the schemes it is for)
_SOURCE_ONLY = (
    ("glitch_filter_us", 0, ("pigpio", "gpiod")),
    ("bias", Bias.AS_IS.value, ("pigpio", "gpiod")),
    ("pace", False, ("replay",)),
)


def check_source_options(source_spec: str) -> None:
    """Refuse an option the chosen source ignores (given on the command line; from
    a config file, warn: the file may serve a real receiver another day)."""
    ctx = click.get_current_context()
    scheme = source_spec.partition(":")[0]
    for name, default, schemes in _SOURCE_ONLY:
        if scheme in schemes or ctx.params.get(name, default) == default:
            continue
        flag = "--" + name.replace("_", "-")
        msg = f"{flag} does nothing with --source {scheme}: it is for {' and '.join(schemes)}"
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            raise BadInput(msg)
        click.echo(f"dcf77shm: warning: {msg} (from the config file)", err=True)


def source_options(f: F) -> F:
    """--source and the options the live and replay sources take."""
    for opt in reversed(
        [
            click.option(
                "--source",
                "source_spec",
                required=True,
                shell_complete=complete_source,
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
                type=click.Choice([b.value for b in Bias]),
                default=Bias.AS_IS.value,
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

    check_source_options(source_spec)
    return open_source(
        source_spec, {"glitch_filter_us": glitch_filter_us, "bias": Bias(bias), "pace": pace}
    )


_SHIFT_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}


def _shift_s(text: str, what: str) -> int:
    """'+3600', '-1y', '+2m', '1d' -> seconds."""
    m = re.fullmatch(r"([+-]?\d{1,9})([smhdy]?)", text.strip())
    if not m:
        raise BadInput(f"bad {what} shift {text!r}: use a signed number of s, m, h, d or y")
    return int(m.group(1)) * _SHIFT_UNITS[m.group(2) or "s"]


def _span(text: str, what: str, example: str) -> tuple[float, float, list[str]]:
    parts = text.split(":")
    try:
        start, length = float(parts[0]), float(parts[1])
    except (ValueError, IndexError):
        raise BadInput(f"bad {what} {text!r}: use {example}") from None
    if not (0 <= start < 1e9 and 0 < length < 1e9):
        raise BadInput(f"bad {what} {text!r}: START must be >= 0 and LENGTH > 0 (seconds)")
    return start, length, parts[2:]


def parse_clock_step(text: str) -> tuple[float, float]:
    """AT:DELTA, both in seconds: the system clock steps by DELTA at AT."""
    try:
        at_s, delta_s = text.split(":")
        at, delta = float(at_s), float(delta_s)
    except ValueError:
        raise BadInput(
            f"bad --clock-step {text!r}: use AT:DELTA in seconds, e.g. 900:+60"
        ) from None
    if not (0 <= at < 1e9 and abs(delta) < 1e10 and delta != 0):
        raise BadInput(f"bad --clock-step {text!r}: AT >= 0 and a non-zero DELTA")
    return at, delta


def parse_spoof(text: str) -> Any:
    """START:LENGTH[:shift=S,phase=MS,drift=MS,a2] -> a SPOOF segment."""
    from dcf77shm.sources.simulate import Segment, SegmentKind

    example = "START:LENGTH[:shift=+1h,phase=30,drift=1,a2], e.g. 900:1200:shift=+1"
    start, length, rest = _span(text, "--spoof", example)
    kw: dict[str, Any] = {}
    for item in ",".join(rest).split(","):
        key, _, value = item.strip().partition("=")
        try:
            if key == "shift":
                kw["shift_s"] = _shift_s(value, "--spoof")
            elif key == "phase":
                kw["phase_ms"] = float(value)
            elif key == "drift":
                kw["drift_ms_per_min"] = float(value)
            elif key == "a2" and not value:
                kw["leap_announce"] = True
            elif key:
                raise BadInput(f"bad --spoof {text!r}: unknown {key!r}; use {example}")
        except ValueError:
            raise BadInput(f"bad --spoof {text!r}: {key}={value!r} is not a number") from None
    return Segment(start, length, SegmentKind.SPOOF, **kw)


def parse_noise(text: str) -> Any:
    """START:LENGTH[:RATE] -> a NOISE segment (the receiver outputs noise only)."""
    from dcf77shm.sources.simulate import Segment, SegmentKind

    start, length, rest = _span(text, "--noise", "START:LENGTH[:RATE], e.g. 1200:600:3")
    try:
        rate = float(rest[0]) if rest else 2.0
    except ValueError:
        raise BadInput(f"bad --noise {text!r}: RATE is pulses per second") from None
    if not 0 < rate <= 100:
        raise BadInput(f"bad --noise {text!r}: RATE must be in (0, 100] pulses per second")
    return Segment(start, length, SegmentKind.NOISE, rate=rate)


# --- the pipeline's options, shared by run and decode (decode replays what run does) ---


def parse_jump_policy(text: str) -> tuple[Any, int]:
    """'never' or 'after:DURATION' -> (JumpPolicy, follow_ns)."""
    from dcf77shm.decode.guard import JumpPolicy

    if text == "never":
        return JumpPolicy.NEVER, 0
    kind, _, dur = text.partition(":")
    if kind != "after" or not dur:
        raise BadInput(f"bad jump policy {text!r}: use 'never' or 'after:DURATION' (e.g. after:6h)")
    return JumpPolicy.AFTER, round(parse_duration(dur) * 1_000_000_000)


def pipeline_options(f: F) -> F:
    """The decoder and the held count's options (the same keys in the config file)."""
    from dcf77shm.decode.pipeline import DECODERS, DEFAULT_DECODER

    for opt in reversed(
        [
            click.option(
                "--polarity",
                type=POLARITY,
                default="auto",
                show_default=True,
                help="Line level while the carrier is reduced; auto detects it.",
            ),
            click.option(
                "--decoder",
                type=click.Choice(sorted(DECODERS)),
                default=DEFAULT_DECODER,
                show_default=True,
                help="Bit/frame/lock stage.",
            ),
            click.option(
                "--jump-policy",
                default="never",
                show_default=True,
                help="When the radio's time contradicts the held count: 'never' follow it "
                "(until reboot, or the state file is deleted), or 'after:DURATION' of agreement.",
            ),
            click.option(
                "--drift-ppm",
                type=click.FloatRange(0.5, 100),
                default=5.0,
                show_default=True,
                help="How far the held rate may move from the rate learned at lock before "
                "drift stops publishing (the host crystal's wander).",
            ),
            click.option(
                "--holdover-ppm",
                type=click.FloatRange(0.5, 1000),
                default=10.0,
                show_default=True,
                help="Growth of the held count's uncertainty without signal.",
            ),
            click.option(
                "--leap-seconds",
                default="system",
                show_default=True,
                help="leap-seconds.list to trust over A2: a path, 'system' (tzdata's), or "
                "'none' (A2 alone, the old rule).",
            ),
        ]
    ):
        f = opt(f)
    return f


def build_pipeline(
    polarity: str,
    decoder: str,
    jump_policy: str,
    drift_ppm: float,
    holdover_ppm: float,
    leap_seconds: str,
) -> tuple[Any, Any]:
    """(Pipeline, LeapTable or None) from the options of :func:`pipeline_options`."""
    from pathlib import Path

    from dcf77shm import leapsecs
    from dcf77shm.decode.guard import DEFAULT_FOLLOW_NS, GuardConfig
    from dcf77shm.decode.pipeline import Pipeline

    policy, follow_ns = parse_jump_policy(jump_policy)
    if leap_seconds == "system":
        table = leapsecs.load_system()
    elif leap_seconds == "none":
        table = None
    else:
        table = leapsecs.load(Path(leap_seconds))
    guard = GuardConfig(
        jump_policy=policy,
        follow_ns=follow_ns or DEFAULT_FOLLOW_NS,
        band_ppm=drift_ppm,
        holdover_ppm=holdover_ppm,
    )
    return Pipeline(Polarity(polarity), decoder, table, guard), table
