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
    scheme, _, arg = spec.partition(":")
    target = schemes.get(scheme)
    if target is None:
        choices = ", ".join(sorted(schemes))
        raise BadInput(f"unknown {what} {spec!r}: use one of {choices}, as SCHEME:ARG")
    return scheme, arg, target


def load_class(target: str) -> type:
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
