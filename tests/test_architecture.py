"""The layering is enforced: import-linter's contracts pass on the tree and fail on a planted upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
