"""The layering is enforced: import-linter's contracts pass on the tree and fail on a planted upward import."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import APIRouter

from fleetapp.api import ROUTERS
from fleetcore.api.errors import ERROR_RESPONSES

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fleetapp", "backoffice", "monitor", "ingest", "simulators", "gateways", "fleetcore")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _tree_copy(tmp_path: Path) -> Path:
    """The first-party packages and the contracts, copied so a test may plant imports in them."""
    for name in PACKAGES:
        shutil.copytree(
            ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_contracts_hold_on_the_tree(tmp_path: Path) -> None:
    r = _lint(_tree_copy(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        # the shared base importing a domain
        (
            "fleetcore/_probe.py",
            "import backoffice.auth.service\n",
            "fleetcore is not allowed to import backoffice",
        ),
        # a telemetry domain importing the back office
        (
            "monitor/_probe.py",
            "from backoffice.auth import service\n",
            "monitor is not allowed to import backoffice",
        ),
        # two sibling domains importing each other
        ("ingest/_probe.py", "import monitor.detectors\n", "ingest is not allowed to import monitor"),
        # a protocol gateway importing a sibling domain or the back office (it meets them through MQTT and the DB)
        ("gateways/_probe.py", "import ingest.writer\n", "gateways is not allowed to import ingest"),
        (
            "gateways/_probe.py",
            "import backoffice.broker.service\n",
            "gateways is not allowed to import backoffice",
        ),
        # a domain importing the composition root
        ("backoffice/_probe.py", "import fleetapp.api\n", "backoffice is not allowed to import fleetapp"),
        # a route module used by another domain instead of its service
        ("backoffice/hr/_probe.py", "import backoffice.orders.views\n", "backoffice.orders.views"),
        # two back-office domains depending on each other (vehicles already uses stations)
        (
            "backoffice/stations/_probe.py",
            "import backoffice.vehicles.service\n",
            "No cycles are allowed in backoffice",
        ),
        # the fleet registry reaching into the rental side
        (
            "backoffice/stations/_probe.py",
            "import backoffice.customers.service\n",
            "backoffice.stations is not allowed to import backoffice.customers",
        ),
    ],
)
def test_a_planted_upward_import_breaks_the_check(
    tmp_path: Path, module: str, planted: str, broken: str
) -> None:
    tree = _tree_copy(tmp_path)
    (tree / module).write_text(planted)
    r = _lint(tree)
    assert r.returncode != 0, r.stdout
    assert broken in r.stdout, r.stdout


# ---- the back office's domain shape (docs/backoffice-fleet.md, "Domains and table owners") -------------------

BACKOFFICE = ROOT / "backoffice"
FIRST_PARTY = set(PACKAGES)
MAX_MODULE_LINES = 600


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def test_views_are_thin_no_sql_no_audit_writes() -> None:
    """Routes parse, call a service and answer: the SQL and the audit records are the services'."""
    offenders = []
    for path in BACKOFFICE.glob("*/views.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
                if name in ("execute", "executemany", "audit"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}()")
    assert offenders == []


# Every first-party package, and the tools beside them.
TREE = (*PACKAGES, "bench")
# Imports inside a function, each with its reason.
DEFERRED_ALLOWED = {
    # the parser's compiled fast path is optional (not built where there is no C compiler)
    ("fleetcore/protocol/parse.py", "fleetcore.protocol"),
}


def _tree_modules() -> list[Path]:
    return [p for pkg in TREE if (ROOT / pkg).is_dir() for p in _modules(ROOT / pkg)]


def test_first_party_modules_are_imported_at_the_top_only() -> None:
    """An import inside a function hides a dependency (and a cycle) from the reader and from import-linter.

    Imports under a top-level `if TYPE_CHECKING:` are for annotations only and count as top-level.
    """
    offenders = []
    for path in _tree_modules():
        tree = ast.parse(path.read_text())
        top = set(map(id, tree.body))
        for stmt in tree.body:
            if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
                top |= set(map(id, stmt.body))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                first = [n for n in names if n.split(".")[0] in FIRST_PARTY]
                rel = str(path.relative_to(ROOT))
                if first and not all((rel, n) in DEFERRED_ALLOWED for n in first):
                    offenders.append(f"{rel}:{node.lineno} {first}")
    assert offenders == []


def test_no_first_party_module_is_over_600_lines() -> None:
    """A reader holds a module in their head; the C parser (fleetcore/protocol/_fastparse.c) is not Python."""
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in _tree_modules()}
    assert {p: n for p, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_every_backoffice_router_declares_the_error_envelope() -> None:
    """So the OpenAPI document names every error a back-office route can answer."""

    def module(router: APIRouter) -> str:
        return getattr(router.routes[0], "endpoint").__module__  # noqa: B009 - routes are typed as BaseRoute

    backoffice = [r for r in ROUTERS if module(r).startswith("backoffice.")]
    # every domain's views module is wired into the app (none forgotten), and each router declares the envelope
    assert {module(r) for r in backoffice} == {
        f"backoffice.{p.parent.name}.views" for p in BACKOFFICE.glob("*/views.py")
    }
    for router in backoffice:
        assert router.responses == ERROR_RESPONSES, module(router)
