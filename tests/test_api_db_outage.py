"""The API while PostgreSQL is away: every request answers quickly with 503 + Retry-After in the one error
envelope (never a 500, never a hang past FLEET_API_DB_WAIT_S), and the same process serves again once the
database is back, without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from fleetapp.embedded import free_port
from fleetcore.db import connect, migrate
from fleetcore.settings import Settings
from tests import factories
from tests.ingest_helpers import private_postgres
from tests.waiting import wait_until

pytestmark = [pytest.mark.db, pytest.mark.slow, pytest.mark.timescale]

DB_WAIT_S = 2.0
SECRET = "outage-test-secret-0123456789-abcdefghijkl"


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_postgres_restart_gives_only_503s_then_recovers(tmp_path: Path) -> None:
    with private_postgres() as pg:
        url = pg.url()
        migrate(url, Settings(environment="test", timescale="on"))
        with connect(url, autocommit=True) as conn:
            v = factories.vehicle(conn)
            u = factories.user(conn, role="dispatcher")
        port = free_port()
        env = {**os.environ, "FLEET_DATABASE_URL": url, "FLEET_SECRET_KEY": SECRET,
               "FLEET_API_DB_WAIT_S": str(DB_WAIT_S), "FLEET_API_POOL_SIZE": "4"}  # fmt: skip
        log = (tmp_path / "api.log").open("w")
        api = subprocess.Popen([sys.executable, "-m", "fleetapp.cli", "api", "--port", str(port)], env=env,
                               stdout=log, stderr=log)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _up(base), timeout=30, message=lambda: (tmp_path / "api.log").read_text())
            token = httpx.post(
                f"{base}/api/v1/auth/token", data={"username": u["username"], "password": u["password"]}
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            path = f"/api/v1/vehicles/{v['vin']}/state"
            statuses: Counter[int] = Counter()
            slowest = 0.0
            bad: list[str] = []
            outage = threading.Event()
            stop = threading.Event()

            def client() -> None:
                nonlocal slowest
                with httpx.Client(base_url=base, headers=headers, timeout=DB_WAIT_S + 10) as c:
                    while not stop.is_set():
                        t0 = time.monotonic()
                        r = c.get(path)
                        took = time.monotonic() - t0
                        statuses[r.status_code] += 1
                        if outage.is_set():
                            slowest = max(slowest, took)
                        if r.status_code == 503:
                            if "retry-after" not in r.headers or r.json()["error"]["code"] != "unavailable":
                                bad.append(f"503 without Retry-After or envelope: {r.headers} {r.text[:200]}")
                        elif r.status_code != 200:
                            bad.append(f"{r.status_code}: {r.text[:200]}")
                        time.sleep(0.05)

            threads = [threading.Thread(target=client) for _ in range(4)]
            for t in threads:
                t.start()
            wait_until(lambda: statuses[200] >= 10, timeout=20)
            outage.set()
            pg.stop("fast")
            down_at = time.monotonic()
            wait_until(lambda: statuses[503] >= 8, timeout=30, message=lambda: f"{statuses} {bad}")
            pg.start()
            ok_before = statuses[200]
            wait_until(
                lambda: statuses[200] >= ok_before + 10, timeout=60, message=lambda: f"{statuses} {bad}"
            )
            recovered_s = time.monotonic() - down_at
            stop.set()
            for t in threads:
                t.join(30)
        finally:
            api.terminate()
            api.wait(15)
            log.close()
    print(f"statuses {dict(statuses)}, slowest answer during the outage {slowest:.2f} s, serving again "
          f"{recovered_s:.1f} s after the stop")  # fmt: skip
    assert bad == []
    assert set(statuses) <= {200, 503}, statuses
    assert slowest < DB_WAIT_S + 3, f"a request hung {slowest:.1f} s"
