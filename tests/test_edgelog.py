"""Edge logs v1 and v2 (INTERFACES §1): refusals through the library and the CLI,
what is accepted, and write -> read round trips."""

from __future__ import annotations

import gzip
import itertools
import zlib
from pathlib import Path

import pytest
from clirun import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcf77shm.decode.pipeline import DECODERS, decode_edges
from dcf77shm.errors import BadInput
from dcf77shm.formats.edgelog import (
    HEADER_V1,
    HEADER_V2,
    EdgeLogWriter,
    format_edges,
    read_edges,
    write_edges,
)
from dcf77shm.model import NS_PER_S, Edge, MinuteReport, Sample
from dcf77shm.sources.simulate import SimParams, simulate

HEADER = HEADER_V1  # the legacy cases below are version 1 files
T0 = 1_700_000_000 * NS_PER_S
T0_SIM = 1_718_000_007 * NS_PER_S


def _good_body() -> bytes:
    return f"{HEADER}\n{T0} 1\n{T0 + 100_000_000} 0\n".encode()


# (name, file bytes, line number named in the message, words the message must contain)
BAD: list[tuple[str, bytes, int, tuple[str, ...]]] = [
    ("missing-header", f"{T0} 1\n{T0 + 5} 0\n".encode(), 1, ("header",)),
    ("wrong-header", b"# dcf77shm edges v3\n1 1\n", 1, ("header",)),
    ("empty", b"", 1, ("empty",)),
    ("non-integer", f"{HEADER}\n{T0} 1\n1.5e18 0\n".encode(), 3, ("integer",)),
    ("non-integer-underscore", f"{HEADER}\n# c\n1_000 0\n".encode(), 3, ("integer",)),
    ("level-2", f"{HEADER}\n{T0} 2\n".encode(), 2, ("level",)),
    ("level-word", f"{HEADER}\n{T0} 1\n{T0 + 1} high\n".encode(), 3, ("level",)),
    ("backwards", f"{HEADER}\n{T0} 1\n{T0 + 9} 0\n{T0 + 8} 1\n".encode(), 4, ("backwards",)),
    ("one-field", f"{HEADER}\n{T0} 1\n{T0 + 9}\n".encode(), 3, ("time_ns",)),
    ("three-fields", f"{HEADER}\n{T0} 1 7\n".encode(), 2, ("time_ns",)),
    ("bad-utf8", f"{HEADER}\n{T0} 1\n".encode() + b"# caf\xe9\n", 3, ("UTF-8",)),
    # Version 2: the steady clock must not go back; the system clock may (a step).
    ("v2-two-fields", f"{HEADER_V2}\n{T0} 1 5\n{T0 + 9} 0\n".encode(), 3, ("mono_ns",)),
    ("v2-mono-backwards", f"{HEADER_V2}\n{T0} 1 50\n{T0 + 9} 0 49\n".encode(), 3, ("mono_ns",)),
    ("v2-mono-word", f"{HEADER_V2}\n{T0} 1 x5\n".encode(), 2, ("mono_ns",)),
    # Clock readings: nanoseconds since an epoch, before year 10000.
    ("negative", f"{HEADER}\n-5 0\n{T0} 1\n".encode(), 2, ("negative",)),
    ("v2-negative-mono", f"{HEADER_V2}\n{T0} 1 -7\n".encode(), 2, ("mono_ns", "negative")),
    ("1e21", f"{HEADER}\n{T0} 1\n{10**21} 0\n".encode(), 3, ("out of range", "10000")),
    ("4000-digits", f"{HEADER}\n{'9' * 4000} 0\n".encode(), 2, ("out of range",)),
    # A last line cut short (the writer killed) is refused unless --partial.
    ("cut-mid-number", f"{HEADER}\n{T0} 1\n{T0 + 9}".encode(), 3, ("cut short", "--partial")),
]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / f"{name}.edges"
    p.write_bytes(data)
    return p


