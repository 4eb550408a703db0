"""Edge logs (INTERFACES §1): read versions 1 and 2, write version 2.

Version 1 lines are ``<time_ns> <level>``: the system clock only.  Version 2
(header ``# dcf77shm edges v2``) adds the steady clock as a third field,
``<time_ns> <level> <mono_ns>``, so that a recording replays the way it was
received even across a step of the system clock: ``mono_ns`` never decreases,
``time_ns`` may (a step back).  A version 1 file's only clock is the system
clock: it must not decrease, and a step forward in it looks like a jump.

A reader refuses a bad file as a whole, with one line naming the file, the
line number and the problem, before anything is decoded from it.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import os
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, cast

from dcf77shm.errors import BadInput
from dcf77shm.model import Edge

HEADER_V1 = "# dcf77shm edges v1"
HEADER_V2 = "# dcf77shm edges v2"
HEADER = HEADER_V2
HEADERS = {HEADER_V1: 1, HEADER_V2: 2}


def _lines(p: Path) -> Iterator[bytes]:
    """The raw lines of a plain or gzip file, streamed."""
    try:
        raw = p.open("rb")
    except OSError as e:
        raise BadInput(f"{p}: cannot read: {e.strerror or e}") from None
    with raw:
        gz = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream: IO[bytes] = cast(IO[bytes], gzip.GzipFile(fileobj=raw)) if gz else raw
        try:
            yield from stream
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise BadInput(f"{p}: truncated or corrupt gzip data ({e})") from None
        except OSError as e:
            raise BadInput(f"{p}: read error: {e}") from None


def _scan(p: Path) -> Iterator[Edge]:
    """Parse and check an edge log line by line; BadInput on the first problem."""
    last: int | None = None  # the clock that must not decrease: time (v1) or mono (v2)
    version = 0
    lineno = 0
    for lineno, raw in enumerate(_lines(p), start=1):
        # Fast path for the common data line: ASCII digits and a 0/1 level.
        parts_b = raw.split()
        if version and len(parts_b) == version + 1 and parts_b[0].isdigit():
            lv = parts_b[1]
            mono_b = parts_b[2] if version == 2 else b"0"
            if (lv == b"0" or lv == b"1") and mono_b.isdigit():
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
            version = HEADERS.get(line, 0)
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
            raise BadInput(f"{p}:{lineno}: expected {want}, got {line.strip()!r}")
        t_s, l_s = parts[0], parts[1]
        if not _is_int(t_s):
            raise BadInput(f"{p}:{lineno}: time_ns {t_s!r} is not an integer")
        if l_s not in ("0", "1"):
            raise BadInput(f"{p}:{lineno}: level {l_s!r} is not 0 or 1")
        mono = None
        if version == 2:
            if not _is_int(parts[2]):
                raise BadInput(f"{p}:{lineno}: mono_ns {parts[2]!r} is not an integer")
            mono = int(parts[2])
        t = int(t_s)
        key = t if mono is None else mono
        if last is not None and key < last:
            raise BadInput(_backwards(p, lineno, version, key, last))
        last = key
        yield Edge(t, 1 if l_s == "1" else 0, mono)
    if lineno == 0:
        raise BadInput(f"{p}:1: missing header: the file is empty, expected {HEADER_V2!r}")


def _backwards(p: Path, lineno: int, version: int, t: int, last: int) -> str:
    what = "time" if version == 1 else "mono_ns"
    return f"{p}:{lineno}: {what} goes backwards ({t} < previous {last})"


def read_edges(path: str | os.PathLike[str]) -> list[Edge]:
    """Read a whole edge log, or raise :class:`BadInput` with one clear line."""
    return list(_scan(Path(path)))


def check_edges(path: str | os.PathLike[str]) -> int:
    """Check a whole edge log without keeping it; returns the number of edges."""
    return sum(1 for _ in _scan(Path(path)))


def iter_edges(path: str | os.PathLike[str]) -> Iterator[Edge]:
    """Stream the edges of a log that :func:`check_edges` accepted (bounded memory)."""
    return _scan(Path(path))


def _is_int(s: str) -> bool:
    if s.startswith("-"):
        s = s[1:]
    return s.isascii() and s.isdigit()


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
    """Write an edge log atomically (temp file + rename); gzip when the name ends in .gz.

    ``version`` None: 2 when the edges carry the steady clock, else 1."""
    p = Path(path)
    if version is None:
        it = iter(edges)
        first = next(it, None)
        version = 1 if first is not None and first.mono_ns is None else 2
        edges = itertools.chain([] if first is None else [first], it)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent or Path("."))
    try:
        with os.fdopen(fd, "wb") as raw:
            out = cast(
                IO[bytes],
                gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if p.suffix == ".gz" else raw,
            )
            with io.TextIOWrapper(out, encoding="utf-8", newline="\n") as text:
                for chunk in format_edges(edges, comments, version):
                    text.write(chunk)
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class EdgeLogWriter:
    """Streaming writer for ``record``: appends edges as they come, flushes often.

    Writes to ``NAME.part`` and renames on close, so an interrupted recording
    never leaves a file that looks complete but is not.
    """

    def __init__(
        self, path: str | os.PathLike[str], comments: Iterable[str] = (), version: int = 2
    ) -> None:
        self.path = Path(path)
        self.version = version
        self._part = self.path.with_name(self.path.name + ".part")
        self._raw = self._part.open("wb")
        self._gz: gzip.GzipFile | None = None
        out: IO[bytes] = self._raw
        if self.path.suffix == ".gz":
            self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0)
            out = cast(IO[bytes], self._gz)
        self._text = io.TextIOWrapper(out, encoding="utf-8", newline="\n")
        for chunk in format_edges((), comments, version):
            self._text.write(chunk)
        self.count = 0

    def write(self, edge: Edge) -> None:
        self._text.write(format_edge(edge, self.version))
        self.count += 1

    def flush(self) -> None:
        self._text.flush()
        if self._gz is not None:
            self._gz.flush(zlib.Z_SYNC_FLUSH)
        self._raw.flush()

    def close(self) -> None:
        self._text.close()
        # GzipFile does not close a file object it was handed: without this the
        # gzip trailer may still sit in the buffer when the file is renamed.
        self._raw.close()
        os.replace(self._part, self.path)
