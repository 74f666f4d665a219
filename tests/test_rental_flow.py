"""THE full rental through the API, priced from real telemetry.

customer → order → confirm → assign → pickup → drive (JSON telemetry over the real Mosquitto, stored by the real
ingest worker) → return → invoice with km/fuel charges from the telemetry → payment → immutable archive.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from fleetcore.contract import topic_for
from tests import factories
from tests.ingest_helpers import publish_raw, wait_until
from tests.test_orders_helpers import api, create_customer, create_order, future, token

PICKUP_ODO, PICKUP_FUEL = 10_000.0, 80.0
# 3 days × 200 km included for compact; drive 123.4 km beyond it and return with 20 % less fuel.
RETURN_ODO, RETURN_FUEL = 10_723.4, 60.0


@contextmanager
def worker(run, settings) -> Iterator[None]:
    """Run a worker process loop (`run(settings, stop)`) in a thread for the duration of the block."""
    stop = threading.Event()
    t = threading.Thread(target=run, args=(settings, stop), daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(20)
        assert not t.is_alive(), "worker did not stop"


class Device:
    """A JSON telematics unit publishing over the real broker."""

    def __init__(self, settings, device_id: str) -> None:
        self.port = settings.mqtt.port
        self.root = settings.topic_root
        self.device_id = device_id
        self.seq = 0

    def sample(self, **fields) -> dict:
        self.seq += 1
        return {"ts": int(time.time() * 1000) + self.seq, "seq": self.seq, **fields}

    def publish(self, kind: str, *bodies: dict) -> None:
        publish_raw(
            self.port, [(topic_for(self.root, self.device_id, kind), json.dumps(b).encode()) for b in bodies]
        )


def _state(conn, vehicle_id: int) -> dict:
    return conn.execute(
        "SELECT odometer_km, fuel_pct, ts FROM vehicle_state WHERE vehicle_id = %s", (vehicle_id,)
    ).fetchone()


def _wait_state(
    conn, vehicle_id: int, odo: float, device: Device | None = None, body: dict | None = None
) -> None:
    """Wait until ingest applied the reading; re-publish `body` meanwhile (the worker may still be subscribing)."""

    def applied() -> bool:
        if device and body:
            device.publish("telemetry", body)  # same seq: stored once, whatever the retries
        return _state(conn, vehicle_id)["odometer_km"] == odo

    assert wait_until(applied, timeout=30, interval=0.5), _state(conn, vehicle_id)


def test_full_rental_priced_from_telemetry(settings, conn):
    from ingest.consumer import run as ingest_run

    a = factories.station(conn, lat=52.5200, lon=13.4050)
    b = factories.station(conn, lat=52.3900, lon=13.0650)
    car = factories.vehicle(conn, station_code=a["code"], vehicle_class="compact", protocol="json")
    dev = Device(settings, car["device_id"])
    with api(settings) as client, worker(ingest_run, settings):
        cs = token(client, conn, "customer_service")
        disp = token(client, conn, "dispatcher")
        fin = token(client, conn, "finance")

        # The parked car reports in: this is what pickup will read.
        parked = dev.sample(
            lat=52.5200,
            lon=13.4050,
            speed_kmh=0,
            ignition=False,
            odometer_km=PICKUP_ODO,
            fuel_pct=PICKUP_FUEL,
            battery_v=12.6,
        )
        _wait_state(conn, car["id"], PICKUP_ODO, dev, parked)

        cust = create_customer(client, cs, email="erika@example.com")
        order = create_order(
            client,
            cs,
            customer_id=cust["id"],
            pickup=a["code"],
            ret=a["code"],
            vehicle_class="compact",
            pickup_at=future(1),
            return_at=future(1 + 72),
            channel="counter",
        )
        assert order["status"] == "pending" and order["quote"]["included_km"] == 600
        r = client.post(f"/api/v1/orders/{order['id']}/confirm", headers=cs)
        assert r.status_code == 200 and r.json()["status"] == "confirmed", r.text
        r = client.post(f"/api/v1/orders/{order['id']}/assign", headers=disp)
        assert r.status_code == 200 and r.json()["vehicle"]["vin"] == car["vin"], r.text
        r = client.post(f"/api/v1/orders/{order['id']}/pickup", headers=disp)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "active"
        assert r.json()["pickup_odometer_km"] == PICKUP_ODO and r.json()["pickup_fuel_pct"] == PICKUP_FUEL

        # Drive: ignition on, odometer up, fuel down, moving towards station B — 40 samples over the broker.
        n = 40
        drive = [
            dev.sample(
                lat=52.52 - (52.52 - 52.39) * i / n,
                lon=13.405 - (13.405 - 13.065) * i / n,
                speed_kmh=80.0,
                ignition=True,
                rpm=2200,
                coolant_c=90,
                odometer_km=round(PICKUP_ODO + (RETURN_ODO - PICKUP_ODO) * i / n, 1),
                fuel_pct=PICKUP_FUEL - (PICKUP_FUEL - RETURN_FUEL) * i / n,
                battery_v=14.1,
            )
            for i in range(1, n + 1)
        ]
        dev.publish("telemetry", *drive)
        _wait_state(conn, car["id"], RETURN_ODO)
        stored = conn.execute(
            "SELECT count(*) AS n FROM readings WHERE vehicle_id = %s", (car["id"],)
        ).fetchone()
        assert stored["n"] == n + 1

        # Returned at B although booked back to A: one-way fee on top.
        r = client.post(
            f"/api/v1/orders/{order['id']}/return", headers=disp, json={"return_station": b["code"]}
        )
        assert r.status_code == 200, r.text
        ret = r.json()
        o, inv = ret["order"], ret["invoice"]
        assert (
            o["status"] == "returned"
            and o["return_odometer_km"] == RETURN_ODO
            and o["return_fuel_pct"] == RETURN_FUEL
        )
        assert o["damage"] == [] and o["actual_return_station"] == b["code"]
        assert o["charges"]["stale_reading"] is False
        lines = {ln["code"]: ln for ln in inv["lines"]}
        assert lines["extra_km"]["quantity"] == "123.40" and lines["extra_km"]["amount"] == "35.79"  # × 0.29
        assert lines["fuel"]["quantity"] == "20.00" and lines["fuel"]["amount"] == "26.00"  # × 1.30
        assert lines["one_way"]["amount"] == "49.00"
        assert "late_return" not in lines
        expected_net = Decimal(order["quote"]["net"]) + Decimal("35.79") + Decimal("26.00") + Decimal("49.00")
        assert Decimal(inv["net"]) == expected_net
        assert Decimal(inv["vat"]) == (expected_net * Decimal("0.19")).quantize(Decimal("0.01"))
        assert Decimal(inv["gross"]) == Decimal(inv["net"]) + Decimal(inv["vat"]) and inv["status"] == "open"
        v = conn.execute(
            "SELECT status, home_station_id FROM vehicles WHERE id = %s", (car["id"],)
        ).fetchone()
        assert v == {"status": "available", "home_station_id": b["id"]}

        # Pay in two parts; the second settles the invoice, completes the order and archives it.
        half = (Decimal(inv["gross"]) / 2).quantize(Decimal("0.01"))
        r = client.post(
            f"/api/v1/finance/invoices/{inv['id']}/payments",
            headers=fin,
            json={"amount": str(half), "method": "card", "reference": "auth 0001"},
        )
        assert (
            r.status_code == 201 and r.json()["invoice"]["status"] == "open" and r.json()["archived"] is None
        )
        rest = Decimal(inv["gross"]) - half
        r = client.post(
            f"/api/v1/finance/invoices/{inv['id']}/payments",
            headers=fin,
            json={"amount": str(rest + Decimal("0.01")), "method": "cash"},
        )
        assert r.status_code == 422  # overpayment refused
        r = client.post(
            f"/api/v1/finance/invoices/{inv['id']}/payments",
            headers=fin,
            json={"amount": str(rest), "method": "cash"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["invoice"]["status"] == "paid" and r.json()["archived"]["order_id"] == order["id"]
        assert client.get(f"/api/v1/orders/{order['id']}", headers=cs).json()["status"] == "completed"

        arch = client.get(f"/api/v1/orders/{order['id']}/archive", headers=fin).json()["snapshot"]
        assert arch["customer"]["email"] == "erika@example.com" and arch["vehicle"]["vin"] == car["vin"]
        assert (
            arch["readings"]["pickup_odometer_km"] == PICKUP_ODO
            and arch["readings"]["return_odometer_km"] == RETURN_ODO
        )
        assert arch["times"]["picked_up_at"] and arch["times"]["returned_at"]
        assert {ln["code"] for ln in arch["charges"]["lines"]} >= {"extra_km", "fuel", "one_way"}
        assert arch["invoices"][0]["status"] == "paid" and len(arch["invoices"][0]["payments"]) == 2
        assert [h["action"] for h in arch["history"]] == ["create", "confirm", "pickup", "return"]

        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        rev = client.get(
            "/api/v1/finance/revenue",
            headers=fin,
            params={"from": today.isoformat(), "to": (today + timedelta(days=1)).isoformat()},
        ).json()
        assert Decimal(rev["gross"]) == Decimal(inv["gross"]) and Decimal(rev["collected"]) == Decimal(
            inv["gross"]
        )
        assert Decimal(rev["net_by_line_code"]["extra_km"]) == Decimal("35.79")

    # The archive is immutable, even for the database owner.
    for stmt in ("UPDATE order_archive SET archived_by = 'x'", "DELETE FROM order_archive"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(stmt)
    actions = {r["action"] for r in conn.execute("SELECT action FROM audit_log").fetchall()}
    assert {
        "customer.create",
        "order.create",
        "order.confirm",
        "order.assign",
        "order.pickup",
        "order.return",
        "payment.create",
        "order.complete",
    } <= actions


def test_crash_during_rental_is_attached_as_damage_check(settings, conn):
    """A crash the monitor raises from the device's event during the rental lands on the order at return."""
    from ingest.consumer import run as ingest_run
    from monitor.worker import run as monitor_run

    s = factories.station(conn)
    car = factories.vehicle(conn, station_code=s["code"], vehicle_class="economy", protocol="json")
    dev = Device(settings, car["device_id"])
    with api(settings) as client, worker(ingest_run, settings), worker(monitor_run, settings):
        cs = token(client, conn, "customer_service")
        disp = token(client, conn, "dispatcher")
        parked = dev.sample(
            lat=52.52, lon=13.405, speed_kmh=0, ignition=False, odometer_km=5000.0, fuel_pct=90.0
        )
        _wait_state(conn, car["id"], 5000.0, dev, parked)
        cust = create_customer(client, cs)
        order = create_order(client, cs, customer_id=cust["id"], pickup=s["code"], vehicle_class="economy")
        for step in ("confirm",):
            assert client.post(f"/api/v1/orders/{order['id']}/{step}", headers=cs).status_code == 200
        for step in ("assign", "pickup"):
            r = client.post(f"/api/v1/orders/{order['id']}/{step}", headers=disp)
            assert r.status_code == 200, r.text

        crash = {"ts": datetime.now(UTC).isoformat(), "seq": 1, "type": "crash", "peak_g": 4.2}

        def crash_alert():
            dev.publish("event", crash)
            return conn.execute(
                "SELECT id FROM alerts WHERE vehicle_id = %s AND kind = 'crash'", (car["id"],)
            ).fetchone()

        alert = wait_until(crash_alert, timeout=30, interval=1.0)
        assert alert, "monitor raised no crash alert"
        after = dev.sample(
            lat=52.521, lon=13.406, speed_kmh=0, ignition=False, odometer_km=5042.0, fuel_pct=86.0
        )
        _wait_state(conn, car["id"], 5042.0, dev, after)

        r = client.post(
            f"/api/v1/orders/{order['id']}/return", headers=disp, json={"return_station": s["code"]}
        )
        assert r.status_code == 200, r.text
        damage = r.json()["order"]["damage"]
        assert [d["alert_id"] for d in damage] == [alert["id"]] and damage[0][
            "check"
        ] == "inspection_required"
    v = conn.execute("SELECT status FROM vehicles WHERE id = %s", (car["id"],)).fetchone()
    assert v["status"] == "maintenance"  # not rentable until the damage check is done
