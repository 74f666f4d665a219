"""Orders through the API on the real database: intake, qualification, availability, changes, cancellation."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from fleetcore.db import one
from tests import factories
from tests.test_orders_helpers import create_customer, create_order, future, next_weekday, token


def test_intake_quote_and_validation(staff, conn):
    client, cs, _ = staff
    a = factories.station(conn)
    b = factories.station(conn, lat=48.137, lon=11.575)
    cust = create_customer(client, cs)
    fri = next_weekday(4)
    o = create_order(
        client,
        cs,
        customer_id=cust["id"],
        pickup=a["code"],
        ret=b["code"],
        vehicle_class="compact",
        pickup_at=fri.isoformat(),
        return_at=(fri + dt.timedelta(days=3)).isoformat(),
        channel="phone",
    )
    assert o["status"] == "pending" and o["channel"] == "phone"
    q = o["quote"]
    codes = {ln["code"]: ln["amount"] for ln in q["lines"]}
    # Fri + Sat + Sun: one weekday, two weekend days, one-way to another station
    assert codes == {"rental_weekday": "49.00", "rental_weekend": "78.00", "one_way": "49.00"}
    assert q["net"] == "176.00" and q["vat"] == "33.44" and q["gross"] == "209.44" and q["included_km"] == 600
    assert o["quoted_net"] == "176.00"

    base = {
        "customer_id": cust["id"],
        "vehicle_class": "compact",
        "pickup_station": a["code"],
        "return_station": a["code"],
        "channel": "app",
    }
    bad = [
        ({"pickup_at": future(-1), "return_at": future(24)}, "pickup_at must be in the future"),
        ({"pickup_at": future(30), "return_at": future(24)}, "return_at must be after pickup_at"),
        ({"pickup_at": future(2), "return_at": future(24 * 100)}, "limited to 90 days"),
        ({"pickup_at": "2030-01-01T10:00:00", "return_at": future(24)}, "timezone"),
        ({"pickup_at": future(2), "return_at": future(24), "pickup_station": "NOPE"}, "unknown station"),
        ({"pickup_at": future(2), "return_at": future(24), "customer_id": 999999}, "no customer"),
        ({"pickup_at": future(2), "return_at": future(24), "channel": "fax"}, "channel"),
        ({"pickup_at": future(2), "return_at": future(24), "vehicle_class": "tank"}, "vehicle_class"),
    ]
    for over, msg in bad:
        r = client.post("/api/v1/orders", json={**base, **over}, headers=cs)
        assert r.status_code == 422, (over, r.text)
        assert msg in r.json()["error"]["message"] or msg in str(r.json()["error"]["details"]), (msg, r.text)

    listed = client.get(
        "/api/v1/orders", params={"status": "pending", "station": a["code"]}, headers=cs
    ).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == o["id"]
    assert client.get("/api/v1/orders", params={"status": "weird"}, headers=cs).status_code == 422
    assert one(conn.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'order.create'"))["n"] == 1


QUALIFICATION_CASES = [
    (
        {"date_of_birth": (dt.date.today() - dt.timedelta(days=365 * 22 + 10)).isoformat()},
        "premium",
        "min_age",
    ),
    ({"licence_expiry": (dt.date.today() + dt.timedelta(days=3)).isoformat()}, "compact", "licence_valid"),
    ({"blacklisted": True, "blacklist_reason": "unpaid damages"}, "compact", "not_blacklisted"),
    ({"licence_number": None}, "compact", "profile_complete"),
    ({"licence_class": "AM"}, "compact", "licence_class"),
]


def test_confirm_names_the_failed_qualification_rule(staff, conn):
    client, cs, _ = staff
    s = factories.station(conn)
    for cls in ("compact", "premium"):
        factories.vehicle(conn, station_code=s["code"], vehicle_class=cls)
    for over, vehicle_class, rule in QUALIFICATION_CASES:
        cust = create_customer(client, cs, **over)
        o = create_order(
            client,
            cs,
            customer_id=cust["id"],
            pickup=s["code"],
            vehicle_class=vehicle_class,
            pickup_at=future(24),
            return_at=future(24 * 6),
        )
        r = client.post(f"/api/v1/orders/{o['id']}/confirm", headers=cs)
        assert r.status_code == 422, (rule, r.text)
        err = r.json()["error"]
        assert err["details"]["rule"] == rule and rule in err["message"], (rule, err)
        assert client.get(f"/api/v1/orders/{o['id']}", headers=cs).json()["status"] == "pending"
    assert one(conn.execute("SELECT count(*) AS n FROM vehicle_assignments"))["n"] == 0


def test_22_year_old_may_rent_compact_but_not_premium(staff, conn):
    client, cs, _ = staff
    s = factories.station(conn)
    factories.vehicle(conn, station_code=s["code"], vehicle_class="compact")
    cust = create_customer(
        client, cs, date_of_birth=(dt.date.today() - dt.timedelta(days=365 * 22 + 10)).isoformat()
    )
    o = create_order(client, cs, customer_id=cust["id"], pickup=s["code"], vehicle_class="compact")
    r = client.post(f"/api/v1/orders/{o['id']}/confirm", headers=cs)
    assert r.status_code == 200 and r.json()["status"] == "confirmed" and r.json()["reserved_vehicle_id"]


def test_availability_409_and_db_exclusion_constraint(staff, conn):
    client, cs, _ = staff
    s = factories.station(conn)
    v = factories.vehicle(conn, station_code=s["code"], vehicle_class="suv")
    factories.vehicle(
        conn, station_code=s["code"], vehicle_class="suv", status="out_of_service"
    )  # not bookable
    cust = create_customer(client, cs)
    o1 = create_order(
        client,
        cs,
        customer_id=cust["id"],
        pickup=s["code"],
        vehicle_class="suv",
        pickup_at=future(24),
        return_at=future(72),
    )
    o2 = create_order(
        client,
        cs,
        customer_id=cust["id"],
        pickup=s["code"],
        vehicle_class="suv",
        pickup_at=future(48),
        return_at=future(96),
    )
    o3 = create_order(
        client,
        cs,
        customer_id=cust["id"],
        pickup=s["code"],
        vehicle_class="suv",
        pickup_at=future(74),
        return_at=future(120),
    )  # after o1 + turnaround
    assert client.post(f"/api/v1/orders/{o1['id']}/confirm", headers=cs).status_code == 200
    r = client.post(f"/api/v1/orders/{o2['id']}/confirm", headers=cs)
    assert r.status_code == 409 and r.json()["error"]["details"]["rule"] == "availability"
    assert client.post(f"/api/v1/orders/{o3['id']}/confirm", headers=cs).status_code == 200
    assert (
        client.post(f"/api/v1/orders/{o1['id']}/confirm", headers=cs).status_code == 409
    )  # not pending any more

    # The database itself refuses an overlapping hold, whoever writes it.
    with pytest.raises(psycopg.errors.ExclusionViolation):
        conn.execute(
            "INSERT INTO vehicle_assignments (order_id, vehicle_id, period) VALUES (%s, %s, tstzrange(now() + "
            "interval '30 hours', now() + interval '31 hours'))",
            (o2["id"], v["id"]),
        )


def test_patch_reprices_rereserves_and_keeps_history(staff, conn):
    client, cs, _ = staff
    s = factories.station(conn)
    other = factories.station(conn, lat=53.55, lon=9.99)
    factories.vehicle(conn, station_code=s["code"], vehicle_class="compact")
    factories.vehicle(conn, station_code=s["code"], vehicle_class="premium")
    cust = create_customer(client, cs)
    mon = next_weekday(0)
    o = create_order(
        client,
        cs,
        customer_id=cust["id"],
        pickup=s["code"],
        vehicle_class="compact",
        pickup_at=mon.isoformat(),
        return_at=(mon + dt.timedelta(days=2)).isoformat(),
    )
    assert o["quoted_net"] == "98.00"
    assert client.post(f"/api/v1/orders/{o['id']}/confirm", headers=cs).status_code == 200

    r = client.patch(
        f"/api/v1/orders/{o['id']}",
        headers=cs,
        json={
            "vehicle_class": "premium",
            "return_at": (mon + dt.timedelta(days=3)).isoformat(),
            "return_station": other["code"],
        },
    )
    assert r.status_code == 200, r.text
    after = r.json()
    # 3 weekday days × 119 + one-way 99
    assert after["quoted_net"] == "456.00" and after["status"] == "confirmed"
    premium_id = one(
        conn.execute("SELECT id FROM vehicles WHERE class = 'premium' AND home_station_id = %s", (s["id"],))
    )["id"]
    assert after["reserved_vehicle_id"] == premium_id
    live = one(
        conn.execute(
            "SELECT count(*) AS n FROM vehicle_assignments WHERE order_id = %s AND released_at IS NULL",
            (o["id"],),
        )
    )["n"]
    assert live == 1

    # a change that cannot be served (no van there) is refused and leaves the order as it was
    r = client.patch(f"/api/v1/orders/{o['id']}", headers=cs, json={"vehicle_class": "van"})
    assert r.status_code == 409
    assert client.get(f"/api/v1/orders/{o['id']}", headers=cs).json()["vehicle_class"] == "premium"
    r = client.patch(f"/api/v1/orders/{o['id']}", headers=cs, json={"pickup_at": future(-2)})
    assert r.status_code == 422

    hist = client.get(f"/api/v1/orders/{o['id']}/history", headers=cs).json()
    assert [h["action"] for h in hist] == ["create", "confirm", "update"]
    upd = hist[2]
    assert upd["before"]["vehicle_class"] == "compact" and upd["after"]["vehicle_class"] == "premium"
    assert upd["before"]["quoted_net"] == "98.00" and upd["after"]["quoted_net"] == "456.00"
    assert upd["after"]["return_station"] == other["code"]


def test_cancellation_fees(staff, conn):
    client, cs, _ = staff
    s = factories.station(conn)
    for _ in range(3):
        factories.vehicle(conn, station_code=s["code"], vehicle_class="economy")
    cust = create_customer(client, cs)

    def booked(pickup_h: float) -> dict:
        o = create_order(
            client,
            cs,
            customer_id=cust["id"],
            pickup=s["code"],
            vehicle_class="economy",
            pickup_at=future(pickup_h),
            return_at=future(pickup_h + 48),
        )
        assert client.post(f"/api/v1/orders/{o['id']}/confirm", headers=cs).status_code == 200
        return o

    early = booked(24 * 5)
    r = client.post(f"/api/v1/orders/{early['id']}/cancel", headers=cs, json={"reason": "plans changed"})
    assert r.status_code == 200 and r.json()["cancellation_fee"] == "0.00" and r.json()["invoice"] is None

    late = booked(20)
    first_day = late["quote"]["first_day_price"]
    r = client.post(f"/api/v1/orders/{late['id']}/cancel", headers=cs)
    assert r.status_code == 200
    half = f"{float(first_day) / 2:.2f}"
    assert r.json()["cancellation_fee"] == half
    inv = r.json()["invoice"]
    assert inv["kind"] == "cancellation" and inv["net"] == half and inv["status"] == "open"
    assert client.post(f"/api/v1/orders/{late['id']}/cancel", headers=cs).status_code == 409

    # no-show: only after pickup time; fee = one day
    ns = booked(3)
    r = client.post(f"/api/v1/orders/{ns['id']}/cancel", headers=cs, json={"no_show": True})
    assert r.status_code == 422
    conn.execute("UPDATE orders SET pickup_at = now() - interval '2 hours' WHERE id = %s", (ns["id"],))
    r = client.post(f"/api/v1/orders/{ns['id']}/cancel", headers=cs, json={"no_show": True})
    assert r.status_code == 200 and r.json()["order"]["status"] == "no_show"
    assert r.json()["cancellation_fee"] == ns["quote"]["first_day_price"]
    # cancelled holds are released: the cars can be booked again
    held = one(conn.execute("SELECT count(*) AS n FROM vehicle_assignments WHERE released_at IS NULL"))["n"]
    assert held == 0


def test_order_routes_roles(staff, conn, settings):
    client, cs, disp = staff
    fin = token(client, conn, "finance")
    tech = token(client, conn, "technician")
    assert client.get("/api/v1/orders").status_code == 401
    assert client.get("/api/v1/orders", headers=tech).status_code == 403
    assert client.get("/api/v1/orders", headers=fin).status_code == 200
    body = {
        "customer_id": 1,
        "vehicle_class": "compact",
        "pickup_station": "AA",
        "return_station": "AA",
        "pickup_at": future(2),
        "return_at": future(30),
        "channel": "app",
    }
    assert client.post("/api/v1/orders", json=body, headers=disp).status_code == 403
    assert client.post("/api/v1/orders/1/assign", headers=cs).status_code == 403
    assert client.post("/api/v1/orders/1/pickup", headers=cs).status_code == 403
    assert client.post("/api/v1/orders/1/confirm", headers=disp).status_code == 403
    assert client.post("/api/v1/orders/999/confirm", headers=cs).status_code == 404
    assert client.get("/api/v1/rates", headers=tech).status_code == 200
    assert client.put("/api/v1/rates/compact", headers=cs, json={}).status_code == 403


def test_no_show_sweep_releases_the_car_and_charges_one_day(staff, conn):
    from backoffice.orders.scheduled import sweep_no_shows

    client, cs, _ = staff
    s = factories.station(conn)
    factories.vehicle(conn, station_code=s["code"], vehicle_class="compact")
    factories.vehicle(conn, station_code=s["code"], vehicle_class="compact")
    cust = create_customer(client, cs)
    late = create_order(
        client, cs, customer_id=cust["id"], pickup=s["code"], pickup_at=future(1), return_at=future(30)
    )
    fresh = create_order(
        client, cs, customer_id=cust["id"], pickup=s["code"], pickup_at=future(1), return_at=future(30)
    )
    for o in (late, fresh):
        assert client.post(f"/api/v1/orders/{o['id']}/confirm", headers=cs).status_code == 200
    conn.execute("UPDATE orders SET pickup_at = now() - interval '4 hours' WHERE id = %s", (late["id"],))
    conn.execute("UPDATE orders SET pickup_at = now() - interval '1 hour' WHERE id = %s", (fresh["id"],))
    assert sweep_no_shows(conn) == [late["id"]]
    assert sweep_no_shows(conn) == []  # idempotent
    o = client.get(f"/api/v1/orders/{late['id']}", headers=cs).json()
    assert o["status"] == "no_show" and o["cancellation_fee"] == late["quote"]["first_day_price"]
    assert client.get(f"/api/v1/orders/{fresh['id']}", headers=cs).json()["status"] == "confirmed"
    held = conn.execute(
        "SELECT count(*) AS n FROM vehicle_assignments WHERE order_id = %s AND released_at IS NULL",
        (late["id"],),
    ).fetchone()
    assert held["n"] == 0
    a = conn.execute("SELECT actor FROM audit_log WHERE action = 'order.no_show'").fetchone()
    assert a["actor"] == "system"
