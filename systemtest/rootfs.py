"""Minimal root filesystems from Debian's mirrors (mmdebstrap), cached as tarballs.

One tarball per suite and build date under the cache directory; a tarball
younger than ``max_age_days`` is used as it is (its apt lists are refreshed
before each run), an older one is rebuilt and the old files of that suite
removed.  The tarball is only the base system and chrony: the package's
dependencies come from the mirror at test time, through apt, as a user gets
them.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path("/var/cache/dcf77shm-systemtest")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
# What every image has: systemd as PID 1, chrony (what is tested against) and
# an NTP client for the loopback query (python3-ntplib, the client the lab
# end-to-end tests use; it reports stratum and refid, which `chronyd -Q` does
# not).  Nothing of dcf77shm's dependencies: apt must find those itself.
BASE_PACKAGES = ("systemd-sysv", "dbus", "chrony", "python3", "python3-ntplib")
# Mirrors and snapshots serve Release files past their Valid-Until (testing's
# and security's are valid for a week): the test must not fail on that.
APT_OPTIONS = ('Acquire::Check-Valid-Until "false"', 'APT::Install-Recommends "true"')


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    security: bool  # has a <suite>-security archive
    backports: bool  # <suite>-backports in sources.list (apt uses it only when asked)
    extras: tuple[str, ...]  # fetched before boot, installed by the checks that need them
    ntpsec: bool  # run the NTPsec check here
    pigpio: bool  # python3-pigpio is packaged here
    optional: bool  # a suite that may be broken upstream: a failed image build is a skip


SUITES = {
    "bookworm": Suite(
        "bookworm",
        security=True,
        backports=True,
        extras=("ntpsec", "python3-pigpio", "python3-libgpiod"),
        ntpsec=True,
        pigpio=True,
        optional=False,
    ),
    "trixie": Suite(
        "trixie",
        security=True,
        backports=False,
        extras=("python3-pigpio", "python3-libgpiod"),
        ntpsec=False,
        pigpio=True,
        optional=False,
    ),
    # Debian testing: the chrony that comes next (4.8 and later).
    "forky": Suite(
        "forky",
        security=False,
        backports=False,
        extras=("python3-libgpiod",),
        ntpsec=False,
        pigpio=False,
        optional=True,
    ),
}


def sources(suite: Suite, mirror: str, security: str) -> list[str]:
    lines = [f"deb {mirror} {suite.name} main"]
    if suite.security:
        lines.append(f"deb {mirror} {suite.name}-updates main")
        if security:
            lines.append(f"deb {security} {suite.name}-security main")
    if suite.backports:
        lines.append(f"deb {mirror} {suite.name}-backports main")
    return lines


def cached(cache: Path, suite: str, max_age_days: int, today: dt.date) -> Path | None:
    """The newest tarball of ``suite`` built at most ``max_age_days`` ago."""
    best: tuple[dt.date, Path] | None = None
    for p in cache.glob(f"{suite}-*.tar"):
        try:
            built = dt.datetime.strptime(p.stem.removeprefix(f"{suite}-"), "%Y%m%d").date()
        except ValueError:
            continue
        if 0 <= (today - built).days <= max_age_days and (best is None or built > best[0]):
            best = (built, p)
    return best[1] if best else None


def build(suite: Suite, cache: Path, mirror: str, security: str, log: Path) -> Path:
    """mmdebstrap into ``cache/<suite>-<date>.tar``; older tarballs of the suite go."""
    cache.mkdir(parents=True, exist_ok=True)
    today = dt.date.today()
    out = cache / f"{suite.name}-{today:%Y%m%d}.tar"
    tmp = out.with_name(f".{os.getpid()}.{out.name}")  # mmdebstrap: the format from ".tar"
    cmd = ["mmdebstrap", "--variant=apt", "--include=" + ",".join(BASE_PACKAGES)]
    cmd += [f"--aptopt={o}" for o in APT_OPTIONS]
    cmd += [suite.name, str(tmp), *sources(suite, mirror, security)]
    with log.open("a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"mmdebstrap {suite.name} failed (exit {r.returncode}); see {log}")
    os.replace(tmp, out)
    for old in cache.glob(f"{suite.name}-*.tar"):
        if old != out:
            old.unlink()
    return out
