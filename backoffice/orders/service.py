"""Orders: intake, confirmation (reservation without overbooking), changes, cancellation, pickup, return, archive."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from backoffice.customers import service as customers
from backoffice.finance import service as finance
from backoffice.orders import pricing
from fleetcore.db import Conn, one, update_columns
from fleetcore.errors import Conflict, Invalid, NotFound
from fleetcore.jsonable import to_json

log = logging.getLogger(__name__)

# A returned car needs cleaning and a check before the next customer; reservations keep this gap.
TURNAROUND = dt.timedelta(hours=1)
# Longest bookable rental; longer hires are contracts outside this system.
MAX_RENTAL = dt.timedelta(days=90)
# Bookings open this far ahead (rate tables are set per year).
MAX_ADVANCE = dt.timedelta(days=366)
CHANGEABLE = ("pending", "confirmed", "assigned")
# Vehicles that can never count towards capacity.
UNBOOKABLE_STATUSES = ("retired", "out_of_service")
MAX_PAGE = 500

ORDER_SELECT = """
SELECT o.*, ps.code AS pickup_station, rs.code AS return_station, ars.code AS actual_return_station,
       v.vin, v.plate, c.first_name || ' ' || c.last_name AS customer_name,
       (SELECT a.vehicle_id FROM vehicle_assignments a
         WHERE a.order_id = o.id AND a.released_at IS NULL) AS reserved_vehicle_id
  FROM orders o
  JOIN stations ps ON ps.id = o.pickup_station_id
  JOIN stations rs ON rs.id = o.return_station_id
  LEFT JOIN stations ars ON ars.id = o.actual_return_station_id
  LEFT JOIN vehicles v ON v.id = o.vehicle_id
  JOIN customers c ON c.id = o.customer_id
"""


# ---- reading ---------------------------------------------------------------------------------------------


def get(conn: Conn, *, order_id: int, for_update: bool = False) -> dict | None:
    """One order with station codes, vehicle and customer name (optionally locked), or None."""
    # Lock the order row first so concurrent operations on one order run one after another.
    if (
        for_update
        and conn.execute("SELECT id FROM orders WHERE id = %s FOR UPDATE", (order_id,)).fetchone() is None
    ):
        return None
    return conn.execute(ORDER_SELECT + " WHERE o.id = %s", (order_id,)).fetchone()


def get_or_raise(conn: Conn, *, order_id: int, for_update: bool = False) -> dict:
    """One order; 404 otherwise."""
    o = get(conn, order_id=order_id, for_update=for_update)
    if o is None:
        raise NotFound(f"no order {order_id}")
    return o


def list_(
    conn: Conn,
    *,
    status: str | None = None,
    customer_id: int | None = None,
    station: str | None = None,
    vehicle_class: str | None = None,
    pickup_from: dt.datetime | None = None,
    pickup_to: dt.datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict:
    """A page of orders with filters on status, customer, pickup station, class and pickup time."""
    p = {
        "s": status,
        "c": customer_id,
        "st": station.upper() if station else None,
        "cls": vehicle_class,
        "f": pickup_from,
        "t": pickup_to,
        "limit": min(limit, MAX_PAGE),
        "offset": offset,
    }
    where = """ WHERE (%(s)s::text IS NULL OR o.status = %(s)s) AND (%(c)s::bigint IS NULL OR o.customer_id = %(c)s)
                  AND (%(st)s::text IS NULL OR ps.code = %(st)s) AND (%(cls)s::text IS NULL OR o.vehicle_class = %(cls)s)
                  AND (%(f)s::timestamptz IS NULL OR o.pickup_at >= %(f)s)
                  AND (%(t)s::timestamptz IS NULL OR o.pickup_at < %(t)s)"""
    total = one(
        conn.execute(
            "SELECT count(*) AS n FROM orders o JOIN stations ps ON ps.id = o.pickup_station_id" + where, p
        )
    )["n"]
    items = conn.execute(
        ORDER_SELECT + where + " ORDER BY o.pickup_at, o.id LIMIT %(limit)s OFFSET %(offset)s", p
    ).fetchall()
    return {"items": items, "total": total, "limit": p["limit"], "offset": offset}


def history(conn: Conn, *, order_id: int) -> list[dict]:
    """The order's change history, oldest first."""
    get_or_raise(conn, order_id=order_id)
    return conn.execute("SELECT * FROM order_changes WHERE order_id = %s ORDER BY id", (order_id,)).fetchall()


