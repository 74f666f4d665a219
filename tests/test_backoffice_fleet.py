"""Fleet API: stations, vehicles, status transitions, devices, procurement, maintenance, service plan, audit."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from backoffice.auth.security import create_access_token
from backoffice.maintenance import service as maintenance
from backoffice.vehicles import service as vehicles
from fleetapp.api import create_app
from fleetcore.db import connect, one
from tests import factories

TECHNICIAN = {"username": "tech.tester", "role": "technician"}

ROLES = ("admin", "dispatcher", "customer_service", "finance", "hr", "technician")


_HASH: list[str] = []


def fast_user(conn, role: str) -> dict:
    """A staff user with a password hash computed once per session (Argon2 is slow on purpose)."""
    import uuid

    from backoffice.auth.security import hash_password

    if not _HASH:
        _HASH.append(hash_password("correct-horse-9"))
    return conn.execute(
        """INSERT INTO staff_users (username, role, department, password_hash)
           VALUES (%s, %s, 'operations', %s) RETURNING *""",
        (f"{role}-{uuid.uuid4().hex[:6]}", role, _HASH[0]),
    ).fetchone()


class Api:
    """A TestClient plus a bearer header per role and direct database access."""

    def __init__(self, client: TestClient, conn, headers: dict[str, dict]) -> None:
        self.client, self.conn, self.h = client, conn, headers

    def call(self, method: str, path: str, role: str = "admin", **kw):
        return self.client.request(method, "/api/v1/fleet" + path, headers=self.h[role], **kw)

    def audit(self, action: str) -> list[dict]:
        return self.conn.execute(
            "SELECT * FROM audit_log WHERE action = %s ORDER BY id", (action,)
        ).fetchall()


@pytest.fixture
def api(settings, db_url):
    with connect(db_url, autocommit=True) as conn:
        headers = {}
        for role in ROLES:
            u = fast_user(conn, role)
            token = create_access_token(
                subject=u["username"], role=role, secret=settings.secret_key, minutes=5
            )
            headers[role] = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            yield Api(client, conn, headers)


def _error(r) -> dict:
    body = r.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "details"} <= set(body["error"])
    return body["error"]


def _vehicle_body(station: str, **over) -> dict:
    body = {
        "vin": factories.vin(),
        "plate": "B-FL 100",
        "make": "Skoda",
        "model": "Octavia",
        "year": 2024,
        "class": "midsize",
        "station": station,
    }
    body.update(over)
    return body


# ---- stations ------------------------------------------------------------------------------------------


def test_station_crud_with_audit(api):
    r = api.call(
        "POST", "/stations", json={"code": "ber-hbf", "name": "Berlin Hbf", "lat": 52.525, "lon": 13.369}
    )
    assert r.status_code == 201, r.text
    assert r.json()["code"] == "BER-HBF"
    assert api.call("GET", "/stations/ber-hbf", role="customer_service").json()["name"] == "Berlin Hbf"
    r = api.call("PATCH", "/stations/BER-HBF", json={"name": "Berlin Central"})
    assert r.status_code == 200 and r.json()["name"] == "Berlin Central"
    (upd,) = api.audit("station.update")
    assert upd["before"]["name"] == "Berlin Hbf" and upd["after"]["name"] == "Berlin Central"
    assert upd["actor"].startswith("admin-") and upd["entity_id"] == "BER-HBF"
    listed = api.call("GET", "/stations", role="technician", params={"q": "central"}).json()
    assert [s["code"] for s in listed] == ["BER-HBF"]
    assert api.call("DELETE", "/stations/BER-HBF").status_code == 204
    assert api.call("GET", "/stations/BER-HBF").status_code == 404
    assert len(api.audit("station.delete")) == 1


def test_station_bad_input_and_conflicts(api):
    st = factories.station(api.conn)
    r = api.call("POST", "/stations", json={"code": st["code"], "name": "x", "lat": 1, "lon": 1})
    assert r.status_code == 409 and "already exists" in _error(r)["message"]
    r = api.call("POST", "/stations", json={"code": "OK1", "name": "x", "lat": 91, "lon": 1})
    assert r.status_code == 422 and "lat" in _error(r)["message"]
    r = api.call("POST", "/stations", json={"code": "no spaces", "name": "x", "lat": 1, "lon": 1})
    assert r.status_code == 422
    factories.vehicle(api.conn, station_code=st["code"])
    r = api.call("DELETE", f"/stations/{st['code']}")
    assert r.status_code == 409 and "still referenced" in _error(r)["message"]
    assert (
        api.call(
            "POST", "/stations", role="dispatcher", json={"code": "X1", "name": "x", "lat": 1, "lon": 1}
        ).status_code
        == 403
    )


# ---- vehicles -------------------------------------------------------------------------------------------


def test_create_vehicle_validates_input(api):
    st = factories.station(api.conn)["code"]
    good = _vehicle_body(st, device_id="dev-fleet-1")
    r = api.call("POST", "/vehicles", json=good)
    assert r.status_code == 201, r.text
    v = r.json()
    assert v["station"] == st and v["device_id"] == "dev-fleet-1" and v["status"] == "available"
    assert api.audit("vehicle.create")[0]["after"]["vin"] == good["vin"]

    bad_vin = good["vin"][:8] + ("1" if good["vin"][8] != "1" else "2") + good["vin"][9:]
    cases = [
        (_vehicle_body(st, vin=bad_vin, plate="P1"), 422, "check digit"),
        (_vehicle_body(st, vin="SHORT", plate="P2"), 422, "17 characters"),
        (_vehicle_body("NOPE", plate="P3"), 422, "unknown station 'NOPE'"),
        (_vehicle_body(st, plate="P4", **{"class": "spaceship"}), 422, "class"),
        (_vehicle_body(st, plate="P5", status="retired"), 422, "status"),
        (_vehicle_body(st, plate="P6", year=1900), 422, "year"),
        (_vehicle_body(st, plate="B-FL 100"), 409, "plate 'B-FL 100' is already registered"),
        (_vehicle_body(st, vin=good["vin"], plate="P7"), 409, "already exists"),
        (_vehicle_body(st, plate="P8", device_id="dev-fleet-1"), 409, "dev-fleet-1"),
        (_vehicle_body(st, plate="P9", extra="field"), 422, "extra"),
    ]
    for body, status, text in cases:
        r = api.call("POST", "/vehicles", json=body)
        assert r.status_code == status, (body, r.text)
        assert text in _error(r)["message"] or text in str(_error(r)["details"]), (text, r.text)
    # nothing half-created by the failed attempts
    assert one(api.conn.execute("SELECT count(*) AS n FROM vehicles"))["n"] == 1


def test_get_and_update_vehicle(api):
    v = factories.vehicle(api.conn)
    other = factories.vehicle(api.conn)
    st2 = factories.station(api.conn)["code"]
    r = api.call("GET", f"/vehicles/{v['vin'].lower()}", role="customer_service")
    assert r.status_code == 200 and r.json()["service"]["service_interval_km"] == 15000
    r = api.call(
        "PATCH", f"/vehicles/{v['vin']}", role="dispatcher", json={"station": st2, "plate": "b-new 1"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["station"] == st2 and r.json()["plate"] == "B-NEW 1"
    (a,) = api.audit("vehicle.update")
    assert a["before"]["station"] == v["station"] and a["after"]["station"] == st2
    r = api.call("PATCH", f"/vehicles/{v['vin']}", json={"plate": other["plate"]})
    assert r.status_code == 409 and "already registered" in _error(r)["message"]
    r = api.call("PATCH", f"/vehicles/{v['vin']}", json={"station": "NOWHERE"})
    assert r.status_code == 422 and "unknown station" in _error(r)["message"]
    assert api.call("PATCH", f"/vehicles/{factories.vin()}", json={"make": "x"}).status_code == 404
    assert (
        api.call("PATCH", f"/vehicles/{v['vin']}", role="technician", json={"make": "x"}).status_code == 403
    )


# ---- status ---------------------------------------------------------------------------------------------


def test_status_transitions_history_and_roles(api):
    v = factories.vehicle(api.conn)
    path = f"/vehicles/{v['vin']}/status"
    assert api.call("POST", path, role="dispatcher", json={"status": "reserved"}).status_code == 200
    assert api.call("POST", path, role="dispatcher", json={"status": "rented"}).status_code == 200
    r = api.call("POST", path, role="dispatcher", json={"status": "reserved"})
    assert r.status_code == 409 and "cannot go from rented to reserved" in _error(r)["message"]
    r = api.call("POST", path, role="technician", json={"status": "rented"})
    assert r.status_code == 403
    r = api.call("POST", path, role="technician", json={"status": "available"})
    assert r.status_code == 403 and "only from" in _error(r)["message"]
    assert (
        api.call(
            "POST", path, role="dispatcher", json={"status": "maintenance", "note": "brakes"}
        ).status_code
        == 200
    )
    assert api.call("POST", path, role="technician", json={"status": "available"}).status_code == 200
    r = api.call("POST", path, role="dispatcher", json={"status": "retired"})
    assert r.status_code == 403
    r = api.call("POST", path, role="dispatcher", json={"status": "flying"})
    assert r.status_code == 422 and "status" in _error(r)["message"]
    assert api.call("POST", path, json={"status": "retired"}).status_code == 200
    r = api.call("POST", path, json={"status": "available"})
    assert r.status_code == 409 and "retirement is final" in _error(r)["message"]

    hist = api.call("GET", f"/vehicles/{v['vin']}/status-history", role="finance").json()
    assert (
        [(h["from_status"], h["status"]) for h in hist]
        == [
            ("available", "retired"),
            ("maintenance", "available"),
            ("rented", "maintenance"),
            ("reserved", "rented"),
            ("available", "reserved"),
            (None, "available"),  # registered by the factory? no: factory inserts no history row
        ][: len(hist)]
    )
    assert [h["status"] for h in hist[:5]] == ["retired", "available", "maintenance", "rented", "reserved"]
    assert hist[2]["note"] == "brakes" and hist[2]["changed_by"].startswith("dispatcher-")
    assert len(api.audit("vehicle.status")) == 5
    page = api.call("GET", f"/vehicles/{v['vin']}/status-history", params={"limit": 2, "offset": 1}).json()
    assert [h["status"] for h in page] == ["available", "maintenance"]
    # a retired vehicle's record is closed
    assert api.call("PATCH", f"/vehicles/{v['vin']}", json={"make": "x"}).status_code == 409


def test_status_trigger_records_direct_sql_and_blocks_unretire(conn):
    """Other domains may update vehicles.status in SQL: history is still written, retirement still final."""
    import psycopg

    v = factories.vehicle(conn)
    conn.execute("UPDATE vehicles SET status = 'rented' WHERE id = %s", (v["id"],))
    h = conn.execute("SELECT * FROM vehicle_status_history WHERE vehicle_id = %s", (v["id"],)).fetchall()
    assert [(r["from_status"], r["status"]) for r in h] == [("available", "rented")]
    conn.execute("UPDATE vehicles SET status = 'available' WHERE id = %s", (v["id"],))
    vehicles.change_status(conn, vehicle_id=v["id"], status="retired", actor={"username": "tester"})
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE vehicles SET status = 'available' WHERE id = %s", (v["id"],))


# ---- devices --------------------------------------------------------------------------------------------


def test_device_install_remove_history(api):
    v = factories.vehicle(api.conn, device_id="dev-old")
    other = factories.vehicle(api.conn, device_id="dev-busy")
    path = f"/vehicles/{v['vin']}/device"
    r = api.call("PUT", path, role="technician", json={"device_id": "dev-new", "protocol": "obd"})
    assert r.status_code == 200 and r.json()["device_id"] == "dev-new"
    r = api.call("PUT", path, role="technician", json={"device_id": "dev-busy"})
    assert r.status_code == 409 and other["vin"] in _error(r)["message"]
    r = api.call("PUT", path, role="technician", json={"device_id": "bad id!"})
    assert r.status_code == 422
    assert api.call("PUT", path, role="dispatcher", json={"device_id": "x"}).status_code == 403
    assert api.call("DELETE", path, role="technician").status_code == 200
    r = api.call("DELETE", path, role="technician")
    assert r.status_code == 404 and "no device" in _error(r)["message"]
    hist = api.call("GET", f"/vehicles/{v['vin']}/devices", role="dispatcher").json()
    assert [h["device_id"] for h in hist] == ["dev-new", "dev-old"]
    assert all(h["removed_at"] is not None for h in hist)
    state = api.conn.execute(
        "SELECT device_id FROM vehicle_state WHERE vehicle_id = %s", (v["id"],)
    ).fetchone()
    assert state["device_id"] is None
    (inst,) = api.audit("vehicle.device.install")
    assert inst["before"] == {"device_id": "dev-old"} and inst["after"]["device_id"] == "dev-new"


# ---- procurement ----------------------------------------------------------------------------------------


def test_procurement_plan_order_deliver_creates_vehicle(api):
    st = factories.station(api.conn)["code"]
    body = {
        "supplier": "Autohaus Nord",
        "make": "VW",
        "model": "ID.3",
        "year": 2025,
        "class": "ev",
        "station": st,
        "price": "36990.00",
        "planned_on": "2026-10-01",
    }
    r = api.call("POST", "/procurements", json=body)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert r.json()["status"] == "planned"
    r = api.call("POST", f"/procurements/{pid}/deliver", json={"vin": factories.vin(), "plate": "B-EV 1"})
    assert r.status_code == 409 and "only an ordered one" in _error(r)["message"]
    r = api.call("POST", f"/procurements/{pid}/order", json={"ordered_on": "2026-09-01"})
    assert r.status_code == 422 and "before planned_on" in _error(r)["message"]
    r = api.call(
        "POST", f"/procurements/{pid}/order", json={"ordered_on": "2026-10-05", "expected_on": "2026-11-01"}
    )
    assert r.status_code == 200 and r.json()["status"] == "ordered"
    vin = factories.vin()
    r = api.call(
        "POST",
        f"/procurements/{pid}/deliver",
        json={"vin": vin, "plate": "B-EV 1", "delivered_on": "2026-11-02", "device_id": "dev-ev-1"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "delivered" and out["vin"] == vin and out["vehicle"]["device_id"] == "dev-ev-1"
    v = api.call("GET", f"/vehicles/{vin}").json()
    assert v["class"] == "ev" and v["station"] == st
    assert v["service"]["next_service_at"].startswith("2027-11-02")
    assert api.call("POST", f"/procurements/{pid}/cancel", json={}).status_code == 409
    assert api.call("PATCH", f"/procurements/{pid}", json={"price": "1"}).status_code == 409
    listed = api.call("GET", "/procurements", role="finance", params={"status": "delivered"}).json()
    assert [p["id"] for p in listed] == [pid]
    assert api.call("GET", "/procurements", role="finance", params={"status": "lost"}).status_code == 422
    r = api.call(
        "GET",
        "/procurements",
        role="finance",
        params={"planned_from": "2026-12-01", "planned_to": "2026-01-01"},
    )
    assert r.status_code == 422
    assert api.call("GET", f"/procurements/{pid}", role="dispatcher").status_code == 403
    assert [
        a["action"]
        for a in api.conn.execute(
            "SELECT action FROM audit_log WHERE entity = 'procurements' ORDER BY id"
        ).fetchall()
    ] == ["procurement.create", "procurement.order", "procurement.deliver"]


def test_procurement_bad_input(api):
    st = factories.station(api.conn)["code"]
    base = {
        "supplier": "S",
        "make": "VW",
        "model": "Golf",
        "year": 2025,
        "class": "compact",
        "station": st,
        "price": "20000",
    }
    assert api.call("POST", "/procurements", json={**base, "station": "GONE"}).status_code == 422
    assert api.call("POST", "/procurements", json={**base, "price": "-1"}).status_code == 422
    assert api.call("POST", "/procurements", json={**base, "planned_on": "2026-13-45"}).status_code == 422
    r = api.call(
        "POST", "/procurements", json={**base, "planned_on": "2026-05-01", "expected_on": "2026-04-01"}
    )
    assert r.status_code == 422 and "expected_on" in _error(r)["message"]
    pid = api.call("POST", "/procurements", json=base).json()["id"]
    assert (
        api.call("POST", f"/procurements/{pid}/cancel", json={"reason": "budget"}).json()["status"]
        == "cancelled"
    )
    assert api.call("GET", "/procurements/999999").status_code == 404


# ---- maintenance and service plan ---------------------------------------------------------------------------


def test_maintenance_archive_search_and_close(api):
    v = factories.vehicle(api.conn)
    other = factories.vehicle(api.conn)
    base = f"/vehicles/{v['vin']}/maintenance"
    r = api.call(
        "POST",
        base,
        role="technician",
        json={
            "work_order": "WO-1001",
            "kind": "repair",
            "description": "Front brake pads worn",
            "parts": [
                {"name": "Brake pad set", "part_no": "1K0698151", "qty": 1, "unit_cost": "89.90"},
                {"name": "Brake cleaner", "qty": 2, "unit_cost": "5.05"},
            ],
            "labour_cost": "120",
            "odometer_km": 45210,
            "opened_at": "2026-10-03T08:00:00Z",
        },
    )
    assert r.status_code == 201, r.text
    rec = r.json()
    assert float(rec["parts_cost"]) == pytest.approx(100.0) and float(rec["total_cost"]) == pytest.approx(
        220.0
    )
    api.call(
        "POST",
        base,
        role="technician",
        json={
            "work_order": "WO-1002",
            "kind": "tyres",
            "description": "Winter tyres fitted",
            "opened_at": "2026-11-10T08:00:00Z",
        },
    )
    api.call(
        "POST",
        f"/vehicles/{other['vin']}/maintenance",
        role="technician",
        json={
            "work_order": "WO-2001",
            "description": "Brake fluid change",
            "opened_at": "2026-10-04T08:00:00Z",
        },
    )
    r = api.call("POST", base, role="technician", json={"work_order": "WO-1001", "description": "dup"})
    assert r.status_code == 409
    r = api.call(
        "POST", base, role="technician", json={"work_order": "WO-9", "description": "x", "kind": "magic"}
    )
    assert r.status_code == 422
    r = api.call(
        "POST",
        base,
        role="technician",
        json={"work_order": "WO-9", "description": "x", "opened_at": "2026-10-03T08:00:00"},
    )
    assert r.status_code == 422  # no UTC offset
    assert (
        api.call("POST", base, role="dispatcher", json={"work_order": "WO-9", "description": "x"}).status_code
        == 403
    )

    def search(**params):
        r = api.call("GET", "/maintenance", role="finance", params=params)
        assert r.status_code == 200, r.text
        return [m["work_order"] for m in r.json()]

    assert search(q="brake") == ["WO-2001", "WO-1001"]
    assert search(q="1K0698151") == ["WO-1001"]  # part number inside the parts list
    assert search(vin=v["vin"]) == ["WO-1002", "WO-1001"]
    assert search(vin=v["vin"], q="BRAKE") == ["WO-1001"]
    assert search(**{"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}) == ["WO-1002"]
    assert search(kind="tyres") == ["WO-1002"]
    assert search(limit=1, offset=1) == ["WO-2001"]
    r = api.call("GET", "/maintenance", params={"from": "2026-12-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"})
    assert r.status_code == 422 and "before" in _error(r)["message"]
    assert api.call("GET", "/maintenance", params={"from": "yesterday"}).status_code == 422
    per_vehicle = api.call("GET", base, role="dispatcher", params={"q": "tyres"}).json()
    assert [m["work_order"] for m in per_vehicle] == ["WO-1002"]

    r = api.call("PATCH", f"/maintenance/{rec['id']}", role="technician", json={"labour_cost": "150"})
    assert r.status_code == 200 and float(r.json()["labour_cost"]) == 150
    r = api.call(
        "POST",
        f"/maintenance/{rec['id']}/close",
        role="technician",
        json={"closed_at": "2026-10-01T00:00:00Z"},
    )
    assert r.status_code == 422 and "before opened_at" in _error(r)["message"]
    r = api.call(
        "POST",
        f"/maintenance/{rec['id']}/close",
        role="technician",
        json={"closed_at": "2026-10-04T16:00:00Z"},
    )
    assert r.status_code == 200 and r.json()["closed_by"].startswith("technician-")
    assert (
        api.call(
            "PATCH", f"/maintenance/{rec['id']}", role="technician", json={"labour_cost": "1"}
        ).status_code
        == 409
    )
    assert api.call("POST", f"/maintenance/{rec['id']}/close", role="technician", json={}).status_code == 409
    acts = [
        a["action"]
        for a in api.conn.execute(
            "SELECT action FROM audit_log WHERE entity = 'maintenance_records' ORDER BY id"
        ).fetchall()
    ]
    assert acts == [
        "maintenance.open",
        "maintenance.open",
        "maintenance.open",
        "maintenance.update",
        "maintenance.close",
    ]


def test_service_due_by_distance_and_date(api):
    conn = api.conn
    v = factories.vehicle(conn)
    last = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    conn.execute(
        "UPDATE vehicles SET last_service_at = %s, last_service_odometer_km = 30000 WHERE id = %s",
        (last, v["id"]),
    )
    conn.execute("UPDATE vehicle_state SET odometer_km = 44000 WHERE vehicle_id = %s", (v["id"],))
    soon = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert (
        maintenance.service_due(conn, vehicle_id=v["id"], until=soon) is False
    )  # 44,000 < 45,000; before 2027-06-01
    assert maintenance.service_due(conn, vehicle_id=v["id"], until=soon, odometer_km=45_000) is True
    assert (
        maintenance.service_due(conn, vehicle_id=v["id"], until=dt.datetime(2027, 6, 1, tzinfo=dt.UTC))
        is True
    )
    info = api.call("GET", f"/vehicles/{v['vin']}/service", role="dispatcher").json()
    assert info["next_service_km"] == 45000 and info["km_remaining"] == 1000
    # closing a service work order moves the baseline
    rec = maintenance.create(
        conn,
        vehicle_id=v["id"],
        work_order="WO-S1",
        kind="service",
        description="15k service",
        opened_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        actor=TECHNICIAN,
    )
    maintenance.close(
        conn,
        record_id=rec["id"],
        closed_at=dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
        odometer_km=44100,
        actor=TECHNICIAN,
    )
    assert (
        maintenance.service_due(
            conn, vehicle_id=v["id"], until=dt.datetime(2027, 6, 1, tzinfo=dt.UTC), odometer_km=50_000
        )
        is False
    )
    assert maintenance.service_info(conn, vehicle_id=v["id"])["next_service_km"] == 59100
    # shorter interval per vehicle
    api.call("PATCH", f"/vehicles/{v['vin']}", json={"service_interval_km": 5000})
    assert maintenance.service_due(conn, vehicle_id=v["id"], until=soon, odometer_km=49_100) is True
    r = api.call("PATCH", f"/vehicles/{v['vin']}", json={"service_interval_km": 10})
    assert r.status_code == 422


def test_unknown_vehicle_routes_are_404_not_500(api):
    vin = factories.vin()
    for method, path, role, body in [
        ("GET", f"/vehicles/{vin}", "admin", None),
        ("POST", f"/vehicles/{vin}/status", "dispatcher", {"status": "maintenance"}),
        ("GET", f"/vehicles/{vin}/service", "admin", None),
        ("GET", f"/vehicles/{vin}/maintenance", "technician", None),
        ("GET", "/maintenance?vin=" + vin, "technician", None),
        ("GET", "/maintenance/123456", "technician", None),
        ("PUT", f"/vehicles/{vin}/device", "technician", {"device_id": "d1"}),
    ]:
        r = api.call(method, path, role=role, json=body)
        assert r.status_code == 404, (path, r.text)
        assert _error(r)["code"] == "not_found"


def test_concurrent_status_changes_are_serialised(db_url):
    """Two dispatchers rent out the same car at once: one wins, the other is told it is already rented."""
    import threading

    with connect(db_url, autocommit=True) as conn:
        v = factories.vehicle(conn)
    first = connect(db_url)
    vehicles.change_status(first, vehicle_id=v["id"], status="rented", actor={"username": "first"})
    outcome: dict[str, object] = {}

    def second() -> None:
        with connect(db_url) as conn:
            try:
                vehicles.change_status(
                    conn, vehicle_id=v["id"], status="rented", actor={"username": "second"}
                )
                outcome["ok"] = True
            except Exception as exc:  # noqa: BLE001 - the assertion below names what we expect
                outcome["error"] = exc

    t = threading.Thread(target=second)
    t.start()
    t.join(timeout=1.0)
    assert t.is_alive(), "the second change should wait for the first one's row lock"
    first.commit()
    first.close()
    t.join(timeout=30)
    assert "ok" not in outcome and "already rented" in str(outcome["error"])
    with connect(db_url) as conn:
        hist = conn.execute(
            "SELECT changed_by FROM vehicle_status_history WHERE vehicle_id = %s", (v["id"],)
        ).fetchall()
    assert [h["changed_by"] for h in hist] == ["first"]


def test_text_filters_take_wildcards_literally(api):
    st = factories.station(api.conn, code="PCT", name="100% Station")
    factories.station(api.conn, code="OTHER", name="Plain")
    assert [s["code"] for s in api.call("GET", "/stations", params={"q": "%"}).json()] == [st["code"]]
    assert api.call("GET", "/stations", params={"q": "_"}).json() == []
