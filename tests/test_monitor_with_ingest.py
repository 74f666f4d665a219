"""Ingest and the monitor together on the same vehicles under load (a private Mosquitto, the real PostgreSQL).

Both write vehicle_state: ingest its position and sensor columns for every sample and event, the monitor its
health columns (health, rentable, open_alerts) for every alert it raises. 50 vehicles publish a burst of
telemetry as fast as the broker takes it, with crash events and overheating engines mixed in, so both workers
lock the same rows at the same moments. They must never deadlock, never drop an alert, and leave the state
consistent with the readings and the alerts.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from fleetcore.contract import topic_for
from fleetcore.db import Conn, scalar
from fleetcore.settings import Settings
from monitor.models import HEALTH_CRITICAL_SEVERITIES, HEALTH_WARNING_SEVERITIES
from monitor.worker import MonitorService
from monitor.worker import run as monitor_run
from tests import factories
from tests.ingest_helpers import Mosquitto, ingest_settings, ingest_worker, mosquitto, publish_raw
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.mqtt, pytest.mark.db]

VEHICLES = 50
STEPS = 160  # samples per vehicle, 1 s apart in sample time, all published in one burst
CRASH_EVERY = 8  # every 8th step a crash event on a random half of the crash vehicles
OVERHEAT_FROM = 30  # overheating vehicles: coolant 116 °C from this step on (alert after 20 s of it)
HOT_C, NORMAL_C = 116.0, 90.0
SEED = 20261101


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    """A private broker: unbounded queues, so a burst never drops a QoS 0 sample the monitor needs."""
    with mosquitto() as m:
        yield m


def _group(i: int) -> str:
    """Vehicles 1-3 of every 5 crash, the 4th overheats, the 5th only drives (its health stays ok)."""
    return ("quiet", "crash", "crash", "crash", "overheat")[i % 5]


def _traffic(root: str, devices: list[str], t0: dt.datetime) -> tuple[list[tuple[str, bytes]], Counter[int]]:
    """The burst: (topic, payload) in publish order, and the crash events sent per vehicle index."""
    rng = random.Random(SEED)
    messages: list[tuple[str, bytes]] = []
    crashes: Counter[int] = Counter()
    order = list(range(len(devices)))
    for step in range(STEPS):
        ts = t0 + dt.timedelta(seconds=step)
        rng.shuffle(order)  # vehicles in a different order every step, as they arrive from the field
        for i in order:
            hot = _group(i) == "overheat" and step >= OVERHEAT_FROM
            sample = {"ts": int(ts.timestamp() * 1000), "seq": step, "lat": 48.0 + i * 0.01 + step * 1e-4,
                      "lon": 11.0 + i * 0.01, "speed_kmh": 40.0, "heading_deg": 0.0, "ignition": True,
                      "rpm": 1500, "coolant_c": HOT_C if hot else NORMAL_C, "fuel_pct": 60.0, "battery_v": 14.1}  # fmt: skip
            messages.append((topic_for(root, devices[i], "telemetry"), json.dumps(sample).encode()))
        if step % CRASH_EVERY == CRASH_EVERY // 2:
            for i in order:
                if _group(i) == "crash" and rng.random() < 0.5:
                    crashes[i] += 1
                    event = {"ts": (ts + dt.timedelta(milliseconds=500)).isoformat(), "seq": 10_000 + step,
                             "type": "crash", "peak_g": 3.2}  # fmt: skip
                    messages.append((topic_for(root, devices[i], "event"), json.dumps(event).encode()))
    return messages, crashes


def _deadlocks(conn: Conn) -> int:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return scalar(conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"))


def _clients(conn: Conn) -> int:
    """Client connections to this database other than ours."""
    return scalar(
        conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
    )


@pytest.mark.timeout(120)
def test_ingest_and_monitor_share_vehicle_state_without_deadlock_or_lost_alert(settings, conn, broker):
    st = factories.station(conn)["code"]
    cars = [factories.vehicle(conn, station_code=st, status="rented") for _ in range(VEHICLES)]
    devices = [c["device_id"] for c in cars]
    ids = [c["id"] for c in cars]
    s: Settings = ingest_settings(
        settings.database_url,
        broker,
        settings.topic_root,
        monitor_client_id=f"monitor-{uuid.uuid4().hex[:8]}",
    )
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=STEPS + 5)
    messages, crashes = _traffic(s.topic_root, devices, t0)
    n_events = sum(crashes.values())
    overheating = {ids[i] for i in range(VEHICLES) if _group(i) == "overheat"}
    assert _deadlocks(conn) == 0

    monitor = MonitorService(s)
    stop_monitor = threading.Event()
    monitor_thread = threading.Thread(target=monitor_run, args=(s, stop_monitor, monitor), daemon=True)
    monitor_thread.start()
    with ingest_worker(s):  # re-raises what ended the ingest thread, if anything did
        assert monitor.subscribed.wait(20), "the monitor's subscriptions were not acknowledged"
        published = time.monotonic()
        publish_s = publish_raw(broker.port, messages)

        def ingest_done() -> bool:
            return (
                scalar(conn.execute("SELECT count(*) FROM readings")) == VEHICLES * STEPS
                and scalar(conn.execute("SELECT count(*) FROM device_events")) == n_events
            )

        def monitor_done() -> bool:
            if monitor.stats.messages < len(messages):  # it has judged the whole burst
                return False
            row = conn.execute(
                "SELECT coalesce(sum(occurrences) FILTER (WHERE kind = 'crash'), 0) AS crashes, "
                "count(*) FILTER (WHERE kind = 'overheating') AS hot FROM alerts"
            ).fetchone()
            return row["crashes"] >= n_events and row["hot"] >= len(overheating)

        wait_until(ingest_done, timeout=60, interval=0.2, message="ingest did not store every message")
        wait_until(monitor_done, timeout=60, interval=0.2, message="the monitor did not raise every alert")
        drained_s = time.monotonic() - published
        assert monitor_thread.is_alive(), "the monitor worker stopped"
    stop_monitor.set()
    monitor_thread.join(15)
    assert not monitor_thread.is_alive()

    # No deadlock: the workers' backends have exited, so their statistics are flushed.
    wait_until(lambda: _clients(conn) == 0, timeout=15, message="worker connections still open")
    assert _deadlocks(conn) == 0, f"monitor retries {monitor.stats.write_retries}"
    assert monitor.stats.outputs_failed == 0 and monitor.stats.write_errors == 0

    # No dropped alert: one crash alert per vehicle that crashed, counting every event; one overheating alert
    # per overheating engine; nothing else.
    alerts = conn.execute(
        "SELECT vehicle_id, kind, severity, status, occurrences FROM alerts ORDER BY vehicle_id, kind"
    ).fetchall()
    expected = sorted(
        [(ids[i], "crash", "critical", "open", n) for i, n in crashes.items()]
        + [(v, "overheating", "high", "open", 1) for v in overheating]
    )
    assert [
        (a["vehicle_id"], a["kind"], a["severity"], a["status"], a["occurrences"]) for a in alerts
    ] == expected

    # Consistent state: the health columns are what the alerts imply, the position is the latest reading.
    rows = conn.execute(
        """SELECT s.vehicle_id, s.health, s.rentable, s.open_alerts, s.ts, s.lat, s.lon, s.coolant_c,
                  r.ts AS r_ts, r.lat AS r_lat, r.lon AS r_lon, r.coolant_c AS r_coolant_c
             FROM vehicle_state s
             LEFT JOIN LATERAL (SELECT ts, lat, lon, coolant_c FROM readings WHERE vehicle_id = s.vehicle_id
                                 ORDER BY ts DESC LIMIT 1) r ON true
            WHERE s.vehicle_id = ANY(%s) ORDER BY s.vehicle_id""",
        (ids,),
    ).fetchall()
    assert len(rows) == VEHICLES
    by_vehicle: dict[int, list[str]] = {v: [] for v in ids}
    for a in alerts:
        by_vehicle[a["vehicle_id"]].append(a["severity"])
    last_ts = t0 + dt.timedelta(seconds=STEPS - 1)
    for r in rows:
        sev = by_vehicle[r["vehicle_id"]]
        crit = any(x in HEALTH_CRITICAL_SEVERITIES for x in sev)
        warn = any(x in HEALTH_WARNING_SEVERITIES for x in sev)
        implied = ("critical" if crit else "warning" if warn else "ok", not crit, len(sev))
        assert (r["health"], r["rentable"], r["open_alerts"]) == implied, r
        assert (r["ts"], r["lat"], r["lon"], r["coolant_c"]) == (
            r["r_ts"],
            r["r_lat"],
            r["r_lon"],
            r["r_coolant_c"],
        )
        assert r["ts"] == last_ts
    health = Counter(r["health"] for r in rows)
    assert health == {
        "critical": len(crashes),
        "warning": len(overheating),
        "ok": VEHICLES - len(crashes) - len(overheating),
    }
    print(
        f"\n{len(messages)} messages ({n_events} crash events) published in {publish_s:.2f} s, both workers "
        f"done {drained_s:.1f} s after the first; {len(alerts)} alerts; monitor {monitor.stats}; deadlocks 0"
    )
