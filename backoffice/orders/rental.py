"""Rental handover and return, and the archive of completed orders (the one owner of order_archive).

Readings come from the vehicle's telemetry state (backoffice.telemetry), never typed in; the vehicle's status moves
through backoffice.vehicles; invoices are issued by backoffice.finance.
"""

from __future__ import annotations

from decimal import Decimal

import psycopg
from psycopg.types.json import Jsonb

from backoffice.customers import service as customers
from backoffice.finance import service as finance
from backoffice.orders import holds, pricing
from backoffice.orders.service import audit_order, db_now, get_or_raise, history, record, station_or_invalid
from backoffice.telemetry import service as telemetry
from backoffice.vehicles import service as vehicles
from fleetcore.audit import audit
from fleetcore.db import Conn
from fleetcore.errors import Conflict, NotFound
from fleetcore.jsonable import to_json

# The vehicle's columns an archived order keeps (the registry may change later; the archive does not).
ARCHIVED_VEHICLE_FIELDS = ("id", "vin", "plate", "make", "model", "year", "class")


def vehicle_state(conn: Conn, *, vehicle_id: int) -> dict:
    """The vehicle's telemetry state with odometer and fuel; 409 when the car has not reported them."""
    s = telemetry.get_state(conn, vehicle_id=vehicle_id)
    if s is None or s["ts"] is None or s["odometer_km"] is None or s["fuel_pct"] is None:
        raise Conflict(
            "the vehicle has no telemetry state with odometer and fuel yet; readings are never typed in",
            details={"rule": "telemetry_state"},
        )
    return s


def open_critical_alerts(conn: Conn, *, vehicle_id: int) -> list[dict]:
    """Open or acknowledged critical alerts of a vehicle."""
    # alerts is owned by the monitor domain; this read moves to its service when that one is reshaped.
    return conn.execute(
        "SELECT id, kind, message, opened_at FROM alerts WHERE vehicle_id = %s AND status <> 'resolved' "
        "AND severity = 'critical' ORDER BY id",
        (vehicle_id,),
    ).fetchall()


def pickup(
    conn: Conn,
    *,
    order_id: int,
    actor: dict,
    deposit: Decimal | None = None,
    deposit_method: str = "card",
) -> dict:
    """Assigned → active: odometer and fuel from the vehicle's telemetry state; the vehicle becomes rented.

    With `deposit`, the customer's deposit is taken and booked (backoffice.finance) in the same transaction.
    """
    before = get_or_raise(conn, order_id=order_id, for_update=True)
    if before["status"] != "assigned":
        raise Conflict(f"order {order_id} is {before['status']}; assign a vehicle before pickup")
    state = vehicle_state(conn, vehicle_id=before["vehicle_id"])
    alerts = open_critical_alerts(conn, vehicle_id=before["vehicle_id"])
    if alerts or not state["rentable"]:
        raise Conflict(
            "the assigned vehicle has an open critical alert; assign another vehicle",
            details={"rule": "healthy", "alerts": [a["id"] for a in alerts]},
        )
    # An early pickup uses the car before its hold starts: stretch the hold back to now. The exclusion constraint
    # refuses if another booking still has the car then.
    try:
        holds.start_now(conn, order_id=order_id)
    except psycopg.errors.ExclusionViolation as exc:
        raise Conflict(
            "the vehicle is still held by another booking; pick up at the booked time or re-assign",
            details={"rule": "early_pickup"},
        ) from exc
    conn.execute(
        """UPDATE orders SET status = 'active', picked_up_at = now(), pickup_odometer_km = %s, pickup_fuel_pct = %s,
                  updated_at = now() WHERE id = %s""",
        (state["odometer_km"], state["fuel_pct"], order_id),
    )
    vehicles.move_status(
        conn,
        vehicle_id=before["vehicle_id"],
        status="rented",
        actor=actor,
        note=f"picked up for order {order_id}",
    )
    if deposit:
        finance.hold_deposit(
            conn,
            order_id=order_id,
            customer_id=before["customer_id"],
            amount=deposit,
            method=deposit_method,
            vehicle_id=before["vehicle_id"],
            station_id=before["pickup_station_id"],
            actor=actor,
        )
    after = get_or_raise(conn, order_id=order_id)
    record(
        conn,
        order_id=order_id,
        actor=actor,
        action="pickup",
        before={"status": before["status"]},
        after={
            "status": "active",
            "odometer_km": state["odometer_km"],
            "fuel_pct": state["fuel_pct"],
            "reading_ts": state["ts"],
        },
    )
    audit_order(
        conn,
        actor=actor,
        action="pickup",
        order_id=order_id,
        before={"status": before["status"]},
        after={
            "status": after["status"],
            "odometer_km": after["pickup_odometer_km"],
            "fuel_pct": after["pickup_fuel_pct"],
        },
    )
    return after


