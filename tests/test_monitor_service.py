"""The monitor process over the real broker and database: a car moving with no rental, and surviving the loss
of its database connection."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid

import pytest

from fleetcore.contract import topic_for
from fleetcore.db import connect
from fleetcore.mqtt import MqttConnection
from monitor.worker import MonitorService
from tests import factories


def _wait_rows(url: str, sql: str, args: tuple, n: int = 1, timeout: float = 15.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        with connect(url) as conn:
            rows = conn.execute(sql, args).fetchall()
        if len(rows) >= n:
            return rows
        time.sleep(0.1)
    return rows


@pytest.fixture
def running(settings):
    service = MonitorService(settings)
    stop = threading.Event()
    worker = threading.Thread(target=service.run, args=(stop,), daemon=True)
    worker.start()
    pub = MqttConnection(settings.mqtt, f"test-pub-{uuid.uuid4().hex[:8]}")
    pub.start()
    assert service.ready.wait(20)
    time.sleep(0.5)  # subscriptions acknowledged
    yield service, pub
    pub.stop()
    stop.set()
    worker.join(15)
    assert not worker.is_alive()


@pytest.mark.timeout(120)
def test_unauthorized_movement_then_db_connection_loss(settings, running):
    service, pub = running
    with connect(settings.database_url, autocommit=True) as conn:
        parked = factories.vehicle(conn, status="available")
        rented = factories.vehicle(conn, status="rented")
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)
    for v in (parked, rented):
        samples = [{"ts": (t0 + dt.timedelta(seconds=i)).isoformat(), "seq": i, "speed_kmh": 35.0, "ignition": True,
                    "lat": 52.5 + i * 1e-4, "lon": 13.4} for i in range(30)]  # fmt: skip
        # One buffered upload: the detector works on sample time, not arrival time.
        assert pub.publish(topic_for(settings.topic_root, v["device_id"], "telemetry"), json.dumps(samples))
    rows = _wait_rows(settings.database_url, "SELECT vehicle_id, kind, severity, evidence FROM alerts", ())
    assert [(r["vehicle_id"], r["kind"], r["severity"]) for r in rows] == [
        (parked["id"], "unauthorized_movement", "high")
    ]
    assert rows[0]["evidence"][0]["vehicle_status"] == "available"

    # The database drops the monitor's connection (server restart, failover): it reconnects and carries on.
    with connect(settings.database_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
    crash = {"ts": dt.datetime.now(dt.UTC).isoformat(), "seq": 1, "type": "crash", "peak_g": 3.0}
    assert pub.publish(topic_for(settings.topic_root, rented["device_id"], "event"), json.dumps(crash))
    rows = _wait_rows(settings.database_url, "SELECT kind FROM alerts WHERE vehicle_id = %s", (rented["id"],))
    assert [r["kind"] for r in rows] == ["crash"]
    assert service.stats.messages >= 3