def _truncated_gzip(tmp_path: Path) -> Path:
    full = gzip.compress(_good_body() * 50)
    p = tmp_path / "cut.edges.gz"
    p.write_bytes(full[: len(full) // 2])
    return p


@pytest.mark.parametrize(("name", "data", "lineno", "words"), BAD, ids=[b[0] for b in BAD])
def test_library_refuses(
    tmp_path: Path, name: str, data: bytes, lineno: int, words: tuple[str, ...]
) -> None:
    p = _write(tmp_path, name, data)
    with pytest.raises(BadInput) as ei:
        read_edges(p)
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg.startswith(f"{p}:{lineno}: "), msg
    for w in words:
        assert w.lower() in msg.lower(), msg
    assert ei.value.exit_status == 2


def test_library_refuses_truncated_gzip(tmp_path: Path) -> None:
    p = _truncated_gzip(tmp_path)
    with pytest.raises(BadInput) as ei:
        read_edges(p)
    msg = str(ei.value)
    assert msg.startswith(f"{p}:") and "gzip" in msg and "\n" not in msg
    assert "--partial" in msg


def _log_cut(tmp_path: Path, gz: bool) -> tuple[Path, list[Edge]]:
    """A v2 log whose writer was killed mid-line; the edges of its complete lines."""
    edges = simulate(SimParams(start_s=1_718_000_007, duration_s=300, seed=5)).edges
    whole = "".join(format_edges(edges)).encode()
    body = whole[: len(whole) * 2 // 3]
    assert not body.endswith(b"\n")
    complete = body[: body.rindex(b"\n") + 1].count(b"\n") - 1  # minus the header
    p = tmp_path / ("cut.edges.gz" if gz else "cut.edges")
    if gz:  # a gzip stream flushed as record does, without its end
        z = zlib.compressobj(9, zlib.DEFLATED, 31)
        p.write_bytes(z.compress(body) + z.flush(zlib.Z_SYNC_FLUSH))
    else:
        p.write_bytes(body)
    return p, edges[:complete]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_partial_reads_the_complete_lines_of_a_log_cut_short(tmp_path: Path, gz: bool) -> None:
    p, want = _log_cut(tmp_path, gz)
    with pytest.raises(BadInput, match="cut short"):
        read_edges(p)
    said: list[str] = []
    got = read_edges(p, partial=True, warn=said.append)
    assert got == want
    assert len(said) == 1 and said[0].startswith(f"{p}:") and "truncated" in said[0]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2000))
def test_partial_never_invents_an_edge(cut: int) -> None:
    """Cut anywhere: the partial log is a prefix of the edges, never a changed one."""
    edges = [Edge(T0 + 10**9 * i + 7 * i, i & 1, 10**12 + 999_999_937 * i) for i in range(60)]
    whole = "".join(format_edges(edges)).encode()
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.edges"
        p.write_bytes(whole[: len(HEADER_V2) + 1 + cut])
        got = read_edges(p, partial=True)
    assert got == edges[: len(got)]
    assert len(got) >= whole[len(HEADER_V2) + 1 : len(HEADER_V2) + 1 + cut].count(b"\n")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        (b[0], b[1])
        for b in BAD
        if b[0]
        in (
            "missing-header",
            "empty",
            "non-integer",
            "level-2",
            "backwards",
            "three-fields",
            "bad-utf8",
        )
    ],
)
def test_cli_refuses(tmp_path: Path, name: str, data: bytes) -> None:
    p = _write(tmp_path, name, data)
    r = run_cli("decode", p)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and str(p) in lines[0] and "Traceback" not in r.stderr


def test_cli_refuses_truncated_gzip(tmp_path: Path) -> None:
    p = _truncated_gzip(tmp_path)
    r = run_cli("decode", "--json", p)
    assert (r.returncode, r.stdout) == (2, "")
    assert len(r.stderr.splitlines()) == 1 and str(p) in r.stderr


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_cli_partial_decodes_what_is_there_and_says_so(tmp_path: Path, gz: bool) -> None:
    p, want = _log_cut(tmp_path, gz)
    r = run_cli("decode", "--json", p)
    assert (r.returncode, r.stdout) == (2, "") and "--partial" in r.stderr
    r = run_cli("decode", "--json", "--partial", p)
    assert r.returncode == 0 and r.stdout.count('"type": "sample"') > 30
    assert r.stderr.count("\n") == 1 and "truncated" in r.stderr and str(p) in r.stderr
    assert f"decoding the {len(want)} edges" in r.stderr


def test_cli_later_bad_file_means_nothing_printed(tmp_path: Path) -> None:
    good = tmp_path / "good.edges"
    write_edges(good, simulate(SimParams(start_s=1_700_000_000, duration_s=200)).edges)
    bad = _write(tmp_path, "bad", f"{HEADER}\n{T0} 1\n{T0 - 1} 0\n".encode())
    ok = run_cli("decode", "--json", good)
    assert ok.returncode == 0 and '"sample"' in ok.stdout  # the good file alone decodes
    r = run_cli("decode", "--json", good, bad)
    assert (r.returncode, r.stdout) == (2, "")
    assert len(r.stderr.splitlines()) == 1 and f"{bad}:3:" in r.stderr


# --- accepted input -----------------------------------------------------------------


