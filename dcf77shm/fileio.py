"""Writing an output file the safe way (``simulate -o``, ``--truth``, ``record -o``,
the status file and the metrics textfile).

dcf77shm often runs as root, and an output path is whatever the user (or a
config file) named.  Renaming a temp file over the path whatever it is
replaced ``/dev/null`` with a regular file for the whole machine, and a
predictable temp name in a shared directory let anyone plant a symlink there
and have root write through it.  So the kind of the path decides:

- a regular file, or nothing yet: written to a temp file in the same
  directory (``O_CREAT|O_EXCL|O_NOFOLLOW``, so nothing planted at its name is
  followed or reused; the name is random unless the caller wants a visible
  ``NAME.part``), fsync'd, then renamed over the path.  A reader sees the old
  file or the whole new one; a failure leaves the old file and no temp file;
- a character device or a FIFO: opened (``O_NOFOLLOW``, no ``O_CREAT``) and
  written directly; ``-`` is standard output;
- a symlink, directory, socket, block device: refused (BadInput, exit 2).
  A symlink is refused rather than followed because nothing tells us who
  planted it; the user can name its target.
"""

from __future__ import annotations

import contextlib
import enum
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, cast

from dcf77shm.errors import BadInput

STDOUT = "-"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIRECT = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY


class OutputKind(enum.Enum):
    STDOUT = "standard output"
    REPLACE = "a regular file, replaced atomically"
    DIRECT = "a character device or FIFO, written directly"


def _refusal(p: Path, mode: int) -> str | None:
    path = printable(p)
    if stat.S_ISLNK(mode):
        return (
            f"{path} is a symbolic link; name the file it points to "
            f"(or {STDOUT} for standard output)"
        )
    if stat.S_ISDIR(mode):
        return f"{path} is a directory; name a file in it"
    if stat.S_ISSOCK(mode):
        return f"{path} is a socket, not a file"
    if stat.S_ISBLK(mode):
        return f"{path} is a block device; refusing to write an output onto a disk"
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        return f"{path} is not a regular file, character device or FIFO"
    return None


def output_kind(path: str | os.PathLike[str]) -> OutputKind:
    """How ``path`` would be written, or BadInput (one line) if it is refused."""
    if os.fspath(path) == STDOUT:
        return OutputKind.STDOUT
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return OutputKind.REPLACE
    except (OSError, ValueError) as e:
        raise BadInput(f"cannot write {printable(p)}: {_why(e)}") from None
    problem = _refusal(p, st.st_mode)
    if problem is not None:
        raise BadInput(problem)
    return OutputKind.REPLACE if stat.S_ISREG(st.st_mode) else OutputKind.DIRECT


def check_output(path: str | os.PathLike[str]) -> None:
    """Refuse a path that :class:`Output` would refuse, before any work is done
    (a missing directory included)."""
    if output_kind(path) is OutputKind.REPLACE:
        parent = Path(path).parent
        if not parent.is_dir():
            raise BadInput(
                f"cannot write {printable(Path(path))}: no directory {printable(parent)}"
            )


