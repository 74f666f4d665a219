"""`make bench-api`: 200 concurrent API clients doing mixed reads and writes while ingest takes 5,000 msg/s.

Real processes on loopback: `fleet api` and `fleet ingest` against a scratch database, a private Mosquitto, a paced
publisher (5,000 devices × 1 Hz), and N asyncio clients in this process. Each client is a staff member at a screen:
it waits a random think time (exponential, mean THINK_S), then sends one request: a read (a vehicle's state, a
page of vehicles, the open alerts, a customer search) or a write (a new customer, a customer's phone change).
Bounded in count and time. Results → bench/api_load.json and bench/api_load.md.

Targets (the reliability issue): reads p99 < 50 ms, writes p99 < 200 ms, 0 errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from backoffice.auth import service as users
from bench.common import (
    HERE,
    PacedPublisher,
    counter,
    drop_database,
    ingest_env,
    log,
    make_database,
    proc_cpu_s,
    proc_rss_mb,
    start_ingest,
    stop,
)
from fleetcore.db import connect
from tests.ingest_helpers import free_port, mosquitto
from tests.waiting import wait_until

ROOT = "bench/v1"
THINK_S = 1.0  # mean pause between one client's requests (a person at a console, not a load generator)
READ_P99_TARGET_MS = 50.0
WRITE_P99_TARGET_MS = 200.0
WRITE_SHARE = 0.2  # of all requests: customer service writes, dispatchers only read
SECRET = "api-load-bench-secret-0123456789-abcdefghijk"
PASSWORD = "bench-password-123"


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Client:
    """One staff member: logs in once, then reads and writes with think time until the deadline."""

    def __init__(self, http: httpx.AsyncClient, n: int, vins: list[str], rng: random.Random) -> None:
        self.http, self.n, self.vins, self.rng = http, n, vins, rng
        self.dispatcher = n % 2 == 1  # half dispatchers (fleet and alerts), half customer service (customers)
        self.headers: dict[str, str] = {}
        self.customers: list[int] = []
        self.samples: list[tuple[str, str, float, int]] = []  # (kind, name, ms, status)
        self.errors: dict[str, str] = {}  # request name → the first error answer's body

    async def login(self, username: str) -> None:
        r = await self.http.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
        r.raise_for_status()
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    async def _do(self, kind: str, name: str, method: str, url: str, **kw: object) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            r = await self.http.request(method, url, headers=self.headers, **kw)  # type: ignore[arg-type]
            status = r.status_code
        except httpx.HTTPError:
            r, status = None, 0
        self.samples.append((kind, name, (time.perf_counter() - t0) * 1000, status))
        if not 200 <= status < 300 and name not in self.errors:
            self.errors[name] = f"{status}: {r.text[:300] if r is not None else 'no answer'}"
        return r

    async def run(self, deadline: float) -> None:
        while True:
            await asyncio.sleep(self.rng.expovariate(1 / THINK_S))
            if time.monotonic() >= deadline:
                return
            if self.dispatcher:
                await self._dispatcher_read()
            elif self.rng.random() < 2 * WRITE_SHARE:
                await self._write()
            else:
                await self._service_read()

    async def _dispatcher_read(self) -> None:
        pick = self.rng.random()
        vin = self.rng.choice(self.vins)
        if pick < 0.5:
            await self._do("read", "vehicle state", "GET", f"/api/v1/vehicles/{vin}/state")
        elif pick < 0.75:
            await self._do("read", "vehicles page", "GET", "/api/v1/vehicles", params={"limit": 50})
        else:
            params = {"status": "open", "limit": 50}
            await self._do("read", "open alerts", "GET", "/api/v1/alerts", params=params)

    async def _service_read(self) -> None:
        if self.rng.random() < 0.5:
            await self._do(
                "read", "vehicle state", "GET", f"/api/v1/vehicles/{self.rng.choice(self.vins)}/state"
            )
        else:
            params = {"q": "Load", "limit": 20}
            await self._do("read", "customer search", "GET", "/api/v1/customers", params=params)

    async def _write(self) -> None:
        if self.customers and self.rng.random() < 0.5:
            cid = self.rng.choice(self.customers)
            phone = f"+49 30 {self.rng.randrange(10**6, 10**7)}"
            await self._do(
                "write", "customer update", "PATCH", f"/api/v1/customers/{cid}", json={"phone": phone}
            )
            return
        body = {
            "first_name": "Load",
            "last_name": f"Client{self.n}",
            "email": f"load-{uuid.uuid4().hex[:10]}@example.com",
            "phone": "+49 30 1234567",
            "address": "Heidestrasse 17, 51147 Koeln",
            "date_of_birth": "1985-08-12",
            "id_document_type": "id_card",
            "id_document_number": f"L{uuid.uuid4().hex[:8].upper()}",
            "licence_number": f"B{uuid.uuid4().hex[:10].upper()}",
            "licence_class": "B",
            "licence_expiry": "2034-06-01",
        }
        r = await self._do("write", "customer create", "POST", "/api/v1/customers", json=body)
        if r is not None and r.status_code == 201:
            self.customers.append(r.json()["id"])


def _users(url: str, n: int) -> list[str]:
    """n staff users, even ones customer service, odd ones dispatchers (through the auth service)."""
    with connect(url, autocommit=True) as conn:
        for i in range(n):
            role = "dispatcher" if i % 2 else "customer_service"
            users.create(conn, username=f"load-{i}", role=role, password=PASSWORD, actor=None)
    return [f"load-{i}" for i in range(n)]


async def _clients(base: str, names: list[str], vins: list[str], seconds: float, seed: int) -> list[Client]:
    limits = httpx.Limits(max_connections=len(names), max_keepalive_connections=len(names))
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as http:
        clients = [Client(http, i, vins, random.Random(seed + i)) for i in range(len(names))]
        for i in range(0, len(clients), 20):  # log in 20 at a time (each login is one argon2 verify, ~50 ms)
            await asyncio.gather(*(c.login(names[j]) for j, c in enumerate(clients[i : i + 20], start=i)))
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(c.run(deadline) for c in clients))
    return clients


def measure(clients: int, seconds: float, devices: int, seed: int) -> dict:
    url, devs = make_database(devices)
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-api-"))
    with psycopg.connect(url, autocommit=True) as conn:
        vins = [r[0] for r in conn.execute("SELECT vin FROM vehicles ORDER BY id LIMIT 1000").fetchall()]
    names = _users(url, clients)
    api = ingest = None
    try:
        with mosquitto() as broker:
            ingest = start_ingest(
                ingest_env(url, broker.url, ROOT, f"bench-api-{uuid.uuid4().hex[:6]}"), tmp / "ingest.log"
            )
            port = free_port()
            env = {
                **os.environ,
                "FLEET_DATABASE_URL": url,
                "FLEET_SECRET_KEY": SECRET,
                "FLEET_ENVIRONMENT": "test",
            }
            with (tmp / "api.log").open("wb") as f:
                api = subprocess.Popen(
                    [sys.executable, "-m", "fleetapp.cli", "api", "--port", str(port)],
                    env=env,
                    stdout=f,
                    stderr=f,
                    cwd=HERE.parent,
                )
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: _up(base), timeout=60, message="the API did not start")
            wait_until(lambda: b"event=subscribed" in (tmp / "ingest.log").read_bytes(), timeout=60)
            pub = PacedPublisher(broker.port, ROOT, devs, seconds + 15)
            stored0 = counter(url)
            pub.start()
            time.sleep(5)  # the publisher reaches its pace before the clients start
            cpu0 = {"api": proc_cpu_s(api.pid), "ingest": proc_cpu_s(ingest.pid)}
            t0 = time.monotonic()
            log(f"{clients} clients for {seconds:.0f} s while ingest takes {devices:,} msg/s")
            done = asyncio.run(_clients(base, names, vins, seconds, seed))
            wall = time.monotonic() - t0
            cpu = {k: proc_cpu_s(p.pid) - cpu0[k] for k, p in (("api", api), ("ingest", ingest))}
            rss = {"api": proc_rss_mb(api.pid), "ingest": proc_rss_mb(ingest.pid)}
            stored = counter(url) - stored0
            pub.join()
    finally:
        for p in (api, ingest):
            if p is not None:
                stop(p)
        drop_database(url)
    samples = [s for c in done for s in c.samples]
    out: dict = {"kinds": {}, "by_request": {}}
    for kind in ("read", "write"):
        ms = [s[2] for s in samples if s[0] == kind]
        errors = sum(1 for s in samples if s[0] == kind and not 200 <= s[3] < 300)
        out["kinds"][kind] = {
            "requests": len(ms),
            "errors": errors,
            "p50_ms": _pct(ms, 0.50),
            "p95_ms": _pct(ms, 0.95),
            "p99_ms": _pct(ms, 0.99),
            "max_ms": max(ms) if ms else None,
        }
    for name in sorted({s[1] for s in samples}):
        ms = [s[2] for s in samples if s[1] == name]
        statuses = sorted({s[3] for s in samples if s[1] == name})
        out["by_request"][name] = {"requests": len(ms), "p99_ms": _pct(ms, 0.99), "statuses": statuses}
    out["first_errors"] = {k: v for c in done for k, v in c.errors.items()}
    out.update(
        clients=clients,
        seconds=round(wall, 1),
        requests_per_s=round(len(samples) / wall, 1),
        ingest_msgs_per_s=round(stored / max(wall, 1e-9), 0),
        published=pub.sent,
        publisher_late_ticks=pub.late_ticks,
        cpu_s=cpu,
        rss_mb=rss,
    )
    out["met"] = (
        out["kinds"]["read"]["errors"] == 0
        and out["kinds"]["write"]["errors"] == 0
        and (out["kinds"]["read"]["p99_ms"] or 1e9) < READ_P99_TARGET_MS
        and (out["kinds"]["write"]["p99_ms"] or 1e9) < WRITE_P99_TARGET_MS
    )
    return out


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def write(runs: list[dict], args: argparse.Namespace) -> None:
    def med(path: tuple[str, ...]) -> float | None:
        vals = []
        for r in runs:
            v: object = r
            for k in path:
                v = v[k]  # type: ignore[index]
            if v is not None:
                vals.append(float(v))  # type: ignore[arg-type]
        return round(statistics.median(vals), 1) if vals else None

    res = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": {
            "clients": args.clients,
            "seconds": args.seconds,
            "devices": args.devices,
            "repeat": args.repeat,
            "think_s": THINK_S,
            "write_share": WRITE_SHARE,
        },  # fmt: skip
        "runs": runs,
        "median": {
            "read_p99_ms": med(("kinds", "read", "p99_ms")),
            "write_p99_ms": med(("kinds", "write", "p99_ms")),
            "read_p50_ms": med(("kinds", "read", "p50_ms")),
            "write_p50_ms": med(("kinds", "write", "p50_ms")),
            "requests_per_s": med(("requests_per_s",)),
            "ingest_msgs_per_s": med(("ingest_msgs_per_s",)),
        },
        "errors": sum(r["kinds"][k]["errors"] for r in runs for k in ("read", "write")),
        "met_every_run": all(r["met"] for r in runs),
    }
    (HERE / "api_load.json").write_text(json.dumps(res, indent=1) + "\n")
    m = res["median"]
    lines = [
        "# API under load (`make bench-api`)",
        "",
        f"Run {res['when']} on this machine (2 cores): {args.clients} concurrent clients (think time exponential, "
        f"mean {THINK_S:g} s; {WRITE_SHARE:.0%} writes) for {args.seconds:g} s while `fleet ingest` stores "
        f"{args.devices:,} devices × 1 Hz from a private Mosquitto; `fleet api` with its default pool. "
        f"Medians of {len(runs)} run(s).",
        "",
        "| | target | result |",
        "|---|---|---|",
        f"| reads p99 | < {READ_P99_TARGET_MS:g} ms | {m['read_p99_ms']} ms (p50 {m['read_p50_ms']} ms) |",
        f"| writes p99 | < {WRITE_P99_TARGET_MS:g} ms | {m['write_p99_ms']} ms (p50 {m['write_p50_ms']} ms) |",
        f"| errors | 0 | {res['errors']} |",
        f"| requests/s | | {m['requests_per_s']} |",
        f"| ingest stored msg/s meanwhile | {args.devices:,} | {m['ingest_msgs_per_s']} |",
        "",
        "Per request (last run):",
        "",
        "| request | count | p99 ms | statuses |",
        "|---|---|---|---|",
        *[
            f"| {name} | {v['requests']} | {v['p99_ms']:.1f} | {v['statuses']} |"
            for name, v in runs[-1]["by_request"].items()
        ],
        "",
        f"Met in every run: {res['met_every_run']}. Raw runs: `bench/api_load.json`.",
    ]
    (HERE / "api_load.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--devices", type=int, default=5000, help="devices × 1 Hz = ingest's message rate")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    runs = [measure(args.clients, args.seconds, args.devices, args.seed + k) for k in range(args.repeat)]
    write(runs, args)
    return 0 if all(r["met"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
