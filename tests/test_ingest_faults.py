"""Issue 3 fault tests: nothing lost, nothing stored twice, when ingest is killed, the database restarts,
two workers share the stream, or malformed traffic floods in. Real Mosquitto (private) and real PostgreSQL."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from fleetcore.db import migrate
from fleetcore.settings import Settings
from tests.factories import station, vehicle
from tests.ingest_helpers import (
    Mosquitto,
    count,
    ingest_settings,
    ingest_worker,
    mosquitto,
    private_postgres,
    publish_raw,
    recent_ms,
    sample_message,
    wait_until,
)
from tests.waiting import WaitTimeout

STREAM = 50_000
DEVICES = 200

pytestmark = pytest.mark.slow


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    with mosquitto() as m:
        yield m


def _devices(
    url: str, n: int = DEVICES, protocols: tuple[str, ...] = ("json", "json", "obd", "nmea")
) -> list[tuple[str, str]]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        st = station(conn)["code"]
        return [
            (
                vehicle(conn, station_code=st, protocol=protocols[i % len(protocols)])["device_id"],
                protocols[i % len(protocols)],
            )
            for i in range(n)
        ]


def _stream(root: str, devices: list[tuple[str, str]], total: int) -> list[tuple[str, bytes]]:
    """`total` distinct samples, round-robin over the devices, 1 s apart per device, within the last day."""
    base = recent_ms(-20 * 3600)
    per = total // len(devices)
    out = []
    for seq in range(per):
        for d, (device_id, proto) in enumerate(devices):
            out.append(sample_message(root, device_id, proto, seq, base + seq * 1000 + d))
    return out


def _readings(url: str) -> int:
    try:
        return count(url, "SELECT value FROM ingest_counters WHERE name = 'readings_stored'")
    except psycopg.OperationalError:
        return -1


def _assert_exactly_once(url: str, expected: int) -> None:
    assert count(url, "SELECT count(*) FROM readings") == expected
    assert (
        count(url, "SELECT count(*) FROM (SELECT DISTINCT device_id, kind, seq FROM readings) s") == expected
    )
    assert count(url, "SELECT value FROM ingest_counters WHERE name = 'readings_stored'") == expected
    assert count(url, "SELECT count(*) FROM ingest_rejections") == 0


def _assert_state_is_newest(url: str, vehicles: int) -> None:
    """Every vehicle's state carries its newest stored sample (written with the readings, or after them coalesced
    and rebuilt from redelivered messages after a crash)."""
    assert (
        count(
            url,
            "SELECT count(*) FROM vehicle_state vs JOIN (SELECT vehicle_id, max(ts) AS newest FROM readings "
            "GROUP BY vehicle_id) r USING (vehicle_id) WHERE vs.ts = r.newest AND vs.last_seen IS NOT NULL",
        )
        == vehicles
    )


def _fleet_database(pg) -> str:  # noqa: ANN001
    """A migrated database `fleet` on a private PostgreSQL; its URL."""
    with psycopg.connect(pg.url(), autocommit=True) as admin:
        admin.execute("CREATE DATABASE fleet")
    url = pg.url("fleet")
    migrate(url, Settings(environment="test", timescale="on"))
    return url


def _publish_in_background(port: int, messages: list[tuple[str, bytes]]) -> threading.Thread:
    t = threading.Thread(target=publish_raw, args=(port, messages), daemon=True)
    t.start()
    return t


def _start_ingest_process(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as f:
        return subprocess.Popen([sys.executable, "-m", "fleetapp.cli", "ingest"], env=env, stdout=f, stderr=f)


# vehicle_state upserted in each batch's transaction (default) or coalesced over batches by the state thread
STATE_MODES = pytest.mark.parametrize("state_flush_ms", [0, 200], ids=["state-per-batch", "state-coalesced"])


@STATE_MODES
def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(
    db_url: str, broker: Mosquitto, tmp_path: Path, state_flush_ms: int
) -> None:
    root = f"test-{uuid.uuid4().hex[:10]}/fleet/v1"
    messages = _stream(root, _devices(db_url), STREAM)
    env = {
        **os.environ,
        "FLEET_DATABASE_URL": db_url,
        "FLEET_MQTT_URL": broker.url,
        "FLEET_TOPIC_ROOT": root,
        "FLEET_INGEST_CLIENT_ID": f"ingest-kill-{uuid.uuid4().hex[:6]}",
        "FLEET_ENVIRONMENT": "test",
        "FLEET_INGEST_STATE_FLUSH_MS": str(state_flush_ms),
    }
    log = tmp_path / "ingest.log"
    proc = _start_ingest_process(env, log)
    try:
        wait_until(lambda: b"event=subscribed" in log.read_bytes(), timeout=20, message=log.read_text)
        pub = _publish_in_background(broker.port, messages)
        assert wait_until(lambda: _readings(db_url) >= STREAM // 5, timeout=40, interval=0.02)
        proc.send_signal(signal.SIGKILL)  # no flush, no ack: whatever was held is redelivered by the broker
        proc.wait(10)
        killed_at = _readings(db_url)
        assert 0 < killed_at < STREAM
        pub.join(60)
        proc = _start_ingest_process(env, log)
        wait_until(
            lambda: _readings(db_url) >= STREAM,
            timeout=45,
            message=lambda: (_readings(db_url), log.read_text()[-3000:]),
        )
        proc.send_signal(signal.SIGTERM)  # clean stop: flush, ack, disconnect
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    _assert_exactly_once(db_url, STREAM)
    _assert_state_is_newest(db_url, DEVICES)
    assert b"event=ingest_stopped" in log.read_bytes()


def test_messages_are_acknowledged_only_after_their_state_is_written(
    db_url: str, broker: Mosquitto, tmp_path: Path
) -> None:
    """With the state flush held off, committed readings are not acknowledged: a SIGKILL then makes the broker
    deliver every message again, storage skips them all as duplicates, and the state is built from them."""
    root = f"test-{uuid.uuid4().hex[:10]}/fleet/v1"
    devices = _devices(db_url, 100)
    messages = _stream(root, devices, 2000)
    env = {
        **os.environ,
        "FLEET_DATABASE_URL": db_url,
        "FLEET_MQTT_URL": broker.url,
        "FLEET_TOPIC_ROOT": root,
        "FLEET_INGEST_CLIENT_ID": f"ingest-state-{uuid.uuid4().hex[:6]}",
        "FLEET_ENVIRONMENT": "test",
        "FLEET_INGEST_STATE_FLUSH_MS": "600000",
        "FLEET_INGEST_STATE_FLUSH_MESSAGES": "1000000",
    }
    ids = [d for d, _ in devices]
    state_sql = (
        "SELECT count(*) FROM vehicle_state vs JOIN device_installs di USING (vehicle_id) "
        "WHERE di.removed_at IS NULL AND di.device_id = ANY(%s) AND vs.ts IS NOT NULL"
    )
    log = tmp_path / "ingest.log"
    proc = _start_ingest_process(env, log)
    try:
        wait_until(lambda: b"event=subscribed" in log.read_bytes(), timeout=20, message=log.read_text)
        publish_raw(broker.port, messages)
        assert wait_until(lambda: _readings(db_url) >= len(messages), timeout=30)
        # readings committed, state held off: it must not appear meanwhile (nor, so, any acknowledgement)
        with pytest.raises(WaitTimeout):
            wait_until(lambda: count(db_url, state_sql, ids) > 0, timeout=0.5, interval=0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        env["FLEET_INGEST_STATE_FLUSH_MS"] = "50"  # coalesced still, now flushed promptly
        del env["FLEET_INGEST_STATE_FLUSH_MESSAGES"]
        proc = _start_ingest_process(env, log)
        applied = "SELECT coalesce(max(value), 0) FROM ingest_counters WHERE name = 'messages_state_applied'"
        wait_until(
            lambda: count(db_url, applied) >= len(messages),
            timeout=30,
            message=lambda: log.read_text()[-3000:],
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    _assert_exactly_once(db_url, len(messages))
    # every message came again (none had been acknowledged) and was skipped as a stored duplicate
    assert count(db_url, "SELECT value FROM ingest_counters WHERE name = 'duplicates_skipped'") == len(
        messages
    )
    assert count(db_url, state_sql, ids) == len(devices)


@STATE_MODES
def test_postgres_restart_mid_stream_loses_and_duplicates_nothing(
    broker: Mosquitto, state_flush_ms: int
) -> None:
    root = f"test-{uuid.uuid4().hex[:10]}/fleet/v1"
    with private_postgres() as pg:
        url = _fleet_database(pg)
        messages = _stream(root, _devices(url), STREAM)
        inflight = 5000
        settings = ingest_settings(
            url, broker, root, ingest_max_inflight=inflight, ingest_state_flush_ms=state_flush_ms
        )
        with ingest_worker(settings) as worker:
            pub = _publish_in_background(broker.port, messages)
            assert wait_until(lambda: _readings(url) >= STREAM // 5, timeout=40, interval=0.02)
            pg.stop("fast")  # terminates the writer's connection mid-stream
            held = []
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                held.append(len(worker.queue))
                time.sleep(0.05)
            # memory stays bounded during the outage: the broker stops at Receive Maximum unacked messages
            assert max(held) <= inflight, max(held)
            pg.start()
            pub.join(60)
            wait_until(lambda: _readings(url) >= STREAM, timeout=45, message=lambda: _readings(url))
            assert worker.metrics.db_errors._value.get() >= 1  # it really saw the outage
        _assert_exactly_once(url, STREAM)
        _assert_state_is_newest(url, DEVICES)


def test_stop_while_postgres_is_down_acks_nothing_uncommitted(broker: Mosquitto) -> None:
    """A worker stopped during a database outage exits without acknowledging what it could not commit (with two
    writers, not even batches committed after the one given up); the next worker on the same session stores
    every message exactly once."""
    root = f"test-{uuid.uuid4().hex[:10]}/fleet/v1"
    total = 20_000
    with private_postgres() as pg:
        url = _fleet_database(pg)
        messages = _stream(root, _devices(url), total)
        settings = ingest_settings(url, broker, root, ingest_writers=2)
        with ingest_worker(settings) as worker:
            pub = _publish_in_background(broker.port, messages)
            assert wait_until(lambda: _readings(url) >= total // 4, timeout=40, interval=0.02)
            pg.stop("fast")
            assert wait_until(lambda: worker.metrics.db_errors._value.get() >= 1, timeout=10)
            t0 = time.monotonic()
        # leaving the block stopped the worker: it gave up its batches instead of waiting for the database
        assert time.monotonic() - t0 < 15
        assert worker.totals["messages"] < total  # the outage really cut the stream short
        pg.start()
        pub.join(60)
        with ingest_worker(settings):  # the same client id: the same persistent session
            wait_until(lambda: _readings(url) >= total, timeout=60, message=lambda: _readings(url))
        _assert_exactly_once(url, total)


def test_two_workers_on_a_shared_subscription_share_the_work(db_url: str, broker: Mosquitto) -> None:
    root = f"test-{uuid.uuid4().hex[:10]}/fleet/v1"
    total = 30_000
    messages = _stream(root, _devices(db_url), total)
    a = ingest_settings(db_url, broker, root, ingest_share_group="ingest")
    b = ingest_settings(db_url, broker, root, ingest_share_group="ingest")
    with ingest_worker(a) as wa, ingest_worker(b) as wb:
        publish_raw(broker.port, messages)
        wait_until(lambda: _readings(db_url) >= total, timeout=45, message=lambda: _readings(db_url))
        # every batch taken was committed and acknowledged: nothing is left to be delivered again
        wait_until(
            lambda: wa.idle() and wb.idle(),
            timeout=10,
            interval=0.02,
            message="a worker still holds messages",
        )
    _assert_exactly_once(db_url, total)
    done_a, done_b = wa.totals["messages"], wb.totals["messages"]
    assert done_a + done_b == total
    assert done_a > total // 10 and done_b > total // 10, (done_a, done_b)


def _malformed(
    root: str, devices: list[tuple[str, str]], rng: random.Random, n: int
) -> list[tuple[tuple[str, bytes], str]]:
    """n malformed messages of registered devices, each with the reason it must be rejected for."""
    base = recent_ms(-3600)
    kinds = [
        ("telemetry", lambda i: b'{"ts": ' + str(base).encode(), "bad_json"),
        (
            "telemetry",
            lambda i: json.dumps({"ts": base, "seq": 10**6 + i, "speed_kmh": 401}).encode(),
            "out_of_range",
        ),
        (
            "telemetry",
            lambda i: json.dumps({"ts": base + 3_600_000 * 24, "seq": 10**6 + i}).encode(),
            "future_timestamp",
        ),
        ("telemetry", lambda i: json.dumps({"seq": i}).encode(), "missing_field"),
        ("telemetry", lambda i: b"\xff\xfe", "bad_encoding"),
        (
            "obd",
            # every frame refused (an undecoded PID such as 41 99 is kept raw now, not refused)
            lambda i: json.dumps({"ts": base, "seq": 10**6 + i, "frames": ["41 0C 1A", "STOPPED"]}).encode(),
            "bad_obd_frame",
        ),
        (
            "event",
            lambda i: json.dumps({"ts": base, "seq": i, "type": "teleport"}).encode(),
            "unknown_event_type",
        ),
        ("status", lambda i: b"maybe", "bad_status"),
    ]
    out = []
    for i in range(n):
        device_id, _ = rng.choice(devices)
        kind, make, reason = kinds[i % len(kinds)]
        out.append(((f"{root}/devices/{device_id}/{kind}", make(i)), reason))
    return out


def test_flood_of_malformed_messages_every_valid_stored_every_bad_accounted(
    db_url: str, broker: Mosquitto
) -> None:
    root = f"test-{uuid.uuid4().hex[:10]}/fleet/v1"
    rng = random.Random(3)
    devices = _devices(db_url, 100)
    valid = _stream(root, devices, 10_000)
    bad = _malformed(root, devices, rng, 10_000)
    messages = valid + [m for m, _ in bad]
    rng.shuffle(messages)
    with ingest_worker(ingest_settings(db_url, broker, root)):
        publish_raw(broker.port, messages)
        assert wait_until(
            lambda: (
                count(db_url, "SELECT value FROM ingest_counters WHERE name = 'messages_received'")
                >= len(messages)
            ),
            timeout=45,
        )
    assert count(db_url, "SELECT count(*) FROM readings") == len(valid)
    with psycopg.connect(db_url, autocommit=True) as conn:
        got: dict[str, int] = dict(
            conn.execute("SELECT reason, count(*) FROM ingest_rejections GROUP BY reason").fetchall()
        )
    want: dict[str, int] = {}
    for _, reason in bad:
        want[reason] = want.get(reason, 0) + 1
    assert got == want
    assert count(db_url, "SELECT value FROM ingest_counters WHERE name = 'messages_rejected'") == len(bad)


def test_broker_restart_mid_stream_resumes_without_loss(db_url: str) -> None:
    """Mosquitto (with persistence) restarts: ingest reconnects, resubscribes, and the session's queue survives."""
    import shutil
    import tempfile

    from tests.ingest_helpers import Mosquitto as Broker

    root = f"test-{uuid.uuid4().hex[:10]}/fleet/v1"
    messages = _stream(root, _devices(db_url, 100), 20_000)
    first, second = messages[:10_000], messages[10_000:]
    d = Path(tempfile.mkdtemp(prefix="fleet-mosq-"))
    broker = Broker(d, persistence=True)
    broker.start()
    try:
        with ingest_worker(ingest_settings(db_url, broker, root)) as worker:
            publish_raw(broker.port, first)
            assert wait_until(lambda: _readings(db_url) >= 2_000, timeout=30, interval=0.02)
            broker.restart()  # same port, session and queued messages restored from persistence
            assert wait_until(lambda: worker.epoch >= 2 and worker.subscribed.is_set(), timeout=30)
            publish_raw(broker.port, second)
            wait_until(
                lambda: _readings(db_url) >= len(messages), timeout=45, message=lambda: _readings(db_url)
            )
            assert worker.epoch >= 2
    finally:
        broker.stop()
        shutil.rmtree(d, ignore_errors=True)
    _assert_exactly_once(db_url, len(messages))


