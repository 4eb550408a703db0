"""The man page and the bash completion, both generated from the click CLI."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from dcf77shm.cli.main import cli
from dcf77shm.cli.manpage import render, roff


def all_commands(group: click.Group, prefix: str = "dcf77shm") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((f"{prefix} {name}", cmd))
        if isinstance(cmd, click.Group):
            out += all_commands(cmd, f"{prefix} {name}")
    return out


def test_man_page_has_every_command_and_option() -> None:
    page = render(cli, dt.date(2024, 3, 31))
    assert page.startswith('.TH DCF77SHM 1 "2024-03-31"')
    for path, cmd in all_commands(cli):
        assert f'.SS "{roff(path)}"' in page, path
        for p in cmd.params:
            if isinstance(p, click.Option):
                assert roff(max(p.opts, key=len)) in page, (path, p.name)


def test_roff_escapes_requests_and_backslashes() -> None:
    assert roff(".x\n'y\na\\b -c") == "\\&.x\n\\&'y\na\\eb \\-c"


def test_man_page_renders_without_groff_warnings(tmp_path: Path) -> None:
    if shutil.which("man") is None:
        pytest.skip("man not installed")
    page = tmp_path / "dcf77shm.1"
    page.write_text(render(cli, dt.date(2024, 3, 31)))
    # lintian's check: groff's warnings go to stderr.
    r = subprocess.run(
        ["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(page)],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C.UTF-8", "MANWIDTH": "80"},
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_bash_completion_script_and_answers() -> None:
    env = {**os.environ, "_DCF77SHM_COMPLETE": "bash_source"}
    r = subprocess.run(
        [sys.executable, "-m", "dcf77shm"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 0 and "complete -o nosort -F _dcf77shm_completion dcf77shm" in r.stdout
    env = {
        **os.environ,
        "_DCF77SHM_COMPLETE": "bash_complete",
        "COMP_WORDS": "dcf77shm run --deco",
        "COMP_CWORD": "2",
    }
    r = subprocess.run(
        [sys.executable, "-m", "dcf77shm"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.stdout.split() == ["plain,--decoder"]


def test_man_page_environment_examples_and_exit_status() -> None:
    page = render(cli, dt.date(2024, 3, 31))
    sections = [ln.split(None, 1)[1] for ln in page.splitlines() if ln.startswith(".SH ")]
    assert sections.index("ENVIRONMENT") < sections.index("EXIT STATUS")
    assert sections.index("EXIT STATUS") < sections.index("EXAMPLES") < sections.index("SEE ALSO")
    env = page.split(".SH ENVIRONMENT", 1)[1].split(".SH ", 1)[0]
    assert "PIGPIO_ADDR" in env and "PIGPIO_PORT" in env and "8888" in env
    assert "130" in page and "143" in page
    # Every example names a real command of this CLI.
    examples = page.split(".SH EXAMPLES", 1)[1].split(".SH ", 1)[0]
    commands = [ln for ln in examples.splitlines() if ln.startswith("dcf77shm ")]
    assert len(commands) >= 5
    names = {p.split(" ", 1)[1] for p, _ in all_commands(cli)}
    for c in commands:
        words = c.split()
        assert words[1] in names or " ".join(words[1:3]) in names, c


def complete(words: str, cword: int) -> list[str]:
    env = {
        **os.environ,
        "_DCF77SHM_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
    }
    r = subprocess.run(
        [sys.executable, "-m", "dcf77shm"], capture_output=True, text=True, env=env, timeout=60
    )
    return [item.split(",", 1)[1] for item in r.stdout.split()]


def test_completion_of_source_and_output_specs(tmp_path: Path) -> None:
    assert complete("dcf77shm run --source ", 3) == ["pigpio:", "gpiod:", "replay:", "sim"]
    assert complete("dcf77shm monitor --source re", 3) == ["replay:"]
    assert complete("dcf77shm record --source g", 3) == ["gpiod:"]
    assert complete("dcf77shm run --output ", 3) == ["shm:", "sock:"]
    assert complete("dcf77shm run --output sock:", 3) == ["sock:/run/dcf77shm-sock/dcf77.sock"]
    (tmp_path / "cap.edges").write_text("")
    assert complete(f"dcf77shm run --source replay:{tmp_path}/ca", 3) == [
        f"replay:{tmp_path}/cap.edges"
    ]
