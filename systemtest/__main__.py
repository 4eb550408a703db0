"""python3 -m systemtest --deb build/deb/dcf77shm_*_all.deb  (as root; `make system-test`).

Exit status 0 when every check passed, 1 when one failed, 77 when this machine
cannot run the test (not root, no systemd-nspawn or mmdebstrap and none to be
had, no Debian mirror, or a container that does not boot); with --skip-ok that
last case prints its one line and exits 0 (CI on a machine without containers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from systemtest import rootfs
from systemtest.container import PATH, BootError, Container
from systemtest.report import Report
from systemtest.scenario import ST, SuiteRun

SKIPPED = 77
EXCLUDES = (
    "./.git",
    "./build",
    "./.venv",
    "'*.egg-info'",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
)
TOOLS = {"mmdebstrap": "mmdebstrap", "systemd-nspawn": "systemd-container", "nsenter": "util-linux"}


class Skip(Exception):
    """The machine cannot run the test: one line, no failure."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m systemtest", description=__doc__)
    ap.add_argument("--deb", type=Path, required=True, help="the package under test")
    ap.add_argument("--suites", default="bookworm,trixie,forky", help="comma-separated")
    ap.add_argument("--cache", type=Path, default=rootfs.DEFAULT_CACHE)
    ap.add_argument("--max-age-days", type=int, default=7, help="rebuild older root filesystems")
    ap.add_argument("--refresh", action="store_true", help="rebuild the root filesystems now")
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/dcf77shm-systemtest"))
    ap.add_argument("--logs", type=Path, default=Path("build/systemtest"))
    ap.add_argument("--mirror", default=os.environ.get("DEBIAN_MIRROR", rootfs.DEFAULT_MIRROR))
    ap.add_argument("--security-mirror", default=rootfs.DEFAULT_SECURITY, help="'' for none")
    ap.add_argument("--skip-ok", action="store_true", help="exit 0 when the machine cannot")
    ap.add_argument("--keep", action="store_true", help="keep the containers' root directories")
    args = ap.parse_args(argv)
    names = [s for s in args.suites.split(",") if s]
    unknown = [s for s in names if s not in rootfs.SUITES]
    if unknown or not args.deb.is_file():
        print(f"systemtest: unknown suite {unknown} or no file {args.deb}", file=sys.stderr)
        return 2
    report = Report()
    try:
        preflight(args.mirror)
        args.logs.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        newer = build_newer(args.deb, args.logs)
        report.timing("newer .deb", time.monotonic() - t0)
        for i, name in enumerate(names):
            run_suite(rootfs.SUITES[name], args, [args.deb.resolve(), newer], report, first=i == 0)
    except Skip as e:
        print(f"system-test: SKIPPED: {e}")
        return 0 if args.skip_ok else SKIPPED
    report.summary()
    return 1 if report.failed else 0


def preflight(mirror: str) -> None:
    if os.geteuid() != 0:
        raise Skip("needs root (systemd-nspawn, mmdebstrap)")
    try:
        with urllib.request.urlopen(f"{mirror}/dists/bookworm/InRelease", timeout=20) as r:
            r.read(100)
    except OSError as e:
        raise Skip(f"no Debian mirror at {mirror} ({e})") from None
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "PATH": PATH}
        install = f"apt-get install -y -q --no-install-recommends {' '.join(missing)}"
        r = subprocess.run(
            f"apt-get update -q && {install}",
            shell=True,
            env=env,
            capture_output=True,
            text=True,
        )
        if r.returncode != 0 or any(shutil.which(t) is None for t in TOOLS):
            raise Skip(f"cannot install {' '.join(missing)}: {r.stderr.strip()[-200:]}")


