"""The config file of ``dcf77shm run`` (TOML, Python's tomllib: no new dependency).

Its keys are the long names of ``run``'s options (``--glitch-filter-us`` is
``glitch_filter_us``), so the file, the CLI and the man page can never drift
apart: the keys and their checks come from the click command itself.  A value
given on the command line wins over the file (click's ``default_map``).  Every
bad key or value is refused before anything is opened, with one line naming
the file, the key and the problem (BadInput, exit 2): bad configuration is
fatal at start, as in chrony.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import click

from dcf77shm.errors import BadInput
from dcf77shm.fileio import printable

DEFAULT_CONFIG = Path("/etc/dcf77shm/dcf77shm.toml")
EXAMPLE = Path("/usr/share/doc/dcf77shm/examples/dcf77shm.toml")  # the Debian package's copy
# Options that make no sense in a file read by a service.
NOT_IN_FILE = frozenset({"config", "help"})


def option_key(opt: click.Option) -> str:
    """``--glitch-filter-us`` -> ``glitch_filter_us``: the key that sets this option."""
    longest = max(opt.opts, key=len)
    return longest.lstrip("-").replace("-", "_")


def file_options(command: click.Command) -> dict[str, click.Option]:
    return {
        option_key(p): p
        for p in command.params
        if isinstance(p, click.Option) and p.name not in NOT_IN_FILE
    }


def _check_type(opt: click.Option, value: object) -> str | None:
    """TOML already types its values: refuse a wrong TOML type instead of coercing
    (``polarity = 1`` or ``glitch_filter_us = "5"`` is a mistake, not a wish)."""
    t = opt.type
    if opt.is_flag or opt.count:
        want: tuple[type, ...] = (bool,) if opt.is_flag else (int,)
    elif isinstance(t, click.types.IntParamType):
        want = (int,)
    elif isinstance(t, click.types.FloatParamType):
        want = (int, float)
    else:
        want = (str,)
    if isinstance(value, bool) and bool not in want:
        return f"expected {_kind(want)}, got a boolean"
    if not isinstance(value, want):
        return f"expected {_kind(want)}, got {type(value).__name__} {value!r}"
    return None


def _kind(want: tuple[type, ...]) -> str:
    if want == (bool,):
        return "true or false"
    if want == (int,):
        return "an integer"
    if want == (int, float):
        return "a number"
    return "a string"


# The shipped file is 2 KB.  tomllib has no limits of its own: nested arrays
# overflow the stack, and a long dotted key (a.a.a...) takes memory quadratic
# in its length (60 KB of them exhausted 2 GB), so a file is refused before
# parsing when it is larger than any config, or has more nesting or dotted
# keys outside comments than a flat file of `key = value` lines ever needs.
MAX_BYTES = 64 * 1024
MAX_STRUCTURE = 256  # '.', '[' and '{' outside comments; the shipped file has none


def _read(path: Path) -> str:
    try:
        with path.open("rb") as f:  # a FIFO or /dev/zero must not be read forever
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise BadInput(f"{path}: no such config file; copy {EXAMPLE} there and edit it") from None
    except OSError as e:
        raise BadInput(f"{path}: cannot read the config file: {e.strerror or e}") from None
    except ValueError as e:  # a NUL byte in the path
        raise BadInput(f"{printable(path)}: not a usable path: {e}") from None
    if len(data) > MAX_BYTES:
        raise BadInput(f"{path}: larger than {MAX_BYTES // 1024} KiB: not a dcf77shm config file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadInput(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    code = "".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    if sum(code.count(c) for c in ".[{") > MAX_STRUCTURE:
        raise BadInput(
            f"{path}: too deeply nested for a dcf77shm config file; it takes only top-level "
            "`key = value` lines"
        )
    return text


def load(path: Path, command: click.Command) -> dict[str, Any]:
    """The file as click's ``default_map`` for ``command`` (keyed by parameter name)."""
    text = _read(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"{path}: not valid TOML: {e}") from None
    except RecursionError:
        raise BadInput(f"{path}: too deeply nested for a dcf77shm config file") from None
    options = file_options(command)
    ctx = click.Context(command)
    out: dict[str, Any] = {}
    for key, value in data.items():
        opt = options.get(key)
        if opt is None:
            if isinstance(value, dict):
                raise BadInput(f"{path}: [{key}]: tables are not used; put every key at the top")
            raise BadInput(f"{path}: unknown key {key!r}; known keys: {', '.join(sorted(options))}")
        problem = _check_type(opt, value)
        if problem is None:
            try:
                if isinstance(value, str) and "\0" in value:
                    raise click.BadParameter("contains a NUL byte")  # "\u0000" in TOML
                value = opt.type.convert(value, opt, ctx)
            except click.BadParameter as e:
                problem = e.format_message()
        if problem is not None:
            raise BadInput(f"{path}: key {key!r}: {problem}".replace("\n", " "))
        assert opt.name is not None
        out[opt.name] = value
    return out


def config_callback(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    """Eager ``--config``: fill ``ctx.default_map`` before the other options are parsed."""
    if value is not None and ctx.command is not None:
        ctx.default_map = {**(ctx.default_map or {}), **load(value, ctx.command)}


config_option = click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    is_eager=True,
    expose_value=False,
    callback=config_callback,
    help=f"TOML file whose keys are these options' long names (the service reads "
    f"{DEFAULT_CONFIG}); options given here win.",
)