class Output:
    """One output file: write to :attr:`file`, then :meth:`commit` (or :meth:`abort`).

    As a context manager it commits on success and aborts on an exception.
    ``part_suffix`` (``record``'s ``.part``) gives the temp file a visible
    name, still created with ``O_EXCL|O_NOFOLLOW``: if something is there
    already (an earlier recording cut short, or a planted link) it is refused,
    never reused.  ``wait=False`` never blocks on a FIFO.  ``durable=False``
    skips the fsyncs: readers still see the old file or the new one (the rename
    does that), but a power cut may lose it.  Every failure is BadInput naming
    the path.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        part_suffix: str | None = None,
        wait: bool = True,
        durable: bool = True,
    ) -> None:
        self.durable = durable
        self.kind = output_kind(path)
        self.path = Path(path)
        self.temp: Path | None = None
        self._fd_owned = True
        try:
            if self.kind is OutputKind.STDOUT:
                if sys.stdout is None:  # started with fd 1 closed (`>&-`)
                    raise BadInput("cannot write -: standard output is closed")
                sys.stdout.flush()
                self.file: BinaryIO = cast(BinaryIO, sys.stdout.buffer)
                self._fd_owned = False
            elif self.kind is OutputKind.DIRECT:
                self.file = os.fdopen(self._open_direct(wait), "wb")
            else:
                self.file = os.fdopen(self._create_temp(part_suffix), "wb")
        except OSError as e:
            raise BadInput(f"cannot write {printable(self.path)}: {_why(e)}") from None

    def _open_direct(self, wait: bool) -> int:
        # wait=False (the daemon's status file): a FIFO without a reader, or one
        # whose reader stopped reading, is an error (ENXIO, EAGAIN), not a hang.
        fd = os.open(self.path, _DIRECT | (0 if wait else os.O_NONBLOCK))
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):  # swapped since the lstat
            os.close(fd)
            raise BadInput(f"{printable(self.path)} changed while it was being opened; try again")
        return fd

    def _create_temp(self, part_suffix: str | None) -> int:
        try:
            old_mode: int | None = stat.S_IMODE(os.lstat(self.path).st_mode) & 0o777
        except FileNotFoundError:
            old_mode = None
        if part_suffix is not None:
            temp = self.path.with_name(self.path.name + part_suffix)
        else:
            temp = self.path.with_name(f".dcf77shm.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(temp, _CREATE, 0o666)  # the umask applies, as for any new file
        except FileExistsError:
            raise BadInput(
                f"{printable(temp)} exists (an earlier run cut short?); move it away or remove it"
            ) from None
        self.temp = temp
        if old_mode is not None:
            # Replacing a file keeps its permissions (a 0640 status file stays 0640).
            with contextlib.suppress(OSError):
                os.fchmod(fd, old_mode)
        return fd

    def commit(self) -> None:
        """Flush and, for a regular file, fsync and rename over the path."""
        try:
            self.file.flush()
            if self.temp is not None and self.durable:
                os.fsync(self.file.fileno())
        except BrokenPipeError:
            self.abort()
            raise  # the reader of `-` went away (`| head`): the CLI exits quietly
        except OSError as e:
            self.abort()
            raise BadInput(f"cannot write {printable(self.path)}: {_why(e)}") from None
        if self._fd_owned:
            self.file.close()
        if self.temp is None:
            return
        try:
            os.replace(self.temp, self.path)
        except OSError as e:
            self.abort()
            raise BadInput(f"cannot write {printable(self.path)}: {_why(e)}") from None
        self.temp = None
        if self.durable:
            _fsync_dir(self.path.parent)

    def abort(self) -> None:
        """Drop what was written: the old file stays as it was, no temp file is left."""
        if self._fd_owned:
            with contextlib.suppress(OSError):
                self.file.close()
        if self.temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)
            self.temp = None

    def __enter__(self) -> BinaryIO:
        return self.file

    def __exit__(self, exc_type: object, *_rest: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


@contextlib.contextmanager
def open_output(
    path: str | os.PathLike[str], wait: bool = True, durable: bool = True
) -> Iterator[IO[bytes]]:
    """``with open_output(p) as f: f.write(...)``: see :class:`Output`.  An OSError
    while writing becomes BadInput naming the path."""
    out = Output(path, wait=wait, durable=durable)
    try:
        yield out.file
    except BrokenPipeError:
        out.abort()
        raise
    except OSError as e:
        out.abort()
        raise BadInput(f"cannot write {printable(out.path)}: {_why(e)}") from None
    except BaseException:
        out.abort()
        raise
    out.commit()


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; best effort (some filesystems refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e)


def printable(p: str | os.PathLike[str]) -> str:
    """A path for a one-line message: control characters escaped, length cut."""
    text = repr(os.fspath(p))[1:-1] if not os.fspath(p).isprintable() else os.fspath(p)
    return text if len(text) <= 200 else text[:200] + "..."
