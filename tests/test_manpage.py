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
