"""Return charges for a late return, invoices (void), payments, revenue report and finance roles."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from tests import factories
from tests.test_orders_helpers import api, create_customer, create_order, future, set_state, token


def _active_order(client, conn, cs, disp, station: dict, car: dict) -> dict:
    cust = create_customer(client, cs)
    o = create_order(
        client,
        cs,
        customer_id=cust["id"],
        pickup=station["code"],
        vehicle_class="compact",
        pickup_at=future(1),
        return_at=future(25),
    )
    for path, h in (("confirm", cs), ("assign", disp), ("pickup", disp)):
        r = client.post(f"/api/v1/orders/{o['id']}/{path}", headers=h)
        assert r.status_code == 200, r.text
    return o


def test_late_return_invoice_void_payments_revenue(settings, conn):
    s = factories.station(conn)
    car = factories.vehicle(conn, station_code=s["code"], vehicle_class="compact")
    set_state(conn, car["id"], odometer_km=12_000.0, fuel_pct=50.0)
    with api(settings) as client:
        cs, disp, fin = (token(client, conn, r) for r in ("customer_service", "dispatcher", "finance"))
        o = _active_order(client, conn, cs, disp, s, car)
        # The booked return was 3 h 10 min ago (booking moved back in time; the car is still out).
        conn.execute(
            "UPDATE orders SET pickup_at = now() - interval '1 day 3 hours 10 minutes', "
            "return_at = now() - interval '3 hours 10 minutes' WHERE id = %s",
            (o["id"],),
        )
        set_state(conn, car["id"], odometer_km=12_150.0, fuel_pct=49.0)  # within allowance and fuel tolerance
        r = client.post(f"/api/v1/orders/{o['id']}/return", headers=disp, json={"return_station": s["code"]})
        assert r.status_code == 200, r.text
        inv = r.json()["invoice"]
        lines = {ln["code"]: ln for ln in inv["lines"]}
        assert set(lines) == {"rental_weekday", "late_return"} or set(lines) == {
            "rental_weekend",
            "late_return",
        }
        assert lines["late_return"]["amount"] == "48.00"  # 4 started hours × 12.00 (grace 59 min exceeded)
        assert r.json()["order"]["charges"]["late_hours"] == 4
        assert r.json()["order"]["charges"]["stale_reading"] is False

        # finance roles
        assert client.get(f"/api/v1/finance/invoices/{inv['id']}", headers=cs).status_code == 200
        assert client.get(f"/api/v1/finance/invoices/{inv['id']}", headers=disp).status_code == 403
        pay = {"amount": inv["gross"], "method": "card"}
        assert (
            client.post(f"/api/v1/finance/invoices/{inv['id']}/payments", headers=cs, json=pay).status_code
            == 403
        )
        assert (
            client.post(
                f"/api/v1/finance/invoices/{inv['id']}/payments",
                headers=fin,
                json={"amount": "-5", "method": "card"},
            ).status_code
            == 422
        )
        assert (
            client.post(
                f"/api/v1/finance/invoices/{inv['id']}/payments",
                headers=fin,
                json={"amount": "5", "method": "barter"},
            ).status_code
            == 422
        )
        r = client.post(f"/api/v1/finance/invoices/{inv['id']}/payments", headers=fin, json=pay)
        assert r.status_code == 201 and r.json()["invoice"]["status"] == "paid"
        assert (
            client.post(f"/api/v1/finance/invoices/{inv['id']}/payments", headers=fin, json=pay).status_code
            == 409
        )
        assert (
            client.post(
                f"/api/v1/finance/invoices/{inv['id']}/void", headers=fin, json={"reason": "test"}
            ).status_code
            == 409
        )  # paid: needs a credit note

        # a late cancellation's fee invoice can be voided (goodwill), and then leaves the revenue report
        car2 = factories.vehicle(conn, station_code=s["code"], vehicle_class="compact")
        set_state(conn, car2["id"], odometer_km=100.0, fuel_pct=90.0)
        cust = create_customer(client, cs)
        o2 = create_order(
            client, cs, customer_id=cust["id"], pickup=s["code"], pickup_at=future(10), return_at=future(40)
        )
        assert client.post(f"/api/v1/orders/{o2['id']}/confirm", headers=cs).status_code == 200
        fee_inv = client.post(f"/api/v1/orders/{o2['id']}/cancel", headers=cs).json()["invoice"]
        assert fee_inv and fee_inv["status"] == "open"
        listed = client.get("/api/v1/finance/invoices", headers=fin, params={"status": "open"}).json()
        assert [i["id"] for i in listed["items"]] == [fee_inv["id"]]

        day = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        window = {"from": day.isoformat(), "to": (day + dt.timedelta(days=1)).isoformat()}
        rev = client.get("/api/v1/finance/revenue", headers=fin, params=window).json()
        assert rev["invoices"] == 2
        assert Decimal(rev["gross"]) == Decimal(inv["gross"]) + Decimal(fee_inv["gross"])
        assert Decimal(rev["open_gross"]) == Decimal(fee_inv["gross"])
        assert Decimal(rev["collected"]) == Decimal(inv["gross"]) and rev["payments"] == 1

        r = client.post(
            f"/api/v1/finance/invoices/{fee_inv['id']}/void", headers=fin, json={"reason": "goodwill"}
        )
        assert r.status_code == 200 and r.json()["status"] == "void"
        assert (
            client.post(
                f"/api/v1/finance/invoices/{fee_inv['id']}/void", headers=fin, json={"reason": "again"}
            ).status_code
            == 409
        )
        rev = client.get("/api/v1/finance/revenue", headers=fin, params=window).json()
        assert rev["invoices"] == 1 and Decimal(rev["gross"]) == Decimal(inv["gross"])

        assert (
            client.get(
                "/api/v1/finance/revenue", headers=fin, params={"from": window["to"], "to": window["from"]}
            ).status_code
            == 422
        )
        assert (
            client.get(
                "/api/v1/finance/revenue",
                headers=fin,
                params={"from": "2026-01-01T00:00:00", "to": "2026-02-01T00:00:00"},
            ).status_code
            == 422
        )
        assert client.get("/api/v1/finance/revenue", headers=cs, params=window).status_code == 403
        assert client.get("/api/v1/finance/revenue", params=window).status_code == 401

    actions = [r["action"] for r in conn.execute("SELECT action FROM audit_log ORDER BY id").fetchall()]
    assert "invoice.void" in actions and "payment.create" in actions and "order.complete" in actions


def test_return_refuses_odometer_below_pickup_and_wrong_states(settings, conn):
    s = factories.station(conn)
    car = factories.vehicle(conn, station_code=s["code"], vehicle_class="compact")
    set_state(conn, car["id"], odometer_km=3000.0, fuel_pct=70.0)
    with api(settings) as client:
        cs, disp = token(client, conn, "customer_service"), token(client, conn, "dispatcher")
        o = _active_order(client, conn, cs, disp, s, car)
        assert (
            client.post(f"/api/v1/orders/{o['id']}/pickup", headers=disp).status_code == 409
        )  # already active
        assert client.patch(f"/api/v1/orders/{o['id']}", headers=cs, json={"notes": "x"}).status_code == 409
        assert client.post(f"/api/v1/orders/{o['id']}/cancel", headers=cs).status_code == 409
        r = client.post(f"/api/v1/orders/{o['id']}/return", headers=disp, json={"return_station": "NOWHERE"})
        assert r.status_code == 422
        set_state(conn, car["id"], odometer_km=2500.0, fuel_pct=70.0)  # a swapped or reset device
        r = client.post(f"/api/v1/orders/{o['id']}/return", headers=disp, json={"return_station": s["code"]})
        assert r.status_code == 409 and r.json()["error"]["details"]["rule"] == "odometer_monotonic"
        assert client.get(f"/api/v1/orders/{o['id']}", headers=cs).json()["status"] == "active"
        # The device has been silent since before pickup: the return goes through but is flagged.
        conn.execute(
            "UPDATE vehicle_state SET odometer_km = 3000, ts = now() - interval '1 day' WHERE vehicle_id = %s",
            (car["id"],),
        )
        r = client.post(f"/api/v1/orders/{o['id']}/return", headers=disp, json={"return_station": s["code"]})
        assert r.status_code == 200 and r.json()["order"]["charges"]["stale_reading"] is True
