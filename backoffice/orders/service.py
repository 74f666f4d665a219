"""Orders: intake, confirmation (a vehicle held without overbooking), changes, cancellation, and the reads.

The one owner of orders and order_changes. Handover, return and the archive are in rental.py, vehicle holds in
holds.py, vehicle choice in dispatch.py, rates in rates.py. Every write records itself in the order's history
(order_changes) and in the audit log, in the write's transaction.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from backoffice.customers import service as customers
from backoffice.finance import service as finance
from backoffice.orders import holds, pricing, rates
from backoffice.promotions import service as promotions
from backoffice.stations import service as stations
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound
from fleetcore.jsonable import to_json

# Longest bookable rental; longer hires are contracts outside this system.
MAX_RENTAL = dt.timedelta(days=90)
# Bookings open this far ahead (rate tables are set per year).
MAX_ADVANCE = dt.timedelta(days=366)
CHANGEABLE = ("pending", "confirmed", "assigned")
MAX_PAGE = 500

# Station codes, vehicle and customer name are reads of their domains' tables, joined for one query per page.
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


def current_for_vehicle(conn: Conn, *, vehicle_id: int) -> dict | None:
    """The vehicle's running rental, else the next booking holding it (confirmed or assigned), else None."""
    return conn.execute(
        ORDER_SELECT
        + """ WHERE (o.status = 'active' AND o.vehicle_id = %(v)s)
               OR (o.status IN ('confirmed', 'assigned') AND EXISTS (
                   SELECT 1 FROM vehicle_assignments a
                    WHERE a.order_id = o.id AND a.vehicle_id = %(v)s AND a.released_at IS NULL))
            ORDER BY (o.status = 'active') DESC, o.pickup_at LIMIT 1""",
        {"v": vehicle_id},
    ).fetchone()


DAY_SHEET_STATUSES = ("pending", "confirmed", "assigned", "active", "returned", "completed")


def day_sheet(conn: Conn, *, start: dt.datetime, end: dt.datetime, limit: int = 2000) -> list[dict]:
    """Orders picked up or returned (planned or actual) in [start, end), cancelled and no-shows left out."""
    return conn.execute(
        ORDER_SELECT
        + """ WHERE o.status = ANY(%(statuses)s)
              AND ((o.pickup_at >= %(s)s AND o.pickup_at < %(e)s) OR (o.return_at >= %(s)s AND o.return_at < %(e)s)
                   OR (o.returned_at >= %(s)s AND o.returned_at < %(e)s))
            ORDER BY o.pickup_at, o.id LIMIT %(limit)s""",
        {"statuses": list(DAY_SHEET_STATUSES), "s": start, "e": end, "limit": limit},
    ).fetchall()


def history(conn: Conn, *, order_id: int) -> list[dict]:
    """The order's change history, oldest first."""
    get_or_raise(conn, order_id=order_id)
    return conn.execute("SELECT * FROM order_changes WHERE order_id = %s ORDER BY id", (order_id,)).fetchall()


