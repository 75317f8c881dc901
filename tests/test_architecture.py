"""The house rules, read from the source with ``ast`` (docs/architecture.md states them):

1. packages import only packages in lower layers or their own layer's explicit allowances;
2. no cycles between packages;
3. no package imports another package's private names (``_name``), and ``core`` imports no
   other Charter package.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "charter"

# Bottom to top; a package may import any package in a lower layer. Same-layer packages do not
# import each other.
LAYERS = [
    {"core"},
    {"constitution", "policy"},
    {"provenance"},
    {"backends"},
    {"audit", "guard", "train"},
    {"cai"},
    {"evals"},
    {"align", "gateway"},
    {"governance"},
    {"cli"},
]
LAYER = {pkg: n for n, layer in enumerate(LAYERS) for pkg in layer}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "charter" and len(parts) > 1 else None


def _imports() -> list[tuple[Path, int, str, str, list[str]]]:
    """(file, line, importing package, imported module, imported names) for every charter import."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if len(rel.parts) == 1:
            continue  # charter/__init__.py: the version only
        pkg = rel.parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.level == 0
                and node.module.startswith("charter")
            ):
                out.append((rel, node.lineno, pkg, node.module, [a.name for a in node.names]))
            elif isinstance(node, ast.Import):
                out += [(rel, node.lineno, pkg, a.name, []) for a in node.names if a.name.startswith("charter.")]
    return out


def test_every_package_has_a_layer():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LAYER), f"unlayered: {packages - set(LAYER)}; gone: {set(LAYER) - packages}"


def test_imports_point_down_the_layers():
    bad = []
    for rel, line, pkg, module, _ in _imports():
        target = _package(module)
        if target is None or target == pkg:
            continue  # the root package (__version__) or the package itself
        if LAYER[target] >= LAYER[pkg]:
            bad.append(f"{rel}:{line}: {pkg} (layer {LAYER[pkg]}) imports {module} (layer {LAYER[target]})")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_cycles_between_packages():
    edges: dict[str, set[str]] = {}
    for _, _, pkg, module, _ in _imports():
        target = _package(module)
        if target and target != pkg:
            edges.setdefault(pkg, set()).add(target)

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cyclic = sorted(p for p in edges if p in reach(p))
    assert not cyclic, f"packages on an import cycle: {cyclic}"


def test_no_private_names_across_packages():
    bad = []
    for rel, line, pkg, module, names in _imports():
        target = _package(module)
        if target is None or target == pkg:
            continue
        private = [n for n in names if n.startswith("_")] + [p for p in module.split(".")[2:] if p.startswith("_")]
        if private:
            bad.append(f"{rel}:{line}: {pkg} imports private {module}:{','.join(private)}")
    assert not bad, "\n".join(bad)


def test_core_stands_alone():
    used = {_package(m) for rel, _, pkg, m, _ in _imports() if pkg == "core"} - {"core", None}
    assert not used, f"core imports {used}"
