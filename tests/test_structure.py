"""The package's structure: no import cycle between its modules, and no function-local import of its own modules
(a lazy import is for an optional dependency only).  Read from the source with ``ast``: the property holds for
every module of pyro_aevb, pyro_aevb.models and pyro_aevb.guides, whatever is imported at test time."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"pyro_aevb": ROOT / "pyro_aevb", "pyro_aevb.models": ROOT / "models", "pyro_aevb.guides": ROOT / "guides"}


def _modules():
    """``{dotted name: (path, is_package)}`` of every module of the three packages."""
    out = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            out[name] = (path, path.name == "__init__.py")
    return out


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path, is_package: bool, known):
    """(target module, is module-level) for each import of the project's own modules."""
    tree = ast.parse(path.read_text())
    top_level = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, is_package)
            names = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known] or [target]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name in known:
                yield name, id(node) in top_level


def test_no_function_local_import_of_the_projects_own_modules():
    known = _modules()
    local = [f"{module} imports {target} inside a function" for module, (path, pkg) in known.items()
             for target, top in _imports(module, path, pkg, known) if not top]
    assert not local, local


def test_no_import_cycle_between_the_projects_modules():
    known = _modules()
    graph = {m: {t for t, _ in _imports(m, path, pkg, known) if t != m} for m, (path, pkg) in known.items()}
    # a package's __init__ importing its own submodules is how a package is built, not a cycle through it
    for m, (_, pkg) in known.items():
        graph[m] = {t for t in graph[m] if not (pkg and t.startswith(m + "."))}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles
