"""Dispatch: the right vehicle (healthy, fuelled, not due for service, least worn), the nearest-station proposal."""

from __future__ import annotations

import pytest

from fleetcore.db import one
from fleetcore.geo import haversine_km
from tests import factories
from tests.test_orders_helpers import create_customer, create_order, future, set_state


def _car(conn, station: dict, *, odo: float | None, fuel: float | None, cls: str = "compact", **kw) -> dict:
    v = factories.vehicle(conn, station_code=station["code"], vehicle_class=cls)
    if odo is not None:
        set_state(conn, v["id"], odometer_km=odo, fuel_pct=fuel, **kw)
    return v


def _critical_alert(conn, vehicle_id: int, kind: str = "overheating") -> None:
    conn.execute(
        "INSERT INTO alerts (vehicle_id, kind, severity, message, opened_at, last_seen_at) "
        "VALUES (%s, %s, 'critical', 'test', now(), now())",
        (vehicle_id, kind),
    )


def _confirmed(client, cs, customer_id: int, station: dict, **kw) -> dict:
    o = create_order(client, cs, customer_id=customer_id, pickup=station["code"], **kw)
    r = client.post(f"/api/v1/orders/{o['id']}/confirm", headers=cs)
    assert r.status_code == 200, r.text
    return r.json()


def test_haversine_berlin_munich():
    # Berlin Alexanderplatz → Munich Marienplatz ≈ 504 km great-circle.
    assert haversine_km(52.5219, 13.4132, 48.1374, 11.5755) == pytest.approx(504, abs=3)


