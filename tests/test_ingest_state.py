"""Coalesced vehicle state (ingest.state) against the per-batch upsert, on the real database.

The worker commits readings batch by batch and writes vehicle_state once per flush, from the samples of many
batches. The state it writes must be the one the per-batch upsert gives when those batches are written as one
batch: the same newest-by-sample-time rules, field by field.
"""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from fleetcore.db import Conn, one
from fleetcore.protocol.parse import process_message
from ingest.batch import Message
from ingest.staging import ensure_staging
from ingest.state import PendingState, StateFlusher
from ingest.vehicle_state import STATE_FIELDS
from ingest.writer import BatchWriter
from tests.factories import vehicle

ROOT = "test/fleet/v1"
PAIRS = 6
COMPARED = (*STATE_FIELDS, "dtc", "ts", "last_seen")
NUMERIC = {
    "lat": (-60.0, 60.0),
    "lon": (-170.0, 170.0),
    "speed_kmh": (0.0, 200.0),
    "heading_deg": (0.0, 359.0),
    "alt_m": (-10.0, 2000.0),
    "odometer_km": (0.0, 300000.0),
    "engine_hours": (0.0, 9000.0),
    "rpm": (0.0, 7000.0),
    "coolant_c": (-20.0, 120.0),
    "engine_load_pct": (0.0, 100.0),
    "fuel_pct": (0.0, 100.0),
    "battery_v": (9.0, 15.0),
}


def _message(device: str, body: dict, received: datetime) -> Message:
    topic = f"{ROOT}/devices/{device}/telemetry"
    payload = json.dumps(body).encode()
    return Message(topic, payload, received, process_message(ROOT, topic, payload, now=received))


def _sample(rng: random.Random, ts: datetime, seq: int) -> dict:
    """A telemetry body with a random subset of the state's fields (as NMEA, OBD and mixed devices send)."""
    body: dict = {"ts": int(ts.timestamp() * 1000), "seq": seq}
    for name, (lo, hi) in NUMERIC.items():
        if rng.random() < 0.45:
            body[name] = round(rng.uniform(lo, hi), 3)
    if rng.random() < 0.3:
        body["ignition"] = rng.random() < 0.5
    if rng.random() < 0.15:
        body["dtc"] = rng.sample(["P0301", "P0420", "P0128", "U0100"], rng.randint(0, 2))
    return body


def _states(conn: Conn, ids: list[int]) -> list[tuple | None]:
    rows = conn.execute(
        f"SELECT vehicle_id, {', '.join(COMPARED)} FROM vehicle_state WHERE vehicle_id = ANY(%s)", (ids,)
    ).fetchall()
    by_id = {r["vehicle_id"]: tuple(r[c] for c in COMPARED) for r in rows}
    return [by_id.get(i) for i in ids]


def test_coalesced_state_equals_the_per_batch_upsert_of_the_same_samples(any_db_url: str) -> None:
    """Random rounds of 1-5 batches: samples with random field subsets, out of time order, older than the
    state, resent duplicates, several samples per vehicle per batch. Vehicles A take each round as one batch
    through the per-batch upsert; vehicles B take the round's batches one by one with the state deferred, then
    one coalesced flush. After every round the two states are identical, field by field."""
    rng = random.Random(20261202)
    with psycopg.connect(any_db_url, autocommit=True, row_factory=dict_row) as conn:
        a = [vehicle(conn) for _ in range(PAIRS)]
        b = [vehicle(conn) for _ in range(PAIRS)]
        per_batch = BatchWriter(any_db_url)
        deferred = BatchWriter(any_db_url, defer_state=True)
        flusher = StateFlusher(any_db_url)
        stop = threading.Event()
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        sent: list[tuple[int, dict]] = []  # (pair, body) for resends
        seq = 0
        rounds_with_old = 0
        times: list[set[datetime]] = [set() for _ in range(PAIRS)]
        for _ in range(40):
            batches: list[list[tuple[int, dict, datetime]]] = []
            for _ in range(rng.randint(1, 5)):
                batch = []
                for _ in range(rng.randint(1, 8)):
                    pair = rng.randrange(PAIRS)
                    if sent and rng.random() < 0.1:
                        pair, body = rng.choice(sent)  # a resend: stored once, still counts for the state
                    else:
                        seq += 1
                        # mostly moving forward, sometimes far behind (a buffered upload)
                        base += timedelta(milliseconds=rng.randint(1, 3000))
                        back = rng.choice([0, 0, 0, 1, 5, 600])
                        rounds_with_old += back == 600
                        ts = base - timedelta(seconds=back)
                        while ts in times[pair]:  # ties in sample time have no defined winner
                            ts += timedelta(milliseconds=1)
                        times[pair].add(ts)
                        body = _sample(rng, ts, seq)
                        sent.append((pair, body))
                    received = datetime.now(UTC) + timedelta(microseconds=rng.randint(0, 10**6))
                    batch.append((pair, body, received))
                batches.append(batch)
            everything = [
                _message(a[p]["device_id"], body, rec) for batch in batches for p, body, rec in batch
            ]
            per_batch.write(everything)
            pending = PendingState()
            for batch in batches:
                st = deferred.write([_message(b[p]["device_id"], body, rec) for p, body, rec in batch])
                pending.add(st.state_rows)
                pending.messages += len(batch)
            assert flusher.commit(pending, stop) == len(pending)
            assert _states(conn, [v["id"] for v in a]) == _states(conn, [v["id"] for v in b])
        assert rounds_with_old > 0
        # the deferred writer left the state alone: only the flushes wrote it
        assert all(s is not None for s in _states(conn, [v["id"] for v in b]))
        for w in (per_batch, deferred, flusher):
            w.close()


