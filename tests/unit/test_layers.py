"""The package's import graph, read with ast (imports at module level and inside functions
alike: a lazy import that closes a circle is still a circle): no cycles, and each layer
imports only downwards (README, "Architecture"). A failure prints the offending chain, each
link with the file and line of its import."""

from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PKG = os.path.join(ROOT, "lioctl")

# what the bundled TCMU handler may use from the rest of lioctl: the handler runs as root on
# initiators' input and starts without the tree, the planner or the command line
TCMU_MAY_IMPORT = {
    "lioctl",           # __version__ and the package's location (the launcher's child's sys.path)
    "lioctl.errors",    # LioError
    "lioctl.rundir",    # the root-only /run/lioctl the handler's socket and pid file live in
    "lioctl.configfs",  # the device's attributes, read where the kernel keeps them
    "lioctl.blockdev",  # a block device's size (also the planners' need)
}
# the command line, the shell and the verbs: what the model and the planner must never reach
FRONT = ("lioctl.cli", "lioctl.verbs", "lioctl.dispatch", "lioctl.batch", "lioctl.commands",
         "lioctl.shell", "lioctl.completion")


def module_names() -> dict[str, str]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for d, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(d, f), ROOT)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel.pop()
                out[".".join(rel)] = os.path.join(d, f)
    return out


def _targets(node: ast.AST, here: str, modules: dict[str, str]) -> list[str]:
    """The package's modules one import statement loads (its own top-level names only)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in modules]
    base = node.module or ""
    if node.level:  # relative: from the importing module's package
        pkg = here.split(".") if modules[here].endswith("__init__.py") else here.split(".")[:-1]
        pkg = pkg[:len(pkg) - node.level + 1]
        base = ".".join(pkg + ([base] if base else []))
    found = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
    if len(found) < len(node.names) and base in modules:
        found.append(base)  # names defined in the module (or package) itself
    return found


def import_graph() -> dict[str, dict[str, str]]:
    """module -> {imported module: 'file:line' of the first such import}."""
    modules = module_names()
    graph: dict[str, dict[str, str]] = {}
    for name, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        edges = graph.setdefault(name, {})
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for t in _targets(node, name, modules):
                    if t != name:
                        edges.setdefault(t, f"{os.path.relpath(path, ROOT)}:{node.lineno}")
    return graph


def components(graph: dict[str, dict[str, str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[set[str]] = []

    def visit(v: str) -> None:  # the graph has ~100 modules: recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """For each import inside a circle, the shortest circle through it (each circle once)."""
    out: list[list[str]] = []
    seen: set[frozenset] = set()
    for comp in components(graph):
        for a in sorted(comp):
            for b in sorted(graph[a]):
                if b in comp:
                    path = [a] + shortest(graph, b, a, comp)
                    key = frozenset(zip(path, path[1:]))
                    if key not in seen:
                        seen.add(key)
                        out.append(path)
    return out


def shortest(graph, start: str, goal: str, comp: set[str]) -> list[str]:
    """The shortest path start .. goal inside one component (breadth first)."""
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        if v == goal:
            path = [v]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])
            return list(reversed(path))
        for w in sorted(graph[v]):
            if w in comp and w not in prev:
                prev[w] = v
                queue.append(w)
    raise AssertionError(f"{goal} is not reachable from {start}")


def chain(graph, path: list[str]) -> str:
    return "\n       ".join(f"{a} -> {b}  ({graph[a][b]})" for a, b in zip(path, path[1:]))


def reach(graph, start: str, allowed) -> list[str] | None:
    """A path from start to a module outside allowed(), or None."""
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, {})):
            if w in prev:
                continue
            prev[w] = v
            if not allowed(w):
                path = [w]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path))
            queue.append(w)
    return None


def within(mod: str, prefixes) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


def violations(graph, starts, allowed) -> list[str]:
    """For each import that leaves `allowed` from a module reachable from `starts`, the
    shortest chain to it (each offending import once)."""
    found: dict[tuple[str, str], list[str]] = {}
    for mod in sorted(graph):
        if within(mod, starts):
            path = reach(graph, mod, allowed)
            if path and (tuple(path[-2:]) not in found or len(path) < len(found[tuple(path[-2:])])):
                found[tuple(path[-2:])] = path
    return ["  " + chain(graph, p) for p in found.values()]


def test_the_graph_is_read():
    """A guard against a reader that finds nothing and so passes everything."""
    g = import_graph()
    assert "lioctl.plan.executor" in g["lioctl.dispatch"] or "lioctl.plan" in g["lioctl.dispatch"]
    assert "lioctl.configfs" in g["lioctl.plan.ops"]
    assert "lioctl.tcmu.ring" in g["lioctl.tcmu.device"]
    assert "lioctl.commands.fabric_skeleton" in g["lioctl.completion.scripts"]   # inside a function


def test_no_import_cycles():
    g = import_graph()
    found = cycles(g)
    assert not found, "import cycles:\n" + "\n".join(f"  {i}. " + chain(g, c)
                                                      for i, c in enumerate(found, 1))


def test_tcmu_imports_only_its_own_and_a_few_leaves():
    g = import_graph()
    bad = violations(g, ["lioctl.tcmu"], lambda m: within(m, ["lioctl.tcmu"]) or m in TCMU_MAY_IMPORT)
    assert not bad, "lioctl.tcmu reaches beyond its allowed set:\n" + "\n".join(bad)


def test_model_and_planner_never_import_the_front():
    g = import_graph()
    bad = violations(g, ["lioctl.tree", "lioctl.plan", "lioctl.configfs", "lioctl.grammar"],
                     lambda m: not within(m, FRONT))
    assert not bad, "the model or the planner reaches the command line:\n" + "\n".join(bad)


def test_configfs_imports_nothing_but_errors():
    g = import_graph()
    bad = violations(g, ["lioctl.configfs"], lambda m: m in ("lioctl.configfs", "lioctl.errors"))
    assert not bad, "configfs.py imports more than errors:\n" + "\n".join(bad)


def test_grammar_and_the_plan_import_only_below_them():
    """grammar is a leaf (the tree model uses it); the plan never reads the tree model, the
    planners or the TCMU handler (a ServeUser op is handed its launcher by the planner)."""
    g = import_graph()
    bad = violations(g, ["lioctl.grammar"], lambda m: within(m, ["lioctl.grammar", "lioctl.errors"]))
    bad += violations(g, ["lioctl.plan"], lambda m: within(m, ["lioctl.plan", "lioctl.configfs", "lioctl.errors",
                                                               "lioctl.oplog", "lioctl.prefs"]))
    assert not bad, "an import upwards:\n" + "\n".join(bad)


def test_runtime_dependencies_are_what_lioctl_imports():
    """rtslib-fb, configshell-fb and pyroute2 were runtime dependencies lioctl never imported
    (and they install a targetctl that can shadow the distribution's)."""
    import sys
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    declared = {d.split(">")[0].split("<")[0].split("=")[0].strip().lower().replace("-", "_") for d in deps}
    imported = set()
    for path in module_names().values():
        with open(path, encoding="utf-8") as f:
            for node in ast.walk(ast.parse(f.read(), path)):
                if isinstance(node, ast.Import):
                    imported |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    imported.add(node.module.split(".")[0])
    # Debian's python3-rados/python3-rbd: not on PyPI, optional, loaded by lioctl/backstores/media/rbd.py
    distribution = {"rados", "rbd"}
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != "lioctl"} - distribution
    assert third_party == declared, f"imported {sorted(third_party)}, declared {sorted(declared)}"
