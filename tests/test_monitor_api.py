"""Alerts REST API and the WebSocket stream with a real client; the monitor process end to end over the real
Mosquitto broker: a crash published by a device becomes an alert row and a message on the stream."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fleetapp.api import create_app
from fleetcore.contract import topic_for
from fleetcore.db import connect
from fleetcore.mqtt import MqttConnection
from monitor import service
from monitor.worker import MonitorService
from tests import factories
from tests.waiting import wait_until

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)
# Every alert the API returns has exactly these fields (the routes' response models must not drop any).
ALERT_KEYS = {
    "id", "vehicle_id", "vin", "plate", "kind", "severity", "status", "message", "opened_at", "last_seen_at",
    "occurrences", "evidence", "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by",
    "resolution_note", "created_at", "updated_at",
}  # fmt: skip


def _token(client: TestClient, u: dict) -> str:
    r = client.post("/api/v1/auth/token", data={"username": u["username"], "password": u["password"]})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture
def api(settings):
    with connect(settings.database_url, autocommit=True) as conn:
        users = {role: factories.user(conn, role=role) for role in ("dispatcher", "technician", "finance")}
        v = factories.vehicle(conn, status="rented")
    with TestClient(create_app(settings)) as client:
        tokens = {role: _token(client, u) for role, u in users.items()}
        headers = {role: {"Authorization": f"Bearer {t}"} for role, t in tokens.items()}
        yield client, v, tokens, headers


def test_rest_filters_ack_resolve_and_roles(api, settings):
    client, v, _, h = api
    with connect(settings.database_url, autocommit=True) as conn:
        crash, _ = service.raise_(
            conn, vehicle_id=v["id"], kind="crash", severity="critical", ts=T0, message="crash"
        )
        service.raise_(conn, vehicle_id=v["id"], kind="low_fuel", severity="low", ts=T0, message="fuel")
    assert client.get("/api/v1/alerts").status_code == 401
    assert client.get("/api/v1/alerts", headers=h["finance"]).status_code == 403
    assert client.post(f"/api/v1/alerts/{crash['id']}/ack", headers=h["finance"]).status_code == 403
    r = client.get(
        "/api/v1/alerts", headers=h["dispatcher"], params={"severity": "critical", "vehicle": v["vin"]}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 1 and body["items"][0]["kind"] == "crash" and body["items"][0]["evidence"] == []
    assert set(body) == {"items", "total", "limit", "offset"} and set(body["items"][0]) == ALERT_KEYS
    assert body["items"][0]["opened_at"] == "2026-11-01T08:00:00Z"
    assert (
        client.get("/api/v1/alerts", headers=h["technician"], params={"kind": "crash,low_fuel"}).json()[
            "total"
        ]
        == 2
    )
    assert (
        client.get("/api/v1/alerts", headers=h["dispatcher"], params={"status": "bogus"}).status_code == 422
    )
    r = client.get("/api/v1/alerts", headers=h["dispatcher"], params={"from": "2026-11-02T00:00:00Z"})
    assert r.json()["total"] == 0
    r = client.post(f"/api/v1/alerts/{crash['id']}/ack", headers=h["dispatcher"])
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    assert set(r.json()) == ALERT_KEYS
    r = client.post(
        f"/api/v1/alerts/{crash['id']}/resolve", headers=h["technician"], json={"note": "false alarm"}
    )
    assert r.status_code == 200 and r.json()["resolution_note"] == "false alarm"
    r = client.post(f"/api/v1/alerts/{crash['id']}/resolve", headers=h["technician"], json={"note": "again"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert client.get("/api/v1/alerts/424242", headers=h["dispatcher"]).status_code == 404
    got = client.get(f"/api/v1/alerts/{crash['id']}", headers=h["dispatcher"]).json()
    assert got["status"] == "resolved" and got["resolved_by"] and got["acknowledged_by"]
    state = client.get(f"/api/v1/vehicles/{v['vin']}/state", headers=h["dispatcher"]).json()
    assert state["health"] == "ok" and state.get("rentable", True) is True


def _auth(ws, token: str) -> dict:
    """Authenticate by the first message, the way browsers do; returns the server's hello."""
    ws.send_json({"type": "auth", "token": token})
    return ws.receive_json()


def _refused(
    client: TestClient, url: str = "/api/v1/stream", first: dict | None = None, **kw
) -> tuple[int, str]:
    """Connect, optionally send a first message, and return the close code and reason the server gave."""
    with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect(url, **kw) as ws:
        if first is not None:
            ws.send_json(first)
        ws.receive_json()
    return exc.value.code, exc.value.reason


