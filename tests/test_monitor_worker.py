"""The monitor process over the real broker and database: a car moving with no rental, surviving the loss of
its database connection; and its batch writer: vehicle lock order, a real deadlock retried, a bad output
skipped without losing the rest of its batch."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid

import pytest

from fleetcore.contract import topic_for
from fleetcore.db import connect, scalar
from fleetcore.mqtt import MqttConnection
from monitor.detectors import Clear, Detection, StateChange, VehicleInfo
from monitor.worker import MonitorService, in_lock_order
from tests import factories
from tests.ingest_helpers import mosquitto
from tests.waiting import wait_until


def _wait_rows(url: str, sql: str, args: tuple, n: int = 1, timeout: float = 15.0) -> list[dict]:
    """The query's rows once there are at least n of them."""

    def rows() -> list[dict]:
        with connect(url) as conn:
            found = conn.execute(sql, args).fetchall()
        return found if len(found) >= n else []

    return wait_until(rows, timeout=timeout, interval=0.1, message=f"fewer than {n} rows from {sql!r}")


@pytest.fixture
def running(settings):
    service = MonitorService(settings)
    stop = threading.Event()
    worker = threading.Thread(target=service.run, args=(stop,), daemon=True)
    worker.start()
    pub = MqttConnection(settings.mqtt, f"test-pub-{uuid.uuid4().hex[:8]}")
    pub.start()
    assert service.subscribed.wait(20), "the monitor's subscriptions were not acknowledged"
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


T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)


def _info(v: dict) -> VehicleInfo:
    return VehicleInfo(v["id"], v["device_id"], "compact", v["status"], v["vin"])


def _crash(t: float = 0.0, severity: str = "critical") -> Detection:
    return Detection("crash", severity, T0 + dt.timedelta(seconds=t), "crash", {"t": t})


def _writer(settings) -> MonitorService:
    """A MonitorService with a database connection and no MQTT: just its batch writer."""
    w = MonitorService(settings)
    w.conn = connect(settings.database_url)
    return w


def test_a_batch_is_written_in_vehicle_order_each_vehicle_in_its_own_order():
    a, b, c = (VehicleInfo(i, f"d{i}") for i in (3, 1, 2))
    batch = [(a, _crash(1)), (b, _crash(2)), (a, Clear("low_fuel", T0, "x")), (c, _crash(3)),
             (b, StateChange("online", T0)), (a, _crash(4))]  # fmt: skip
    ordered = in_lock_order(batch)
    assert [i.vehicle_id for i, _ in ordered] == [1, 1, 2, 3, 3, 3]
    assert [o for i, o in ordered if i is a] == [o for i, o in batch if i is a]  # stable per vehicle
    assert [o for i, o in ordered if i is b] == [o for i, o in batch if i is b]


def _alerts(conn, vehicle_id: int) -> list[tuple[str, str, int]]:
    rows = conn.execute(
        "SELECT kind, severity, occurrences FROM alerts WHERE vehicle_id = %s ORDER BY kind", (vehicle_id,)
    ).fetchall()
    return [(r["kind"], r["severity"], r["occurrences"]) for r in rows]


def test_a_bad_output_is_skipped_and_the_rest_of_its_batch_written(settings, conn):
    v1, v2 = factories.vehicle(conn, status="rented"), factories.vehicle(conn, status="rented")
    ghost = VehicleInfo(987_654, "ghost", vin="NOSUCHVEHICLE")  # no such device installed: dropped as stale
    batch = [
        (_info(v1), _crash(0)),
        (ghost, _crash(0)),
        (_info(v2), Detection("low_fuel", "low", T0, "fuel 8 %", {"fuel_pct": 8})),
        (_info(v2), Detection("tow", "catastrophic", T0, "?", {})),  # not a severity: rejected by the service
        (_info(v2), Detection("overheating", "high", T0, "coolant 115", {"coolant_c": 115})),
    ]
    w = _writer(settings)
    try:
        w.write(batch)
    finally:
        w.conn.close()
    assert _alerts(conn, v1["id"]) == [("crash", "critical", 1)]
    assert _alerts(conn, v2["id"]) == [("low_fuel", "low", 1), ("overheating", "high", 1)]
    stats = w.stats
    assert (stats.outputs_failed, stats.stale_outputs, stats.detections, stats.alerts_opened) == (1, 1, 3, 3)
    assert w.stats.write_retries == 0
    health = conn.execute(
        "SELECT vehicle_id, health, rentable, open_alerts FROM vehicle_state WHERE vehicle_id = ANY(%s) "
        "ORDER BY vehicle_id",
        ([v1["id"], v2["id"]],),
    ).fetchall()
    assert [(r["health"], r["rentable"], r["open_alerts"]) for r in health] == [
        ("critical", False, 1),
        ("warning", True, 2),
    ]


