"""Issue 10's crash list: each was a traceback with exit 1; each is now one line on
stderr and exit status 2, through the real CLI in a child process."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import run_cli

from dcf77shm.cli.main import main
from dcf77shm.sources.gpiod_source import parse_spec
from dcf77shm.sources.pigpio_source import PigpioSource

UNICODE_DIGITS = ["²", "٣", "７", "𝟟"]  # str.isdigit() says yes to each


def one_line(r: subprocess.CompletedProcess[str], status: int = 2) -> str:
    assert r.returncode == status, (r.returncode, r.stderr)
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("dcf77shm: ")
    return r.stderr


@pytest.mark.parametrize("digit", UNICODE_DIGITS)
def test_unicode_digits_in_specs(digit: str, tmp_path: Path) -> None:
    out = f"sock:{tmp_path}/a.sock"
    assert "SHM unit" in one_line(run_cli("run", "--source", "sim", "--output", f"shm:{digit}"))
    assert "pigpio GPIO" in one_line(run_cli("monitor", "--source", f"pigpio:{digit}"))
    assert "pigpio GPIO" in one_line(
        run_cli("run", "--source", f"pigpio:1{digit}", "--output", out)
    )
    # gpiod: not an offset, so a line *name* (libgpiod looks names up).
    assert parse_spec(f"gpiochip0:{digit}") == ("/dev/gpiochip0", digit)
    assert parse_spec("gpiochip0:17") == ("/dev/gpiochip0", 17)


@pytest.mark.parametrize("port", [*UNICODE_DIGITS, "0", "65536", "8" * 30, "-1", " 8888"])
def test_bad_pigpio_port(port: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIGPIO_PORT", port)
    with pytest.raises(Exception, match="bad PIGPIO_PORT"):
        PigpioSource.from_spec("17", {})
    r = subprocess.run(
        [sys.executable, "-m", "dcf77shm", "monitor", "--source", "pigpio:17"],
        capture_output=True,
        text=True,
        env={**os.environ, "PIGPIO_PORT": port},
        timeout=60,
    )
    assert "PIGPIO_PORT" in one_line(r)


@pytest.mark.skipif(os.geteuid() != 0, reason="shm adopt is the unit's root ExecStartPre")
@pytest.mark.parametrize("output", ["shm:²", "shm:٣", "shm:", "shm:99999"])
def test_shm_adopt_with_a_bad_unit(output: str, tmp_path: Path) -> None:
    conf = tmp_path / "d.toml"
    conf.write_text(f'output = "{output}"\n', encoding="utf-8")
    user = pwd.getpwuid(0).pw_name
    err = one_line(run_cli("shm", "adopt", "--config", conf, "--user", user))
    assert "unit" in err


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("source = " + "[" * 5000 + "]" * 5000, "nested"),
        ("source = " + "{a=" * 5000 + "1" + "}" * 5000, "nested"),
        ("a." * 20000 + "b = 1", "nested"),  # quadratic memory in tomllib
        ("[" + "a." * 20000 + "b]", "nested"),
        ("# comment\n" * 10000, "KiB"),
        ("source = 'sim'\n\0\n", "TOML"),
        ("source = 'sim'\n\xff\n", "UTF-8"),
    ],
    ids=["arrays", "inline-tables", "dotted-keys", "table-header", "huge", "nul", "latin1"],
)
def test_hostile_config_files(text: str, needle: str, tmp_path: Path) -> None:
    conf = tmp_path / "d.toml"
    conf.write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    err = one_line(run_cli("run", "--config", conf, "--output", "shm:1", timeout=20))
    assert str(conf) in err and needle in err


def test_config_that_never_ends() -> None:
    err = one_line(run_cli("run", "--config", "/dev/zero", "--output", "shm:1", timeout=20))
    assert "KiB" in err
    err = one_line(run_cli("calibrate", "--config", "/dev/zero", timeout=20))
    assert "refclock" in err


def test_nul_byte_in_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    # argv cannot carry a NUL; main() can be handed one (and a config can name one).
    for argv in (
        ["run", "--config", "a\0b", "--source", "sim", "--output", "shm:1"],
        ["shm", "adopt", "--config", "a\0b", "--user", "root"],
        ["status", "--file", "a\0b"],
        ["calibrate", "--config", "a\0b"],
        ["simulate", "--duration", "1m", "-o", "a\0b"],
        ["decode", "a\0b"],
    ):
        with pytest.raises(SystemExit) as ei:
            main(argv)
        err = capsys.readouterr().err
        assert ei.value.code == 2 and len(err.splitlines()) == 1, (argv, err)
        assert "\0" not in err, argv


@pytest.mark.parametrize(
    "start",
    ["9999-01-01T00:00:00Z", "2100-01-01T00:00:00Z", "1999-12-31T23:00:00Z",
     "2099-12-31T22:30:00Z"],
)  # fmt: skip
def test_simulate_start_beyond_the_dcf77_years(start: str, tmp_path: Path) -> None:
    out = tmp_path / "x.edges"
    err = one_line(run_cli("simulate", "--start", start, "--duration", "1h", "-o", out))
    assert "2000-2099" in err and "2099-12-31T22:59:00Z" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "content",
    [
        "[]",
        "null",
        "1e999",
        '{"format": 1}',
        '{"format": 1, "running": "yes", "pid": 1, "started_ns": 1, "updated_ns": 1}',
        '{"format": 1, "running": true, "pid": 1, "started_ns": 1, "updated_ns": "NOW"}',
        "NOW_RUNNING",  # every key read_status checks, none of the rest
        "NOW_RUNNING_BAD_LAST",
        "[" * 100000,
        "\xff\xfe",
    ],
)
def test_status_file_of_the_wrong_shape(content: str, tmp_path: Path) -> None:
    import time

    now = time.time_ns()
    alive = {"format": 1, "running": True, "pid": 1, "started_ns": now, "updated_ns": now}
    shaped = content.startswith("NOW")  # passes read_status: --json hands it on as is
    if content == "NOW_RUNNING":
        content = json.dumps(alive)
    elif content == "NOW_RUNNING_BAD_LAST":
        content = json.dumps({**alive, "locked": 1, "last_sample": [1]})
    st = tmp_path / "status.json"
    st.write_bytes(content.encode("latin-1"))
    err = one_line(run_cli("status", "--status-file", st))
    assert "not a dcf77shm status file" in err
    if not shaped:
        one_line(run_cli("status", "--file", st, "--json"))


@pytest.mark.parametrize(
    "line",
    [
        'metrics_textfile = "/tmp/a\\u0000b"',
        'status_file = "a\\u0000b"',
        'source = "replay:/tmp/a\\u0000b"',
        'output = "sock:/tmp/a\\u0000b"',
        'output = "shm:7\\u00007"',
    ],
)
def test_nul_byte_in_a_config_value(line: str, tmp_path: Path) -> None:
    conf = tmp_path / "d.toml"
    conf.write_text(line + "\n")
    args: list[str | Path] = ["run", "--config", conf]
    if "source" not in line:
        args += ["--source", "replay:/x.edges"]
    if "output" not in line:
        args += ["--output", "shm:1"]
    assert "NUL" in one_line(run_cli(*args))


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("1" * 5000 + " 1\n", "a line longer than 4096 bytes"),
        ("1" * 30 + " 1\n", "is out of range: it must lie before"),
        ("1000000000000000000000 1\n", "(year 10000)"),  # 1e21 ns: year 33700
        ("-5 1\n", "time_ns -5 is negative"),  # once decoded silently to nothing
        ("1 1 " + "7" * 25 + "\n", "expected '<time_ns> <level>'"),
        ("x" * 3000 + "\n", "... (3000 characters)"),
    ],
)
def test_edge_logs_that_used_to_crash(body: str, needle: str, tmp_path: Path) -> None:
    log = tmp_path / "bad.edges"
    log.write_text("# dcf77shm edges v1\n" + body)
    r = run_cli("decode", log)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert needle in r.stderr and len(r.stderr) < 300


def test_decode_reads_a_pipe_and_standard_input_and_refuses_dev_zero(tmp_path: Path) -> None:
    log = tmp_path / "sim.edges"
    r = run_cli("simulate", "--start", "2024-05-01T10:00:00Z", "--duration", "4m", "-o", log)
    assert r.returncode == 0, r.stderr
    want = run_cli("decode", "--json", log).stdout
    assert want.count('"type": "sample"') > 30
    piped = subprocess.run(
        [sys.executable, "-m", "dcf77shm", "decode", "--json", "-"],
        input=log.read_bytes(), capture_output=True, timeout=60,
    )  # fmt: skip
    assert piped.returncode == 0 and piped.stdout.decode() == want
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"cat '{log}' > '{fifo}'"])
    r = run_cli("decode", "--json", fifo)
    writer.wait(10)
    assert r.returncode == 0 and r.stdout == want, r.stderr
    bom = tmp_path / "bom.edges"
    bom.write_bytes(b"\xef\xbb\xbf" + log.read_bytes())  # saved by an editor
    assert run_cli("decode", "--json", bom).stdout == want
    r = run_cli("decode", "/dev/zero", timeout=30)  # one endless line: bounded memory
    assert r.returncode == 2 and "a line longer than 4096 bytes" in r.stderr
