"""Output paths (issue 10, Dangerous 1): a regular file is replaced atomically
through an unpredictable O_EXCL|O_NOFOLLOW temp file, a device, FIFO or `-` is
written directly, anything else is refused; a failure leaves the old file and
no temp file."""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from clirun import run_cli

from dcf77shm.errors import BadInput
from dcf77shm.formats.edgelog import EdgeLogWriter, read_edges, write_edges
from dcf77shm.model import Edge
from dcf77shm.service.notify import Notifier
from dcf77shm.service.status import Monitor
from dcf77shm.sources.simulate import SimParams, simulate

START = "2024-02-29T12:00:30Z"
START_S = 1_709_208_030
ROOT = os.geteuid() == 0


def sim_args(out: str | Path, *more: str | Path) -> list[str | Path]:
    return ["simulate", "--start", START, "--duration", "2m", "--seed", "4", "-o", out, *more]


def one_line_exit_2(r: object) -> str:
    assert getattr(r, "returncode") == 2, r  # noqa: B009
    err: str = getattr(r, "stderr")  # noqa: B009
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith(".") or ".part" in p.name)


@pytest.mark.skipif(not ROOT, reason="only root can replace /dev/null")
@pytest.mark.parametrize("dev", ["/dev/null", "/dev/zero"])
def test_a_character_device_stays_a_device(dev: str) -> None:
    before = os.stat(dev)
    r = run_cli(*sim_args(dev))
    assert r.returncode == 0, r.stderr
    after = os.lstat(dev)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert after.st_ino == before.st_ino


def test_dev_full_is_one_line_and_exit_2() -> None:
    err = one_line_exit_2(run_cli(*sim_args("/dev/full")))
    assert "/dev/full" in err and "No space left" in err
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)