def return_(
    conn: Conn, *, order_id: int, return_station: str, actor: dict, deposit: str = "apply"
) -> tuple[dict, dict]:
    """Active → returned: readings from telemetry, charges, crash alerts as damage check; (order, invoice).

    A deposit taken at pickup is applied to the rental invoice (`deposit="apply"`, the rest released) or released
    in full (`"release"`); an invoice the deposit pays in full completes and archives the order.
    """
    before = get_or_raise(conn, order_id=order_id, for_update=True)
    if before["status"] != "active":
        raise Conflict(f"order {order_id} is {before['status']}; only active rentals can be returned")
    st = station_or_invalid(conn, return_station, "return_station")
    vid = before["vehicle_id"]
    state = vehicle_state(conn, vehicle_id=vid)
    if state["odometer_km"] < before["pickup_odometer_km"]:
        raise Conflict(
            f"telemetry odometer {state['odometer_km']} km is below the pickup reading "
            f"{before['pickup_odometer_km']} km; check the device before closing the rental",
            details={"rule": "odometer_monotonic"},
        )
    now = db_now(conn)
    charges = pricing.return_charges(
        before["quote"],
        pickup_odometer_km=before["pickup_odometer_km"],
        return_odometer_km=state["odometer_km"],
        pickup_fuel_pct=before["pickup_fuel_pct"],
        return_fuel_pct=state["fuel_pct"],
        planned_return=before["return_at"],
        actual_return=now,
        one_way=st["id"] != before["pickup_station_id"],
    )
    # Which reading priced the return, and whether the device reported at all since pickup (a silent device
    # means kilometres and fuel may be missing from the bill: the dispatcher should look at the car).
    charges["reading_ts"] = state["ts"]
    charges["stale_reading"] = state["ts"] < before["picked_up_at"]
    # alerts is owned by the monitor domain; this read moves to its service when that one is reshaped.
    crashes = conn.execute(
        """SELECT id AS alert_id, kind, severity, status, message, opened_at FROM alerts
            WHERE vehicle_id = %s AND kind = 'crash' AND opened_at >= %s AND opened_at <= %s ORDER BY opened_at""",
        (vid, before["picked_up_at"], now),
    ).fetchall()
    damage = [{**c, "check": "inspection_required"} for c in crashes]
    conn.execute(
        """UPDATE orders SET status = 'returned', returned_at = %s, actual_return_station_id = %s,
                  return_odometer_km = %s, return_fuel_pct = %s, damage = %s, charges = %s, updated_at = now()
            WHERE id = %s""",
        (
            now,
            st["id"],
            state["odometer_km"],
            state["fuel_pct"],
            Jsonb(to_json(damage)),
            Jsonb(to_json(charges)),
            order_id,
        ),
    )
    holds.close(conn, order_id=order_id, picked_up_at=before["picked_up_at"], returned_at=now)
    vehicles.move_status(
        conn,
        vehicle_id=vid,
        status="maintenance" if damage else "available",
        actor=actor,
        note=f"returned from order {order_id}" + (" with crash alerts: damage check" if damage else ""),
    )
    vehicles.relocate(conn, vehicle_id=vid, home_station_id=st["id"])
    invoice = finance.create_invoice(
        conn,
        order_id=order_id,
        customer_id=before["customer_id"],
        kind="rental",
        lines=charges["lines"],
        currency=before["quote"].get("currency", "EUR"),
        vehicle_id=vid,
        station_id=before["pickup_station_id"],
        actor=actor,
    )
    if finance.settle_deposit(
        conn, order_id=order_id, invoice_id=invoice["id"], apply=deposit == "apply", actor=actor
    ):
        invoice = finance.get_invoice_or_raise(conn, invoice_id=invoice["id"])
    after = get_or_raise(conn, order_id=order_id)
    record(
        conn,
        order_id=order_id,
        actor=actor,
        action="return",
        before={"status": before["status"]},
        after={
            "status": "returned",
            "odometer_km": state["odometer_km"],
            "fuel_pct": state["fuel_pct"],
            "reading_ts": state["ts"],
            "net": charges["net"],
            "damage_alerts": [d["alert_id"] for d in damage],
            "invoice": invoice["number"],
        },
    )
    audit_order(
        conn,
        actor=actor,
        action="return",
        order_id=order_id,
        before={"status": before["status"]},
        after={
            "status": after["status"],
            "charges": after["charges"],
            "damage": after["damage"],
            "invoice": invoice["number"],
        },
    )
    if complete_if_paid(conn, invoice=invoice, actor=actor):  # the deposit paid it in full
        after = get_or_raise(conn, order_id=order_id)
    return after, invoice


