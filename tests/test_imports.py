"""The package's import graph has no cycles: every module's top-level imports form a DAG. Importing
bsarec.a.b runs bsarec/a/__init__.py too, so that counts as an edge, except from inside package a (its own
packages are initialised before a module) and to the root package's public facade. Imports inside
functions are reserved for the optional extras, which are loaded through bsarec.extras."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(tree: ast.Module) -> list[str]:
    names = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue  # annotations only, never executed
        for child in [node] if not isinstance(node, ast.If) else node.body:
            if isinstance(child, ast.Import):
                names += [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                names.append(child.module)
                names += [f"{child.module}.{alias.name}" for alias in child.names]
    return names


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in (SRC / "bsarec").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for imported in top_level_imports(ast.parse(path.read_text())):
            parts = imported.split(".")
            for depth in range(2, len(parts) + 1):  # bsarec.a.b runs bsarec.a's __init__, then bsarec.a.b
                target = ".".join(parts[:depth])
                # a module's own packages are initialised before it, whatever imports it first
                if target in modules and target != name and not name.startswith(target + "."):
                    edges.add(target)
        graph[name] = edges
    return graph


def test_the_import_graph_has_no_cycles():
    graph, state, cycles = import_graph(), {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_no_bsarec_import_sits_inside_a_function():
    inner = []
    for path in (SRC / "bsarec").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for child in ast.walk(node):
                    if isinstance(child, ast.ImportFrom) and (child.module or "").startswith("bsarec"):
                        inner.append(f"{path.relative_to(SRC)}:{child.lineno}")
    assert inner == []
