"""The import graph follows the data flow: the foundation (``artifacts``, ``stats``, ``models``), then the
stages in order (``tuning`` -> ``evals`` -> ``activations`` -> ``probes`` -> ``steering`` -> ``analysis`` ->
``pipeline``). A package imports only itself, the foundation and earlier stages, and no two modules import
each other in a circle. Read from the source (every ``import``, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("artifacts", "stats", "models", "tuning", "evals", "activations", "probes", "steering", "analysis",
         "pipeline")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[tuple[str, int]]]:
    """module -> {(imported repo module, line)}; ``from a.b import c`` counts as ``a.b.c`` when that is a module."""
    files = {_module(f): f for pkg in ORDER for f in (ROOT / pkg).rglob("*.py")}
    out: dict[str, set[tuple[str, int]]] = {}
    for mod, f in files.items():
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                         for a in node.names]
            else:
                continue
            deps |= {(n, node.lineno) for n in names if n.split(".")[0] in ORDER and n in files}
        out[mod] = deps
    return out


def test_no_package_imports_a_later_stage():
    rank = {p: i for i, p in enumerate(ORDER)}
    bad = [f"{mod} (line {line}) imports {dep}" for mod, deps in _imports().items() for dep, line in deps
           if rank[dep.split(".")[0]] > rank[mod.split(".")[0]]]
    assert not bad, "imports against the data flow:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = {m: {d for d, _ in deps if d != m} for m, deps in _imports().items()}
    # a package's __init__ importing its own submodules is the package's surface, not a cycle
    graph = {m: {d for d in ds if not d.startswith(m + ".")} for m, ds in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append(path[path.index(d):] + [d] if d in path else [m, d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