def test_stream_authenticates_by_first_message_subprotocol_or_header(api):
    client, _, tokens, _ = api
    with client.websocket_connect("/api/v1/stream") as ws:
        hello = _auth(ws, tokens["dispatcher"])
    assert hello["type"] == "hello" and hello["user"].startswith("dispatcher")
    with client.websocket_connect("/api/v1/stream", subprotocols=["bearer", tokens["technician"]]) as ws:
        assert ws.accepted_subprotocol == "bearer"  # the token is never echoed back
        assert ws.receive_json()["type"] == "hello"
    with client.websocket_connect(
        "/api/v1/stream", headers={"Authorization": f"Bearer {tokens['dispatcher']}"}
    ) as ws:
        assert ws.receive_json()["type"] == "hello"


def test_stream_refuses_a_token_in_the_url_and_says_what_to_do(api):
    client, _, tokens, _ = api
    code, reason = _refused(client, f"/api/v1/stream?token={tokens['dispatcher']}")
    assert code == 4401 and "first message" in reason and '"type":"auth"' in reason
    assert len(reason.encode()) <= 123  # what fits in a close frame (RFC 6455 §5.5)
    # even together with a valid header: a client that puts tokens in URLs must change
    code, _ = _refused(client, f"/api/v1/stream?token={tokens['dispatcher']}",
                       headers={"Authorization": f"Bearer {tokens['dispatcher']}"})  # fmt: skip
    assert code == 4401


def test_stream_rejects_missing_bad_token_and_wrong_role(api, monkeypatch):
    from monitor import views

    client, _, tokens, _ = api
    monkeypatch.setattr(views, "AUTH_TIMEOUT_S", 0.3)
    assert _refused(client)[0] == 4401  # no auth message in time
    assert _refused(client, first={"type": "ping"})[0] == 4401
    assert _refused(client, first={"type": "auth", "token": "garbage"})[0] == 4401
    assert _refused(client, first={"type": "auth", "token": tokens["finance"]})[0] == 4403
    assert _refused(client, subprotocols=["bearer", "garbage"])[0] == 4401
    assert _refused(client, headers={"Authorization": f"Bearer {tokens['finance']}"})[0] == 4403


def test_stream_rejects_a_revoked_token(api, settings):
    client, _, tokens, _ = api
    with client.websocket_connect("/api/v1/stream") as ws:
        assert _auth(ws, tokens["dispatcher"])["type"] == "hello"
    with connect(settings.database_url, autocommit=True) as conn:  # what a password reset does
        conn.execute("UPDATE staff_users SET token_version = token_version + 1 WHERE role = 'dispatcher'")
    assert _refused(client, first={"type": "auth", "token": tokens["dispatcher"]})[0] == 4401


