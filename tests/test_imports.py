"""The package's import graph: no cycles (imports inside functions count too), and real-checkpoint code never
imports the tiny-model package."""

import ast
from pathlib import Path

import synartifact

PACKAGE = Path(synartifact.__file__).parent

# Modules that may import synartifact.tiny: the tiny package itself and the opt-in offline defaults (build the
# tiny model when its folder is missing), the demo and the Spaces' demo models.
TINY_USERS = {"synartifact.sft", "synartifact.ddpo", "synartifact.demo.stages", "synartifact.webui.tiny_models"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports anywhere in its body (a ``from pkg import mod`` counts as ``pkg.mod``)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target in known and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_imports_inside_functions():
    graph = _graph()
    # classifier.model imports the normalizer at the top; tiny.sd imports the pre-training inside a function.
    assert "synartifact.images" in graph["synartifact.classifier.model"]
    assert "synartifact.generator.pretrain" in graph["synartifact.tiny.sd"]


def test_no_import_cycles():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_only_the_offline_defaults_import_the_tiny_models():
    graph = _graph()
    users = {
        name
        for name, targets in graph.items()
        if not name.startswith("synartifact.tiny") and any(t.startswith("synartifact.tiny") for t in targets)
    }
    assert users <= TINY_USERS, f"modules outside the offline defaults import synartifact.tiny: {users - TINY_USERS}"
