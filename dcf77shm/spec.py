"""``SCHEME:ARG`` specs, shared by sources and sinks (INTERFACES §3), as pyserial's URLs.

A registry maps each scheme to ``"module:Class"``; the class is imported only
when chosen, so a missing optional library (pigpio, gpiod) only matters to
those who pick it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from dcf77shm.errors import BadInput


def split_spec(spec: str, schemes: Mapping[str, str], what: str) -> tuple[str, str, str]:
    """'scheme:arg' -> (scheme, arg, "module:Class"), or BadInput naming the choices."""
    if "\0" in spec:  # a config file's "\u0000": no path or number holds one
        raise BadInput(f"bad {what} {spec!r}: it contains a NUL byte")
    scheme, _, arg = spec.partition(":")
    target = schemes.get(scheme)
    if target is None:
        choices = ", ".join(sorted(schemes))
        raise BadInput(f"unknown {what} {spec!r}: use one of {choices}, as SCHEME:ARG")
    return scheme, arg, target


def ascii_int(text: str, max_digits: int = 9) -> int | None:
    """``text`` as a non-negative integer if it is 1 to ``max_digits`` ASCII digits,
    else None.  str.isdigit() alone also takes '²' and '٣', which int() then
    refuses or reads as another number."""
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def load_class(target: str) -> type:
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
