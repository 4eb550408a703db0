"""Edge logs (INTERFACES §1): read versions 1 and 2, write version 2.

Version 1 lines are ``<time_ns> <level>``: the system clock only.  Version 2
(header ``# dcf77shm edges v2``) adds the steady clock as a third field,
``<time_ns> <level> <mono_ns>``, so that a recording replays the way it was
received even across a step of the system clock: ``mono_ns`` never decreases,
``time_ns`` may (a step back).  A version 1 file's only clock is the system
clock: it must not decrease, and a step forward in it looks like a jump.

A reader refuses a bad file as a whole, with one line naming the file, the
line number and the problem, before anything is decoded from it.  A log that
is only cut short (its writer killed: a gzip stream without its end, a last
line without its line end) is refused the same way, unless
the caller asks for ``partial``: then the complete lines before the cut are
the log, and ``warn`` hears once that it was truncated.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import os
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, cast

from dcf77shm.errors import BadInput
from dcf77shm.fileio import Output, printable
from dcf77shm.model import Edge

HEADER_V1 = "# dcf77shm edges v1"
HEADER_V2 = "# dcf77shm edges v2"
HEADER = HEADER_V2
HEADERS = {HEADER_V1: 1, HEADER_V2: 2}


MAX_LINE = 4096  # bytes; a data line has about 60
MAX_DIGITS = 20  # an int64 of nanoseconds has 19
# 10000-01-01T00:00:00Z: a time at or after it is no system-clock reading
# (datetime, and so every report of it, ends at year 9999).
MAX_TIME_NS = 253_402_300_800 * 1_000_000_000


class _Cut(Exception):
    """The log ends in the middle of a line or of its gzip stream."""

    def __init__(self, lineno: int, what: str) -> None:
        super().__init__(lineno, what)
        self.lineno, self.what = lineno, what


def _cut_short(p: Path, lineno: int, what: str) -> BadInput:
    return BadInput(
        f"{p}:{lineno}: the log is cut short ({what}), as when its writer was killed; "
        "decode --partial decodes the complete lines before the cut"
    )


def _lines(p: Path) -> Iterator[bytes]:
    """The raw lines of a plain or gzip file, a FIFO or standard input (``-``),
    streamed; no line longer than MAX_LINE is ever held (``/dev/zero``)."""
    if str(p) == "-":
        opened: contextlib.AbstractContextManager[IO[bytes]] = contextlib.nullcontext(
            sys.stdin.buffer
        )
    else:
        try:
            opened = p.open("rb")
        except OSError as e:
            raise BadInput(f"{p}: cannot read: {e.strerror or e}") from None
    with opened as raw:
        try:
            # peek, not read and seek: a pipe cannot go back.
            head = raw.peek(2)[:2] if isinstance(raw, io.BufferedReader) else b""
        except OSError as e:
            raise BadInput(f"{p}: read error: {e}") from None
        gz = head == b"\x1f\x8b"
        stream: IO[bytes] = cast(IO[bytes], gzip.GzipFile(fileobj=raw)) if gz else raw
        lineno = 0
        try:
            while line := stream.readline(MAX_LINE + 1):
                lineno += 1
                if len(line) > MAX_LINE:
                    raise BadInput(
                        f"{p}:{lineno}: a line longer than {MAX_LINE} bytes: not an edge log"
                    )
                yield line
        except EOFError:
            # gzip: "Compressed file ended before the end-of-stream marker was
            # reached" - the writer never closed it (kill -9, a full disk).
            raise _Cut(lineno + 1, "the gzip stream ends before its end marker") from None
        except (zlib.error, gzip.BadGzipFile) as e:
            raise BadInput(f"{p}:{lineno + 1}: corrupt gzip data ({e})") from None
        except OSError as e:
            raise BadInput(f"{p}: read error: {e}") from None


def _scan(
    p: Path, partial: bool = False, warn: Callable[[str], None] | None = None
) -> Iterator[Edge]:
    """Parse and check an edge log line by line; BadInput on the first problem.

    A log cut short is BadInput too, unless ``partial``: then it ends at the
    last complete line, and ``warn`` (if given) says so."""
    edges = 0
    try:
        for edge in _parse(p, partial):
            edges += 1
            yield edge
    except _Cut as cut:
        if not partial:
            raise _cut_short(p, cut.lineno, cut.what) from None
        if warn is not None:
            warn(
                f"{p}:{cut.lineno}: truncated ({cut.what}): "
                f"decoding the {edges} edges of the complete lines before it"
            )


def _parse(p: Path, partial: bool = False) -> Iterator[Edge]:
    last: int | None = None  # the clock that must not decrease: time (v1) or mono (v2)
    version = 0
    lineno = 0
    for lineno, raw in enumerate(_lines(p), start=1):
        if lineno > 1 and not raw.endswith(b"\n") and (partial or version == 2):
            # The last line, without its line end.  A v2 line cut inside mono_ns
            # still parses (the first data line has nothing to be compared
            # with): never trust one.  A v1 line that parses is whole (a file
            # edited by hand), unless the caller said the log was cut.
            raise _Cut(lineno, "its last line has no line end")
        try:
            # Fast path for the common data line: ASCII digits and a 0/1 level.
            parts_b = raw.split()
            if (
                version
                and len(parts_b) == version + 1
                and parts_b[0].isdigit()
                and len(parts_b[0]) <= MAX_DIGITS
            ):
                lv = parts_b[1]
                mono_b = parts_b[2] if version == 2 else b"0"
                if (lv == b"0" or lv == b"1") and mono_b.isdigit() and len(mono_b) <= MAX_DIGITS:
                    # At most 20 digits: before MAX_TIME_NS, nothing more to check.
                    t = int(parts_b[0])
                    mono = int(mono_b) if version == 2 else None
                    key = t if mono is None else mono
                    if last is not None and key < last:
                        raise BadInput(_backwards(p, lineno, version, key, last))
                    last = key
                    yield Edge(t, 1 if lv == b"1" else 0, mono)
                    continue
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise BadInput(f"{p}:{lineno}: not UTF-8 text") from None
            if lineno == 1:
                version = HEADERS.get(line.removeprefix("\ufeff"), 0)  # a BOM from an editor
                if not version:
                    raise BadInput(
                        f"{p}:1: missing header: the first line must be {HEADER_V2!r} "
                        f"(or {HEADER_V1!r})"
                    )
                continue
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != version + 1:
                want = "'<time_ns> <level>'" if version == 1 else "'<time_ns> <level> <mono_ns>'"
                raise BadInput(f"{p}:{lineno}: expected {want}, got {_cut(line.strip())!r}")
            t = _int(p, lineno, "time_ns", parts[0])
            if parts[1] not in ("0", "1"):
                raise BadInput(f"{p}:{lineno}: level {parts[1]!r} is not 0 or 1")
            mono = _int(p, lineno, "mono_ns", parts[2]) if version == 2 else None
            key = t if mono is None else mono
            if last is not None and key < last:
                raise BadInput(_backwards(p, lineno, version, key, last))
            last = key
            yield Edge(t, 1 if parts[1] == "1" else 0, mono)
        except BadInput:
            # A last line without its line end was being written when the
            # writer died (a time cut mid-number, a v2 mono_ns cut to a smaller
            # one): a truncation, not a bad file.
            if lineno > 1 and not raw.endswith(b"\n"):
                raise _Cut(lineno, "its last line has no line end and does not parse") from None
            raise
    if lineno == 0:
        raise BadInput(f"{p}:1: missing header: the file is empty, expected {HEADER_V2!r}")


def _int(p: Path, lineno: int, what: str, s: str) -> int:
    """A clock reading: ASCII digits, at most MAX_DIGITS of them (int() of a
    4,300-digit string is refused by Python itself), not negative (both clocks
    count from an epoch) and before year 10000."""
    digits = s[1:] if s.startswith("-") else s
    if not (digits.isascii() and digits.isdigit()):
        raise BadInput(f"{p}:{lineno}: {what} {_cut(s)!r} is not an integer")
    if s.startswith("-") and digits.strip("0"):
        raise BadInput(
            f"{p}:{lineno}: {what} {_cut(s)} is negative: the clocks in an edge log "
            "count nanoseconds since an epoch"
        )
    if len(digits) > MAX_DIGITS or int(digits) >= MAX_TIME_NS:
        raise BadInput(_absurd(p, lineno, s, what))
    return int(digits)


def _absurd(p: Path, lineno: int, s: str, what: str = "time_ns") -> str:
    return (
        f"{p}:{lineno}: {what} {_cut(s)} is out of range: it must lie before "
        f"{MAX_TIME_NS} (year 10000)"
    )


def _backwards(p: Path, lineno: int, version: int, t: int, last: int) -> str:
    what = "time" if version == 1 else "mono_ns"
    return f"{p}:{lineno}: {what} goes backwards ({t} < previous {last})"


Warn = Callable[[str], None]


def read_edges(
    path: str | os.PathLike[str], partial: bool = False, warn: Warn | None = None
) -> list[Edge]:
    """Read a whole edge log, or raise :class:`BadInput` with one clear line.
    ``partial``: a log cut short is its complete lines (``warn`` hears of it)."""
    return list(_scan(Path(path), partial, warn))


def check_edges(
    path: str | os.PathLike[str], partial: bool = False, warn: Warn | None = None
) -> int:
    """Check a whole edge log without keeping it; returns the number of edges."""
    return sum(1 for _ in _scan(Path(path), partial, warn))


def iter_edges(path: str | os.PathLike[str], partial: bool = False) -> Iterator[Edge]:
    """Stream the edges of a log that :func:`check_edges` accepted (bounded memory)."""
    return _scan(Path(path), partial)


def _cut(s: str, n: int = 60) -> str:
    """A field or line quoted in an error: its start, not megabytes."""
    return s if len(s) <= n else s[:n] + f"... ({len(s)} characters)"


def format_edges(
    edges: Iterable[Edge], comments: Iterable[str] = (), version: int = 2
) -> Iterator[str]:
    yield (HEADER_V2 if version == 2 else HEADER_V1) + "\n"
    for c in comments:
        yield f"# {c}\n"
    for e in edges:
        yield format_edge(e, version)


def format_edge(e: Edge, version: int = 2) -> str:
    if version == 1:
        return f"{e.time_ns} {e.level}\n"
    if e.mono_ns is None:
        raise ValueError("a version 2 edge log needs mono_ns on every edge")
    return f"{e.time_ns} {e.level} {e.mono_ns}\n"


def write_edges(
    path: str | os.PathLike[str],
    edges: Iterable[Edge],
    comments: Iterable[str] = (),
    version: int | None = None,
) -> None:
    """Write an edge log the safe way (:mod:`dcf77shm.fileio`: a regular file is
    replaced atomically, a device, FIFO or ``-`` written directly, anything else
    refused); gzip when the name ends in .gz.  BadInput when it cannot be written.

    ``version`` None: 2 when the edges carry the steady clock, else 1."""
    if version is None:
        it = iter(edges)
        first = next(it, None)
        version = 1 if first is not None and first.mono_ns is None else 2
        edges = itertools.chain([] if first is None else [first], it)
    out = Output(path)
    try:
        with _text(out.file, Path(path)) as text:
            for chunk in format_edges(edges, comments, version):
                text.write(chunk)
    except BaseException as e:
        out.abort()
        _raise_write_error(e, path)
        raise
    out.commit()


def _raise_write_error(e: BaseException, path: str | os.PathLike[str]) -> None:
    """An OSError while writing as one BadInput line; a closed pipe (`| head`)
    stays BrokenPipeError, which the CLI takes as the reader's choice."""
    if isinstance(e, OSError) and not isinstance(e, BrokenPipeError):
        raise BadInput(f"cannot write {printable(path)}: {e.strerror or e}") from None


