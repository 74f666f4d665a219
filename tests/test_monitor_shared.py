"""Two monitor workers on one shared subscription (a private Mosquitto, which deals round robin): each claims its
own `{slot}` client id, each message is judged by one of them, and alerts stay single even though both see half
of a car's samples (docs/monitor.md, "Several monitor workers")."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid

import pytest

from fleetcore.contract import topic_for
from fleetcore.db import connect
from monitor.worker import MonitorService
from tests import factories
from tests.ingest_helpers import mosquitto, publish_raw
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.mqtt, pytest.mark.db]

HOT_SAMPLES = 40  # 40 s of coolant at 116 °C: overheating needs 20 s of it


@pytest.mark.timeout(90)
def test_two_workers_share_the_stream_and_alerts_stay_single(settings):
    with connect(settings.database_url, autocommit=True) as conn:
        hot, crashed = factories.vehicle(conn, status="rented"), factories.vehicle(conn, status="rented")
    with mosquitto() as broker:
        s = settings.model_copy(
            update={
                "mqtt_url": broker.url,
                "monitor_share_group": "monitor",
                "monitor_client_id": f"monitor-{uuid.uuid4().hex[:6]}-{{slot}}",
            }
        )
        workers = [MonitorService(s) for _ in range(2)]
        stop = threading.Event()
        threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
        for t in threads:
            t.start()
        try:
            for w in workers:
                assert w.subscribed.wait(20), "a worker's subscriptions were not acknowledged"
            assert sorted(w.client_id[-2:] for w in workers) == ["-1", "-2"]
            t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=2)
            messages = [
                (topic_for(s.topic_root, hot["device_id"], "telemetry"),
                 json.dumps({"ts": (t0 + dt.timedelta(seconds=i)).isoformat(), "seq": i, "coolant_c": 116.0,
                             "speed_kmh": 40.0, "ignition": True, "rpm": 1800}).encode())
                for i in range(HOT_SAMPLES)
            ]  # fmt: skip
            messages.append(
                (topic_for(s.topic_root, crashed["device_id"], "event"),
                 json.dumps({"ts": t0.isoformat(), "seq": 1, "type": "crash", "peak_g": 3.0}).encode())
            )  # fmt: skip
            publish_raw(broker.port, messages)
            wait_until(
                lambda: sum(w.stats.messages for w in workers) >= len(messages),
                timeout=20,
                message=lambda: [w.stats for w in workers],
            )
            wait_until(lambda: all(w.acks.held() == 0 and w.urgent.empty() and w.queue.empty() for w in workers),
                       timeout=10)  # fmt: skip
        finally:
            stop.set()
            for t in threads:
                t.join(15)
    assert not any(t.is_alive() for t in threads)
    assert all(w.stats.messages > 0 for w in workers), "round robin gave one worker nothing"
    with connect(settings.database_url) as conn:
        alerts = conn.execute(
            "SELECT vehicle_id, kind, occurrences FROM alerts ORDER BY vehicle_id, kind"
        ).fetchall()
    assert [(a["vehicle_id"], a["kind"]) for a in alerts] == [
        (hot["id"], "overheating"),
        (crashed["id"], "crash"),
    ]
    overheating = alerts[0]["occurrences"]
    # each worker saw every other sample held hot for 20 s: the second detection is a repeat on the same alert
    assert overheating in (1, 2) and alerts[1]["occurrences"] == 1
    print(
        f"\nshared subscription, 2 workers: {[w.stats.messages for w in workers]} messages each; one overheating "
        f"alert with {overheating} occurrence(s), one crash alert"
    )
