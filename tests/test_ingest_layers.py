"""The ingest package's shape, written down and checked: imports go one way (down the layers below, so no cycle,
not even through an import inside a function), no module reads another's private names, first-party imports are
at the top of the module, and no module outgrows what a reader can hold (600 lines)."""

from __future__ import annotations

import ast
from pathlib import Path

INGEST = Path(__file__).resolve().parent.parent / "ingest"
MAX_LINES = 600

# From the top: a module imports only modules of the layers below its own. The direction messages flow in:
# client (MQTT framing) → consumer (flow control) → parse (fleetcore.protocol) → pipeline → writer (batch plan + apply) → state.
LAYERS: list[set[str]] = [
    {"cli"},  # the `fleet ingest` commands
    {"consumer", "scheduled"},  # composition: the worker, the periodic jobs
    {"replay"},  # the admin tasks (quarantine replay, retention)
    {"pipeline"},  # writer threads, ordered acknowledgements, the state thread
    {"writer", "state"},  # apply a batch's plan; coalesced vehicle state
    {"connection"},  # a writer's retrying database connection
    {"batch", "staging"},  # the pure batch plan; the SQL a batch is written with
    {"client", "vehicle_state"},
    {"metrics"},
]
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}

# Imports inside a function, each with its reason.
DEFERRED_ALLOWED: set[tuple[str, str]] = set()
# Reads of another module's private name, each with its reason.
PRIVATE_ALLOWED: set[tuple[str, str, str]] = set()


def _modules() -> dict[str, ast.Module]:
    return {
        p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(INGEST.glob("*.py")) if p.stem != "__init__"
    }


def _first_party(name: str) -> bool:
    return name.split(".")[0] in {"ingest", "fleetcore", "monitor", "backoffice", "simulators"}


def _imports(tree: ast.Module) -> list[tuple[str, list[str], bool]]:
    """(module, names taken from it, inside a function) for every import statement."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside.update(id(n) for n in ast.walk(node) if n is not node)
    out: list[tuple[str, list[str], bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((a.name, [], id(node) in inside) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "ingest":  # from ingest import writer
                out.extend((f"ingest.{a.name}", [], id(node) in inside) for a in node.names)
            else:
                out.append((node.module, [a.name for a in node.names], id(node) in inside))
    return out


def _ingest_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, tree in _modules().items():
        edges[name] = {m.split(".")[1] for m, _, _ in _imports(tree) if m.startswith("ingest.")}
    return edges


def test_every_module_has_a_layer() -> None:
    assert set(_modules()) <= set(LAYER_OF), set(_modules()) - set(LAYER_OF)


def test_imports_go_down_the_layers_only() -> None:
    upward = [
        (mod, dep)
        for mod, deps in _ingest_edges().items()
        for dep in deps
        if LAYER_OF.get(dep, len(LAYERS)) <= LAYER_OF[mod]
    ]
    assert upward == []


def test_no_import_cycle_even_through_deferred_imports() -> None:
    edges = _ingest_edges()
    done: set[str] = set()

    def visit(mod: str, path: list[str]) -> None:
        assert mod not in path, " → ".join([*path, mod])
        if mod in done:
            return
        for dep in edges.get(mod, ()):
            visit(dep, [*path, mod])
        done.add(mod)

    for mod in edges:
        visit(mod, [])


def test_no_module_imports_or_reads_another_modules_private_names() -> None:
    found: list[tuple[str, str, str]] = []
    for mod, tree in _modules().items():
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "ingest":  # from ingest import writer as w
                aliases.update({a.asname or a.name: a.name for a in node.names})
            if isinstance(node, ast.ImportFrom) and node.module and _first_party(node.module):
                found.extend((mod, node.module, a.name) for a in node.names if a.name.startswith("_"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
            ):
                found.append((mod, aliases[node.value.id], node.attr))
    assert set(found) <= PRIVATE_ALLOWED, set(found) - PRIVATE_ALLOWED


def test_first_party_imports_are_at_the_top_of_the_module() -> None:
    deferred = {
        (mod, m) for mod, tree in _modules().items() for m, _, fn in _imports(tree) if fn and _first_party(m)
    }
    assert deferred <= DEFERRED_ALLOWED, deferred - DEFERRED_ALLOWED


def test_no_module_exceeds_600_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in INGEST.glob("*.py")}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}