def _text(raw: IO[bytes], path: Path) -> io.TextIOWrapper:
    """A text stream over ``raw``, through gzip for NAME.gz; closing it leaves ``raw`` open."""
    out = cast(
        IO[bytes],
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if path.suffix == ".gz" else _Unclosed(raw),
    )
    return io.TextIOWrapper(out, encoding="utf-8", newline="\n")


class _Unclosed(io.RawIOBase):
    """``raw`` seen through a wrapper whose close() only flushes (sys.stdout stays open)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self._raw.write(b)
        return len(b)

    def flush(self) -> None:
        self._raw.flush()


class EdgeLogWriter:
    """Streaming writer for ``record``: appends edges as they come, flushes often.

    A regular file is written to ``NAME.part`` and renamed on close, so an
    interrupted recording never leaves a file that looks complete but is not;
    a device, FIFO or ``-`` is written directly (:mod:`dcf77shm.fileio`).
    """

    def __init__(
        self, path: str | os.PathLike[str], comments: Iterable[str] = (), version: int = 2
    ) -> None:
        self.path = Path(path)
        self.version = version
        self._out = Output(path, part_suffix=".part")
        self._gz: gzip.GzipFile | None = None
        self._text = _text(self._out.file, self.path)
        if isinstance(self._text.buffer, gzip.GzipFile):
            self._gz = self._text.buffer
        self._failed = False
        self.count = 0
        with self._guard():
            for chunk in format_edges((), comments, version):
                self._text.write(chunk)

    @property
    def part(self) -> Path | None:
        """Where the edges go until :meth:`close` (None: written directly)."""
        return self._out.temp

    def write(self, edge: Edge) -> None:
        with self._guard():
            self._text.write(format_edge(edge, self.version))
        self.count += 1

    def flush(self) -> None:
        with self._guard():
            self._text.flush()
            if self._gz is not None:
                self._gz.flush(zlib.Z_SYNC_FLUSH)
            self._out.file.flush()

    def close(self) -> None:
        """Finish the log: NAME.part becomes NAME.  After a write error nothing is
        left (the error was raised then)."""
        if self._failed:
            return
        # Closing the text stream writes the gzip trailer; the file itself stays
        # open for Output, which fsyncs and renames it.
        with self._guard():
            self._text.close()
        self._out.commit()

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except BaseException as e:
            if isinstance(e, OSError):  # disk full, /dev/full, a closed pipe
                self._failed = True
                self._out.abort()
                _raise_write_error(e, self.path)
            raise
