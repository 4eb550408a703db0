"""The package layout: no import circle among dcf77shm's modules (issue 13)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "dcf77shm"


def _module(path: Path) -> str:
    parts = ["dcf77shm", *path.relative_to(PKG).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _known() -> dict[str, Path]:
    return {_module(p): p for p in PKG.rglob("*.py")}


def _imports_at_load(path: Path, known: dict[str, Path]) -> set[str]:
    """The dcf77shm modules a module imports when it is loaded: top-level imports
    (not those inside functions or under `if TYPE_CHECKING`), each with the
    packages it passes through."""
    out: set[str] = set()

    def add(name: str) -> None:
        parts = name.split(".")
        for k in range(2, len(parts) + 1):
            if ".".join(parts[:k]) in known:
                out.add(".".join(parts[:k]))

    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if isinstance(node, ast.Try | ast.If) else [node]:
            if isinstance(sub, ast.Import):
                for a in sub.names:
                    if a.name.startswith("dcf77shm."):
                        add(a.name)
            elif isinstance(sub, ast.ImportFrom) and (sub.module or "").split(".")[0] == "dcf77shm":
                assert sub.module is not None
                add(sub.module)
                for a in sub.names:  # `from dcf77shm.x import y`: y may be a module
                    add(f"{sub.module}.{a.name}")
    return out


def test_no_import_circle() -> None:
    known = _known()
    graph = {m: _imports_at_load(p, known) - {m} for m, p in known.items()}
    assert len(graph) > 40 and sum(map(len, graph.values())) > 80  # it sees the imports
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    circles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                circles.append([*stack[stack.index(n) :], n])
            elif n not in state:
                visit(n, [*stack, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    # A package's __init__ importing its own submodule, which imports the
    # package back, is how Python packages work; anything else is a circle.
    real = [c for c in circles if not all(x.startswith(c[0]) or c[0].startswith(x) for x in c)]
    assert real == [], " ; ".join(" -> ".join(c) for c in real)
