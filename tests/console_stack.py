"""The whole system for the console's browser tests and benchmark: the real API (uvicorn on a free port), ingest,
the monitor and the simulator as threads on one database and the real Mosquitto, plus headless Chromium.

The browser is tests.browser.chromium().
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from fleetapp.api import create_app
from fleetapp.embedded import free_port
from fleetapp.seed import seed_registry
from fleetcore.db import connect, migrate
from fleetcore.settings import Settings
from monitor.worker import MonitorService
from simulators.runner import run as simulate
from tests import factories
from tests.conftest import MQTT_URL
from tests.ingest_helpers import ingest_worker
from tests.waiting import wait_until

SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "console"
START_TIMEOUT_S = 30.0


@dataclass
class Stack:
    url: str
    settings: Settings
    admin: dict
    dispatcher: dict
    fleet: list[dict]
    threads: list[threading.Thread] = field(default_factory=list)


def _thread(name: str, target, errors: list) -> threading.Thread:  # noqa: ANN001
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # surfaced by the stack on exit
            errors.append((name, exc))

    t = threading.Thread(target=run, name=f"console-{name}", daemon=True)
    t.start()
    return t


@contextlib.contextmanager
def console_stack(
    settings: Settings,
    *,
    vehicles: int,
    warmup_s: float = 900.0,
    rate_hz: float = 1.0,
    simulate_fleet: bool = True,
) -> Iterator[Stack]:
    """Seed the simulated fleet, start ingest, monitor, API and (optionally) the simulator; stop them all after."""
    with connect(settings.require_database_url(), autocommit=True) as conn:
        fleet = seed_registry(conn, vehicles=vehicles, seed=1)
        admin = factories.user(conn, role="admin")
        dispatcher = factories.user(conn, role="dispatcher")
    errors: list = []
    stop = threading.Event()
    sim_stop = threading.Event()
    with ingest_worker(settings):
        monitor = MonitorService(settings)
        threads = [_thread("monitor", lambda: monitor.run(stop), errors)]
        wait_until(
            lambda: monitor.subscribed.is_set() or errors, START_TIMEOUT_S, message="monitor subscribed"
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
            )
        )
        threads.append(_thread("api", server.run, errors))
        wait_until(lambda: server.started or errors, START_TIMEOUT_S, message="API started")
        if simulate_fleet:
            threads.append(
                _thread(
                    "simulator",
                    lambda: simulate(
                        settings,
                        vehicles=vehicles,
                        rate_hz=rate_hz,
                        seed=1,
                        stop=sim_stop,
                        connection="shared",
                        client_prefix=f"console-{uuid.uuid4().hex[:6]}-",
                        warmup_s=warmup_s,
                    ),  # fmt: skip
                    errors,
                )
            )
        try:
            assert not errors, errors
            yield Stack(f"http://127.0.0.1:{port}", settings, admin, dispatcher, fleet, threads)
        finally:
            sim_stop.set()
            stop.set()
            server.should_exit = True
            deadline = time.monotonic() + 20
            for t in threads:
                t.join(max(0.1, deadline - time.monotonic()))
    assert not errors, errors


def sign_in(page, stack: Stack, user: dict, *, lang: str = "en") -> None:  # noqa: ANN001
    """Open the console and sign in through the form."""
    page.goto(f"{stack.url}/console/")
    page.wait_for_selector("#login-form")
    if lang != "en":
        page.select_option("#login-lang", lang)
    page.fill("#login-user", user["username"])
    page.fill("#login-pass", user["password"])
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#console:not([hidden])")


def main() -> None:  # pragma: no cover - a developer's tool: python -m tests.console_stack DB_URL [VEHICLES]
    """Run the stack on an existing (migrated or empty) database until Ctrl-C, printing the URL and logins."""
    url, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 60
    tag = uuid.uuid4().hex[:6]
    settings = Settings(
        environment="test", database_url=url, mqtt_url=MQTT_URL, topic_root=f"dev-{tag}/fleet/v1",
        secret_key="console-dev-secret-0123456789abcdefghijkl", ingest_client_id=f"ingest-{tag}",
        monitor_client_id=f"monitor-{tag}", api_pool_size=4,
    )  # fmt: skip
    migrate(url, settings)
    with console_stack(settings, vehicles=n) as s:
        print(
            s.url,
            "admin",
            s.admin["username"],
            s.admin["password"],
            "dispatcher",
            s.dispatcher["username"],
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1)


if __name__ == "__main__":
    main()