def test_assign_picks_healthy_fuelled_least_worn_vehicle(staff, conn):
    client, cs, disp = staff
    s = factories.station(conn)
    booked = _car(conn, s, odo=500, fuel=90)  # held by another order for the same period
    low_fuel = _car(conn, s, odo=1000, fuel=10)  # below 25 %
    alerting = _car(conn, s, odo=2000, fuel=90)
    _critical_alert(conn, alerting["id"])
    silent = _car(conn, s, odo=None, fuel=None)  # never reported odometer/fuel
    service_due = _car(conn, s, odo=14_900, fuel=90)  # 15,000 km service falls inside the rental
    worn = _car(conn, s, odo=8000, fuel=70)
    best = _car(conn, s, odo=6000, fuel=60)
    _car(conn, s, odo=10, fuel=90, cls="economy")  # other class
    cust = create_customer(client, cs)
    pickup, ret = future(24), future(72)
    _confirmed(client, cs, cust["id"], s, pickup_at=pickup, return_at=ret)  # takes `booked` (lowest odometer)
    o = _confirmed(client, cs, cust["id"], s, pickup_at=pickup, return_at=ret)
    assert o["reserved_vehicle_id"] == low_fuel["id"]  # confirmation holds capacity; health is dispatch's job

    r = client.post(f"/api/v1/orders/{o['id']}/assign", headers=disp)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "assigned" and out["vehicle"]["vin"] == best["vin"]
    assert out["order"]["status"] == "assigned" and out["order"]["vin"] == best["vin"]
    reasons = {x["vin"]: " ".join(x["reasons"]) for x in out["rejected"]}
    assert "overlapping" in reasons[booked["vin"]]
    assert "fuel 10 %" in reasons[low_fuel["vin"]]
    assert "critical alert" in reasons[alerting["vin"]]
    assert "no telemetry" in reasons[silent["vin"]]
    assert "service" in reasons[service_due["vin"]]
    assert worn["vin"] not in reasons
    live = conn.execute(
        "SELECT vehicle_id FROM vehicle_assignments WHERE order_id = %s AND released_at IS NULL", (o["id"],)
    ).fetchone()
    assert live["vehicle_id"] == best["id"]
    assert (
        one(conn.execute("SELECT status FROM vehicles WHERE id = %s", (best["id"],)))["status"] == "reserved"
    )
    assert one(conn.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'order.assign'"))["n"] == 1

    # a named vehicle that is not fit is refused with the reason
    r = client.post(f"/api/v1/orders/{o['id']}/assign", headers=disp, json={"vin": alerting["vin"]})
    assert r.status_code == 409 and "critical alert" in r.json()["error"]["message"]


def test_proposal_from_nearest_station_that_can_spare_and_accept(staff, conn):
    client, cs, disp = staff
    home = factories.station(conn, lat=52.5200, lon=13.4050)  # Berlin Mitte
    near_busy = factories.station(conn, lat=52.4500, lon=13.3800)  # ~8 km, its car is booked later
    near = factories.station(conn, lat=52.3900, lon=13.0650)  # Potsdam, ~27 km
    far = factories.station(conn, lat=51.3397, lon=12.3731)  # Leipzig, ~150 km
    broken = _car(conn, home, odo=3000, fuel=80)
    _critical_alert(conn, broken["id"])
    busy = _car(conn, near_busy, odo=100, fuel=90)
    spare = _car(conn, near, odo=9000, fuel=80)
    _car(conn, far, odo=50, fuel=95)
    cust = create_customer(client, cs)
    # near_busy's car has its own booking next month: that station cannot spare it
    _confirmed(client, cs, cust["id"], near_busy, pickup_at=future(24 * 30), return_at=future(24 * 32))
    o = _confirmed(client, cs, cust["id"], home, pickup_at=future(5), return_at=future(53))
    assert o["reserved_vehicle_id"] == broken["id"]

    r = client.post(f"/api/v1/orders/{o['id']}/assign", headers=disp)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "proposal"
    p = out["proposal"]
    assert p["from_station"] == near["code"] and p["vin"] == spare["vin"] and p["to_station"] == home["code"]
    assert p["distance_km"] == pytest.approx(haversine_km(52.52, 13.405, 52.39, 13.065), abs=0.1)
    assert busy["vin"] != p["vin"]
    # nothing changed yet
    assert client.get(f"/api/v1/orders/{o['id']}", headers=disp).json()["status"] == "confirmed"

    # without accept_transfer the named vehicle from elsewhere is refused; with it, it moves and is assigned
    r = client.post(f"/api/v1/orders/{o['id']}/assign", headers=disp, json={"vin": spare["vin"]})
    assert r.status_code == 409 and "accept_transfer" in r.json()["error"]["message"]
    r = client.post(f"/api/v1/orders/{o['id']}/assign", headers=disp, json=out["accept"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "assigned" and r.json()["vehicle"]["vin"] == spare["vin"]
    assert r.json()["transfer"]["from_station"] == near["code"]
    moved = conn.execute(
        "SELECT home_station_id, status FROM vehicles WHERE id = %s", (spare["id"],)
    ).fetchone()
    assert moved["home_station_id"] == home["id"] and moved["status"] == "reserved"
    t = conn.execute("SELECT * FROM vehicle_transfers WHERE order_id = %s", (o["id"],)).fetchone()
    assert t["vehicle_id"] == spare["id"] and t["from_station_id"] == near["id"]


def test_no_vehicle_anywhere_is_409(staff, conn):
    client, cs, disp = staff
    s = factories.station(conn)
    v = _car(conn, s, odo=1000, fuel=5)
    cust = create_customer(client, cs)
    o = _confirmed(client, cs, cust["id"], s)
    r = client.post(f"/api/v1/orders/{o['id']}/assign", headers=disp)
    assert r.status_code == 409
    assert r.json()["error"]["details"]["rejected"][0]["vin"] == v["vin"]


def test_pickup_needs_telemetry_state(staff, conn):
    client, cs, disp = staff
    s = factories.station(conn)
    v = _car(conn, s, odo=1000, fuel=80)
    cust = create_customer(client, cs)
    o = _confirmed(client, cs, cust["id"], s)
    assert client.post(f"/api/v1/orders/{o['id']}/pickup", headers=disp).status_code == 409  # not assigned
    assert client.post(f"/api/v1/orders/{o['id']}/assign", headers=disp).status_code == 200
    conn.execute(
        "UPDATE vehicle_state SET ts = NULL, odometer_km = NULL, fuel_pct = NULL WHERE vehicle_id = %s",
        (v["id"],),
    )
    r = client.post(f"/api/v1/orders/{o['id']}/pickup", headers=disp)
    assert r.status_code == 409 and r.json()["error"]["details"]["rule"] == "telemetry_state"
    set_state(conn, v["id"], odometer_km=1234.5, fuel_pct=77.0)
    r = client.post(f"/api/v1/orders/{o['id']}/pickup", headers=disp)
    assert r.status_code == 200
    assert r.json()["pickup_odometer_km"] == 1234.5 and r.json()["pickup_fuel_pct"] == 77.0
    assert one(conn.execute("SELECT status FROM vehicles WHERE id = %s", (v["id"],)))["status"] == "rented"


def test_early_pickup_stretches_the_hold_unless_another_booking_has_the_car(staff, conn):
    client, cs, disp = staff
    s = factories.station(conn)
    v = _car(conn, s, odo=1000, fuel=80)
    cust = create_customer(client, cs)
    first = _confirmed(client, cs, cust["id"], s, pickup_at=future(2), return_at=future(20))
    later = _confirmed(client, cs, cust["id"], s, pickup_at=future(30), return_at=future(50))
    for o in (first, later):
        r = client.post(f"/api/v1/orders/{o['id']}/assign", headers=disp)
        assert r.status_code == 200 and r.json()["vehicle"]["vin"] == v["vin"], r.text
    # The later customer turns up now, 30 h early: the car is held for the first booking until then.
    r = client.post(f"/api/v1/orders/{later['id']}/pickup", headers=disp)
    assert r.status_code == 409 and r.json()["error"]["details"]["rule"] == "early_pickup"
    assert client.get(f"/api/v1/orders/{later['id']}", headers=disp).json()["status"] == "assigned"
    # The first customer may take it 2 h early: the hold now starts at pickup.
    r = client.post(f"/api/v1/orders/{first['id']}/pickup", headers=disp)
    assert r.status_code == 200, r.text
    lo = conn.execute(
        "SELECT lower(period) <= now() AS started FROM vehicle_assignments "
        "WHERE order_id = %s AND released_at IS NULL",
        (first["id"],),
    ).fetchone()
    assert lo["started"]


def test_patch_of_assigned_order_keeps_or_drops_the_dispatched_car(staff, conn):
    client, cs, disp = staff
    s = factories.station(conn)
    v1 = _car(conn, s, odo=1000, fuel=80)
    v2 = _car(conn, s, odo=2000, fuel=80)
    cust = create_customer(client, cs)
    o = _confirmed(client, cs, cust["id"], s, pickup_at=future(5), return_at=future(29))
    assert client.post(f"/api/v1/orders/{o['id']}/assign", headers=disp).json()["vehicle"]["vin"] == v1["vin"]

    # Longer rental, v1 still free: the dispatched car stays.
    r = client.patch(f"/api/v1/orders/{o['id']}", headers=cs, json={"return_at": future(53)})
    assert r.status_code == 200 and r.json()["status"] == "assigned" and r.json()["vin"] == v1["vin"]

    # Another booking later takes v1 (free then, least worn); our order then moves into that period.
    other = _confirmed(client, cs, cust["id"], s, pickup_at=future(100), return_at=future(150))
    assert other["reserved_vehicle_id"] == v1["id"]
    r = client.patch(
        f"/api/v1/orders/{o['id']}", headers=cs, json={"pickup_at": future(110), "return_at": future(130)}
    )
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["status"] == "confirmed" and moved["vehicle_id"] is None  # dispatch again
    assert moved["reserved_vehicle_id"] == v2["id"]
    assert (
        one(conn.execute("SELECT status FROM vehicles WHERE id = %s", (v1["id"],)))["status"] == "available"
    )


def test_pickup_moves_the_car_through_the_fleet_transition_check(staff, conn):
    """Orders change a vehicle's status only through backoffice.vehicles: a car sent to the workshop after it was
    assigned is not handed out (maintenance -> rented is not an allowed transition), and nothing changes."""
    client, cs, disp = staff
    s = factories.station(conn)
    car = _car(conn, s, odo=1000, fuel=80)
    cust = create_customer(client, cs)
    o = _confirmed(client, cs, cust["id"], s, pickup_at=future(0.5), return_at=future(30))
    assert client.post(f"/api/v1/orders/{o['id']}/assign", headers=disp).json()["status"] == "assigned"
    r = client.post(
        f"/api/v1/fleet/vehicles/{car['vin']}/status",
        headers=disp,
        json={"status": "maintenance", "note": "noise"},
    )
    assert r.status_code == 200 and r.json()["status"] == "maintenance"

    r = client.post(f"/api/v1/orders/{o['id']}/pickup", headers=disp)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["details"] == {
        "from": "maintenance",
        "to": "rented",
        "allowed": ["available", "out_of_service", "retired"],
    }
    assert client.get(f"/api/v1/orders/{o['id']}", headers=disp).json()["status"] == "assigned"
    hist = conn.execute(
        "SELECT from_status, status, changed_by FROM vehicle_status_history WHERE vehicle_id = %s ORDER BY id",
        (car["id"],),
    ).fetchall()
    assert [(h["from_status"], h["status"]) for h in hist] == [
        ("available", "reserved"),
        ("reserved", "maintenance"),
    ]

    # back from the workshop, the same order is picked up, and the history names the dispatcher and the order
    client.post(f"/api/v1/fleet/vehicles/{car['vin']}/status", headers=disp, json={"status": "available"})
    r = client.post(f"/api/v1/orders/{o['id']}/pickup", headers=disp)
    assert r.status_code == 200, r.text
    last = conn.execute(
        "SELECT from_status, status, note FROM vehicle_status_history WHERE vehicle_id = %s ORDER BY id DESC LIMIT 1",
        (car["id"],),
    ).fetchone()
    assert last == {"from_status": "available", "status": "rented", "note": f"picked up for order {o['id']}"}
