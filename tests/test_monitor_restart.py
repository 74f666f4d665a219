"""`fleet monitor` restarted mid-stream, as a real process (`python -m fleetapp.cli monitor`), against a private
persistent Mosquitto, the test database and an ingest worker (which stores the readings and `vehicle_state`
the monitor rebuilds its state from).

A paced publisher streams telemetry of 12 rented cars on one sample-time line (one step = 1 s of sample time);
the monitor is stopped (SIGTERM, or SIGKILL: nothing flushed) while it runs, a crash is published while it is
down, and it is started again with the same client id (its persistent session). Expected, each exactly once
(one alert, one occurrence) and nothing else:

* overheating on 4 cars whose 20 s window straddles the stop, each opened at the 20th hot sample, as an
  uninterrupted process would (the window counts the samples judged before the restart);
* the crash published before the stop (already raised: not duplicated by a redelivery) and the one published
  while the monitor was down;
* device_offline for a car that went silent before the stop (silence counted across the restart) and for one
  whose last will (`offline`, retained) was published while the monitor was down.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetcore.contract import topic_for
from fleetcore.db import connect, scalar
from fleetcore.mqtt import MqttConnection
from fleetcore.settings import MqttUrl
from tests import factories
from tests.ingest_helpers import Mosquitto, ingest_settings, ingest_worker, mosquitto
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.mqtt, pytest.mark.db]

ROOT_DIR = Path(__file__).resolve().parent.parent
STEPS = 60
STEP_S = 0.05  # publisher pacing (wall clock) per step of 1 s sample time: the whole stream takes ~3 s
STOP_AT = 15  # the monitor is stopped once this many steps are published
HOT_FROM = (0, 5, 10, 14)  # overheating cars start reporting (at 116 °C) at these steps
HOT_C = 116.0
SILENT_UNTIL = 8  # the silent car and the last-will car report until this step
# Short offline thresholds for the class of those two cars only (monitor_thresholds), so the test takes seconds.
OFFLINE_CLASS, OFFLINE_S, GRACE_S = "van", 4.0, 2.0
SUBSCRIBED = "monitor subscribed to"


class MonitorProcess:
    """`python -m fleetapp.cli monitor` with a log file per start."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.starts = 0
        self.proc: subprocess.Popen | None = None
        self.log: Path | None = None

    def start(self) -> float:
        self.starts += 1
        self.log = self.workdir / f"monitor-{self.starts}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fleetapp.cli", "monitor"],
                env=self.env,
                cwd=ROOT_DIR,
                stdout=out,
                stderr=out,
            )
        return time.monotonic()

    def text(self) -> str:
        return self.log.read_text() if self.log else ""

    def wait_for(self, line: str, timeout: float = 30.0) -> float:
        """Block until the log has `line` (fails early if the process died); returns when it was seen."""

        def seen() -> bool:
            if line in self.text():
                return True
            assert self.proc is not None and self.proc.poll() is None, (
                f"monitor exited:\n{self.text()[-3000:]}"
            )
            return False

        wait_until(
            seen, timeout=timeout, interval=0.02, message=lambda: f"{line!r} in\n{self.text()[-3000:]}"
        )
        return time.monotonic()

    def stop(self, sig: signal.Signals, timeout: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


class Publisher(threading.Thread):
    """Publishes the stream step by step (QoS 1, each acknowledged by the broker); `step` is how far it got."""

    def __init__(self, url: str, root: str, cars: dict[str, dict], base: dt.datetime) -> None:
        super().__init__(name="test-publisher", daemon=True)
        self.conn = MqttConnection(MqttUrl(url), f"test-pub-{uuid.uuid4().hex[:8]}")
        self.root, self.cars, self.base = root, cars, base
        self.step = 0
        self.samples = 0
        self.error: BaseException | None = None

    def ts(self, step: float) -> dt.datetime:
        return self.base + dt.timedelta(seconds=step)

    def publish(self, device_id: str, kind: str, body: dict | str, retain: bool = False) -> None:
        payload = body if isinstance(body, str) else json.dumps(body)
        assert self.conn.publish(topic_for(self.root, device_id, kind), payload, qos=1, retain=retain)

    def run(self) -> None:
        try:
            for car in self.cars.values():  # devices announce themselves on connecting (retained)
                self.publish(car["device_id"], "status", "online", retain=True)
            for step in range(STEPS):
                for name, car in self.cars.items():
                    if name.startswith("hot") and step < HOT_FROM[int(name[3:])]:
                        continue
                    if name in ("silent", "will") and step > SILENT_UNTIL:
                        continue
                    hot = name.startswith("hot")
                    self.publish(car["device_id"], "telemetry", {
                        "ts": self.ts(step).isoformat(), "seq": step, "speed_kmh": 40.0, "ignition": True,
                        "rpm": 1800, "lat": 52.5 + car["id"] * 1e-3 + step * 1e-5, "lon": 13.4, "fuel_pct": 60.0,
                        "battery_v": 14.1, "coolant_c": HOT_C if hot else 90.0,
                    })  # fmt: skip
                    self.samples += 1
                self.step = step + 1
                time.sleep(STEP_S)  # pacing the stream, not synchronisation
        except BaseException as exc:
            self.error = exc


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    with mosquitto(persistence=True) as m:
        yield m


def _alerts(url: str) -> list[dict]:
    with connect(url) as conn:
        return conn.execute(
            "SELECT vehicle_id, kind, severity, occurrences, opened_at, message, evidence, created_at "
            "FROM alerts ORDER BY vehicle_id, kind"
        ).fetchall()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_alerts_survive_a_monitor_restart_mid_stream(settings, broker, tmp_path, sig):
    url = settings.database_url
    with connect(url, autocommit=True) as conn:
        st = factories.station(conn)["code"]
        cars = {
            f"hot{k}": factories.vehicle(conn, station_code=st, status="rented") for k in range(len(HOT_FROM))
        }
        for name in ("normal0", "normal1", "normal2", "crash_before", "crash_down", "sentinel"):
            cars[name] = factories.vehicle(conn, station_code=st, status="rented")
        for name in ("silent", "will"):
            cars[name] = factories.vehicle(
                conn, station_code=st, status="rented", vehicle_class=OFFLINE_CLASS
            )
        conn.execute(
            "INSERT INTO monitor_thresholds (vehicle_class, name, value) VALUES (%s, 'offline_driving_s', %s), "
            "(%s, 'offline_status_grace_s', %s)",
            (OFFLINE_CLASS, OFFLINE_S, OFFLINE_CLASS, GRACE_S),
        )
    ids = {name: car["id"] for name, car in cars.items()}
    stream = {n: c for n, c in cars.items() if n != "sentinel"}
    s = ingest_settings(url, broker, settings.topic_root)
    env = {**os.environ, "FLEET_DATABASE_URL": url, "FLEET_MQTT_URL": broker.url,
           "FLEET_TOPIC_ROOT": settings.topic_root, "FLEET_ENVIRONMENT": "test",
           "FLEET_MONITOR_CLIENT_ID": f"monitor-{uuid.uuid4().hex[:8]}"}  # fmt: skip
    monitor = MonitorProcess(env, tmp_path)
    base = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=2 * STEPS)
    pub = Publisher(broker.url, settings.topic_root, stream, base)
    pub.conn.start()
    try:
        with ingest_worker(s):
            monitor.start()
            monitor.wait_for(SUBSCRIBED)
            pub.start()
            wait_until(lambda: pub.step >= 3 or pub.error, timeout=10, interval=0.01)
            pub.publish(cars["crash_before"]["device_id"], "event",
                        {"ts": pub.ts(3.5).isoformat(), "seq": 1000, "type": "crash", "peak_g": 3.1})  # fmt: skip
            wait_until(lambda: any(a["vehicle_id"] == ids["crash_before"] for a in _alerts(url)), timeout=15,
                       message="the crash before the stop was not raised")  # fmt: skip

            # -- stop mid-stream ------------------------------------------------------------------------------
            wait_until(lambda: pub.step >= STOP_AT or pub.error, timeout=10, interval=0.01)
            code = monitor.stop(sig)
            stopped_at_step = pub.step
            assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL), monitor.text()[-2000:]
            pub.publish(cars["crash_down"]["device_id"], "event",
                        {"ts": pub.ts(stopped_at_step + 0.5).isoformat(), "seq": 2000, "type": "crash",
                         "peak_g": 3.3})  # fmt: skip
            pub.publish(cars["will"]["device_id"], "status", "offline", retain=True)  # its last will
            will_at = time.time()
            # ingest stores what was published so far (the monitor's windows are rebuilt from it)
            published = pub.samples
            with connect(url) as conn:
                wait_until(lambda: scalar(conn.execute("SELECT count(*) FROM readings")) >= published
                           and scalar(conn.execute("SELECT count(*) FROM vehicle_state WHERE vehicle_id = %s "
                                                   "AND online = false AND online_changed_at IS NOT NULL",
                                                   (ids["will"],))) == 1,
                           timeout=15, message=lambda: f"ingest did not store the stream so far: {published} "
                           f"published, {scalar(conn.execute('SELECT count(*) FROM readings'))} stored; "
                           f"{conn.execute('SELECT * FROM vehicle_state WHERE vehicle_id = %s', (ids['will'],)).fetchone()}; "
                           f"{(broker.workdir / 'mosquitto.log').read_text()[-2000:]}")  # fmt: skip

            # -- start again: same client id, same session ----------------------------------------------------
            restart = monitor.start()
            restart_wall = time.time()
            subscribed = monitor.wait_for(SUBSCRIBED) - restart
            assert stopped_at_step < STEPS, "the stream ended before the monitor came back"

            def crash_down_alert() -> dict | None:
                return next((a for a in _alerts(url) if a["vehicle_id"] == ids["crash_down"]), None)

            crash_alert = wait_until(
                crash_down_alert, timeout=20, message="no alert for the crash while down"
            )
            crash_recovery = crash_alert["created_at"].timestamp() - restart_wall
            pub.join(30)
            assert pub.error is None and pub.step == STEPS
            # everything published before it is judged once the sentinel's DTC (a sample: behind every other
            # sample in the worker's queue; events jump ahead of samples) has its alert
            pub.publish(cars["sentinel"]["device_id"], "telemetry",
                        {"ts": pub.ts(STEPS).isoformat(), "seq": 1, "speed_kmh": 0.0, "ignition": False,
                         "dtc": ["P0300"]})  # fmt: skip
            expected_kinds = {"overheating"} | {"crash", "device_offline", "dtc"}

            def settled() -> bool:
                got = {(a["vehicle_id"], a["kind"]) for a in _alerts(url)}
                return (ids["sentinel"], "dtc") in got and sum(
                    1 for _, k in got if k == "device_offline"
                ) >= 2

            wait_until(settled, timeout=30, message=lambda: f"alerts so far: {_alerts(url)}")
            assert monitor.stop(signal.SIGTERM) == 0
    finally:
        with contextlib.suppress(Exception):
            pub.conn.stop()
        if monitor.proc is not None and monitor.proc.poll() is None:
            monitor.proc.kill()

    alerts = _alerts(url)
    got = sorted((a["vehicle_id"], a["kind"], a["occurrences"]) for a in alerts)
    expected = sorted(
        [(ids[f"hot{k}"], "overheating", 1) for k in range(len(HOT_FROM))]
        + [(ids["crash_before"], "crash", 1), (ids["crash_down"], "crash", 1)]
        + [(ids["silent"], "device_offline", 1), (ids["will"], "device_offline", 1)]
        + [(ids["sentinel"], "dtc", 1)]
    )
    assert got == expected, alerts
    assert {a["kind"] for a in alerts} == expected_kinds
    by = {(a["vehicle_id"], a["kind"]): a for a in alerts}
    # each window counted the samples from before the stop: opened at its 20th hot sample
    for k, first in enumerate(HOT_FROM):
        assert by[(ids[f"hot{k}"], "overheating")]["opened_at"] == pub.ts(first + 20), k
    # silence counted from the device's last message before the stop, not from the restart
    silent = by[(ids["silent"], "device_offline")]
    last_heard = dt.datetime.fromisoformat(silent["evidence"][0]["last_heard"])
    assert (silent["opened_at"] - last_heard).total_seconds() >= OFFLINE_S
    assert last_heard.timestamp() < restart_wall
    will = by[(ids["will"], "device_offline")]
    assert "last will" in will["message"], will
    assert will["opened_at"].timestamp() >= will_at + GRACE_S - 0.5
    log = monitor.text()
    print(
        f"\n{sig.name}: stopped at step {stopped_at_step}/{STEPS}; restarted: subscribed after {subscribed:.2f} s, "
        f"crash published while down raised {crash_recovery:.2f} s after the restart; silent device flagged "
        f"{(silent['opened_at'] - last_heard).total_seconds():.1f} s after its last message; "
        f"{len(alerts)} alerts, each once; final stats: {log[log.rfind('monitor stopped') :].strip()[:400]}"
    )
