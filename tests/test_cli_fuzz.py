"""The CLI as a whole, fuzzed (issue 10): random command lines drawn from the real
commands, their options and plausible or garbage values, run in-process through
``dcf77shm.cli.main.main`` with stdin, stdout and stderr captured.  Any
traceback, any exit status other than 0, 1 or 2, an error that is not one
``dcf77shm: ...`` line, a temp file left behind or a symlink followed fails.

Nothing here may run forever or touch what others use: no valid SHM unit is
ever drawn (an output is garbage, refused, or a SOCK path no one listens on),
sources that never end (sim, live GPIO) only meet outputs that fail, and
pigpio points at a closed port.  Deterministic with CI=true (derandomized).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dcf77shm.cli.main import main
from dcf77shm.formats.edgelog import write_edges
from dcf77shm.sources.simulate import SimParams, simulate

CI = bool(os.environ.get("CI"))
# FUZZ_EXAMPLES=5000 for a longer run by hand.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150" if CI else "300"))
# Units nobody has: `shm status`/`shm adopt` may look, never create.
ABSENT_UNIT = "64999"


@dataclass(frozen=True)
class Pool:
    dir: Path
    victim: Path
    log: str
    log_gz: str
    garbage: str
    missing: str
    symlink: str
    status_stale: str
    status_bad: str
    configs: tuple[str, ...]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Pool:
    d = tmp_path_factory.mktemp("fuzz")
    edges = simulate(SimParams(start_s=1_709_208_030, duration_s=15, jitter_ms=2)).edges
    write_edges(d / "tiny.edges", edges)
    write_edges(d / "tiny.edges.gz", edges)
    (d / "garbage.edges").write_bytes(b"# dcf77shm edges v1\n12 1\nnope\n")
    victim = d / "victim"
    victim.write_text("precious\n")
    (d / "link").symlink_to(victim)
    now = time.time_ns()
    stale = {"format": 1, "running": True, "pid": 1, "started_ns": 0, "updated_ns": now - 10**12}
    (d / "stale.json").write_text(json.dumps(stale))
    (d / "bad.json").write_text('{"format": 1, "running": true, "pid": [], "updated_ns": 0}')
    configs = {
        "ok.toml": f'output = "shm:{ABSENT_UNIT}"\nsource = "replay:{d}/tiny.edges"\n',
        "nested.toml": "source = " + "[" * 3000 + "]" * 3000 + "\n",
        "dotted.toml": "a." * 5000 + "b = 1\n",
        "unicode.toml": 'output = "shm:²"\n',
        "types.toml": "polarity = 1\nbias = true\n",
        "table.toml": "[run]\nsource = 'sim'\n",
        "sock.toml": f'output = "sock:{d}/nodir/x.sock"\n',
        "nul.toml": 'status_file = "a\\u0000b"\n',
        "latin1.toml": "source = '\xe9'\n",
    }
    for name, text in configs.items():
        (d / name).write_bytes(text.encode("latin-1"))
    return Pool(
        d,
        victim,
        str(d / "tiny.edges"),
        str(d / "tiny.edges.gz"),
        str(d / "garbage.edges"),
        str(d / "missing.edges"),
        str(d / "link"),
        str(d / "stale.json"),
        str(d / "bad.json"),
        tuple(str(d / n) for n in configs),
    )


GARBAGE = st.sampled_from(
    ["--", "-", "--bogus", "-x", "²", "٣", "", " ", "--help", "-h", "x" * 300, "--json=1",
     "é", "\x7f", "%s", "{}", "null", "-1", "0", "1e308", "nan", "inf", "--version", "-vv"]
)  # fmt: skip
NUMBERS = st.sampled_from(
    ["0", "1", "-1", "0.5", "3", "100", "1e308", "-1e308", "nan", "inf", "-inf", "x", "",
     "²", "99999999999999999999999999", "1_000", " 5"]
)  # fmt: skip


def options(pairs: list[tuple[str, st.SearchStrategy[str]]]) -> st.SearchStrategy[list[str]]:
    """A list of option/value pairs and (one time in ten) bare tokens, flattened."""
    pair = st.one_of(*[st.tuples(st.just(name), values).map(list) for name, values in pairs])
    bare = GARBAGE.map(lambda g: [g])
    one = st.integers(0, 9).flatmap(lambda i: bare if i == 0 else pair)
    return st.lists(one, max_size=5).map(lambda xs: [a for x in xs for a in x])


def argvs(p: Pool) -> st.SearchStrategy[list[str]]:
    d = str(p.dir)
    outputs = st.sampled_from(
        [f"{d}/out.edges", f"{d}/out.edges.gz", "-", "/dev/null", p.symlink, d,
         "/nonexistent-dir/x.edges", "", f"{d}/t.jsonl"]
    )  # fmt: skip
    inputs = st.sampled_from([p.log, p.log_gz, p.garbage, p.missing, d, "-", "/dev/null"])
    polarity = st.sampled_from(["auto", "high", "low", "sideways", ""])
    finite_sources = st.sampled_from(
        [f"replay:{p.log}", f"replay:{p.garbage}", f"replay:{p.missing}", "replay:", "bogus:1",
         "", ":", "pigpio:²", "pigpio:99", "pigpio:17", "gpiod:x", "gpiod:", "gpiod:gpiochip0:²",
         "gpiod:/nonexistent:1", "sim:x"]
    )  # fmt: skip
    bad_outputs = st.sampled_from(
        ["shm", "shm:", "shm:²", "shm:٣", "shm:77", "shm:99999", "shm:-1", "sock:relative",
         f"sock:{d}/nodir/x.sock", "nfs:1", "", "sock:", f"sock:{d}/" + "x" * 200]
    )  # fmt: skip
    source_opts: list[tuple[str, st.SearchStrategy[str]]] = [
        ("--glitch-filter-us", NUMBERS),
        ("--bias", st.sampled_from(["as-is", "pull-up", "pull-down", "disabled", "up"])),
        ("--polarity", polarity),
    ]
    sim_opts = [(f"--sim-{k}", NUMBERS) for k in ("offset-ms", "jitter-ms", "seed", "start")]
    files = st.sampled_from([*p.configs, p.missing, d, "/dev/null", p.symlink])
    status_files = st.sampled_from([f"{d}/status.json", p.symlink, d, "/dev/null"])
    runs_to_end = st.tuples(
        st.just(["run", "--source"]),
        finite_sources.map(lambda s: [s]),
        st.sampled_from([f"sock:{d}/absent.sock"]).map(lambda o: ["--output", o]),
    )
    fails_at_start = st.tuples(
        st.just(["run", "--source"]),
        st.sampled_from(["sim", "pigpio:17", "gpiod:gpiochip0:17"]).map(lambda s: [s]),
        bad_outputs.map(lambda o: ["--output", o]),
    )
    run_opts = options(
        [*source_opts, *sim_opts, ("--decoder", st.sampled_from(["robust", "strict", "x"])),
         ("--status-file", status_files), ("--metrics-textfile", status_files),
         ("--config", files), ("--output", bad_outputs), ("-v", st.just("-v"))]
    )  # fmt: skip
    commands = [
        st.tuples(
            st.just(["decode"]),
            st.lists(inputs, max_size=3),
            options(
                [
                    ("--polarity", polarity),
                    ("--decoder", st.sampled_from(["robust", "x"])),
                    ("--json", st.just("--legend")),
                ]
            ),
        ),
        st.tuples(
            st.just(["simulate"]),
            options(
                [
                    (
                        "--duration",
                        st.sampled_from(["1", "90s", "2m", "0", "-1", "x", "1.5m", "²"]),
                    ),
                    (
                        "--start",
                        st.sampled_from(
                            [
                                "random",
                                "2024-02-29T12:00:00Z",
                                "",
                                "soon",
                                "9999-01-01T00:00:00Z",
                                "2099-12-31T22:58:00Z",
                                "1970-01-01T00:00:00Z",
                                "2024-02-30T00:00:00Z",
                                "2024-03-31T00:30:00+05:00",
                            ]
                        ),
                    ),
                    ("-o", outputs),
                    ("--truth", outputs),
                    ("--seed", NUMBERS),
                    ("--jitter-ms", NUMBERS),
                    ("--delay-ms", NUMBERS),
                    ("--width-bias-ms", NUMBERS),
                    ("--glitch-rate", NUMBERS),
                    ("--glitch-ms", NUMBERS),
                    ("--drop-rate", NUMBERS),
                    ("--clock-offset-ms", NUMBERS),
                    ("--rate-ppm", NUMBERS),
                    ("--fade", st.sampled_from(["10:5", "1", "-1:2", "x:y", "1e308:1", "nan:1"])),
                    ("--leap-second", st.sampled_from(["2016-12-31", "2016-31-12", "²"])),
                    ("--polarity", polarity),
                    ("--leap-clock", st.sampled_from(["run", "x"])),
                ]
            ),
            st.just(["--duration", "1m"]),  # the last --duration wins: keep it short
        ),
        st.tuples(runs_to_end, run_opts).map(lambda t: (*t[0], t[1])),
        st.tuples(fails_at_start, run_opts).map(lambda t: (*t[0], t[1])),
        st.tuples(
            st.sampled_from([["record"], ["monitor"]]),
            st.tuples(st.just("--source"), finite_sources).map(list),
            options(
                [
                    *source_opts,
                    ("-o", outputs),
                    ("--duration", st.sampled_from(["1", "x"])),
                    ("--legend", st.just("--legend")),
                ]
            ),
        ),
        st.tuples(
            st.just(["shm", "status"]),
            st.lists(st.sampled_from([ABSENT_UNIT, "²", "x", "65536", "-1", ""]), max_size=2),
            options([("--legend", st.just("--legend"))]),
        ),
        st.tuples(
            st.just(["shm", "adopt"]),
            options([("--config", files), ("--user", st.sampled_from(["root", "nosuch", "²"]))]),
        ),
        st.tuples(
            st.just(["status"]),
            options(
                [
                    (
                        "--file",
                        st.sampled_from(
                            [p.status_stale, p.status_bad, p.missing, d, *p.configs[:2]]
                        ),
                    ),
                    ("--status-file", st.just(p.status_bad)),
                    ("--json", st.just("--json")),
                ]
            ),
        ),
        st.tuples(
            st.just(["calibrate"]),
            options(
                [
                    ("--config", files),
                    ("--refid", st.sampled_from(["DCF", "", "²"])),
                    ("--chronyc-socket", st.just(f"{d}/no.sock")),
                ]
            ),
        ),
        st.lists(GARBAGE, max_size=3).map(lambda g: (g,)),
    ]
    return st.one_of(commands).map(lambda parts: [a for part in parts for a in part])


@contextlib.contextmanager
def captured() -> Iterator[tuple[io.TextIOWrapper, io.TextIOWrapper]]:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace")
    old = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.BytesIO(b""), encoding="utf-8")
    sys.stdout, sys.stderr = out, err
    try:
        yield out, err
    finally:
        sys.stdin, sys.stdout, sys.stderr = old


def text(f: io.TextIOWrapper) -> str:
    f.flush()
    buf = f.buffer
    assert isinstance(buf, io.BytesIO)
    return buf.getvalue().decode("utf-8", "replace")


@settings(
    max_examples=EXAMPLES,  # derandomized under CI=true (tests/conftest.py)
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_no_command_line_crashes(pool: Pool, data: st.DataObject) -> None:
    argv = data.draw(argvs(pool), label="argv")
    old_env = os.environ.get("PIGPIO_PORT")
    os.environ["PIGPIO_PORT"] = "1"  # nothing listens there: pigpio:17 fails at once
    try:
        with captured() as (out, err):
            try:
                main(argv)
                code: object = 0
            except SystemExit as e:
                code = 0 if e.code is None else e.code
    finally:
        if old_env is None:
            del os.environ["PIGPIO_PORT"]
        else:
            os.environ["PIGPIO_PORT"] = old_env
    stderr = text(err)
    text(out)
    event(f"{' '.join(argv[:2]) if argv[:1] == ['shm'] else (argv or ['-'])[0]} -> exit {code}")
    assert code in (0, 1, 2), (argv, code, stderr)
    assert "Traceback" not in stderr, (argv, stderr)
    if code != 0:
        last = stderr.rstrip("\n").rsplit("\n", 1)[-1]
        assert last.startswith("dcf77shm: "), (argv, stderr)
    assert pool.victim.read_text() == "precious\n", argv
    assert os.path.islink(pool.symlink), argv
    left = [f.name for f in pool.dir.iterdir() if f.name.startswith(".dcf77shm.")]
    assert not left, (argv, left)
    assert not (pool.dir / "out.edges.part").exists(), argv