def test_dash_is_standard_output() -> None:
    r = run_cli(*sim_args("-"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# dcf77shm edges v2\n")
    want = simulate(SimParams(start_s=START_S, duration_s=120, seed=4)).edges
    rows = (ln.split() for ln in r.stdout.splitlines()[2:])
    got = [Edge(int(t), int(lv), int(mono)) for t, lv, mono in rows]
    assert got == want
    assert "standard output" in r.stderr


def test_truth_to_standard_output_and_the_log_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "s.edges"
    r = run_cli(*sim_args(out, "--truth", "-"))
    assert r.returncode == 0, r.stderr
    marks = [json.loads(ln) for ln in r.stdout.splitlines()]
    want = simulate(SimParams(start_s=START_S, duration_s=120, seed=4)).marks
    assert [m["label_s"] for m in marks] == [m.label_s for m in want]
    assert read_edges(out)
    one_line_exit_2(run_cli(*sim_args("-", "--truth", "-")))


def test_a_fifo_is_written_directly(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    r = run_cli(*sim_args(fifo))
    reader.join(30)
    assert r.returncode == 0, r.stderr
    assert got and got[0].startswith(b"# dcf77shm edges v2\n") and got[0].count(b"\n") > 200
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert leftovers(tmp_path) == []


def test_a_symlink_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "out.edges"
    link.symlink_to(victim)
    err = one_line_exit_2(run_cli(*sim_args(link)))
    assert "symbolic link" in err
    err = one_line_exit_2(run_cli(*sim_args(tmp_path / "ok.edges", "--truth", link)))
    assert "symbolic link" in err
    assert victim.read_text() == "precious\n" and link.is_symlink()
    assert not (tmp_path / "ok.edges").exists() and leftovers(tmp_path) == []


def test_directory_and_socket_are_refused(tmp_path: Path) -> None:
    assert "directory" in one_line_exit_2(run_cli(*sim_args(tmp_path)))
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        assert "socket" in one_line_exit_2(run_cli(*sim_args(sock_path)))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "path", ["/nonexistent-dir/x.edges", "/proc/dcf77shm-test.edges", "nul\0byte"]
)
def test_unwritable_path_is_one_line_and_leaves_nothing(path: str, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot write"):
        write_edges(path, [Edge(1, 1)])
    r = run_cli(*sim_args(path)) if "\0" not in path else None
    if r is not None:
        assert "cannot write" in one_line_exit_2(r)
    # and the --truth half: no edge log left behind either
    out = tmp_path / "s.edges"
    if "\0" not in path:
        one_line_exit_2(run_cli(*sim_args(out, "--truth", path)))
        assert not out.exists() and leftovers(tmp_path) == []


def test_a_planted_temp_name_cannot_redirect_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Make the random name predictable, as an attacker would like it to be,
    # and plant a symlink there: O_EXCL|O_NOFOLLOW must refuse, not follow.
    monkeypatch.setattr(secrets, "token_hex", lambda _n: "guessed")  # fileio's names
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / ".dcf77shm.guessed.tmp").symlink_to(victim)
    out = tmp_path / "log.edges"
    with pytest.raises(BadInput, match="exists"):
        write_edges(out, [Edge(1, 1)])
    assert victim.read_text() == "precious\n" and not out.exists()


def test_record_part_file_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "rec.edges"
    (tmp_path / "rec.edges.part").symlink_to(victim)
    with pytest.raises(BadInput, match="exists"):
        EdgeLogWriter(out)
    assert victim.read_text() == "precious\n" and not out.exists()


def test_a_failure_while_writing_keeps_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "log.edges"
    out.write_text("old\n")
    os.chmod(out, 0o640)

    def edges() -> Iterator[Edge]:
        yield from simulate(SimParams(start_s=START_S, duration_s=600)).edges
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError):
        write_edges(out, edges())
    assert out.read_text() == "old\n" and leftovers(tmp_path) == []
    write_edges(out, [Edge(5, 1)])
    assert read_edges(out) == [Edge(5, 1)]
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # replacing keeps the permissions


def test_record_writes_a_device_and_stdout_directly(tmp_path: Path) -> None:
    log = tmp_path / "in.edges"
    write_edges(log, simulate(SimParams(start_s=START_S, duration_s=20)).edges)
    r = run_cli("record", "--source", f"replay:{log}", "-o", "-")
    assert r.returncode == 0, r.stderr
    data = [ln for ln in r.stdout.splitlines() if not ln.startswith("#")]
    assert data == [ln for ln in log.read_text().splitlines() if not ln.startswith("#")]
    assert r.stdout.startswith("# dcf77shm edges v2\n")
    if ROOT:
        r = run_cli("record", "--source", f"replay:{log}", "-o", "/dev/null")
        assert r.returncode == 0, r.stderr
        assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    assert leftovers(tmp_path) == []


def test_status_file_symlink_is_refused_by_run_and_not_followed_by_the_monitor(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "status.json"
    link.symlink_to(victim)
    r = run_cli("run", "--source", "replay:/x.edges", "--output", "shm:1", "--status-file", link)
    assert "symbolic link" in one_line_exit_2(r)
    # Swapped in while running: the monitor warns and never writes through it.
    m = Monitor("sim", "shm:1", "robust", link, None, Notifier({}))
    m.attached()
    m.tick()
    assert victim.read_text() == "precious\n" and link.is_symlink()
    # and a planted PID-named temp file (the old scheme) is ignored
    link.unlink()
    (tmp_path / f".status.json.{os.getpid()}.tmp").symlink_to(victim)
    m.write()
    assert json.loads(link.read_text())["format"] == 1
    assert victim.read_text() == "precious\n"


def test_a_write_error_while_recording_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    log = tmp_path / "in.edges"
    write_edges(log, simulate(SimParams(start_s=START_S, duration_s=20)).edges)
    for out in ("/dev/full", "-"):
        r = subprocess.run(
            [sys.executable, "-m", "dcf77shm", "record", "--source", f"replay:{log}", "-o", out],
            stdout=open("/dev/full", "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2 and "No space left on device" in r.stderr, r.stderr
        assert r.stderr.splitlines()[-1].startswith("dcf77shm: cannot write")
        assert "Traceback" not in r.stderr
    assert leftovers(tmp_path) == []


def test_a_closed_pipe_is_not_an_error_message(tmp_path: Path) -> None:
    # `simulate -o - | head`: the reader went away; quiet, and no truth file.
    truth = tmp_path / "t.jsonl"
    p = subprocess.Popen(
        [sys.executable, "-m", "dcf77shm", "simulate", "--duration", "1h", "-o", "-",
         "--truth", str(truth)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert p.stdout is not None and p.stdout.readline() == b"# dcf77shm edges v2\n"
    p.stdout.close()
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1 and b"dcf77shm:" not in err and b"Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_status_fifo_without_a_reader_does_not_stop_the_monitor(tmp_path: Path) -> None:
    fifo = tmp_path / "status.fifo"
    os.mkfifo(fifo)
    m = Monitor("sim", "shm:1", "robust", fifo, None, Notifier({}))
    m.attached()  # would block forever in open() if it waited for a reader
    m.tick()
    m.stopped()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and leftovers(tmp_path) == []


def test_dash_with_standard_output_closed() -> None:
    r = subprocess.run(
        ["sh", "-c", f'"{sys.executable}" -m dcf77shm simulate --duration 1m -o - >&-'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and r.stderr == "dcf77shm: cannot write -: standard output is closed\n"
