"""Batch writer against the real database: vehicle state by sample time, merging, presence, quarantine replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from fleetcore.db import Conn, one
from fleetcore.protocol.parse import Parsed, process_message
from ingest import writer as writer_module
from ingest.batch import Message
from ingest.staging import read_counters
from ingest.writer import BatchWriter
from tests.factories import station, vehicle
from tests.ingest_helpers import nmea_payload, obd_payload

ROOT = "test/fleet/v1"


def _msg(device: str, kind: str, payload: bytes, received: datetime | None = None) -> Message:
    topic = f"{ROOT}/devices/{device}/{kind}"
    now = received or datetime.now(UTC)
    return Message(topic, payload, now, process_message(ROOT, topic, payload, now=now))


def _tel(device: str, seq: int, ts: datetime, **fields) -> Message:  # noqa: ANN003
    body = {"ts": int(ts.timestamp() * 1000), "seq": seq, **fields}
    return _msg(device, "telemetry", json.dumps(body).encode())


def _state(conn: Conn, vehicle_id: int) -> dict:
    return one(conn.execute("SELECT * FROM vehicle_state WHERE vehicle_id = %s", (vehicle_id,)))


def test_late_older_sample_never_overwrites_newer_state(any_db_url: str) -> None:
    with psycopg.connect(any_db_url, autocommit=True, row_factory=dict_row) as conn:
        v = vehicle(conn)
        w = BatchWriter(any_db_url)
        t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
        w.write([_tel(v["device_id"], 2, t, lat=10.0, lon=20.0, speed_kmh=50.0, fuel_pct=40.0)])
        # an older sample arrives later (a device uploading its buffer)
        st = w.write(
            [
                _tel(
                    v["device_id"],
                    1,
                    t - timedelta(minutes=5),
                    lat=1.0,
                    lon=2.0,
                    speed_kmh=5.0,
                    fuel_pct=90.0,
                )
            ]
        )
        assert st.readings_stored == 1
        s = _state(conn, v["id"])
        assert (s["lat"], s["lon"], s["speed_kmh"], s["fuel_pct"]) == (10.0, 20.0, 50.0, 40.0)
        assert s["ts"] == t
        # within one batch, the newest sample wins whatever the order
        w.write(
            [
                _tel(v["device_id"], 4, t + timedelta(seconds=20), speed_kmh=70.0),
                _tel(v["device_id"], 3, t + timedelta(seconds=10), speed_kmh=60.0, lat=11.0),
            ]
        )
        s = _state(conn, v["id"])
        assert (s["speed_kmh"], s["lat"], s["ts"]) == (70.0, 11.0, t + timedelta(seconds=20))
        assert one(conn.execute("SELECT count(*) AS n FROM readings"))["n"] == 4
        w.close()


def test_state_merges_nmea_position_with_obd_engine_data(any_db_url: str) -> None:
    with psycopg.connect(any_db_url, autocommit=True, row_factory=dict_row) as conn:
        v = vehicle(conn)
        dev = v["device_id"]
        w = BatchWriter(any_db_url)
        t_ms = (int(datetime.now(UTC).timestamp()) - 60) * 1000
        w.write([_msg(dev, "nmea", nmea_payload(t_ms, 0))])
        w.write([_msg(dev, "obd", obd_payload(1, t_ms + 1000, 0, extra_frames=["43 01 33 00 00 00 00"]))])
        s = _state(conn, v["id"])
        assert abs(s["lat"] - 48.13) < 1e-6 and abs(s["lon"] - 11.58) < 1e-6  # from NMEA
        assert s["rpm"] == 800 and s["coolant_c"] == 85 and s["dtc"] == ["P0133"]  # from OBD
        assert abs(s["battery_v"] - 14.0) < 1e-6
        assert s["ts"] == datetime.fromtimestamp((t_ms + 1000) / 1000, UTC)
        w.close()


def test_status_sets_online_and_unregistered_device_is_quarantined_then_replayed(any_db_url: str) -> None:
    with psycopg.connect(any_db_url, autocommit=True, row_factory=dict_row) as conn:
        v = vehicle(conn)
        w = BatchWriter(any_db_url, cache_ttl_s=0.0)
        t0 = datetime.now(UTC)
        w.write([_msg(v["device_id"], "status", b"online", t0)])
        s = _state(conn, v["id"])
        assert s["online"] is True and s["online_changed_at"] == t0 and s["last_seen"] == t0
        w.write(
            [
                _msg(v["device_id"], "status", b"offline", t0 + timedelta(seconds=1)),
                _msg(v["device_id"], "status", b"online", t0 - timedelta(seconds=5)),
            ]
        )  # replayed old one loses
        s = _state(conn, v["id"])
        assert s["online"] is False and s["online_changed_at"] == t0 + timedelta(seconds=1)

        ghost = "ghost-dev-1"
        t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
        st = w.write(
            [
                _tel(ghost, 1, t, lat=5.0, lon=6.0),
                _tel(ghost, 2, t + timedelta(seconds=1), lat=5.1, lon=6.1),
                _msg(ghost, "telemetry", b"{not json"),
            ]
        )
        assert (st.quarantined, st.rejected, st.readings_stored) == (2, 1, 0)
        assert (
            one(conn.execute("SELECT count(*) AS n FROM ingest_quarantine WHERE device_id = %s", (ghost,)))[
                "n"
            ]
            == 2
        )

        v2 = vehicle(conn, device_id=ghost, station_code=station(conn)["code"])
        env = {**os.environ, "FLEET_DATABASE_URL": any_db_url, "FLEET_TOPIC_ROOT": ROOT}
        out = subprocess.run(
            [sys.executable, "-m", "fleetapp.cli", "ingest", "replay", "--device", ghost],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout.strip().splitlines()[-1]) == {"replayed": 2, "outcomes": {"stored": 2}}
        rows = conn.execute(
            "SELECT vehicle_id, seq FROM readings WHERE device_id = %s ORDER BY seq", (ghost,)
        ).fetchall()
        assert [(r["vehicle_id"], r["seq"]) for r in rows] == [(v2["id"], 1), (v2["id"], 2)]
        assert _state(conn, v2["id"])["lat"] == 5.1
        pending = one(conn.execute("SELECT count(*) AS n FROM ingest_quarantine WHERE replayed_at IS NULL"))[
            "n"
        ]
        assert pending == 0
        c = read_counters(conn)
        assert c["readings_stored"] == 2 and c["quarantine_replayed"] == 2 and c["messages_quarantined"] == 2
        w.close()


def test_element_rejections_and_events_are_kept(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        v = vehicle(conn)
        dev = v["device_id"]
        w = BatchWriter(db_url)
        ms = (int(datetime.now(UTC).timestamp()) - 30) * 1000
        batch = json.dumps(
            [{"ts": ms, "seq": 1, "speed_kmh": 10}, {"ts": ms + 1000, "seq": 2, "speed_kmh": 999}]
        )
        event = json.dumps({"ts": ms, "seq": 7, "type": "crash", "peak_g": 6.5})
        st = w.write(
            [
                _msg(dev, "telemetry", batch.encode()),
                _msg(dev, "event", event.encode()),
                _msg(dev, "event", event.encode()),
            ]
        )
        assert (st.readings_stored, st.events_stored, st.elements_rejected, st.duplicates) == (1, 1, 1, 1)
        rej = one(conn.execute("SELECT reason, detail, topic FROM ingest_rejections"))
        assert (
            rej["reason"] == "out_of_range"
            and "element 1" in rej["detail"]
            and rej["topic"].endswith("/telemetry")
        )
        ev = one(conn.execute("SELECT type, data, vehicle_id FROM device_events"))
        assert ev == {"type": "crash", "data": {"peak_g": 6.5}, "vehicle_id": v["id"]}
        w.close()


def test_batch_survives_a_database_refusal_of_one_message(db_url: str) -> None:
    """A message the database refuses (here: seq beyond bigint sneaks past a fake parser) becomes write_error."""
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        v = vehicle(conn)
        good = _tel(v["device_id"], 1, datetime.now(UTC) - timedelta(seconds=5), speed_kmh=1.0)
        assert isinstance(good.result, Parsed)
        row = list(good.result.readings[0])
        row[3] = 2**70  # does not fit int8: COPY fails for the whole batch
        bad = Message(
            good.topic,
            b"{}",
            good.received_at,
            Parsed(v["device_id"], "telemetry", [tuple(row)], []),
        )
        w = BatchWriter(db_url)
        st = w.commit([good, bad], threading.Event())
        assert st is not None and st.readings_stored == 1 and st.rejected == 1
        assert one(conn.execute("SELECT reason FROM ingest_rejections"))["reason"] == "write_error"
        w.close()


def test_retention_drops_old_readings_and_keeps_recent(any_db_url: str) -> None:
    with psycopg.connect(any_db_url, autocommit=True, row_factory=dict_row) as conn:
        v = vehicle(conn)
        w = BatchWriter(any_db_url)
        now = datetime.now(UTC).replace(microsecond=0)
        w.write(
            [
                _tel(v["device_id"], 1, now - timedelta(days=500), speed_kmh=1.0),
                _tel(v["device_id"], 2, now - timedelta(days=450), speed_kmh=2.0),
                _tel(v["device_id"], 3, now - timedelta(days=1), speed_kmh=3.0),
            ]
        )
        w.close()
        env = {**os.environ, "FLEET_DATABASE_URL": any_db_url}
        out = subprocess.run(
            [sys.executable, "-m", "fleetapp.cli", "ingest", "retention", "--days", "400"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        removed = json.loads(out.stdout.strip().splitlines()[-1])
        assert removed.get("readings_chunks", 0) >= 1 or removed.get("readings_rows") == 2
        seqs = [r["seq"] for r in conn.execute("SELECT seq FROM readings ORDER BY seq").fetchall()]
        assert seqs == [3]


def test_duplicate_in_a_plain_insert_batch_is_redone_with_dedupe_and_counted(any_db_url: str) -> None:
    """The fast path (plain INSERT) meets a resent sample: the batch is redone with ON CONFLICT, nothing twice."""
    with psycopg.connect(any_db_url, autocommit=True, row_factory=dict_row) as conn:
        v = vehicle(conn)
        other = vehicle(conn)
        w = BatchWriter(any_db_url)
        t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        first = w.write([_tel(v["device_id"], 1, t, speed_kmh=10.0)])
        assert (first.readings_stored, first.duplicates) == (1, 0)
        assert w._dedupe_batches == 0  # still on the plain path
        st = w.write(
            [
                _tel(v["device_id"], 1, t, speed_kmh=10.0),  # resent
                _tel(v["device_id"], 2, t + timedelta(seconds=1), speed_kmh=20.0),
                _tel(other["device_id"], 1, t, speed_kmh=30.0),
            ]
        )
        assert (st.readings_stored, st.duplicates) == (2, 1)
        assert w._dedupe_batches == writer_module.DEDUPE_BATCHES
        assert one(conn.execute("SELECT count(*) AS n FROM readings"))["n"] == 3
        counters = read_counters(conn)
        assert counters["readings_stored"] == 3 and counters["duplicates_skipped"] == 1
        # each message was counted once, although its batch ran twice
        assert counters["messages_received"] == 4
        assert _state(conn, v["id"])["speed_kmh"] == 20.0
        # the following batches stay on the ON CONFLICT path for a while, then try the plain INSERT again
        w.write([_tel(v["device_id"], 3, t + timedelta(seconds=2), speed_kmh=25.0)])
        assert w._dedupe_batches == writer_module.DEDUPE_BATCHES - 1
        w.close()


def test_concurrent_batches_lock_vehicle_state_in_one_order(db_url: str) -> None:
    """A batch with samples of vehicles 1 and 3 and an event of vehicle 2 must not deadlock with a concurrent
    transaction that holds vehicle 2 and then wants vehicle 3 (what a second writer's batch does)."""
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        v1, v2, v3 = sorted((vehicle(conn) for _ in range(3)), key=lambda v: v["id"])
        w = BatchWriter(db_url)
        t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
        w.write([_tel(v["device_id"], 1, t, speed_kmh=1.0) for v in (v1, v2, v3)])  # state rows exist
        event = json.dumps(
            {"ts": int((t + timedelta(seconds=5)).timestamp() * 1000), "seq": 9, "type": "crash"}
        )
        batch = [
            _tel(v1["device_id"], 2, t + timedelta(seconds=1), speed_kmh=2.0),
            _tel(v3["device_id"], 2, t + timedelta(seconds=1), speed_kmh=2.0),
            _msg(v2["device_id"], "event", event.encode()),
        ]
        other = psycopg.connect(db_url, autocommit=False)
        other.execute("SET lock_timeout = '10s'")
        other.execute("UPDATE vehicle_state SET health = 'ok' WHERE vehicle_id = %s", (v2["id"],))
        errors: list[BaseException] = []

        def write() -> None:
            try:
                w.write(batch)
            except BaseException as exc:  # reported below
                errors.append(exc)

        th = threading.Thread(target=write)
        th.start()
        # wait until the batch is blocked on vehicle 2's row lock
        pid = w.conn.info.backend_pid if w.conn else None
        for _ in range(200):
            waiting = one(conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)))
            if waiting and waiting["wait_event_type"] == "Lock":
                break
            threading.Event().wait(0.02)
        else:
            raise AssertionError("the batch never waited for vehicle 2")
        try:
            # without one lock order the batch holds vehicle 3 here, and PostgreSQL aborts one side as a deadlock
            other.execute("UPDATE vehicle_state SET health = 'ok' WHERE vehicle_id = %s", (v3["id"],))
            other.commit()
        finally:
            other.close()
        th.join(30)
        assert not errors, errors
        assert [_state(conn, v["id"])["speed_kmh"] for v in (v1, v2, v3)] == [2.0, 1.0, 2.0]
        assert one(conn.execute("SELECT count(*) AS n FROM device_events"))["n"] == 1
        w.close()
