"""The dispatcher console's API on the real database: the fleet snapshot and position deltas, the vehicle panel
(a renter's contact without identity data), the operations board, search, the page itself, and the WebSocket's
first-message authentication that the page uses."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
from starlette.websockets import WebSocketDisconnect

from backoffice.console.service import POSITIONS_OVERLAP, relocations
from monitor import service as alerts
from tests import factories
from tests.test_orders_helpers import api, create_customer, create_order, set_state, token

BERLIN = ZoneInfo("Europe/Berlin")
# Identity data a dispatcher has no need for (tests.test_orders_helpers.customer_body): never in a console answer.
IDENTITY = ("L01X00T47", "B072RRE2I55", "1985-08-12", "Heidestrasse")


def _place(conn, vehicle_id: int, lat: float, lon: float, *, age_s: float = 0.0) -> None:
    conn.execute(
        """UPDATE vehicle_state SET lat = %s, lon = %s, heading_deg = 90, speed_kmh = 42.4, online = true,
                  ts = now(), updated_at = now() - make_interval(secs => %s) WHERE vehicle_id = %s""",
        (lat, lon, age_s, vehicle_id),
    )


@pytest.fixture
def world(settings, conn):
    """Two stations, three cars with positions, a customer with a confirmed and assigned order for today."""
    a = factories.station(conn, code="CA", lat=52.52, lon=13.40)
    b = factories.station(conn, code="CB", lat=52.50, lon=13.35)
    cars = [factories.vehicle(conn, station_code=code) for code in ("CA", "CA", "CB")]
    for i, car in enumerate(cars):
        conn.execute(
            "INSERT INTO vehicle_state (vehicle_id) VALUES (%s) ON CONFLICT DO NOTHING", (car["id"],)
        )
        set_state(conn, car["id"], odometer_km=12000.0 + i, fuel_pct=80.0)
        _place(conn, car["id"], 52.51 + i / 100, 13.38, age_s=120)
    with api(settings) as client:
        cs, disp = token(client, conn, "customer_service"), token(client, conn, "dispatcher")
        cust = create_customer(client, cs, first_name="Mia", last_name="Vogelsang")
        pickup_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
        order = create_order(
            client, cs, customer_id=cust["id"], pickup="CB", pickup_at=pickup_at.isoformat(),
            return_at=(pickup_at + dt.timedelta(days=2)).isoformat(),
        )  # fmt: skip
        assert client.post(f"/api/v1/orders/{order['id']}/confirm", headers=cs).status_code == 200
        r = client.post(f"/api/v1/orders/{order['id']}/assign", headers=disp, json={"vin": cars[2]["vin"]})
        assert r.status_code == 200, r.text
        yield {
            "client": client, "disp": disp, "cs": cs, "stations": (a, b), "cars": cars, "order": order,
            "customer": cust, "day": pickup_at.astimezone(BERLIN).date(),
        }  # fmt: skip


def test_fleet_snapshot_then_only_what_changed(world, conn):
    client, disp, cars = world["client"], world["disp"], world["cars"]
    conn.execute(
        "UPDATE vehicles SET updated_at = now() - interval '1 minute'"
    )  # the fixture's changes are old
    r = client.get("/api/v1/console/fleet", headers=disp)
    assert r.status_code == 200, r.text
    snap = r.json()
    mine = {v["vin"]: v for v in snap["vehicles"]}
    assert set(mine) == {c["vin"] for c in cars}
    v0 = mine[cars[0]["vin"]]
    assert (v0["lat"], v0["lon"], v0["heading"], v0["speed"], v0["online"]) == (52.51, 13.38, 90, 42, True)
    assert mine[cars[2]["vin"]]["status"] == "reserved"  # held for today's order
    assert {s["code"] for s in snap["stations"]} == {"CA", "CB"}
    assert {g["code"] for g in snap["geofences"]} == {"CA", "CB"}  # default station circles
    assert snap["geofences"][0]["geometry"]["type"] == "Polygon"

    # Nothing moved since the cursor: an empty delta (the rows are older than cursor - overlap).
    delta = client.get("/api/v1/console/positions", params={"since": snap["cursor"]}, headers=disp).json()
    assert delta["id"] == [] and delta["status"] == []
    # One car moves, another is taken to the workshop: exactly those two come back.
    _place(conn, cars[1]["id"], 52.6, 13.5)
    r = client.post(
        f"/api/v1/fleet/vehicles/{cars[0]['vin']}/status", headers=disp, json={"status": "maintenance"}
    )
    assert r.status_code == 200, r.text
    delta = client.get("/api/v1/console/positions", params={"since": delta["cursor"]}, headers=disp).json()
    assert delta["id"] == [cars[1]["id"]]
    assert (delta["lat"], delta["lon"], delta["speed"]) == ([52.6], [13.5], [42])
    assert [(s["id"], s["status"]) for s in delta["status"]] == [(cars[0]["id"], "maintenance")]
    # A row whose transaction started just before the cursor but committed after it is sent again, not lost.
    _place(conn, cars[2]["id"], 52.7, 13.6, age_s=POSITIONS_OVERLAP.total_seconds() / 2)
    delta = client.get("/api/v1/console/positions", params={"since": delta["cursor"]}, headers=disp).json()
    assert cars[2]["id"] in delta["id"]

    bad = client.get("/api/v1/console/positions", params={"since": "2026-01-01T00:00:00"}, headers=disp)
    assert bad.status_code == 422 and "UTC offset" in bad.text


def test_vehicle_panel_shows_the_renter_contact_but_no_identity_data(world, conn):
    client, disp, car = world["client"], world["disp"], world["cars"][2]
    conn.execute(
        "UPDATE vehicle_state SET dtc = %s, coolant_c = 96 WHERE vehicle_id = %s", (["P0301"], car["id"])
    )
    alerts.raise_(
        conn, vehicle_id=car["id"], kind="dtc", severity="medium", ts=dt.datetime.now(dt.UTC),
        message="P0301", evidence={"dtc": ["P0301"]},
    )  # fmt: skip
    r = client.get(f"/api/v1/console/vehicles/{car['vin'].lower()}", headers=disp)
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["plate"] == car["plate"] and p["state"]["coolant_c"] == 96 and p["state"]["online"] is True
    assert (
        p["state"]["dtc"][0]["code"] == "P0301" and "misfire" in p["state"]["dtc"][0]["description"].lower()
    )
    assert p["order"]["id"] == world["order"]["id"] and p["order"]["status"] == "assigned"
    assert p["order"]["customer"] == {
        "id": world["customer"]["id"], "name": "Mia Vogelsang", "phone": "+49 30 1234567", "email": None,
    }  # fmt: skip
    assert [a["kind"] for a in p["alerts"]] == ["dtc"]
    assert p["service"]["next_service_km"] > 0
    for secret in IDENTITY:
        assert secret not in r.text
    assert client.get(f"/api/v1/console/vehicles/{factories.vin()}", headers=disp).status_code == 404


def test_operations_board(world, conn):
    client, disp, cars = world["client"], world["disp"], world["cars"]
    crash = alerts.raise_(
        conn, vehicle_id=cars[1]["id"], kind="crash", severity="critical", ts=dt.datetime.now(dt.UTC),
        message="crash 4.1 g",
    )[0]  # fmt: skip
    r = client.get("/api/v1/console/board", params={"day": world["day"].isoformat()}, headers=disp)
    assert r.status_code == 200, r.text
    board = r.json()
    assert board["timezone"] == "Europe/Berlin"
    by = {s["code"]: s for s in board["stations"]}
    # CB: one pickup today (the assigned car is reserved, so none available) -> short by one.
    assert [p["id"] for p in by["CB"]["pickups"]] == [world["order"]["id"]]
    assert by["CB"]["pickups"][0]["customer"] == "Mia Vogelsang" and by["CB"]["pickups_open"] == 1
    assert by["CB"]["available"] == 0 and by["CB"]["balance"] == -1
    # CA: two available cars, but the crashed one is blocked: one spare, which goes to CB.
    assert by["CA"]["available"] == 1 and by["CA"]["balance"] == 1
    assert board["relocations"] == [
        {"from_station": "CA", "to_station": "CB", "vehicles": [cars[0]["plate"]]}
    ]
    assert [(b["plate"], b["reason"], b["detail"]) for b in board["blocked"]] == [
        (cars[1]["plate"], "alert", "crash")
    ]
    for secret in IDENTITY:
        assert secret not in r.text
    alerts.resolve(conn, alert_id=crash["id"], user={"username": "d", "role": "dispatcher"}, note="ok")
    board = client.get("/api/v1/console/board", params={"day": world["day"].isoformat()}, headers=disp).json()
    assert board["blocked"] == []


def test_relocations_never_leave_a_giver_short():
    rows = [
        {"code": "A", "balance": 3}, {"code": "B", "balance": -2}, {"code": "C", "balance": -4},
        {"code": "D", "balance": 1},
    ]  # fmt: skip
    avail = {"A": ["a1", "a2", "a3", "a4"], "B": [], "C": [], "D": ["d1"]}
    moves = relocations(rows, avail)
    sent = {s: sum(len(m["vehicles"]) for m in moves if m["from_station"] == s) for s in "ABCD"}
    got = {s: sum(len(m["vehicles"]) for m in moves if m["to_station"] == s) for s in "ABCD"}
    assert sent == {"A": 3, "B": 0, "C": 0, "D": 1}  # never more than a station's balance
    assert got == {"A": 0, "B": 0, "C": 4, "D": 0}  # the largest deficit first
    plates = [p for m in moves for p in m["vehicles"]]
    assert len(plates) == len(set(plates)) and set(plates) <= {"a1", "a2", "a3", "a4", "d1"}
    assert relocations([{"code": "A", "balance": 2}], {"A": ["x", "y"]}) == []


def test_search_by_plate_vin_and_customer_name(world):
    client, disp, cars = world["client"], world["disp"], world["cars"]
    plate = cars[0]["plate"]
    found = client.get("/api/v1/console/search", params={"q": plate.replace("-", "").lower()}, headers=disp)
    assert [v["plate"] for v in found.json()["vehicles"]] == [plate]
    found = client.get("/api/v1/console/search", params={"q": cars[1]["vin"][-8:]}, headers=disp).json()
    assert [v["vin"] for v in found["vehicles"]] == [cars[1]["vin"]]
    r = client.get("/api/v1/console/search", params={"q": "vogelsang"}, headers=disp)
    people = r.json()["customers"]
    assert [(c["name"], c["order_id"], c["plate"]) for c in people] == [
        ("Mia Vogelsang", world["order"]["id"], cars[2]["plate"])
    ]
    for secret in IDENTITY:
        assert secret not in r.text
    assert client.get("/api/v1/console/search", params={"q": "x"}, headers=disp).status_code == 422


def test_console_is_for_dispatchers(world, conn):
    client = world["client"]
    assert client.get("/api/v1/console/fleet").status_code == 401
    assert client.get("/api/v1/console/fleet", headers=world["cs"]).status_code == 403
    assert client.get("/api/v1/console/fleet", headers=token(client, conn, "admin")).status_code == 200


def test_the_page_is_served_with_its_assets_and_a_strict_csp(settings):
    with api(settings) as client:
        r = client.get("/console/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-cache"
        assert "http://" not in r.text and "https://" not in r.text  # nothing from another origin
        for asset in ("console.js", "console.css"):
            assert f"assets/{asset}?v=" in r.text
            a = client.get(f"/console/assets/{asset}?v=1")
            assert a.status_code == 200 and "immutable" in a.headers["cache-control"]
        assert client.get("/console/city.geojson").json()["type"] == "FeatureCollection"


def test_stream_authenticates_by_first_message(world, conn):
    client, disp = world["client"], world["disp"]
    jwt = disp["Authorization"].split()[1]
    with client.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "auth", "token": jwt}))
        hello = json.loads(ws.receive_text())
        assert hello["type"] == "hello" and hello["user"].startswith("dispatcher-")
    for first in ("not json", json.dumps({"type": "auth", "token": "garbage"}), json.dumps({"token": jwt})):
        with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect("/api/v1/stream") as ws:
            ws.send_text(first)
            ws.receive_text()
        assert exc.value.code == 4401, first
    cs_jwt = world["cs"]["Authorization"].split()[1]
    with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "auth", "token": cs_jwt}))
        ws.receive_text()
    assert exc.value.code == 4403