def get_rate(conn: Conn, *, vehicle_class: str) -> dict:
    """The rate row of a vehicle class."""
    r = conn.execute("SELECT * FROM rates WHERE vehicle_class = %s", (vehicle_class,)).fetchone()
    if r is None:
        raise Invalid(f"no rate for vehicle class {vehicle_class!r}")
    return r


def list_rates(conn: Conn) -> list[dict]:
    """All rate rows, cheapest first."""
    return conn.execute("SELECT * FROM rates ORDER BY daily_rate, vehicle_class").fetchall()


def update_rate(conn: Conn, *, vehicle_class: str, values: dict) -> tuple[dict, dict]:
    """Replace a class's rate row; new quotes use it, existing orders keep the rate they were quoted."""
    before = get_rate(conn, vehicle_class=vehicle_class)
    after = update_columns(conn, table="rates", key="vehicle_class", key_value=vehicle_class, values=values)
    return before, after


# ---- helpers ---------------------------------------------------------------------------------------------


def _now(conn: Conn) -> dt.datetime:
    return one(conn.execute("SELECT now() AS now"))["now"]


def _station(conn: Conn, code: str, field: str) -> dict:
    s = conn.execute("SELECT * FROM stations WHERE code = %s", (code.upper(),)).fetchone()
    if s is None:
        raise Invalid(f"{field}: unknown station {code!r}", details={"field": field})
    return s


def _check_times(
    pickup_at: dt.datetime, return_at: dt.datetime, now: dt.datetime, *, pickup_changed: bool
) -> None:
    if pickup_changed and pickup_at <= now:
        raise Invalid("pickup_at must be in the future", details={"field": "pickup_at"})
    if return_at <= now:
        raise Invalid("return_at must be in the future", details={"field": "return_at"})
    if pickup_at - now > MAX_ADVANCE:
        raise Invalid(f"bookings open at most {MAX_ADVANCE.days} days ahead", details={"field": "pickup_at"})
    if return_at <= pickup_at:
        raise Invalid("return_at must be after pickup_at", details={"field": "return_at"})
    if return_at - pickup_at > MAX_RENTAL:
        raise Invalid(f"rentals are limited to {MAX_RENTAL.days} days", details={"field": "return_at"})


def _record(conn: Conn, *, order_id: int, actor: dict, action: str, before: Any, after: Any) -> None:
    conn.execute(
        "INSERT INTO order_changes (order_id, actor, action, before, after) VALUES (%s, %s, %s, %s, %s)",
        (
            order_id,
            actor["username"],
            action,
            Jsonb(to_json(before)) if before is not None else None,
            Jsonb(to_json(after)) if after is not None else None,
        ),
    )


def set_vehicle_status(
    conn: Conn,
    *,
    vehicle_id: int,
    status: str,
    actor: dict,
    note: str,
    station_id: int | None = None,
) -> None:
    """Change a vehicle's status (the fleet trigger writes the history with this actor and note)."""
    conn.execute(
        "SELECT set_config('fleet.actor', %s, true), set_config('fleet.status_note', %s, true)",
        (actor["username"], note),
    )
    conn.execute(
        "UPDATE vehicles SET status = %s, home_station_id = coalesce(%s, home_station_id), updated_at = now() "
        "WHERE id = %s",
        (status, station_id, vehicle_id),
    )


def release_vehicle_if_idle(conn: Conn, *, vehicle_id: int, actor: dict, note: str) -> None:
    """A 'reserved' vehicle no longer assigned to any open order becomes 'available' again."""
    v = conn.execute("SELECT status FROM vehicles WHERE id = %s", (vehicle_id,)).fetchone()
    held = conn.execute(
        "SELECT 1 FROM orders WHERE vehicle_id = %s AND status = 'assigned' LIMIT 1", (vehicle_id,)
    ).fetchone()
    if v and v["status"] == "reserved" and not held:
        set_vehicle_status(conn, vehicle_id=vehicle_id, status="available", actor=actor, note=note)