def test_accepts_crlf_tabs_spaces_comments(tmp_path: Path) -> None:
    data = (
        f"{HEADER}\r\n0 0\r\n# recorded by hand\r\n{T0}\t1\r\n\r\n"
        f"{T0 + 100}   0\r\n#another comment\n{T0 + 100} \t 1\n"
    )
    p = _write(tmp_path, "ok", data.encode())
    assert read_edges(p) == [Edge(0, 0), Edge(T0, 1), Edge(T0 + 100, 0), Edge(T0 + 100, 1)]


def test_accepts_header_only_and_no_final_newline(tmp_path: Path) -> None:
    assert read_edges(_write(tmp_path, "h", HEADER.encode())) == []
    p = _write(tmp_path, "n", f"{HEADER}\n{T0} 1".encode())
    assert read_edges(p) == [Edge(T0, 1)]


def test_v2_carries_both_clocks_and_a_step_back_of_the_system_clock(tmp_path: Path) -> None:
    body = f"{HEADER_V2}\n{T0} 1 1000\n{T0 + 100} 0 1100\n{T0 - 5_000} 1 2000\n"
    p = _write(tmp_path, "v2", body.encode())
    assert read_edges(p) == [Edge(T0, 1, 1000), Edge(T0 + 100, 0, 1100), Edge(T0 - 5_000, 1, 2000)]


def test_accepts_gzip_by_content(tmp_path: Path) -> None:
    p = tmp_path / "plain-name.edges"  # gzip is recognised by its magic, not its name
    p.write_bytes(gzip.compress(_good_body()))
    assert read_edges(p) == [Edge(T0, 1), Edge(T0 + 100_000_000, 0)]


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_duplicate_levels_do_not_break_decoding(decoder: str) -> None:
    """Lines with the same level twice in a row (a lost edge) still decode, and
    never into a false sample."""
    sim = simulate(SimParams(start_s=1_718_000_007, duration_s=900, seed=3))
    drop_from, drop_to = T0_SIM + 400 * NS_PER_S, T0_SIM + 430 * NS_PER_S
    edges: list[Edge] = []
    lost = 0
    for i, e in enumerate(sim.edges):
        if drop_from <= e.time_ns < drop_to and i % 7 == 0:
            lost += 1  # a lost edge: its neighbours now carry the same level
            continue
        edges.append(e)
        if i % 89 == 30:
            edges.append(Edge(e.time_ns + 20_000_000, e.level))  # the level repeated
    assert lost >= 3
    repeats = sum(a.level == b.level for a, b in itertools.pairwise(edges))
    assert repeats >= 20
    events = list(decode_edges(edges, decoder=decoder))
    samples = [e for e in events if isinstance(e, Sample)]
    assert sum(isinstance(e, MinuteReport) and e.ok for e in events) >= 8
    assert len(samples) > 500
    assert any(s.receive_ns > drop_to + 120 * NS_PER_S for s in samples)  # recovered
    for s in samples:
        assert sim.label_at(s.receive_ns) == s.clock_ns // NS_PER_S


# --- write -> read ----------------------------------------------------------------------

edge_lists = st.lists(st.tuples(st.integers(0, 10**12), st.integers(0, 1)), max_size=60).map(
    lambda xs: [
        Edge(t, lv)
        for t, lv in zip(
            [sum(d for d, _ in xs[: i + 1]) + T0 for i in range(len(xs))],
            (lv for _, lv in xs),
            strict=True,
        )
    ]
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edge_lists, st.sampled_from(["x.edges", "x.edges.gz"]), st.booleans())
def test_write_read_round_trip(tmp_path: Path, edges: list[Edge], name: str, v2: bool) -> None:
    if v2:  # a steady clock on each edge (the system clock then may go back)
        edges = [Edge(T0 - e.time_ns // 3, e.level, e.time_ns) for e in edges]
    p = tmp_path / name
    write_edges(p, edges, comments=["a comment", "with 'quotes' and ünïcode"])
    assert p.read_bytes()[:2] == b"\x1f\x8b" or p.read_text().startswith(
        HEADER_V2 if v2 and edges else HEADER_V1 if edges else HEADER_V2
    )
    assert read_edges(p) == edges
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".")]  # no temp file left


@pytest.mark.parametrize("name", ["rec.edges", "rec.edges.gz"])
def test_streaming_writer_round_trip(tmp_path: Path, name: str) -> None:
    edges = simulate(SimParams(start_s=1_700_000_000, duration_s=30)).edges
    w = EdgeLogWriter(tmp_path / name, comments=["streamed"])
    for e in edges[:10]:
        w.write(e)
    w.flush()
    assert not (tmp_path / name).exists()  # only the .part file while recording
    for e in edges[10:]:
        w.write(e)
    w.close()
    assert read_edges(tmp_path / name) == edges and w.count == len(edges)
