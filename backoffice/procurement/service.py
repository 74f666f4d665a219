"""Procurement: the one owner of procurements (planned -> ordered -> delivered, or cancelled before delivery).

Delivery registers the vehicle through backoffice.vehicles (with its device, if one is named).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from backoffice.stations import service as stations
from backoffice.vehicles import service as vehicles
from fleetcore import events
from fleetcore.audit import audit
from fleetcore.contract import DEVICE_ID_RE
from fleetcore.db import Conn, like_contains, one, update_columns
from fleetcore.errors import Conflict, Invalid, NotFound

# Station code and delivered VIN are reads of stations and vehicles (their domains' tables), joined for one query.
_SELECT = """SELECT p.*, s.code AS station, v.vin FROM procurements p
             JOIN stations s ON s.id = p.station_id LEFT JOIN vehicles v ON v.id = p.vehicle_id"""


def get(conn: Conn, *, procurement_id: int) -> dict | None:
    """One procurement with its station code and delivered VIN, or None."""
    return conn.execute(_SELECT + " WHERE p.id = %s", (procurement_id,)).fetchone()


def get_or_raise(conn: Conn, *, procurement_id: int) -> dict:
    """One procurement; NotFound otherwise."""
    p = get(conn, procurement_id=procurement_id)
    if p is None:
        raise NotFound(f"no procurement {procurement_id}")
    return p


def get_by_vehicle(conn: Conn, *, vehicle_id: int) -> dict | None:
    """The procurement that delivered this vehicle, or None (registered outside procurement)."""
    return conn.execute(_SELECT + " WHERE p.vehicle_id = %s", (vehicle_id,)).fetchone()


def list_(
    conn: Conn,
    *,
    status: str | None = None,
    supplier: str | None = None,
    planned_from: dt.date | None = None,
    planned_to: dt.date | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict]:
    """Procurements, newest first, filtered by status, supplier (substring) and planned date range."""
    if planned_from and planned_to and planned_from > planned_to:
        raise Invalid("planned_from is after planned_to")
    return conn.execute(
        _SELECT
        + """ WHERE (%(st)s::text IS NULL OR p.status = %(st)s)
              AND (%(sup)s::text IS NULL OR p.supplier ILIKE %(sup)s)
              AND (%(f)s::date IS NULL OR p.planned_on >= %(f)s)
              AND (%(t)s::date IS NULL OR p.planned_on <= %(t)s)
            ORDER BY p.planned_on DESC, p.id DESC LIMIT %(l)s OFFSET %(o)s""",
        {
            "st": status,
            "sup": like_contains(supplier),
            "f": planned_from,
            "t": planned_to,
            "l": limit,
            "o": offset,
        },
    ).fetchall()


def _audit(
    conn: Conn, actor: dict, action: str, procurement_id: int, before: dict | None, after: dict
) -> None:
    audit(
        conn,
        actor=actor,
        action=f"procurement.{action}",
        entity="procurements",
        entity_id=procurement_id,
        before=before,
        after=after,
    )


def create(
    conn: Conn,
    *,
    supplier: str,
    make: str,
    model: str,
    year: int,
    vehicle_class: str,
    station: str,
    price: Decimal,
    actor: dict,
    currency: str = "EUR",
    planned_on: dt.date | None = None,
    expected_on: dt.date | None = None,
    note: str = "",
) -> dict:
    """Plan the purchase of one vehicle."""
    if not supplier.strip():
        raise Invalid("supplier is required")
    vehicles.check_year(year)
    vehicles.check_class(vehicle_class)
    if price < 0:
        raise Invalid("price may not be negative")
    planned_on = planned_on or dt.date.today()
    if expected_on is not None and expected_on < planned_on:
        raise Invalid("expected_on is before planned_on")
    station_id = stations.referenced_id(conn, code=station)
    pid = one(
        conn.execute(
            """INSERT INTO procurements (supplier, make, model, year, class, station_id, price, currency, planned_on,
                                     expected_on, note, created_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (
                supplier.strip(),
                make,
                model,
                year,
                vehicle_class,
                station_id,
                price,
                currency.upper(),
                planned_on,
                expected_on,
                note,
                actor["username"],
            ),
        )
    )["id"]
    p = get_or_raise(conn, procurement_id=pid)
    _audit(conn, actor, "create", pid, None, p)
    return p


def _for_update(conn: Conn, procurement_id: int) -> dict:
    p = get_or_raise(conn, procurement_id=procurement_id)
    conn.execute("SELECT 1 FROM procurements WHERE id = %s FOR UPDATE", (procurement_id,))
    return p