def expected_receipts(conn: Conn, *, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Money expected from booked rentals returning in [start, end): the quoted gross on the return day (for the
    finance cash forecast; a rental is invoiced and usually paid at return)."""
    rows = conn.execute(
        """SELECT id AS order_id, return_at, (quote ->> 'gross')::numeric(12, 2) AS amount FROM orders
            WHERE status IN ('confirmed', 'assigned', 'active') AND return_at >= %s AND return_at < %s
            ORDER BY return_at""",
        (start, end),
    ).fetchall()
    return [
        {
            "order_id": r["order_id"],
            "date": r["return_at"].astimezone(pricing.BUSINESS_TZ).date(),
            "amount": r["amount"],
        }
        for r in rows
    ]


def db_now(conn: Conn) -> dt.datetime:
    """The database's transaction time (every rule compares against the same clock)."""
    return one(conn.execute("SELECT now() AS now"))["now"]


def station_or_invalid(conn: Conn, code: str, field: str) -> dict:
    """A station named in the request's `field`; Invalid (naming the field) when there is none."""
    s = stations.get(conn, code=code)
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


def record(conn: Conn, *, order_id: int, actor: dict, action: str, before: Any, after: Any) -> None:
    """One entry in the order's change history."""
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


def audit_order(conn: Conn, *, actor: dict, action: str, order_id: int, before: Any, after: Any) -> None:
    """The audit record of an order write (`order.<action>`)."""
    audit(
        conn,
        actor=actor,
        action=f"order.{action}",
        entity="orders",
        entity_id=order_id,
        before=to_json(before),
        after=to_json(after),
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
    ps = station_or_invalid(conn, data["pickup_station"], "pickup_station")
    rs = station_or_invalid(conn, data["return_station"], "return_station")
    _check_times(data["pickup_at"], data["return_at"], db_now(conn), pickup_changed=True)
    rate = rates.get(conn, vehicle_class=data["vehicle_class"])
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
    if data.get("discount_code"):
        code = promotions.redeem(
            conn, code=data["discount_code"], order_id=row["id"], customer_id=data["customer_id"], actor=actor
        )
        q = pricing.with_discount(q, code=code["code"], percent=code["percent"], amount=code["amount"])
        conn.execute(
            "UPDATE orders SET quote = %s, quoted_net = %s WHERE id = %s",
            (Jsonb(to_json(q)), q["net"], row["id"]),
        )
    order = get_or_raise(conn, order_id=row["id"])
    record(conn, order_id=order["id"], actor=actor, action="create", before=None, after=_summary(order))
    audit_order(conn, actor=actor, action="create", order_id=order["id"], before=None, after=order)
    return order


def confirm(conn: Conn, *, order_id: int, actor: dict) -> dict:
    """Pending → confirmed: completeness, qualification (422 + rule), a vehicle held for the period (409)."""
    before = get_or_raise(conn, order_id=order_id, for_update=True)
    if before["status"] != "pending":
        raise Conflict(f"order {order_id} is {before['status']}; only pending orders can be confirmed")
    if before["pickup_at"] <= db_now(conn):
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
    holds.reserve(
        conn,
        order_id=order_id,
        vehicle_class=before["vehicle_class"],
        station_id=before["pickup_station_id"],
        pickup_at=before["pickup_at"],
        return_at=before["return_at"],
    )
    conn.execute("UPDATE orders SET status = 'confirmed', updated_at = now() WHERE id = %s", (order_id,))
    after = get_or_raise(conn, order_id=order_id)
    record(
        conn,
        order_id=order_id,
        actor=actor,
        action="confirm",
        before={"status": before["status"]},
        after={"status": after["status"], "reserved_vehicle_id": after["reserved_vehicle_id"]},
    )
    audit_order(
        conn,
        actor=actor,
        action="confirm",
        order_id=order_id,
        before={"status": before["status"]},
        after={"status": after["status"], "reserved_vehicle_id": after["reserved_vehicle_id"]},
    )
    return after


PATCH_FIELDS = ("vehicle_class", "pickup_station", "return_station", "pickup_at", "return_at", "notes")


def _summary(o: dict) -> dict:
    return {**{k: o[k] for k in PATCH_FIELDS}, "status": o["status"], "quoted_net": o["quoted_net"]}


def update(conn: Conn, *, order_id: int, changes: dict, actor: dict) -> dict:
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
        return before
    new = {**{k: before[k] for k in PATCH_FIELDS}, **changed}
    ps = station_or_invalid(conn, new["pickup_station"], "pickup_station")
    rs = station_or_invalid(conn, new["return_station"], "return_station")
    _check_times(new["pickup_at"], new["return_at"], db_now(conn), pickup_changed="pickup_at" in changed)
    rate = rates.get(conn, vehicle_class=new["vehicle_class"])
    q = pricing.quote(
        rate, pickup_at=new["pickup_at"], return_at=new["return_at"], one_way=ps["id"] != rs["id"]
    )
    if before["quote"].get("discount"):  # a redeemed code stays with its order through changes
        d = before["quote"]["discount"]
        q = pricing.with_discount(
            q,
            code=d["code"],
            percent=None if d["percent"] is None else Decimal(str(d["percent"])),
            amount=None if d["amount"] is None else Decimal(str(d["amount"])),
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
        holds.release(conn, order_id=order_id)
        held = holds.reserve(
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
        holds.release_vehicle_if_idle(
            conn, vehicle_id=before["vehicle_id"], actor=actor, note=f"order {order_id} changed"
        )
    after = get_or_raise(conn, order_id=order_id)
    record(
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
    audit_order(conn, actor=actor, action="update", order_id=order_id, before=before, after=after)
    return after


def cancel(conn: Conn, *, order_id: int, no_show: bool, reason: str, actor: dict) -> tuple[dict, dict | None]:
    """Cancel (or record a no-show) with the fee rules; returns (order, fee invoice or None)."""
    before = get_or_raise(conn, order_id=order_id, for_update=True)
    if before["status"] not in CHANGEABLE:
        raise Conflict(f"order {order_id} is {before['status']} and cannot be cancelled")
    now = db_now(conn)
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
    holds.release(conn, order_id=order_id)
    status = "no_show" if no_show else "cancelled"
    conn.execute(
        "UPDATE orders SET status = %s, cancelled_at = %s, cancellation_fee = %s, updated_at = now() WHERE id = %s",
        (status, now, fee, order_id),
    )
    if before["vehicle_id"]:
        holds.release_vehicle_if_idle(
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
            vehicle_id=before["vehicle_id"] or before["reserved_vehicle_id"],
            station_id=before["pickup_station_id"],
            actor=actor,
        )
    after = get_or_raise(conn, order_id=order_id)
    record(
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
    audit_order(
        conn,
        actor=actor,
        action=status,
        order_id=order_id,
        before={"status": before["status"]},
        after={"status": after["status"], "cancellation_fee": after["cancellation_fee"]},
    )
    return after, invoice


def staff_completion(conn: Conn, *, username: str, start: dt.datetime, end: dt.datetime) -> dict:
    """Orders a staff member took in with pickup in [start, end): how many ended in a rental (returned/completed)
    rather than cancelled or no-show; orders still open are not counted."""
    r = one(
        conn.execute(
            """SELECT count(*) FILTER (WHERE status IN ('returned', 'completed')) AS completed,
                      count(*) FILTER (WHERE status IN ('cancelled', 'no_show')) AS lost
                 FROM orders WHERE created_by = %s AND pickup_at >= %s AND pickup_at < %s""",
            (username, start, end),
        )
    )
    decided = r["completed"] + r["lost"]
    rate = round(r["completed"] / decided, 4) if decided else None
    return {"orders_completed": r["completed"], "orders_lost": r["lost"], "order_completion_rate": rate}
