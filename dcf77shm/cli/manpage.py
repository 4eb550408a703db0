"""``python3 -m dcf77shm.cli.manpage > dcf77shm.1``: the man page, from the click CLI itself.

Built with the package (no network, no click-man): one page, a section per
subcommand with its help text and options, so the page cannot drift from
``--help``.  Text goes through :func:`roff` so that groff (and lintian's
``man --warnings`` check) sees no stray requests or escapes.
"""

from __future__ import annotations

import datetime as dt
import os
import sys

import click

from dcf77shm import __version__


def roff(text: str) -> str:
    """Escape running text: backslashes, and a leading '.' or \"'\" (roff requests)."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = [("\\&" + ln) if ln.startswith((".", "'")) else ln for ln in text.splitlines()]
    return "\n".join(lines)


def _paragraphs(help_text: str) -> list[str]:
    """click's help: paragraphs separated by blank lines; \\b marks a literal block."""
    out = []
    for para in help_text.strip().split("\n\n"):
        para = para.strip()
        if para.startswith("\b"):
            out.append(".nf\n" + roff(para[1:].strip("\n")) + "\n.fi")
        else:
            out.append(roff(" ".join(ln.strip() for ln in para.splitlines())))
    return out


def _options(cmd: click.Command, ctx: click.Context) -> list[str]:
    out = []
    for p in cmd.get_params(ctx):
        if not isinstance(p, click.Option):
            continue  # arguments are in the usage line
        rec = p.get_help_record(ctx)
        if rec is None:
            continue
        names, help_ = rec
        out.append(f".TP\n\\fB{roff(names)}\\fR\n{roff(help_) if help_ else ''}".rstrip())
    return out


def _section(name: str, cmd: click.Command, parent: click.Context) -> list[str]:
    ctx = click.Context(cmd, info_name=name, parent=parent)
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    out = [f'.SS "{roff(ctx.command_path)}"', f".B {roff(ctx.command_path)}", roff(usage), ".PP"]
    out += [p + "\n.PP" for p in _paragraphs(cmd.help or "")]
    out += _options(cmd, ctx)
    if isinstance(cmd, click.Group):
        for sub_name, sub in sorted(cmd.commands.items()):
            out += _section(sub_name, sub, ctx)
    return out


EXAMPLES = [
    ("Watch the receiver while aiming the antenna:",
     "dcf77shm monitor \\-\\-source pigpio:17 \\-\\-bias pull\\-up"),
    ("Record ten minutes for a bug report:",
     "dcf77shm record \\-\\-source gpiod:gpiochip0:17 \\-o capture.edges.gz "
     "\\-\\-duration 10m"),
    ("Decode a recording, one line per minute:", "dcf77shm decode \\-\\-legend capture.edges.gz"),
    ("Feed chrony's SHM unit 77 from GPIO 17 (what the service does):",
     "dcf77shm run \\-\\-source pigpio:17 \\-\\-output shm:77"),
    ("A simulated hour with noise, written to standard output:",
     "dcf77shm simulate \\-\\-glitch\\-rate 0.5 \\-\\-duration 1h \\-o \\- | head"),
    ("Every NTP SHM segment on this machine, SAFE or UNSAFE:", "dcf77shm shm status"),
    ("The running service:", "dcf77shm status"),
]  # fmt: skip


def _examples() -> list[str]:
    out = []
    for what, command in EXAMPLES:
        out += [".PP", roff(what), ".RS 4", ".nf", command, ".fi", ".RE"]
    return out


def render(cli: click.Group, date: dt.date) -> str:
    root = click.Context(cli, info_name="dcf77shm", **cli.context_settings)
    out = [
        f'.TH DCF77SHM 1 "{date.isoformat()}" "dcf77shm {__version__}" "User Commands"',
        ".SH NAME",
        "dcf77shm \\- " + roff((cli.help or "").strip().splitlines()[0].rstrip(".")),
        ".SH SYNOPSIS",
        ".B dcf77shm",
        "[\\fB\\-\\-version\\fR] [\\fB\\-h\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".SH DESCRIPTION",
        "Decodes a DCF77 receiver on a GPIO line and publishes the seconds to chronyd "
        "over NTP shared memory (SHM) or chrony's SOCK refclock. The service "
        "(dcf77shm.service) runs \\fBdcf77shm run \\-\\-config /etc/dcf77shm/dcf77shm.toml\\fR; "
        "the keys of that file are the long names of the options of \\fBrun\\fR.",
        ".SH COMMANDS",
    ]
    for name, cmd in sorted(cli.commands.items()):
        out += _section(name, cmd, root)
    out += [
        ".SH FILES",
        ".TP",
        ".I /etc/dcf77shm/dcf77shm.toml",
        "The service's configuration.",
        ".TP",
        ".I /etc/chrony/conf.d/dcf77shm.conf",
        "chrony's refclock line for SHM unit 77.",
        ".TP",
        ".I /run/dcf77shm/status.json",
        "The running service's counters, read by \\fBdcf77shm status\\fR.",
        ".SH ENVIRONMENT",
        ".TP",
        ".B PIGPIO_ADDR",
        "Host of the pigpiod that \\fBpigpio:\\fR\\fIGPIO\\fR connects to (default localhost). "
        "Timestamps from another host carry the network's round-trip asymmetry: "
        "run pigpiod locally for timekeeping.",
        ".TP",
        ".B PIGPIO_PORT",
        "Its TCP port (default 8888).",
        ".SH EXIT STATUS",
        "0 success; 1 a runtime failure; 2 bad usage, input or configuration. "
        "Every error is one line on standard error. "
        "SIGINT (Ctrl\\-C) or SIGTERM ends \\fBrun\\fR, \\fBrecord\\fR, \\fBmonitor\\fR "
        "and \\fBshm status \\-\\-watch\\fR cleanly with 0 (\\fBrun\\fR on SIGHUP too); "
        "any other command they "
        "interrupt exits 130 (SIGINT) or 143 (SIGTERM), leaving no half-written output.",
        ".SH EXAMPLES",
        *_examples(),
        ".SH SEE ALSO",
        ".BR chronyd (8),",
        ".BR chrony.conf (5),",
        ".BR chronyc (1),",
        ".BR systemctl (1)",
    ]
    return "\n".join(out) + "\n"


def main() -> None:
    from dcf77shm.cli.main import cli

    # SOURCE_DATE_EPOCH: reproducible builds (dpkg-buildpackage sets it from
    # debian/changelog), so the page's date does not depend on the build day.
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or None
    day = dt.datetime.fromtimestamp(epoch, dt.UTC).date() if epoch else dt.date.today()
    sys.stdout.write(render(cli, day))


if __name__ == "__main__":
    main()