def update(conn: Conn, *, procurement_id: int, changes: dict[str, Any], actor: dict) -> dict:
    """Edit a procurement that is not yet delivered or cancelled."""
    before = _for_update(conn, procurement_id)
    if before["status"] in ("delivered", "cancelled"):
        raise Conflict(f"procurement {procurement_id} is {before['status']}; it can no longer change")
    cols: dict[str, Any] = {}
    for f in ("supplier", "make", "model", "note", "price", "expected_on", "year"):
        if changes.get(f) is not None:
            cols[f] = changes[f]
    if "year" in cols:
        vehicles.check_year(cols["year"])
    if changes.get("vehicle_class") is not None:
        vehicles.check_class(changes["vehicle_class"])
        cols["class"] = changes["vehicle_class"]
    if changes.get("station") is not None:
        cols["station_id"] = stations.referenced_id(conn, code=changes["station"])
    if cols.get("price", 0) < 0:
        raise Invalid("price may not be negative")
    if cols:
        update_columns(conn, table="procurements", key="id", key_value=procurement_id, values=cols)
    after = get_or_raise(conn, procurement_id=procurement_id)
    _audit(conn, actor, "update", procurement_id, before, after)
    return after


def order(
    conn: Conn,
    *,
    procurement_id: int,
    actor: dict,
    ordered_on: dt.date | None = None,
    expected_on: dt.date | None = None,
    price: Decimal | None = None,
) -> dict:
    """planned -> ordered (the purchase order went to the supplier)."""
    before = _for_update(conn, procurement_id)
    if before["status"] != "planned":
        raise Conflict(
            f"procurement {procurement_id} is {before['status']}; only a planned one can be ordered"
        )
    ordered_on = ordered_on or dt.date.today()
    if ordered_on < before["planned_on"]:
        raise Invalid(f"ordered_on {ordered_on} is before planned_on {before['planned_on']}")
    if expected_on is not None and expected_on < ordered_on:
        raise Invalid("expected_on is before ordered_on")
    if price is not None and price < 0:
        raise Invalid("price may not be negative")
    conn.execute(
        """UPDATE procurements SET status = 'ordered', ordered_on = %s, expected_on = coalesce(%s, expected_on),
                  price = coalesce(%s, price), updated_at = now() WHERE id = %s""",
        (ordered_on, expected_on, price, procurement_id),
    )
    after = get_or_raise(conn, procurement_id=procurement_id)
    _audit(conn, actor, "order", procurement_id, before, after)
    return after


def deliver(
    conn: Conn,
    *,
    procurement_id: int,
    vin: str,
    plate: str,
    actor: dict,
    delivered_on: dt.date | None = None,
    device_id: str | None = None,
) -> tuple[dict, dict]:
    """ordered -> delivered: registers the vehicle (and installs its device). Returns (procurement, vehicle)."""
    before = _for_update(conn, procurement_id)
    if before["status"] != "ordered":
        raise Conflict(
            f"procurement {procurement_id} is {before['status']}; only an ordered one can be delivered"
        )
    delivered_on = delivered_on or dt.date.today()
    if delivered_on < before["ordered_on"]:
        raise Invalid(f"delivered_on {delivered_on} is before ordered_on {before['ordered_on']}")
    if device_id is not None and not DEVICE_ID_RE.match(device_id):
        raise Invalid(f"invalid device_id {device_id!r}")
    vehicle = vehicles.create(
        conn,
        vin=vin,
        plate=plate,
        make=before["make"],
        model=before["model"],
        year=before["year"],
        vehicle_class=before["class"],
        station=before["station"],
        last_service_at=dt.datetime.combine(delivered_on, dt.time(), tzinfo=dt.UTC),
        device_id=device_id or None,
        actor=actor,
    )
    conn.execute(
        "UPDATE procurements SET status = 'delivered', delivered_on = %s, vehicle_id = %s, updated_at = now() WHERE id = %s",
        (delivered_on, vehicle["id"], procurement_id),
    )
    after = get_or_raise(conn, procurement_id=procurement_id)
    _audit(conn, actor, "deliver", procurement_id, before, after)
    # Listeners (finance capitalises the vehicle against the supplier's bill) run in this transaction.
    events.emit(conn, "procurement.delivered", procurement=after, vehicle=vehicle, actor=actor)
    return after, vehicle


def cancel(conn: Conn, *, procurement_id: int, actor: dict, reason: str = "") -> dict:
    """planned/ordered -> cancelled."""
    before = _for_update(conn, procurement_id)
    if before["status"] not in ("planned", "ordered"):
        raise Conflict(f"procurement {procurement_id} is {before['status']}; it cannot be cancelled")
    conn.execute(
        """UPDATE procurements SET status = 'cancelled', note = trim(note || ' ' || %s), updated_at = now()
            WHERE id = %s""",
        (f"cancelled: {reason}" if reason else "cancelled", procurement_id),
    )
    after = get_or_raise(conn, procurement_id=procurement_id)
    _audit(conn, actor, "cancel", procurement_id, before, after)
    return after