def build_newer(deb: Path, logs: Path) -> Path:
    """The same tree with a higher version (debian/changelog only), for the upgrade check."""
    m = re.match(r"([^_]+)_([^_]+)_", deb.name)
    if not m:
        raise SystemExit(f"systemtest: {deb.name} is not NAME_VERSION_ARCH.deb")
    version = f"{m.group(2)}+systemtest1"
    work = logs / "newer"
    shutil.rmtree(work, ignore_errors=True)
    src = work / "src"
    src.mkdir(parents=True)
    tree = Path(__file__).resolve().parent.parent
    # The tree as `make deb` copies it (its exclusions), from this checkout.
    excludes = " ".join(f"--exclude={x}" for x in EXCLUDES)
    subprocess.run(f"tar -C {tree} -cf - {excludes} . | tar -C {src} -xf -", shell=True, check=True)
    changelog = src / "debian" / "changelog"
    stamp = dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    changelog.write_text(
        f"dcf77shm ({version}) unstable; urgency=medium\n\n"
        "  * systemtest: the same tree, a higher version (upgrade check).\n\n"
        f" -- dcf77shm developers <dcf77shm@example.org>  {stamp}\n\n" + changelog.read_text()
    )
    with (logs / "newer-build.log").open("w") as f:
        r = subprocess.run(
            ["dpkg-buildpackage", "-b", "-us", "-uc"],
            cwd=src,
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PATH": PATH},
        )
    out = work / f"dcf77shm_{version}_all.deb"
    if r.returncode != 0 or not out.is_file():
        raise SystemExit(f"systemtest: building {out.name} failed; see {logs}/newer-build.log")
    return out.resolve()


def run_suite(
    suite: rootfs.Suite, args: argparse.Namespace, debs: list[Path], report: Report, first: bool
) -> None:
    log = (args.logs / f"{suite.name}.log").resolve()
    log.write_text("")
    t0 = time.monotonic()
    tarball = (
        None
        if args.refresh
        else rootfs.cached(args.cache, suite.name, args.max_age_days, dt.date.today())
    )
    how = "cached"
    if tarball is None:
        how = "built"
        try:
            tarball = rootfs.build(suite, args.cache, args.mirror, args.security_mirror, log)
        except RuntimeError as e:
            if suite.optional:
                report.skip(suite.name, "root filesystem", f"{e} (an unstable suite)")
                return
            report.check(suite.name, "root filesystem", False, str(e))
            return
    report.timing(f"{suite.name} rootfs ({how})", time.monotonic() - t0)
    box = Container(f"dcf77st-{suite.name}-{os.getpid()}", args.work / suite.name, log)
    t1 = time.monotonic()
    try:
        box.extract(tarball)
        for deb in debs:
            box.put(f"{ST}/{deb.name}", deb.read_bytes())
        fetch = [
            "apt-get update -q",
            f"apt-get install -y -q --download-only {' '.join(f'{ST}/{d.name}' for d in debs[:1])}",
            f"apt-get install -y -q --download-only {' '.join(suite.extras)}",
        ]
        if suite.backports:
            fetch.append(
                f"apt-get install -y -q --download-only -t {suite.name}-backports python3-libgpiod"
            )
        p = box.prepare(" && ".join(fetch), timeout=600)
        if not report.check(
            suite.name, "apt fetches the packages the checks install", p.ok, p.text[-300:]
        ):
            return
        try:
            state = box.boot(timeout=120)
        except BootError as e:
            if first:
                raise Skip(f"cannot boot a container here: {e}") from None
            report.check(suite.name, "boots with systemd", False, str(e))
            return
        failed = box.sh("systemctl list-units --failed --plain --no-legend").out.split()
        report.check(
            suite.name,
            "boots with systemd as PID 1",
            True,
            state + (f" (failed: {failed[0]})" if failed else ""),
        )
        try:
            SuiteRun(suite, box, report, debs).run()
        except Exception as e:  # a harness bug or a dead container: this suite fails, not the run
            report.check(suite.name, "suite ran to the end", False, f"{type(e).__name__}: {e}")
        if report.failed:
            (args.logs / f"{suite.name}-journal.txt").write_text(
                box.sh("journalctl -b --no-pager -o short-precise", timeout=60).out
            )
    finally:
        box.poweroff()
        if not args.keep:
            box.remove()
        report.timing(suite.name, time.monotonic() - t1)


if __name__ == "__main__":
    sys.exit(main())
