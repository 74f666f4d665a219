"""Issue 2 acceptance: 10,000 QoS 1 samples from 100 registered devices (JSON, OBD, NMEA), some sent twice,
plus malformed messages → exactly 10,000 stored readings, every bad message accounted for with a reason."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from fleetcore.db import one
from ingest.staging import read_counters
from tests.factories import station, vehicle
from tests.ingest_helpers import (
    Mosquitto,
    count,
    ingest_settings,
    ingest_worker,
    mosquitto,
    nmea_payload,
    publish_raw,
    recent_ms,
    sample_message,
    wait_until,
)

DEVICES = 100
SAMPLES_PER_DEVICE = 100
RESENT = 300
BAD_EACH = 10


@pytest.fixture(scope="module")
def broker() -> Iterator[Mosquitto]:
    """A private broker: the shared one caps each session's queue at 1,000 messages (Debian default)."""
    with mosquitto() as m:
        yield m


def _bad_checksum(payload: bytes) -> bytes:
    lines = payload.decode().split("\r\n")
    return "\r\n".join(line[:-2] + ("00" if line[-2:] != "00" else "11") for line in lines).encode()


@pytest.mark.slow
def test_ten_thousand_samples_exactly_once_and_every_bad_message_accounted(
    any_db_url: str, broker: Mosquitto
) -> None:
    root = f"test-{uuid.uuid4().hex[:10]}/fleet/v1"
    rng = random.Random(7)
    protocols = ["json"] * 40 + ["obd"] * 30 + ["nmea"] * 30
    with psycopg.connect(any_db_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        st = station(conn)["code"]
        devices = [(vehicle(conn, station_code=st, protocol=p)["device_id"], p) for p in protocols]

    base = recent_ms(-3 * 3600)
    good: list[tuple[str, bytes]] = []
    for d, (device_id, proto) in enumerate(devices):
        for seq in range(SAMPLES_PER_DEVICE):
            good.append(sample_message(root, device_id, proto, seq, base + (seq * 1000) + d * 7))
    messages = good + rng.sample(good, RESENT)
    json_dev = devices[0][0]
    obd_dev = devices[40][0]
    nmea_dev = devices[70][0]
    bad: list[tuple[str, bytes]] = []
    for i in range(BAD_EACH):
        bad.append((f"{root}/devices/{json_dev}/telemetry", b'{"ts": 1, "seq": ' + str(i).encode()))
        bad.append(
            (
                f"{root}/devices/{json_dev}/telemetry",
                json.dumps({"ts": base, "seq": 10_000 + i, "lat": 95.0}).encode(),
            )
        )
        bad.append(
            (f"{root}/devices/{nmea_dev}/nmea", _bad_checksum(nmea_payload(base + 500_000 + i * 1000)))
        )
        # every frame refused (an OBD message with some good frames stores them: partial acceptance)
        obd_bad = json.dumps({"ts": base, "seq": 10_000 + i, "frames": ["41 0C 1A", "CAN ERROR"]}).encode()
        bad.append((f"{root}/devices/{obd_dev}/obd", obd_bad))
        bad.append(
            (
                f"{root}/devices/ghost-{i}/telemetry",
                json.dumps({"ts": base, "seq": i, "speed_kmh": 3}).encode(),
            )
        )
    messages += bad
    rng.shuffle(messages)

    settings = ingest_settings(any_db_url, broker, root)
    with ingest_worker(settings):
        publish_raw(broker.port, messages)
        total = len(messages)
        assert wait_until(
            lambda: (
                count(any_db_url, "SELECT value FROM ingest_counters WHERE name = 'messages_received'")
                >= total
            ),
            timeout=60,
        )

    n = DEVICES * SAMPLES_PER_DEVICE
    assert count(any_db_url, "SELECT count(*) FROM readings") == n
    assert (
        count(any_db_url, "SELECT count(*) FROM (SELECT DISTINCT device_id, kind, seq FROM readings) s") == n
    )
    with psycopg.connect(any_db_url, autocommit=True) as conn:
        reasons: dict[str, int] = dict(
            conn.execute("SELECT reason, count(*) FROM ingest_rejections GROUP BY reason").fetchall()
        )
        assert reasons == {
            "bad_json": BAD_EACH,
            "out_of_range": BAD_EACH,
            "bad_checksum": BAD_EACH,
            "bad_obd_frame": BAD_EACH,
        }
        topics = {r[0] for r in conn.execute("SELECT topic FROM ingest_rejections").fetchall()}
        assert all(t.startswith(root) for t in topics)
        assert (
            one(
                conn.execute(
                    "SELECT count(*) FROM ingest_rejections WHERE payload = ''::bytea OR detail = ''"
                )
            )[0]
            == 0
        )
        quarantined = conn.execute("SELECT device_id, count(*) FROM ingest_quarantine GROUP BY 1").fetchall()
        assert sorted(quarantined) == sorted((f"ghost-{i}", 1) for i in range(BAD_EACH))
        counters = read_counters(conn)
        # every vehicle has a fresh state
        assert (
            one(
                conn.execute(
                    "SELECT count(*) FROM vehicle_state WHERE ts IS NOT NULL AND last_seen IS NOT NULL"
                )
            )[0]
            == DEVICES
        )
    assert counters["readings_stored"] == n
    assert counters["duplicates_skipped"] == RESENT
    assert counters["messages_received"] == len(messages)
    assert counters["messages_rejected"] == 4 * BAD_EACH
    assert counters["messages_quarantined"] == BAD_EACH
    # nothing unaccounted: each message is stored, a duplicate, rejected or quarantined
    assert n + RESENT + 4 * BAD_EACH + BAD_EACH == len(messages)


def test_mqtt_311_fallback_stores_everything_once(db_url: str, broker: Mosquitto) -> None:
    """Brokers without MQTT 5 (FLEET_MQTT_PROTOCOL=3.1.1, e.g. the embedded one): same guarantees, paho's own path."""
    root = f"test-{uuid.uuid4().hex[:10]}/fleet/v1"
    with psycopg.connect(db_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        devices = [(vehicle(conn, protocol=p)["device_id"], p) for p in ("json", "obd", "nmea")]
    base = recent_ms(-3600)
    messages = [sample_message(root, d, p, seq, base + seq * 1000) for seq in range(300) for d, p in devices]
    settings = ingest_settings(db_url, broker, root, mqtt_protocol="3.1.1")
    with ingest_worker(settings):
        publish_raw(broker.port, messages + messages[:100])
        assert wait_until(
            lambda: (
                count(db_url, "SELECT value FROM ingest_counters WHERE name = 'messages_received'") >= 1000
            ),
            timeout=30,
        )
    assert count(db_url, "SELECT count(*) FROM readings") == 900
    assert count(db_url, "SELECT value FROM ingest_counters WHERE name = 'duplicates_skipped'") == 100