def test_metrics_endpoint_reports_messages_rows_and_rejections(db_url: str, broker: Mosquitto) -> None:
    import urllib.request

    root = f"test-{uuid.uuid4().hex[:10]}/fleet/v1"
    devices = _devices(db_url, 10)
    messages = _stream(root, devices, 1000) + [(f"{root}/devices/{devices[0][0]}/telemetry", b"{oops")]
    with ingest_worker(ingest_settings(db_url, broker, root, ingest_metrics_port=0)) as worker:
        publish_raw(broker.port, messages)
        assert wait_until(lambda: _readings(db_url) >= 1000, timeout=30)

        def scrape() -> str:
            url = f"http://127.0.0.1:{worker.metrics.port}/metrics"
            return urllib.request.urlopen(url, timeout=5).read().decode()

        # Wait for the last message (the rejection) to be counted instead of sleeping a guessed interval.
        assert wait_until(lambda: 'reason="bad_json"' in scrape(), timeout=10)
        text = scrape()
    assert 'fleet_ingest_rows_written_total{table="readings"} 1000.0' in text
    assert 'fleet_ingest_rejections_total{reason="bad_json"} 1.0' in text
    assert 'fleet_ingest_messages_total{kind="telemetry"}' in text
    for name in (
        "fleet_ingest_batch_messages_bucket",
        "fleet_ingest_commit_seconds_bucket",
        "fleet_ingest_lag_seconds_bucket",
        "fleet_ingest_queue_depth",
        "fleet_ingest_mqtt_connected",
    ):
        assert name in text
