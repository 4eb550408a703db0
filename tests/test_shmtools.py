"""`dcf77shm shm status`: every NTP segment listed like gpsd's ntpshmmon, SAFE or
UNSAFE, and garbage segments shown without a traceback (real System V segments)."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sysv_ipc
from clirun import run_cli, start_run_with_status

from dcf77shm.model import NS_PER_S, Sample
from dcf77shm.sinks import shmstruct as st
from dcf77shm.sinks.shm import ShmSink, key_for

ROOT = os.geteuid() == 0


@pytest.fixture
def units() -> Iterator[list[int]]:
    base = 20000 + (os.getpid() % 900) * 10
    us = list(range(base, base + 5))
    yield us
    for u in us:
        with contextlib.suppress(sysv_ipc.ExistentialError):
            sysv_ipc.SharedMemory(key_for(u)).remove()


def row(out: str, unit: int) -> str:
    rows = [ln for ln in out.splitlines() if ln.split()[:1] == [str(unit)]]
    assert len(rows) == 1, out
    return rows[0]


def create(unit: int, size: int, mode: int = 0o600) -> sysv_ipc.SharedMemory:
    mem = sysv_ipc.SharedMemory(key_for(unit), sysv_ipc.IPC_CREX, mode=mode, size=size)
    mem.write(bytes(size))
    return mem


def test_list_every_segment_with_its_state(units: list[int]) -> None:
    safe, open_to_all, garbage, small = units[:4]
    sink = ShmSink(safe)
    sink.open()
    t = 1_700_000_000 * NS_PER_S
    sink.publish(Sample(t - 25_000_000, t))
    create(open_to_all, st.platform_layout().value, 0o666).detach()
    g = create(garbage, 96)
    g.write(b"\x7f" * 96)  # times far beyond any date
    g.detach()
    create(small, 10).detach()
    try:
        r = run_cli("shm", "status")
        assert r.returncode == 0 and r.stderr == "", r.stderr
        head = r.stdout.splitlines()[0].split()
        assert head[:3] == ["unit", "key", "owner"] and head[-1] == "safety"
        line = row(r.stdout, safe)
        assert f"{key_for(safe):#010x}" in line and "0600" in line and "bit" in line
        assert "2023-11-14T22:13:20.000000Z" in line
        assert line.endswith("SAFE; no reader attached")  # only the writer: this test
        assert " 2 " in line  # count: one sample written, gpsd style
        assert "UNSAFE: writable by group/others" in row(r.stdout, open_to_all)
        assert "not a date" in row(r.stdout, garbage)
        assert "10 bytes: not NTP" in row(r.stdout, small)
        # The single-unit view of the garbage segment: no traceback either.
        r = run_cli("shm", "status", str(garbage))
        assert r.returncode == 0 and "not a date" in r.stdout, r.stderr
        r = run_cli("shm", "status", str(small))
        assert r.returncode == 0 and "fits neither layout" in r.stdout, r.stderr
        r = run_cli("shm", "status", "--legend")
        assert "UNSAFE" in r.stdout and "creator" in r.stdout
    finally:
        sink.close()


@pytest.mark.skipif(not ROOT, reason="needs root to create a segment as another user")
def test_a_segment_created_or_owned_by_another_user_is_unsafe(units: list[int]) -> None:
    owned, created = units[:2]
    nobody = pwd.getpwnam("nobody")
    mem = create(owned, st.platform_layout().value)
    mem.uid = nobody.pw_uid  # IPC_SET: the creator stays root
    mem.detach()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            create(created, st.platform_layout().value).detach()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    mem = sysv_ipc.SharedMemory(key_for(created))
    mem.uid = 0  # handed to root afterwards: the creator still says who made it
    mem.detach()
    r = run_cli("shm", "status")
    assert r.returncode == 0, r.stderr
    assert "UNSAFE: owner nobody" in row(r.stdout, owned)
    assert "UNSAFE: creator nobody" in row(r.stdout, created)
    r = run_cli("shm", "status", str(created))
    assert "UNSAFE: creator nobody" in r.stdout


def test_a_missing_unit_is_a_state_not_a_usage_error(units: list[int]) -> None:
    r = run_cli("shm", "status", str(units[4]))
    assert r.returncode == 1 and "does not exist" in r.stderr
    assert len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("arg", ["²", "٣", "77x", "65536", "1" * 3000])
def test_bad_unit_is_one_line_exit_2(arg: str) -> None:
    r = run_cli("shm", "status", arg)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "0-65535" in r.stderr and "Traceback" not in r.stderr


def _fake_chronyd(unit: int) -> subprocess.Popen[str]:
    """A process named chronyd (its comm, as `ps` shows it) attached to the segment."""
    code = (
        "import sys, time, sysv_ipc\n"
        "open('/proc/self/comm', 'w').write('chronyd')\n"
        f"m = sysv_ipc.SharedMemory({key_for(unit)})\n"
        "print('attached', flush=True)\n"
        "sys.stdin.read()\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert p.stdout is not None and p.stdout.readline() == "attached\n"
    return p


def test_no_reader_and_a_reader_left_on_a_replaced_segment(units: list[int]) -> None:
    u = units[0]
    size = st.platform_layout().value
    mem = create(u, size)  # this test attaches, as a writer would: no reader yet
    r = run_cli("shm", "status", str(u))
    assert r.returncode == 0 and "WARNING: no reader attached" in r.stdout
    assert f"(pid {os.getpid()})" in r.stdout  # who is attached
    assert "no reader attached" in row(run_cli("shm", "status").stdout, u)
    reader = _fake_chronyd(u)
    try:
        r = run_cli("shm", "status", str(u))
        assert "WARNING" not in r.stdout and f"chronyd (pid {reader.pid})" in r.stdout
        assert row(run_cli("shm", "status").stdout, u).endswith("SAFE")
        # ipcrm and a new segment at the key: the reader still reads the old one.
        old = mem.id
        mem.remove()
        mem.detach()
        create(u, size).detach()
        r = run_cli("shm", "status", str(u))
        assert "WARNING: no reader attached" in r.stdout
        assert f"chronyd (pid {reader.pid}) reads a removed segment of this key (shmid {old})" in (
            r.stdout
        )
        assert "segment replaced since it attached" in row(run_cli("shm", "status").stdout, u)
    finally:
        reader.kill()
        reader.wait()


def test_status_says_when_the_writers_segment_was_replaced(
    units: list[int], tmp_path: Path
) -> None:
    u = units[1]
    status = tmp_path / "status.json"
    proc = start_run_with_status(status, f"shm:{u}")
    try:
        snap = json.loads(status.read_text())
        seg = sysv_ipc.SharedMemory(key_for(u))
        assert snap["output_shmid"] == seg.id
        r = run_cli("status", "--status-file", status)
        assert r.returncode == 0, r.stderr
        assert f"WARNING: no reader attached: chronyd does not read shm:{u}" in r.stdout
        assert "replaced" not in r.stdout
        # chronyd restarted after an ipcrm: a new segment at the key.  The
        # writer has published nothing yet (no lock), so it has not noticed.
        seg.remove()
        seg.detach()
        new = create(u, st.platform_layout().value)
        r = run_cli("status", "--status-file", status)
        assert r.returncode == 0, r.stderr
        assert (
            f"WARNING: shm:{u}: segment replaced since our writer attached "
            f"(shmid {snap['output_shmid']}, now shmid {new.id})"
        ) in r.stdout
        new.detach()
    finally:
        proc.terminate()
        proc.wait(20)