# ---- archive ---------------------------------------------------------------------------------------------


def complete_and_archive(conn: Conn, *, order_id: int, actor: dict) -> dict:
    """Returned + rental invoice paid → completed, and an immutable snapshot written to order_archive."""
    o = get_or_raise(conn, order_id=order_id, for_update=True)
    if o["status"] != "returned":
        raise Conflict(f"order {order_id} is {o['status']}; only returned orders can be completed")
    invoices = finance.list_for_order(conn, order_id=order_id)
    if not any(i["kind"] == "rental" and i["status"] == "paid" for i in invoices):
        raise Conflict(f"order {order_id} has no paid rental invoice yet")
    conn.execute("UPDATE orders SET status = 'completed', updated_at = now() WHERE id = %s", (order_id,))
    o = get_or_raise(conn, order_id=order_id)
    v = vehicles.get_by_id(conn, vehicle_id=o["vehicle_id"]) if o["vehicle_id"] else None
    vehicle = {k: v[k] for k in ARCHIVED_VEHICLE_FIELDS} if v else None
    snapshot = {
        "order": {
            k: o[k]
            for k in (
                "id",
                "status",
                "channel",
                "vehicle_class",
                "pickup_station",
                "return_station",
                "actual_return_station",
                "pickup_at",
                "return_at",
                "created_at",
                "created_by",
            )
        },
        "customer": customers.get_or_raise(conn, customer_id=o["customer_id"]),
        "vehicle": vehicle,
        "times": {
            "booked_pickup": o["pickup_at"],
            "booked_return": o["return_at"],
            "picked_up_at": o["picked_up_at"],
            "returned_at": o["returned_at"],
        },
        "readings": {
            "pickup_odometer_km": o["pickup_odometer_km"],
            "pickup_fuel_pct": o["pickup_fuel_pct"],
            "return_odometer_km": o["return_odometer_km"],
            "return_fuel_pct": o["return_fuel_pct"],
            "source": "vehicle telemetry state",
        },
        "quote": o["quote"],
        "charges": o["charges"],
        "damage": o["damage"],
        "invoices": invoices,
        "history": history(conn, order_id=order_id),
    }
    conn.execute(
        "INSERT INTO order_archive (order_id, archived_by, snapshot) VALUES (%s, %s, %s)",
        (order_id, actor["username"], Jsonb(to_json(snapshot))),
    )
    record(
        conn,
        order_id=order_id,
        actor=actor,
        action="complete",
        before={"status": "returned"},
        after={"status": "completed", "archived": True},
    )
    archive = get_archive_or_raise(conn, order_id=order_id)
    # Written with the raw values (archived_at as str() of the timestamp), as the payment route always did.
    audit(
        conn,
        actor=actor,
        action="order.complete",
        entity="orders",
        entity_id=order_id,
        before={"status": "returned"},
        after={"status": "completed", "archived_at": archive["archived_at"]},
    )
    return archive


def complete_if_paid(conn: Conn, *, invoice: dict, actor: dict) -> dict | None:
    """Paying a rental invoice in full completes and archives its returned order; {order_id, archived_at} or None."""
    if invoice["status"] != "paid" or invoice["kind"] != "rental":
        return None
    order = get_or_raise(conn, order_id=invoice["order_id"])
    if order["status"] != "returned":
        return None
    archive = complete_and_archive(conn, order_id=order["id"], actor=actor)
    return {"order_id": order["id"], "archived_at": archive["archived_at"]}


def get_archive_or_raise(conn: Conn, *, order_id: int) -> dict:
    """The archive record of a completed order; 404 otherwise."""
    a = conn.execute("SELECT * FROM order_archive WHERE order_id = %s", (order_id,)).fetchone()
    if a is None:
        raise NotFound(f"order {order_id} is not archived")
    return a