def test_deferred_batches_leave_the_state_alone_until_the_flush(any_db_url: str) -> None:
    with psycopg.connect(any_db_url, autocommit=True, row_factory=dict_row) as conn:
        v = vehicle(conn)
        w, flusher = BatchWriter(any_db_url, defer_state=True), StateFlusher(any_db_url)
        t = datetime.now(UTC).replace(microsecond=0)
        now = datetime.now(UTC)
        st = w.write(
            [_message(v["device_id"], {"ts": int(t.timestamp() * 1000), "seq": 1, "fuel_pct": 42}, now)]
        )
        assert st.readings_stored == 1 and len(st.state_rows) == 1
        before = conn.execute(
            "SELECT ts, fuel_pct FROM vehicle_state WHERE vehicle_id = %s", (v["id"],)
        ).fetchone()
        assert before is None or (before["ts"], before["fuel_pct"]) == (None, None)
        pending = PendingState()
        pending.add(st.state_rows)
        assert flusher.commit(pending, threading.Event()) == 1
        s = one(
            conn.execute(
                "SELECT fuel_pct, ts, last_seen FROM vehicle_state WHERE vehicle_id = %s", (v["id"],)
            )
        )
        assert (s["fuel_pct"], s["ts"], s["last_seen"]) == (42.0, t, now)
        w.close()
        flusher.close()


def test_direct_copy_into_readings_stores_what_the_staged_insert_stores(any_db_url: str) -> None:
    """With the state deferred, a batch with no duplicate goes by binary COPY straight into readings (its real and
    smallint columns need their own binary types); the rows equal those the staged INSERT … SELECT stores, a
    resent sample makes it fall back to ON CONFLICT, and nothing is stored twice."""
    rng = random.Random(7)
    with psycopg.connect(any_db_url, autocommit=True, row_factory=dict_row) as conn:
        a, b = vehicle(conn), vehicle(conn)
        staged, direct = BatchWriter(any_db_url), BatchWriter(any_db_url, defer_state=True)
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        bodies = [_sample(rng, base + timedelta(seconds=i), i) for i in range(200)]
        for body in bodies[:150]:
            body["sats"] = rng.randint(0, 64)  # the one smallint column
            body["hdop"] = round(rng.uniform(0.5, 9.9), 2)
        now = datetime.now(UTC)
        staged.write([_message(a["device_id"], body, now) for body in bodies])
        # without its staging table, the writer can only store the batch by the direct COPY
        wconn = direct.connect()
        wconn.execute("DROP TABLE ingest_stage_readings")
        wconn.commit()
        st = direct.write([_message(b["device_id"], body, now) for body in bodies[:100]])
        assert (st.readings_stored, st.duplicates, st.rejected) == (100, 0, 0)
        ensure_staging(wconn)
        wconn.commit()
        # a redelivery of 50 stored samples with 100 new ones: the COPY meets the unique index, redone staged
        st = direct.write([_message(b["device_id"], body, now) for body in bodies[50:]])
        assert (st.readings_stored, st.duplicates) == (100, 50)
        cols = "ts, kind, seq, lat, lon, speed_kmh, hdop, sats, odometer_km, fuel_pct, ignition, dtc, received_at"

        def rows(v: dict) -> list[tuple]:
            got = conn.execute(f"SELECT {cols} FROM readings WHERE vehicle_id = %s ORDER BY seq", (v["id"],))
            return [tuple(r.values()) for r in got.fetchall()]

        assert len(rows(b)) == 200
        assert rows(a) == rows(b)
        for w in (staged, direct):
            w.close()


def test_a_value_older_than_the_state_is_left_out_even_when_a_newer_sample_moves_the_state_on(
    any_db_url: str,
) -> None:
    """State at T10 (fuel 50). One flush then brings an old upload's sample at T5 (fuel 40) and a new sample at
    T12 without fuel: the state moves to T12 and takes the new speed, but keeps fuel 50 — as the per-batch upsert
    does for the same samples."""
    with psycopg.connect(any_db_url, autocommit=True, row_factory=dict_row) as conn:
        a, b = vehicle(conn), vehicle(conn)
        per_batch, deferred = BatchWriter(any_db_url), BatchWriter(any_db_url, defer_state=True)
        flusher = StateFlusher(any_db_url)
        t10 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
        ms = lambda t: int(t.timestamp() * 1000)  # noqa: E731
        first = {"ts": ms(t10), "seq": 1, "fuel_pct": 50.0, "speed_kmh": 10.0}
        later = [
            {"ts": ms(t10 - timedelta(seconds=5)), "seq": 2, "fuel_pct": 40.0},
            {"ts": ms(t10 + timedelta(seconds=2)), "seq": 3, "speed_kmh": 20.0},
        ]
        now = datetime.now(UTC)
        per_batch.write([_message(a["device_id"], first, now)])
        per_batch.write([_message(a["device_id"], body, now) for body in later])
        for bodies in ([first], later):
            st = deferred.write([_message(b["device_id"], body, now) for body in bodies])
            pending = PendingState()
            pending.add(st.state_rows)
            assert flusher.commit(pending, threading.Event()) == 1
        want = (50.0, 20.0, t10 + timedelta(seconds=2))
        for v in (a, b):
            s = one(
                conn.execute(
                    "SELECT fuel_pct, speed_kmh, ts FROM vehicle_state WHERE vehicle_id = %s", (v["id"],)
                )
            )
            assert (s["fuel_pct"], s["speed_kmh"], s["ts"]) == want, v
        for w in (per_batch, deferred, flusher):
            w.close()
