"""Real DCF77 frames: the "DCF-Receiver-Service" logs of dcf77logs.de.

Each frame line holds the received bits grouped by field and the date and time
the logger printed for that frame (the minute the frame encodes, local time,
WZ = CET, SZ = CEST), then remarks.  Every complete frame must decode, with
:func:`dcf77shm.timecode.decode`, to exactly what the logger printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from dcf77shm.timecode import FrameInvalid, TimeCode, decode

LOGS = Path(__file__).resolve().parents[1] / ".." / "shared" / "real-signals" / "dcf77logs-bits"

# Anything starting like a frame: marker bit, a space, the 14 weather bits.
LOOKS_LIKE_FRAME = re.compile(r"^[01_*] [01_]{14}\b")
FRAME = re.compile(
    r"^(?P<bits>[01_] [01_]{14} [01_]{6} [01_]{8} [01_]{7} [01_]{6} [01_]{3} [01_]{5} [01_]{9,10})"
    r"\s+(?P<wd>\w\w|__), (?P<day>\d\d|__)\.(?P<month>\d\d|__)\.(?P<year>\d\d|__)"
    r" (?P<hour>\d\d|__):(?P<minute>\d\d|__):(?P<second>\d\d), (?P<zone>WZ|SZ|__)"
    r"(?P<remark>.*)$"
)
WEEKDAYS = {"Mo": 1, "Di": 2, "Mi": 3, "Do": 4, "Fr": 5, "Sa": 6, "So": 7}
PARITY = {"parity-minute", "parity-hour", "parity-date"}


@dataclass(frozen=True)
class Line:
    file: str
    lineno: int
    bits: tuple[int | None, ...]
    printed: tuple[int, int, int, int, int, int, bool] | None  # y m d H M weekday cest
    remark: str
    flagged: bool  # the logger marked the line as faulty ("*")
    corrected: bool  # the logger repaired the bits itself ("korrigierte Daten")

    @property
    def complete(self) -> bool:
        return None not in self.bits


def parse_file(path: Path) -> tuple[int, list[Line]]:
    """Return (lines that look like frames, parsed frames); raise on any frame line not parsed."""
    looks = 0
    out: list[Line] = []
    # The logger writes Windows-1252 with CRLF line ends.
    for lineno, raw in enumerate(path.read_bytes().decode("cp1252").split("\n"), start=1):
        text = raw.rstrip("\r")
        if text.startswith("0 12345678901234"):  # the column ruler above the table
            continue
        if not LOOKS_LIKE_FRAME.match(text):
            continue
        looks += 1
        m = FRAME.match(text)
        assert m, f"{path.name}:{lineno}: frame line not understood: {text!r}"
        bits = tuple(None if c == "_" else int(c) for c in m["bits"].replace(" ", ""))
        printed = None
        fields = [m[k] for k in ("year", "month", "day", "hour", "minute", "wd", "zone")]
        if "__" not in fields:
            printed = (
                2000 + int(m["year"]),
                int(m["month"]),
                int(m["day"]),
                int(m["hour"]),
                int(m["minute"]),
                WEEKDAYS[m["wd"]],
                m["zone"] == "SZ",
            )
            assert m["second"] == "00"
        remark = m["remark"].strip()
        out.append(
            Line(
                path.name,
                lineno,
                bits,
                printed,
                remark,
                remark.startswith("*"),
                "korrigierte Daten" in remark,
            )
        )
    return looks, out


def _fields(tc: TimeCode) -> tuple[int, int, int, int, int, int, bool]:
    return (tc.year, tc.month, tc.day, tc.hour, tc.minute, tc.weekday, tc.cest)


def _files() -> list[Path]:
    if not LOGS.is_dir():
        pytest.skip(f"{LOGS} not present (real recordings live beside the repo)")
    files = sorted(LOGS.glob("*.log"))
    if not files:
        pytest.skip(f"no logs in {LOGS}")
    return files


def _decode(line: Line) -> TimeCode | None:
    try:
        return decode(line.bits)
    except FrameInvalid:
        return None


def test_every_frame_line_parses_and_decodes_to_the_printed_time() -> None:
    files = _files()
    looks = complete = decoded = weather_only = 0
    mismatches: list[str] = []
    rejected_flagged: list[str] = []
    rejected_printed: list[str] = []
    leap_frames: list[Line] = []
    lines: list[Line] = []
    for path in files:
        n, parsed = parse_file(path)
        assert n == len(parsed)
        looks += n
        lines += parsed
    for ln in lines:
        where = f"{ln.file}:{ln.lineno}"
        if not ln.complete:
            # An incomplete frame never decodes.  The logger flags it, unless only
            # the weather bits 1-14 are missing: then it prints the time, and the
            # time bits must say exactly that.
            assert _decode(ln) is None
            missing = {i for i, b in enumerate(ln.bits) if b is None}
            if missing <= set(range(1, 15)):
                weather_only += 1
                tc = decode([0 if b is None else b for b in ln.bits])
                assert ln.printed == _fields(tc), where
            else:
                assert ln.flagged or "Fehlerhafte Daten" in ln.remark, where
                assert ln.printed is None, where
            continue
        complete += 1
        if len(ln.bits) == 60:
            leap_frames.append(ln)
        try:
            tc = decode(ln.bits)
        except FrameInvalid as e:
            msg = f"{where} {','.join(e.reasons)} printed={ln.printed} {ln.remark!r}"
            if ln.flagged:
                rejected_flagged.append(msg)
                continue
            # The logger printed a time without flagging the frame: it must be a
            # frame whose only fault is a parity bit (older loggers did not check
            # P1), and its data bits must fit between the neighbouring minutes.
            rejected_printed.append(msg)
            assert set(e.reasons) <= PARITY, msg
            _assert_parity_only_fault(ln, lines)
            continue
        decoded += 1
        if ln.printed is None or _fields(tc) != ln.printed:
            mismatches.append(f"{where} decoded {_fields(tc)} printed {ln.printed}")
        # Remarks the logger derives from bits 16 and 19 agree with ours.
        assert tc.dst_announce == ("Zeitzonenwechsel" in ln.remark), where
        assert tc.leap_announce == ("Schaltsekunde" in ln.remark), where
        assert (len(ln.bits) == 60) == ("Impuls erhalten" in ln.remark), where
    print(
        f"\ndcf77logs: {len(files)} files, {looks} frame lines, {len(lines)} parsed, "
        f"{complete} complete, {decoded} decoded, {len(mismatches)} mismatches, "
        f"{complete - decoded} rejected ({len(rejected_flagged)} flagged by the logger, "
        f"{len(rejected_printed)} printed unflagged), {len(leap_frames)} leap-minute frames; "
        f"{len(lines) - complete} incomplete, of which {weather_only} lack only weather bits "
        "and carry the printed time"
    )
    for msg in rejected_flagged + rejected_printed:
        print("  rejected:", msg)
    assert looks == len(lines) > 0
    assert not mismatches, "\n".join(mismatches)
    # The figures below are what makes this test meaningful: most lines are real,
    # complete, valid minutes.
    assert decoded >= 0.99 * complete
    for ln in leap_frames:
        tc = decode(ln.bits)
        # The 60-bit frame is sent during the leap minute (23:59 UTC), so it encodes
        # 00:00 UTC, has A2 set and a 0 in bit 59.
        assert tc.leap_announce and ln.bits[59] == 0
        assert tc.utc_s() % 86400 == 0


def _assert_parity_only_fault(ln: Line, lines: list[Line]) -> None:
    i = lines.index(ln)
    fixed = list(ln.bits)
    for lo, hi in ((21, 28), (29, 35), (36, 58)):
        fixed[hi] = sum(b or 0 for b in fixed[lo:hi]) & 1
    tc = decode(fixed)
    neighbours = [_decode(x) for x in (lines[i - 1], lines[i + 1]) if x.file == ln.file]
    assert all(n is not None for n in neighbours)
    assert [n.utc_s() for n in neighbours if n] == [tc.utc_s() - 60, tc.utc_s() + 60]
    # Time of day, weekday and zone as printed.  (One such line, 03-Sommerzeit.log:67,
    # prints the year as 09 where the bits and its neighbours say 08.)
    assert ln.printed is not None and ln.printed[3:] == _fields(tc)[3:]
    if ln.printed[:3] != _fields(tc)[:3]:
        print(
            f"  {ln.file}:{ln.lineno} logger printed date {ln.printed[:3]}, "
            f"bits say {_fields(tc)[:3]}"
        )


def test_consecutive_valid_frames_advance_one_minute() -> None:
    """Between two adjacent valid lines the UTC minute advances by exactly one.

    A gap in the log (file boundary, a non-frame line such as the transmitter
    shutdown notes, a frame that does not decode, or a line the logger repaired
    itself) only requires time to move forward by at least one minute per line.
    """
    checked = gaps = 0
    odd: list[str] = []
    for path in _files():
        prev: tuple[int, int] | None = None  # (utc_s, index of the line in the file)
        gap = False
        raw_lines = path.read_bytes().decode("cp1252").split("\n")
        _, parsed = parse_file(path)
        by_line = {ln.lineno: ln for ln in parsed}
        since = 0
        for lineno, raw in enumerate(raw_lines, start=1):
            ln = by_line.get(lineno)
            if ln is None:
                if raw.strip() and not raw.startswith("0 12345678901234"):
                    gap = True
                continue
            tc = _decode(ln) if ln.complete else None
            if tc is None:
                gap = True
                since += 1
                continue
            if prev is not None:
                d = tc.utc_s() - prev[0]
                if gap:
                    gaps += 1
                    assert d % 60 == 0 and d >= 60 * (since + 1), f"{path.name}:{lineno}"
                else:
                    checked += 1
                    if d != 60:
                        odd.append(f"{path.name}:{lineno} advanced {d} s")
            prev = (tc.utc_s(), lineno)
            gap = ln.corrected
            since = 0
    print(f"\ndcf77logs: {checked} adjacent pairs advance 60 s, {gaps} across gaps")
    assert checked > 5000
    assert not odd, odd