@pytest.mark.timeout(60)
def test_a_deadlocked_batch_is_retried_whole_and_counted_once(settings, conn):
    """Another writer holding vehicle_state rows in the opposite order: PostgreSQL aborts the monitor's
    transaction with a deadlock; the worker retries the whole batch, which then commits once."""
    v1, v2 = factories.vehicle(conn, status="rented"), factories.vehicle(conn, status="rented")
    for v in (v1, v2):
        conn.execute("INSERT INTO vehicle_state (vehicle_id) VALUES (%s) ON CONFLICT DO NOTHING", (v["id"],))
    w = _writer(settings)
    monitor_pid = w.conn.info.backend_pid
    with connect(settings.database_url) as other:
        # The other side detects the deadlock only after 10 s, so the monitor (1 s, the default) is the one aborted.
        other.execute("SET deadlock_timeout = '10s'")
        other.execute("SELECT 1 FROM vehicle_state WHERE vehicle_id = %s FOR UPDATE", (v2["id"],))
        writer = threading.Thread(target=w.write, args=([(_info(v2), _crash(1)), (_info(v1), _crash(0))],))
        writer.start()
        wait_until(
            lambda: scalar(conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                        (monitor_pid,))) == "Lock",
            timeout=10, message="the monitor never waited for the row lock",
        )  # fmt: skip
        # The monitor holds vehicle 1 (it goes in vehicle order) and waits for 2; taking 1 closes the cycle.
        other.execute("UPDATE vehicle_state SET updated_at = now() WHERE vehicle_id = %s", (v1["id"],))
        other.commit()
        writer.join(20)
    w.conn.close()
    assert not writer.is_alive()
    assert w.stats.write_retries == 1 and w.stats.outputs_failed == 0
    assert (w.stats.detections, w.stats.alerts_opened) == (2, 2)  # counted for the commit, not per attempt
    assert _alerts(conn, v1["id"]) == [("crash", "critical", 1)]
    assert _alerts(conn, v2["id"]) == [("crash", "critical", 1)]
    assert wait_until(
        lambda: (
            scalar(conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"))
            == 1
        ),
        timeout=15,
        message="PostgreSQL did not count the deadlock",
    )


@pytest.mark.timeout(60)
def test_subscribed_follows_the_broker_connection(settings):
    """Set after every SUBACK, cleared while the broker is away, set again once it has re-subscribed."""
    with mosquitto() as broker:
        s = settings.model_copy(update={"mqtt_url": broker.url})
        w = MonitorService(s)
        stop = threading.Event()
        thread = threading.Thread(target=w.run, args=(stop,), daemon=True)
        thread.start()
        try:
            assert w.subscribed.wait(20)
            broker.stop()
            wait_until(
                lambda: not w.subscribed.is_set(), timeout=10, message="still subscribed without a broker"
            )
            broker.start()
            assert w.subscribed.wait(30), "not subscribed again after the broker came back"
            with connect(settings.database_url, autocommit=True) as conn:
                v = factories.vehicle(conn, status="rented")
            pub = MqttConnection(s.mqtt, f"test-pub-{uuid.uuid4().hex[:8]}")
            pub.start()
            try:
                crash = {"ts": dt.datetime.now(dt.UTC).isoformat(), "seq": 1, "type": "crash", "peak_g": 3.0}
                assert pub.publish(topic_for(s.topic_root, v["device_id"], "event"), json.dumps(crash))
            finally:
                pub.stop()
            rows = _wait_rows(
                settings.database_url, "SELECT kind FROM alerts WHERE vehicle_id = %s", (v["id"],)
            )
            assert [r["kind"] for r in rows] == ["crash"]
        finally:
            stop.set()
            thread.join(15)
    assert not thread.is_alive()