def test_stream_on_a_real_api_process_keeps_tokens_out_of_its_log(settings, tmp_path):
    """uvicorn, not the test client: a refusal reaches the client with its code and reason (the server accepts
    first), the subprotocol way works in a real handshake, and the access log holds no token."""
    from websockets.exceptions import ConnectionClosedError
    from websockets.sync.client import connect as ws_connect

    from fleetapp.embedded import free_port
    from tests.ingest_helpers import wait_port

    with connect(settings.database_url, autocommit=True) as conn:
        user = factories.user(conn, role="dispatcher")
    port = free_port()
    env = {**os.environ, "FLEET_DATABASE_URL": settings.database_url, "FLEET_SECRET_KEY": settings.secret_key}
    log = tmp_path / "api.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "fleetapp.cli", "api", "--port", str(port)], env=env,
                                stdout=out, stderr=out)  # fmt: skip
    try:
        wait_port(port, timeout=30)
        token = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/token",
                           data={"username": user["username"], "password": user["password"]}).json()["access_token"]  # fmt: skip
        url = f"ws://127.0.0.1:{port}/api/v1/stream"
        with ws_connect(url) as ws:
            ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        with ws_connect(url, subprotocols=["bearer", token]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "bearer"
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        with ws_connect(f"{url}?token={token}") as ws, pytest.raises(ConnectionClosedError) as exc:
            ws.recv(timeout=10)
        assert exc.value.rcvd is not None and exc.value.rcvd.code == 4401
        assert "first message" in exc.value.rcvd.reason
    finally:
        proc.terminate()
        proc.wait(15)
    text = log.read_text()
    assert text.count("/api/v1/stream") >= 3, text
    assert token not in text  # the refused ?token= one included: uvicorn's handshake line is redacted too
    assert "stream?token=[redacted]" in text


@pytest.mark.timeout(90)
def test_crash_over_mqtt_reaches_db_and_websocket(api, settings):
    """Device → Mosquitto → monitor process → alert row + NOTIFY → API listener → WebSocket client."""
    client, v, tokens, _ = api
    service = MonitorService(settings)
    stop = threading.Event()
    worker = threading.Thread(target=service.run, args=(stop,), daemon=True)
    worker.start()
    pub = MqttConnection(settings.mqtt, f"test-pub-{uuid.uuid4().hex[:8]}")
    pub.start()
    try:
        assert service.subscribed.wait(20), "the monitor's subscriptions were not acknowledged"
        with client.websocket_connect("/api/v1/stream") as ws:
            hello = _auth(ws, tokens["dispatcher"])
            assert hello["type"] == "hello" and hello["listening"] is True
            now = dt.datetime.now(dt.UTC)
            sent = time.monotonic()
            payload = {"ts": now.isoformat(), "seq": 1, "type": "crash", "peak_g": 3.4, "speed_kmh": 42}
            assert pub.publish(
                topic_for(settings.topic_root, v["device_id"], "event"), json.dumps(payload), qos=1
            )
            msgs = [ws.receive_json() for _ in range(2)]
            latency = time.monotonic() - sent
        alert_msg = next(m for m in msgs if m["type"] == "alert")
        assert alert_msg["event"] == "opened" and alert_msg["alert"]["kind"] == "crash"
        assert alert_msg["alert"]["severity"] == "critical" and alert_msg["alert"]["vin"] == v["vin"]
        vehicle_msg = next(m for m in msgs if m["type"] == "vehicle")
        assert vehicle_msg["health"] == "critical" and vehicle_msg["rentable"] is False
        assert latency < 5.0
        with connect(settings.database_url) as conn:
            row = conn.execute("SELECT * FROM alerts WHERE vehicle_id = %s", (v["id"],)).fetchone()
            st = conn.execute(
                "SELECT rentable, health FROM vehicle_state WHERE vehicle_id = %s", (v["id"],)
            ).fetchone()
        assert row["kind"] == "crash" and row["evidence"][0]["peak_g"] == 3.4
        assert abs((row["opened_at"] - now).total_seconds()) < 0.01  # the sample's time, not arrival time
        assert st == {"rentable": False, "health": "critical"}
        # A second crash event is a repeat on the same alert, not a new one.
        payload.update(seq=2, ts=(now + dt.timedelta(seconds=40)).isoformat())
        pub.publish(topic_for(settings.topic_root, v["device_id"], "event"), json.dumps(payload), qos=1)

        def occurrences() -> list[int]:
            with connect(settings.database_url) as conn:
                rows = conn.execute(
                    "SELECT occurrences FROM alerts WHERE vehicle_id = %s", (v["id"],)
                ).fetchall()
            return [r["occurrences"] for r in rows]

        wait_until(lambda: occurrences() == [2], timeout=10, message="the repeat was not counted")
        assert occurrences() == [2]
    finally:
        pub.stop()
        stop.set()
        worker.join(10)
    assert not worker.is_alive()


@pytest.mark.timeout(90)
def test_monitor_follows_device_removal_and_reinstallation_at_once(api, settings):
    """Removed through the API, a device's crash raises nothing on the car it left (ingest quarantines the same
    message); installed in another car, its crash alerts on that car. Announced by the device_installs trigger,
    and checked again in the monitor's write transaction."""
    client, _, _, h = api
    with connect(settings.database_url, autocommit=True) as conn:
        old_car, new_car, control = (factories.vehicle(conn, status="rented") for _ in range(3))
    device = old_car["device_id"]
    worker = MonitorService(settings)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    pub = MqttConnection(settings.mqtt, f"test-pub-{uuid.uuid4().hex[:8]}")
    pub.start()

    def crash(device_id: str, seq: int) -> None:
        body = {"ts": dt.datetime.now(dt.UTC).isoformat(), "seq": seq, "type": "crash", "peak_g": 3.0}
        assert pub.publish(topic_for(settings.topic_root, device_id, "event"), json.dumps(body))

    def alerts() -> list[tuple[int, str]]:
        with connect(settings.database_url) as conn:
            rows = conn.execute("SELECT vehicle_id, kind FROM alerts ORDER BY id").fetchall()
        return [(r["vehicle_id"], r["kind"]) for r in rows]

    try:
        assert worker.subscribed.wait(20), "the monitor's subscriptions were not acknowledged"
        assert worker.registry is not None and worker.registry.lookup(device).vehicle_id == old_car["id"]
        r = client.delete(f"/api/v1/fleet/vehicles/{old_car['vin']}/device", headers=h["technician"])
        assert r.status_code == 200, r.text
        crash(device, 1)
        crash(control["device_id"], 1)  # judged after the removed device's crash (events are taken in order)
        wait_until(
            lambda: (control["id"], "crash") in alerts(), timeout=15, message="no alert on the control car"
        )
        assert alerts() == [(control["id"], "crash")]

        r = client.put(f"/api/v1/fleet/vehicles/{new_car['vin']}/device", headers=h["technician"],
                       json={"device_id": device})  # fmt: skip
        assert r.status_code == 200, r.text
        crash(device, 2)
        wait_until(
            lambda: (new_car["id"], "crash") in alerts(), timeout=15, message="no alert on the new car"
        )
        assert sorted(alerts()) == sorted([(control["id"], "crash"), (new_car["id"], "crash")])
        assert worker.stats.registry_changes >= 2
    finally:
        pub.stop()
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    with connect(settings.database_url) as conn:
        st = conn.execute(
            "SELECT rentable FROM vehicle_state WHERE vehicle_id = %s", (old_car["id"],)
        ).fetchone()
    assert st["rentable"] is True  # the car the device left stays rentable
