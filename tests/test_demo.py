"""`fleet demo` end to end: embedded servers (or the configured ones), live data through the API, clean stop."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from fleetapp.embedded import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
FLEET = str(Path(sys.executable).with_name("fleet"))
PASSWORD = "demo-test-password"
# Issue 2, "What it must show": within 60 s the API lists at least 50 vehicles with fresh state.
READY_WITHIN_S = 60.0
# Issue 19: a newcomer who opens the console sees at least one alert within 2 minutes (the injected incidents).
ALERT_WITHIN_S = 120.0
FRESH_S = 30.0
STOP_WITHIN_S = 15.0


@pytest.fixture
def home() -> Iterator[Path]:
    """A private temp dir (HOME and data dir). Not tmp_path: concurrent pytest sessions of the same user prune
    each other's old basetemp dirs, which can delete a data dir under a running demo."""
    path = Path(tempfile.mkdtemp(prefix="fleet-demo-test-"))
    path.chmod(0o755)  # the embedded server's user must reach its data dir
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Demo:
    """`fleet demo` as a child process, with its output collected and its process tree remembered."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.data_dir = tmp / "data"
        base = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
        base.update(HOME=str(tmp), FLEET_DEMO_ADMIN_PASSWORD=PASSWORD, **(env or {}))
        self.stderr = open(tmp / "stderr.log", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [FLEET, "demo", "--port", str(self.port), "--data-dir", str(self.data_dir), *args],
            cwd=tmp,
            env=base,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.lines: list[str] = []
        self.tree: list[psutil.Process] = []
        self.tree_names: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        self.stderr.seek(0)
        text = "\n".join(self.lines) + "\n--- stderr ---\n" + self.stderr.read()[-4000:]
        for name in ("initdb.log", "postgres.log", "mosquitto/mosquitto.log"):
            path = self.data_dir / name
            if path.exists():
                text += f"\n--- {name} ---\n" + path.read_text(errors="replace")[-3000:]
        return text

    def wait_for_line(self, prefix: str, timeout: float) -> str:
        def found() -> str | None:
            assert self.proc.poll() is None, f"demo exited with {self.proc.returncode}:\n{self.output()}"
            return next((line for line in self.lines if line.startswith(prefix)), None)

        return wait_until(  # type: ignore[return-value]  # wait_until returns the first truthy value: a line
            found, timeout=timeout, interval=0.2, message=lambda: f"no {prefix!r} line:\n{self.output()}"
        )

    def remember_tree(self) -> None:
        self.tree = psutil.Process(self.proc.pid).children(recursive=True)
        self.tree_names = [p.name() for p in self.tree]

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, float]:
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"demo did not stop within {STOP_WITHIN_S}s:\n{self.output()}") from None
        return rc, time.monotonic() - t0

    def kill(self) -> None:
        for p in [*self.tree, psutil.Process(self.proc.pid)] if self.proc.poll() is None else self.tree:
            with contextlib.suppress(psutil.Error):
                p.kill()

    def survivors(self, timeout: float = 5) -> list[str]:
        gone, alive = psutil.wait_procs(self.tree, timeout=timeout)
        return [f"{p.pid} {p.name()}" for p in alive]


class Api:
    def __init__(self, port: int) -> None:
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        r = self.http.post("/api/v1/auth/token", data={"username": "admin", "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def fresh_vehicles(self) -> tuple[int, int]:
        """(vehicles listed, vehicles whose state.last_seen is within FRESH_S)."""
        vehicles = self.get("/api/v1/vehicles", limit=1000)
        now = dt.datetime.now(dt.UTC)
        fresh = 0
        for v in vehicles:
            seen = self.get(f"/api/v1/vehicles/{v['vin']}/state").get("last_seen")
            if seen and (now - dt.datetime.fromisoformat(seen)).total_seconds() <= FRESH_S:
                fresh += 1
        return len(vehicles), fresh

    def readings(self) -> int:
        return int(self.get("/api/v1/ingest/stats")["readings_stored"])


def _poll(read: Callable[[], int], ok: Callable[[int], bool], *, until: float) -> int:
    """Call read() every second until ok(value) or the monotonic deadline; return the last value."""
    last = [read()]

    def done() -> bool:
        last[0] = read()
        return ok(last[0])

    with contextlib.suppress(AssertionError):  # the caller asserts on the value, with its own message
        wait_until(done, timeout=max(until - time.monotonic(), 0.0), interval=1.0)
    return last[0]


def _run_and_check(
    demo: Demo, *, vehicles: int, want_fresh: int, sig: int = signal.SIGINT, want_alert: bool = False
) -> dict:
    """Wait for the API, check live data, stop with `sig`; returns timings."""
    t0 = time.monotonic()
    try:
        demo.wait_for_line("API:", READY_WITHIN_S)
        demo.remember_tree()
        api = Api(demo.port)
        assert api.http.get("/healthz").json() == {"status": "ok"}
        timings = {"api_ready_s": time.monotonic() - t0}
        counts = [(0, 0)]

        def enough_fresh() -> bool:
            counts[0] = api.fresh_vehicles()
            return counts[0][1] >= want_fresh

        with contextlib.suppress(AssertionError):  # asserted below with the demo's output
            wait_until(enough_fresh, timeout=max(READY_WITHIN_S - (time.monotonic() - t0), 0.0), interval=2.0)
        listed, fresh = counts[0]
        assert listed >= vehicles and fresh >= want_fresh, (listed, fresh, demo.output())
        timings["fresh_s"] = time.monotonic() - t0
        first = _poll(api.readings, lambda n: n > 0, until=t0 + READY_WITHIN_S)
        assert first > 0, f"no readings stored within {READY_WITHIN_S}s:\n{demo.output()}"
        # Parked cars report every 30 s (simulators.runner.PARKED_REPORT_S), so allow one such period.
        later = _poll(api.readings, lambda n: n > first, until=time.monotonic() + 35)
        assert later > first, "stored readings do not grow"
        timings["readings_growing_s"] = time.monotonic() - t0
        if want_alert:
            assert api.http.get("/console/").status_code == 200
            assert any(
                line.startswith(f"console:  http://127.0.0.1:{demo.port}/console/") for line in demo.lines
            )
            alerts = _poll(
                lambda: int(api.get("/api/v1/alerts", status="open,acknowledged,resolved")["total"]),
                lambda n: n > 0,
                until=t0 + ALERT_WITHIN_S,
            )
            assert alerts > 0, f"no alert within {ALERT_WITHIN_S:.0f} s:\n{demo.output()}"
            timings["first_alert_s"] = time.monotonic() - t0
        demo.wait_for_line("vehicles online", 5)
        rc, stop_s = demo.stop(sig)
        timings["stop_s"] = stop_s
        assert rc == 0, demo.output()
        assert "stopped." in demo.lines, demo.output()
        assert not demo.survivors(), f"processes outlived the demo: {demo.survivors()}"
        return timings
    finally:
        demo.kill()


@pytest.mark.slow
@pytest.mark.xdist_group("demo")
def test_demo_on_embedded_servers(home: Path) -> None:
    """No configuration: embedded PostgreSQL (as an unprivileged user when root) and broker; Ctrl-C stops all."""
    demo = Demo(home, "--vehicles", "60", "--mqtt-port", str(free_port()))
    timings = _run_and_check(demo, vehicles=60, want_fresh=50, want_alert=True)
    print(timings)
    assert {"postgres", "mosquitto"} <= set(demo.tree_names), (
        f"embedded servers not children: {demo.tree_names}"
    )
    assert (demo.data_dir / "pgdata" / "PG_VERSION").exists()
    assert not (demo.data_dir / "pgdata" / "postmaster.pid").exists(), "PostgreSQL was not shut down cleanly"
    assert any(line.startswith("login:    admin / ") for line in demo.lines)


@pytest.mark.slow
@pytest.mark.xdist_group("demo")
def test_demo_on_amqtt_with_mqtt_311(home: Path) -> None:
    """Without mosquitto the demo falls back to the in-process amqtt broker and MQTT 3.1.1 clients."""
    demo = Demo(home, "--vehicles", "20", "--broker", "amqtt", "--mqtt-port", str(free_port()))
    _run_and_check(demo, vehicles=20, want_fresh=18, sig=signal.SIGTERM)
    assert any("AmqttBroker" in line and "MQTT 3.1.1" in line for line in demo.lines), demo.output()


@pytest.mark.slow
def test_demo_uses_configured_servers(home: Path, db_url: str, topic_root: str) -> None:
    """With FLEET_DATABASE_URL and FLEET_MQTT_URL set, nothing embedded is started."""
    from tests.conftest import MQTT_URL

    tag = uuid.uuid4().hex[:8]
    env = {
        "FLEET_DATABASE_URL": db_url,
        "FLEET_MQTT_URL": MQTT_URL,
        "FLEET_TOPIC_ROOT": topic_root,
        "FLEET_INGEST_CLIENT_ID": f"demo-ingest-{tag}",
        "FLEET_MONITOR_CLIENT_ID": f"demo-monitor-{tag}",
        "FLEET_SECRET_KEY": "demo-test-secret-key-0123456789abcdef",
    }
    demo = Demo(home, "--vehicles", "20", env=env)
    _run_and_check(demo, vehicles=20, want_fresh=18, sig=signal.SIGTERM)
    assert any(line.startswith("database:") and "FLEET_DATABASE_URL" in line for line in demo.lines)
    assert not (demo.data_dir / "pgdata").exists()
    assert not demo.tree, f"no server processes expected: {demo.tree}"


@pytest.mark.slow
@pytest.mark.xdist_group("demo")
def test_embedded_servers_die_with_a_killed_demo(home: Path) -> None:
    """SIGKILL leaves no chance to clean up: the parent-death signal still stops PostgreSQL and Mosquitto."""
    demo = Demo(home, "--vehicles", "5", "--mqtt-port", str(free_port()))
    try:
        demo.wait_for_line("API:", READY_WITHIN_S)
        demo.remember_tree()
        assert {"postgres", "mosquitto"} <= set(demo.tree_names), demo.tree_names
        demo.proc.kill()
        demo.proc.wait(5)
        assert not demo.survivors(timeout=20), f"orphans after SIGKILL: {demo.survivors()}"
    finally:
        demo.kill()
    # PostgreSQL got SIGINT (fast shutdown), so it shut down cleanly even though the demo could not.
    assert not (demo.data_dir / "pgdata" / "postmaster.pid").exists()


def test_demo_refuses_a_busy_port(home: Path) -> None:
    """A port in use is a user mistake: clear message, exit code 2, nothing started."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(
            [FLEET, "demo", "--port", str(port), "--data-dir", str(home / "data")],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("FLEET_")},
        )
    assert r.returncode == 2
    assert f"port {port} is in use" in r.stderr
    assert not (home / "data").exists()
