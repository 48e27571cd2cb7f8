"""The package's shape holds: imports flow one way and no module imports itself back.

docs/architecture.md draws the flow files -> config -> (server | connections | diff); these
tests read every module's imports (``ast``, without importing anything) and fail on a cycle or
on an import against the flow, naming the modules involved.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tree_helpers import REPO

PACKAGE = REPO / "rpcd"

#: Layers that must not import from the ones named (prefix match on module names).
FORBIDDEN = {
    "rpcd.codecs": ("rpcd.config", "rpcd.server", "rpcd.connections", "rpcd.diff", "rpcd.cli"),
    "rpcd.config": ("rpcd.server", "rpcd.connections", "rpcd.diff", "rpcd.cli"),
    "rpcd.connections": ("rpcd.server", "rpcd.diff", "rpcd.cli"),
    "rpcd.diff": ("rpcd.server", "rpcd.connections"),
    "rpcd.server.core": ("rpcd.server.edge", "rpcd.server.ops"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The rpcd modules ``path`` imports, at any level (type-checking-only imports excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {module for module in found if module in known and module != name}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    return {name: _imports(path, name, known) for name, path in paths.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _without_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's ``__init__`` re-exporting its modules is not a cycle with them."""
    packages = {name for name in graph if (PACKAGE.parent / name.replace(".", "/")).is_dir()}
    return {
        name: {t for t in targets if not (t in packages and name.startswith(t + "."))}
        for name, targets in graph.items()
    }


def test_no_import_cycle_in_rpcd() -> None:
    cycles = _cycles(_without_packages(_graph()))
    assert not cycles, "import cycles (each line: modules importing each other):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_imports_flow_one_way() -> None:
    wrong = [
        f"{name} imports {target}"
        for name, targets in _graph().items()
        for layer, banned in FORBIDDEN.items()
        if name == layer or name.startswith(layer + ".")
        for target in targets
        if any(target == b or target.startswith(b + ".") for b in banned)
    ]
    assert not wrong, "imports against the flow:\n" + "\n".join(sorted(wrong))


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _readme_layout() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def test_the_readme_layout_names_every_part_and_only_real_ones() -> None:
    layout = _readme_layout()
    named = {
        line.split()[0]
        for line in layout.splitlines()[2:]
        if line.startswith("  ") and line.split() and not line.startswith("   ")
    }
    parts = {p.name + "/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert parts <= named, f"README's layout misses {sorted(parts - named)}"
    missing = sorted(n for n in named if not (PACKAGE / n.rstrip("/")).exists())
    assert not missing, f"README's layout names what is not in rpcd/: {missing}"
    for sub in (p for p in (PACKAGE / "server").iterdir() if (p / "__init__.py").is_file()):
        assert f"{sub.name}/" in layout, f"README's layout does not name server/{sub.name}/"
