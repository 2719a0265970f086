"""The package's layers, as ARCHITECTURE.md draws them, checked on the code's own imports.

- Only ``matcher/store/`` imports sqlite3 or sqlite_utils, or holds SQL.
- No module imports one of a higher layer (lazy imports inside functions count).
- The shells (command line, web app) change state only through the services:
  they do not import the store's repositories.
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "matcher"

# Lowest first. A module belongs to the first prefix it starts with.
LAYERS = [
    ("model", ["matcher.model", "matcher.clock"]),  # and the package's own __init__ (its version only)
    ("core", ["matcher.policy", "matcher.gallery", "matcher.hubs", "matcher.audit", "matcher.decide", "matcher.media",
              "matcher.manifest", "matcher.walk", "matcher.executors", "matcher.cluster"]),
    ("faces", ["matcher.faces", "matcher.references", "matcher.calibrate", "matcher.observe"]),
    ("store", ["matcher.store"]),
    ("read models", ["matcher.report"]),
    ("services", ["matcher.services"]),
    ("shells", ["matcher.cli", "matcher.web", "matcher.demo", "matcher.__main__"]),
]
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b[^\n]*\b(FROM|INTO|SET|WHERE)\b|\bCREATE (TABLE|INDEX)\b")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    if module == "matcher":
        return 0
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to ARCHITECTURE.md)")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for every import of a higher layer's module."""
    problems = []
    for importer, imported in graph.items():
        for target in imported:
            if target.startswith("matcher") and target in graph and layer_of(target) > layer_of(importer):
                problems.append(f"{importer} ({LAYERS[layer_of(importer)][0]}) -> {target} "
                                f"({LAYERS[layer_of(target)][0]})")
    return problems


def test_only_the_store_speaks_sql():
    leaks = []
    for name, path in modules().items():
        if layer_of(name) == layer_of("matcher.store"):
            continue
        if imports_of(path) & {"sqlite3", "sqlite_utils"}:
            leaks.append(f"{name} imports sqlite")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                leaks.append(f"{name}:{node.lineno} SQL")
    assert leaks == []


def test_no_module_imports_a_higher_layer():
    graph = {name: imports_of(path) for name, path in modules().items()}
    assert upward_imports(graph) == []


def test_shells_change_state_only_through_the_services():
    everything = modules()
    shells = [name for name in everything if layer_of(name) == layer_of("matcher.cli")]
    reaching_in = [f"{name} -> {target}" for name in shells for target in imports_of(everything[name])
                   if target.startswith("matcher.store.") and target in everything]
    assert reaching_in == []


def test_the_check_catches_an_upward_import():
    """The rule itself, on a made-up graph: the store importing a service is refused."""
    graph = {"matcher.store.people": {"matcher.services.session"}, "matcher.services.session": {"matcher.store"},
             "matcher.store": set()}
    assert upward_imports(graph) == ["matcher.store.people (store) -> matcher.services.session (services)"]
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("matcher.newcomer")
