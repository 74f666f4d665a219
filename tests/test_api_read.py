"""Read API v0: vehicles, state, telemetry (raw and bucketed) and ingest stats, on both storage engines."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from fleetapp.api import create_app
from fleetcore.db import connect
from fleetcore.settings import Settings
from tests import factories

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)


def _login(client: TestClient, u: dict) -> dict:
    r = client.post("/api/v1/auth/token", data={"username": u["username"], "password": u["password"]})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def api(any_db_url):
    settings = Settings(
        environment="test", database_url=any_db_url, secret_key="read-api-test-secret-0123456789-abcdefghij"
    )
    with connect(any_db_url, autocommit=True) as conn:
        v = factories.vehicle(conn)
        disp = factories.user(conn, role="dispatcher")
        tech = factories.user(conn, role="technician")
        fin = factories.user(conn, role="finance")
        # 10 minutes of 1 Hz readings: speed ramps 0..59 km/h, odometer grows.
        conn.execute(
            """INSERT INTO readings (ts, device_id, vehicle_id, kind, seq, lat, lon, speed_kmh, odometer_km, fuel_pct)
               SELECT %s + make_interval(secs => i), %s, %s, 'telemetry', i, 52.5, 13.4, i %% 60, 1000 + i / 100.0, 80
                 FROM generate_series(0, 599) AS i""",
            (T0, v["device_id"], v["id"]),
        )
        conn.execute(
            """UPDATE vehicle_state SET ts = %s, lat = 52.5, lon = 13.4, speed_kmh = 59, odometer_km = 1005.99,
                      fuel_pct = 80, online = true, last_seen = now() WHERE vehicle_id = %s""",
            (T0 + dt.timedelta(seconds=599), v["id"]),
        )
        conn.execute(
            "INSERT INTO ingest_rejections (topic, device_id, payload, reason, detail) VALUES ('t', 'd', %s, 'bad_json', 'x')",
            (b"{not json",),
        )
    with TestClient(create_app(settings)) as client:
        yield (
            client,
            v,
            {
                "dispatcher": _login(client, disp),
                "technician": _login(client, tech),
                "finance": _login(client, fin),
            },
        )


def test_healthz_is_public(api):
    client, _, _ = api
    assert client.get("/healthz").json() == {"status": "ok"}


def test_list_and_state(api):
    client, v, h = api
    r = client.get("/api/v1/vehicles", headers=h["dispatcher"])
    assert r.status_code == 200
    assert [x["vin"] for x in r.json()] == [v["vin"]]
    s = client.get(f"/api/v1/vehicles/{v['vin']}/state", headers=h["finance"]).json()
    assert s["online"] is True and s["speed_kmh"] == 59 and s["odometer_km"] == pytest.approx(1005.99)
    assert s["last_seen"] is not None and s["device_id"] == v["device_id"]
    assert client.get("/api/v1/vehicles/WVWZZZ1JZ3W386752/state", headers=h["finance"]).status_code == 404


def test_telemetry_raw_and_bucketed(api):
    client, v, h = api
    q = {"from": T0.isoformat(), "to": (T0 + dt.timedelta(minutes=10)).isoformat()}
    raw = client.get(f"/api/v1/vehicles/{v['vin']}/telemetry", params=q, headers=h["dispatcher"]).json()
    assert raw["count"] == 600 and raw["items"][0]["seq"] == 0
    b = client.get(
        f"/api/v1/vehicles/{v['vin']}/telemetry", params={**q, "bucket": 60}, headers=h["dispatcher"]
    ).json()
    assert b["count"] == 10
    assert all(item["samples"] == 60 for item in b["items"])
    assert b["items"][0]["speed_kmh"] == pytest.approx(29.5)  # mean of 0..59
    for width, n in (("5m", 2), ("PT2M", 5)):
        r = client.get(
            f"/api/v1/vehicles/{v['vin']}/telemetry", params={**q, "bucket": width}, headers=h["dispatcher"]
        )
        assert r.json()["count"] == n
    r = client.get(
        f"/api/v1/vehicles/{v['vin']}/telemetry", params={**q, "bucket": "soon"}, headers=h["dispatcher"]
    )
    assert r.status_code == 422 and "bucket" in r.json()["error"]["message"]


def test_telemetry_bad_window_is_422(api):
    client, v, h = api
    r = client.get(
        f"/api/v1/vehicles/{v['vin']}/telemetry",
        params={"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"},
        headers=h["dispatcher"],
    )
    assert r.status_code == 422 and "before" in r.json()["error"]["message"]
    r = client.get(
        f"/api/v1/vehicles/{v['vin']}/telemetry", params={"from": "yesterday"}, headers=h["dispatcher"]
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid"


def test_ingest_stats_and_rejections_roles(api):
    client, _, h = api
    assert client.get("/api/v1/ingest/stats").status_code == 401
    assert client.get("/api/v1/ingest/stats", headers=h["finance"]).status_code == 403
    stats = client.get("/api/v1/ingest/stats", headers=h["technician"]).json()
    assert {"readings_stored", "messages_rejected", "messages_quarantined"} <= stats.keys()
    rej = client.get("/api/v1/ingest/rejections", headers=h["technician"]).json()
    assert rej[0]["reason"] == "bad_json" and rej[0]["payload"] == "{not json"