def period_bounds(pickup_at: dt.datetime, return_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The time a vehicle is held for a booking: pickup to return plus the turnaround."""
    return pickup_at, return_at + TURNAROUND


def reserve(
    conn: Conn,
    *,
    order_id: int,
    vehicle_class: str,
    station_id: int,
    pickup_at: dt.datetime,
    return_at: dt.datetime,
    prefer_vehicle_id: int | None = None,
) -> dict:
    """Hold one vehicle of the class at the station for the period; 409 when none is left.

    The exclusion constraint on vehicle_assignments is the guarantee: two transactions that both saw the same
    free car cannot both insert a hold; the loser gets an exclusion violation and tries the next car.
    """
    lo, hi = period_bounds(pickup_at, return_at)
    cands = conn.execute(
        """SELECT v.id, v.vin FROM vehicles v LEFT JOIN vehicle_state s ON s.vehicle_id = v.id
            WHERE v.class = %(cls)s AND v.home_station_id = %(st)s AND v.status <> ALL(%(bad)s)
              AND NOT EXISTS (SELECT 1 FROM vehicle_assignments a
                               WHERE a.vehicle_id = v.id AND a.released_at IS NULL
                                 AND a.period && tstzrange(%(lo)s, %(hi)s, '[)'))
            ORDER BY (v.id = %(prefer)s) DESC NULLS LAST, s.odometer_km ASC NULLS LAST, v.id""",
        {
            "cls": vehicle_class,
            "st": station_id,
            "bad": list(UNBOOKABLE_STATUSES),
            "lo": lo,
            "hi": hi,
            "prefer": prefer_vehicle_id,
        },
    ).fetchall()
    for c in cands:
        try:
            with conn.transaction():  # a savepoint: a lost race must not abort the whole request
                conn.execute(
                    "INSERT INTO vehicle_assignments (order_id, vehicle_id, period) "
                    "VALUES (%s, %s, tstzrange(%s, %s, '[)'))",
                    (order_id, c["id"], lo, hi),
                )
            return c
        except psycopg.errors.ExclusionViolation:
            log.info(
                "order %s lost vehicle %s to a concurrent booking; trying the next one", order_id, c["vin"]
            )
            continue
    raise Conflict(
        f"no {vehicle_class} vehicle left at the pickup station for {lo.isoformat()} .. {return_at.isoformat()}",
        details={"rule": "availability", "vehicle_class": vehicle_class},
    )


def release_assignment(conn: Conn, *, order_id: int) -> None:
    """End the order's live vehicle hold (kept as history)."""
    conn.execute(
        "UPDATE vehicle_assignments SET released_at = now() WHERE order_id = %s AND released_at IS NULL",
        (order_id,),
    )


def _qualify(
    conn: Conn,
    *,
    customer_id: int,
    vehicle_class: str,
    pickup_at: dt.datetime,
    return_at: dt.datetime,
) -> None:
    customer = customers.get_or_raise(conn, customer_id=customer_id)
    customers.check_qualified(
        conn,
        customer=customer,
        vehicle_class=vehicle_class,
        pickup_day=pickup_at.astimezone(pricing.BUSINESS_TZ).date(),
        return_day=return_at.astimezone(pricing.BUSINESS_TZ).date(),
    )


# ---- writes ----------------------------------------------------------------------------------------------


def create(conn: Conn, *, data: dict, actor: dict) -> dict:
    """Intake: a pending order with a price quote."""
    if customers.get(conn, customer_id=data["customer_id"]) is None:
        raise Invalid(f"customer_id: no customer {data['customer_id']}", details={"field": "customer_id"})
    ps = _station(conn, data["pickup_station"], "pickup_station")
    rs = _station(conn, data["return_station"], "return_station")
    _check_times(data["pickup_at"], data["return_at"], _now(conn), pickup_changed=True)
    rate = get_rate(conn, vehicle_class=data["vehicle_class"])
    q = pricing.quote(
        rate, pickup_at=data["pickup_at"], return_at=data["return_at"], one_way=ps["id"] != rs["id"]
    )
    row = one(
        conn.execute(
            """INSERT INTO orders (customer_id, vehicle_class, pickup_station_id, return_station_id, pickup_at, return_at,
                               channel, quote, quoted_net, notes, created_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (
                data["customer_id"],
                data["vehicle_class"],
                ps["id"],
                rs["id"],
                data["pickup_at"],
                data["return_at"],
                data["channel"],
                Jsonb(to_json(q)),
                q["net"],
                data.get("notes", ""),
                actor["username"],
            ),
        )
    )
    order = get_or_raise(conn, order_id=row["id"])
    _record(conn, order_id=order["id"], actor=actor, action="create", before=None, after=_summary(order))
    return order


def confirm(conn: Conn, *, order_id: int, actor: dict) -> tuple[dict, dict]:
    """Pending → confirmed: completeness, qualification (422 + rule), a vehicle held for the period (409)."""
    before = get_or_raise(conn, order_id=order_id, for_update=True)
    if before["status"] != "pending":
        raise Conflict(f"order {order_id} is {before['status']}; only pending orders can be confirmed")
    if before["pickup_at"] <= _now(conn):
        raise Invalid(
            "the pickup time has passed; change the order first", details={"rule": "pickup_in_future"}
        )
    _qualify(
        conn,
        customer_id=before["customer_id"],
        vehicle_class=before["vehicle_class"],
        pickup_at=before["pickup_at"],
        return_at=before["return_at"],
    )
    reserve(
        conn,
        order_id=order_id,
        vehicle_class=before["vehicle_class"],
        station_id=before["pickup_station_id"],
        pickup_at=before["pickup_at"],
        return_at=before["return_at"],
    )
    conn.execute("UPDATE orders SET status = 'confirmed', updated_at = now() WHERE id = %s", (order_id,))
    after = get_or_raise(conn, order_id=order_id)
    _record(
        conn,
        order_id=order_id,
        actor=actor,
        action="confirm",
        before={"status": before["status"]},
        after={"status": after["status"], "reserved_vehicle_id": after["reserved_vehicle_id"]},
    )
    return before, after


PATCH_FIELDS = ("vehicle_class", "pickup_station", "return_station", "pickup_at", "return_at", "notes")


def _summary(o: dict) -> dict:
    return {**{k: o[k] for k in PATCH_FIELDS}, "status": o["status"], "quoted_net": o["quoted_net"]}


def update(conn: Conn, *, order_id: int, changes: dict, actor: dict) -> tuple[dict, dict]:
    """Change times, class or stations: re-validated, re-priced, the vehicle hold re-made; history kept."""
    before = get_or_raise(conn, order_id=order_id, for_update=True)
    if before["status"] not in CHANGEABLE:
        raise Conflict(
            f"order {order_id} is {before['status']}; only {', '.join(CHANGEABLE)} orders can change"
        )
    changes = {k: v for k, v in changes.items() if v is not None}
    for k in ("pickup_station", "return_station"):
        if k in changes:
            changes[k] = changes[k].upper()
    changed = {k: v for k, v in changes.items() if before[k] != v}
    if not changed:
        return before, before
    new = {**{k: before[k] for k in PATCH_FIELDS}, **changed}
    ps = _station(conn, new["pickup_station"], "pickup_station")
    rs = _station(conn, new["return_station"], "return_station")
    _check_times(new["pickup_at"], new["return_at"], _now(conn), pickup_changed="pickup_at" in changed)
    rate = get_rate(conn, vehicle_class=new["vehicle_class"])
    q = pricing.quote(
        rate, pickup_at=new["pickup_at"], return_at=new["return_at"], one_way=ps["id"] != rs["id"]
    )
    status, vehicle_id = before["status"], before["vehicle_id"]
    booking_changed = bool(set(changed) - {"notes"})
    if status in ("confirmed", "assigned") and booking_changed:
        _qualify(
            conn,
            customer_id=before["customer_id"],
            vehicle_class=new["vehicle_class"],
            pickup_at=new["pickup_at"],
            return_at=new["return_at"],
        )
        release_assignment(conn, order_id=order_id)
        held = reserve(
            conn,
            order_id=order_id,
            vehicle_class=new["vehicle_class"],
            station_id=ps["id"],
            pickup_at=new["pickup_at"],
            return_at=new["return_at"],
            prefer_vehicle_id=before["vehicle_id"] or before["reserved_vehicle_id"],
        )
        if status == "assigned" and held["id"] != before["vehicle_id"]:
            status, vehicle_id = "confirmed", None  # the dispatched car no longer fits: dispatch again
    conn.execute(
        """UPDATE orders SET vehicle_class = %s, pickup_station_id = %s, return_station_id = %s, pickup_at = %s,
                  return_at = %s, notes = %s, quote = %s, quoted_net = %s, status = %s, vehicle_id = %s,
                  updated_at = now() WHERE id = %s""",
        (
            new["vehicle_class"],
            ps["id"],
            rs["id"],
            new["pickup_at"],
            new["return_at"],
            new["notes"],
            Jsonb(to_json(q)),
            q["net"],
            status,
            vehicle_id,
            order_id,
        ),
    )
    if before["vehicle_id"] and vehicle_id is None:
        release_vehicle_if_idle(
            conn, vehicle_id=before["vehicle_id"], actor=actor, note=f"order {order_id} changed"
        )
    after = get_or_raise(conn, order_id=order_id)
    _record(
        conn,
        order_id=order_id,
        actor=actor,
        action="update",
        before={
            **{k: before[k] for k in changed},
            "quoted_net": before["quoted_net"],
            "status": before["status"],
        },
        after={
            **{k: after[k] for k in changed},
            "quoted_net": after["quoted_net"],
            "status": after["status"],
        },
    )
    return before, after


def cancel(
    conn: Conn, *, order_id: int, no_show: bool, reason: str, actor: dict
) -> tuple[dict, dict, dict | None]:
    """Cancel (or record a no-show) with the fee rules; returns (before, after, fee invoice or None)."""
    before = get_or_raise(conn, order_id=order_id, for_update=True)
    if before["status"] not in CHANGEABLE:
        raise Conflict(f"order {order_id} is {before['status']} and cannot be cancelled")
    now = _now(conn)
    if no_show and before["status"] == "pending":
        raise Invalid("a pending (unconfirmed) order cannot be a no-show; cancel it instead")
    if no_show and now < before["pickup_at"]:
        raise Invalid("a no-show can only be recorded after the pickup time")
    if before["status"] == "pending":
        fee = Decimal("0.00")  # nothing was reserved yet
    else:
        fee = pricing.cancellation_fee(
            before["quote"], pickup_at=before["pickup_at"], now=now, no_show=no_show
        )
    release_assignment(conn, order_id=order_id)
    status = "no_show" if no_show else "cancelled"
    conn.execute(
        "UPDATE orders SET status = %s, cancelled_at = %s, cancellation_fee = %s, updated_at = now() WHERE id = %s",
        (status, now, fee, order_id),
    )
    if before["vehicle_id"]:
        release_vehicle_if_idle(
            conn, vehicle_id=before["vehicle_id"], actor=actor, note=f"order {order_id} {status}"
        )
    invoice = None
    if fee > 0:
        desc = (
            "no-show: one rental day" if no_show else "cancellation within 48 h of pickup: half the first day"
        )
        invoice = finance.create_invoice(
            conn,
            order_id=order_id,
            customer_id=before["customer_id"],
            kind="cancellation",
            lines=[pricing.line(status, desc, 1, fee)],
        )
    after = get_or_raise(conn, order_id=order_id)
    _record(
        conn,
        order_id=order_id,
        actor=actor,
        action=status,
        before={"status": before["status"]},
        after={
            "status": status,
            "cancellation_fee": fee,
            "reason": reason,
            "invoice": invoice["number"] if invoice else None,
        },
    )
    return before, after, invoice


def vehicle_state(conn: Conn, *, vehicle_id: int) -> dict:
    """The vehicle's telemetry state with odometer and fuel; 409 when the car has not reported them."""
    s = conn.execute("SELECT * FROM vehicle_state WHERE vehicle_id = %s", (vehicle_id,)).fetchone()
    if s is None or s["ts"] is None or s["odometer_km"] is None or s["fuel_pct"] is None:
        raise Conflict(
            "the vehicle has no telemetry state with odometer and fuel yet; readings are never typed in",
            details={"rule": "telemetry_state"},
        )
    return s


def open_critical_alerts(conn: Conn, *, vehicle_id: int) -> list[dict]:
    """Open or acknowledged critical alerts of a vehicle."""
    return conn.execute(
        "SELECT id, kind, message, opened_at FROM alerts WHERE vehicle_id = %s AND status <> 'resolved' "
        "AND severity = 'critical' ORDER BY id",
        (vehicle_id,),
    ).fetchall()


def pickup(conn: Conn, *, order_id: int, actor: dict) -> tuple[dict, dict]:
    """Assigned → active: odometer and fuel from the vehicle's telemetry state; the vehicle becomes rented."""
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
        with conn.transaction():
            conn.execute(
                """UPDATE vehicle_assignments SET period = tstzrange(now(), upper(period), '[)')
                    WHERE order_id = %s AND released_at IS NULL AND lower(period) > now()""",
                (order_id,),
            )
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
    set_vehicle_status(
        conn,
        vehicle_id=before["vehicle_id"],
        status="rented",
        actor=actor,
        note=f"picked up for order {order_id}",
    )
    after = get_or_raise(conn, order_id=order_id)
    _record(
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
    return before, after


def return_(conn: Conn, *, order_id: int, return_station: str, actor: dict) -> tuple[dict, dict, dict]:
    """Active → returned: readings from telemetry, charges, crash alerts as damage check, the invoice."""
    before = get_or_raise(conn, order_id=order_id, for_update=True)
    if before["status"] != "active":
        raise Conflict(f"order {order_id} is {before['status']}; only active rentals can be returned")
    st = _station(conn, return_station, "return_station")
    vid = before["vehicle_id"]
    state = vehicle_state(conn, vehicle_id=vid)
    if state["odometer_km"] < before["pickup_odometer_km"]:
        raise Conflict(
            f"telemetry odometer {state['odometer_km']} km is below the pickup reading "
            f"{before['pickup_odometer_km']} km; check the device before closing the rental",
            details={"rule": "odometer_monotonic"},
        )
    now = _now(conn)
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
    # The hold now covers what actually happened; the car is free for the next booking.
    conn.execute(
        """UPDATE vehicle_assignments SET period = tstzrange(%s, greatest(%s, %s), '[]'), released_at = %s
            WHERE order_id = %s AND released_at IS NULL""",
        (before["picked_up_at"], before["picked_up_at"], now, now, order_id),
    )
    set_vehicle_status(
        conn,
        vehicle_id=vid,
        status="maintenance" if damage else "available",
        actor=actor,
        note=f"returned from order {order_id}" + (" with crash alerts: damage check" if damage else ""),
        station_id=st["id"],
    )
    invoice = finance.create_invoice(
        conn,
        order_id=order_id,
        customer_id=before["customer_id"],
        kind="rental",
        lines=charges["lines"],
        currency=before["quote"].get("currency", "EUR"),
    )
    after = get_or_raise(conn, order_id=order_id)
    _record(
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
    return before, after, invoice


# ---- archive ---------------------------------------------------------------------------------------------


def complete_and_archive(conn: Conn, *, order_id: int, actor: dict) -> dict:
    """Returned + rental invoice paid → completed, and an immutable snapshot written to order_archive."""
    o = get_or_raise(conn, order_id=order_id, for_update=True)
    if o["status"] != "returned":
        raise Conflict(f"order {order_id} is {o['status']}; only returned orders can be completed")
    invoices = [
        finance.get_invoice_or_raise(conn, invoice_id=r["id"])
        for r in conn.execute(
            "SELECT id FROM invoices WHERE order_id = %s ORDER BY id", (order_id,)
        ).fetchall()
    ]
    if not any(i["kind"] == "rental" and i["status"] == "paid" for i in invoices):
        raise Conflict(f"order {order_id} has no paid rental invoice yet")
    conn.execute("UPDATE orders SET status = 'completed', updated_at = now() WHERE id = %s", (order_id,))
    o = get_or_raise(conn, order_id=order_id)
    vehicle = conn.execute(
        "SELECT id, vin, plate, make, model, year, class FROM vehicles WHERE id = %s", (o["vehicle_id"],)
    ).fetchone()
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
    _record(
        conn,
        order_id=order_id,
        actor=actor,
        action="complete",
        before={"status": "returned"},
        after={"status": "completed", "archived": True},
    )
    return get_archive_or_raise(conn, order_id=order_id)


def get_archive_or_raise(conn: Conn, *, order_id: int) -> dict:
    """The archive record of a completed order; 404 otherwise."""
    a = conn.execute("SELECT * FROM order_archive WHERE order_id = %s", (order_id,)).fetchone()
    if a is None:
        raise NotFound(f"order {order_id} is not archived")
    return a
