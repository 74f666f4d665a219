"""Maintenance: the one owner of maintenance_records, and the service plan (when the next service is due).

The plan's data sit on the vehicle (service_interval_*, last_service_*; written through backoffice.vehicles);
the odometer comes from the vehicle's telemetry state (backoffice.telemetry).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from backoffice.maintenance.models import MAINTENANCE_KINDS
from backoffice.procurement import service as procurement
from backoffice.telemetry import service as telemetry
from backoffice.training import service as training
from backoffice.vehicles import service as vehicles
from fleetcore import events
from fleetcore.audit import audit
from fleetcore.db import Conn, like_contains, one, update_columns
from fleetcore.errors import Conflict, Invalid, NotFound

# VIN and plate are reads of the vehicles table (backoffice.vehicles), joined for one query.
_SELECT = """SELECT m.*, v.vin, v.plate, m.labour_cost + m.parts_cost AS total_cost
             FROM maintenance_records m JOIN vehicles v ON v.id = m.vehicle_id"""

# ---- service plan -------------------------------------------------------------------------------------------


def service_info(conn: Conn, *, vehicle_id: int, now: dt.datetime | None = None) -> dict:
    """When the next service is due, by distance and by date, from the vehicle's plan and last service."""
    now = now or dt.datetime.now(dt.UTC)
    v = vehicles.get_by_id_or_raise(conn, vehicle_id=vehicle_id)
    baseline_at = v["last_service_at"]
    if baseline_at is None:
        delivered = procurement.get_by_vehicle(conn, vehicle_id=vehicle_id)
        if delivered is not None and delivered["delivered_on"] is not None:
            baseline_at = dt.datetime.combine(delivered["delivered_on"], dt.time(), tzinfo=dt.UTC)
        else:
            baseline_at = v["created_at"]
    state = telemetry.get_state(conn, vehicle_id=vehicle_id)
    odo = state["odometer_km"] if state else None
    next_km = v["last_service_odometer_km"] + v["service_interval_km"]
    next_at = baseline_at + dt.timedelta(days=v["service_interval_days"])
    return {
        "service_interval_km": v["service_interval_km"],
        "service_interval_days": v["service_interval_days"],
        "last_service_at": v["last_service_at"],
        "last_service_odometer_km": v["last_service_odometer_km"],
        "odometer_km": odo,
        "next_service_km": next_km,
        "next_service_at": next_at,
        "km_remaining": None if odo is None else next_km - odo,
        "due_now": (odo is not None and odo >= next_km) or now >= next_at,
    }


def service_due(conn: Conn, *, vehicle_id: int, until: dt.datetime, odometer_km: float | None = None) -> bool:
    """True if the vehicle is (or becomes) due for service by `until` or at `odometer_km`.

    `odometer_km` is the reading to test against the distance limit (e.g. current reading plus the rental's expected
    distance); None uses the latest telemetry reading (vehicle_state.odometer_km).
    """
    info = service_info(conn, vehicle_id=vehicle_id)
    odo = info["odometer_km"] if odometer_km is None else odometer_km
    if odo is not None and odo >= info["next_service_km"]:
        return True
    return until >= info["next_service_at"]


# ---- work orders --------------------------------------------------------------------------------------------


def _parts_cost(parts: list[dict]) -> Decimal:
    return sum(
        (Decimal(str(p.get("qty", 1))) * Decimal(str(p.get("unit_cost", 0))) for p in parts), Decimal("0")
    )


def _check_kind(kind: str) -> None:
    if kind not in MAINTENANCE_KINDS:
        raise Invalid(f"unknown maintenance kind {kind!r} (one of {', '.join(MAINTENANCE_KINDS)})")


def _audit(conn: Conn, actor: dict, action: str, record_id: int, before: dict | None, after: dict) -> None:
    audit(
        conn,
        actor=actor,
        action=f"maintenance.{action}",
        entity="maintenance_records",
        entity_id=record_id,
        before=before,
        after=after,
    )


def get(conn: Conn, *, record_id: int) -> dict | None:
    """One maintenance record with the vehicle's VIN and plate, or None."""
    return conn.execute(_SELECT + " WHERE m.id = %s", (record_id,)).fetchone()


def get_or_raise(conn: Conn, *, record_id: int) -> dict:
    """One maintenance record; NotFound otherwise."""
    m = get(conn, record_id=record_id)
    if m is None:
        raise NotFound(f"no maintenance record {record_id}")
    return m


def list_(
    conn: Conn,
    *,
    vin: str | None = None,
    q: str | None = None,
    kind: str | None = None,
    opened_from: dt.datetime | None = None,
    opened_to: dt.datetime | None = None,
    open_only: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> list[dict]:
    """The maintenance archive (of one vehicle, or all), newest first; `q` searches work order, description and
    parts (substring)."""
    if opened_from is not None and opened_to is not None and opened_from >= opened_to:
        raise Invalid("from must be before to")
    vehicle_id = vehicles.get_or_raise(conn, vin=vin)["id"] if vin else None
    return conn.execute(
        _SELECT
        + """ WHERE (%(vid)s::bigint IS NULL OR m.vehicle_id = %(vid)s)
              AND (%(kind)s::text IS NULL OR m.kind = %(kind)s)
              AND (%(f)s::timestamptz IS NULL OR m.opened_at >= %(f)s)
              AND (%(t)s::timestamptz IS NULL OR m.opened_at < %(t)s)
              AND (NOT %(open)s OR m.closed_at IS NULL)
              AND (%(q)s::text IS NULL
                   OR m.work_order ILIKE %(q)s
                   OR m.description ILIKE %(q)s
                   OR m.parts::text ILIKE %(q)s)
            ORDER BY m.opened_at DESC, m.id DESC LIMIT %(l)s OFFSET %(o)s""",
        {
            "vid": vehicle_id,
            "kind": kind,
            "f": opened_from,
            "t": opened_to,
            "open": open_only,
            "q": like_contains(q),
            "l": limit,
            "o": offset,
        },
    ).fetchall()


def create(
    conn: Conn,
    *,
    vehicle_id: int,
    work_order: str,
    description: str,
    actor: dict,
    kind: str = "repair",
    parts: list[dict] | None = None,
    labour_cost: Decimal = Decimal("0"),
    parts_cost: Decimal | None = None,
    odometer_km: float | None = None,
    opened_at: dt.datetime | None = None,
) -> dict:
    """Open a work order for a vehicle that is not retired; parts_cost defaults to the parts' qty x unit_cost."""
    vehicle = vehicles.get_by_id_or_raise(conn, vehicle_id=vehicle_id)
    if vehicle["status"] == "retired":
        raise Invalid(f"vehicle {vehicle['vin']} is retired")
    _check_kind(kind)
    if not work_order.strip():
        raise Invalid("work_order is required")
    parts = parts or []
    if parts_cost is None:
        parts_cost = _parts_cost(parts)
    if conn.execute(
        "SELECT 1 FROM maintenance_records WHERE work_order = %s", (work_order.strip(),)
    ).fetchone():
        raise Conflict(f"work order {work_order.strip()!r} already exists")
    rid = one(
        conn.execute(
            """INSERT INTO maintenance_records (vehicle_id, work_order, kind, description, parts, labour_cost, parts_cost,
                                            odometer_km, opened_at, opened_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s) RETURNING id""",
            (
                vehicle_id,
                work_order.strip(),
                kind,
                description,
                Jsonb(parts),
                labour_cost,
                parts_cost,
                odometer_km,
                opened_at,
                actor["username"],
            ),
        )
    )["id"]
    rec = get_or_raise(conn, record_id=rid)
    _audit(conn, actor, "open", rid, None, rec)
    return rec


def update(conn: Conn, *, record_id: int, changes: dict[str, Any], actor: dict) -> dict:
    """Edit an open work order (a closed one is archived and immutable)."""
    before = get_or_raise(conn, record_id=record_id)
    if before["closed_at"] is not None:
        raise Conflict(f"work order {before['work_order']} is closed; the archive is immutable")
    cols: dict[str, Any] = {}
    for f in ("description", "labour_cost", "parts_cost", "odometer_km"):
        if changes.get(f) is not None:
            cols[f] = changes[f]
    if changes.get("kind") is not None:
        if changes["kind"] not in MAINTENANCE_KINDS:
            raise Invalid(f"unknown maintenance kind {changes['kind']!r}")
        cols["kind"] = changes["kind"]
    if changes.get("parts") is not None:
        cols["parts"] = Jsonb(changes["parts"])
        if changes.get("parts_cost") is None:
            cols["parts_cost"] = _parts_cost(changes["parts"])
    if cols:
        update_columns(conn, table="maintenance_records", key="id", key_value=record_id, values=cols)
    after = get_or_raise(conn, record_id=record_id)
    _audit(conn, actor, "update", record_id, before, after)
    return after


def close(
    conn: Conn,
    *,
    record_id: int,
    actor: dict,
    closed_at: dt.datetime | None = None,
    odometer_km: float | None = None,
) -> dict:
    """Close a work order; a closed `service` moves the vehicle's service plan baseline to it. A technician needs a
    valid certification for the work order's kind when training requires one."""
    before = get_or_raise(conn, record_id=record_id)
    if before["closed_at"] is not None:
        raise Conflict(f"work order {before['work_order']} is already closed")
    closed_at = closed_at or dt.datetime.now(dt.UTC)
    if actor.get("role") == "technician":
        training.require_certification(
            conn, username=actor["username"], task_kind=before["kind"], on=closed_at.date()
        )
    if closed_at < before["opened_at"]:
        raise Invalid(
            f"closed_at {closed_at.isoformat()} is before opened_at {before['opened_at'].isoformat()}"
        )
    odo = odometer_km if odometer_km is not None else before["odometer_km"]
    conn.execute(
        """UPDATE maintenance_records SET closed_at = %s, closed_by = %s, odometer_km = %s, updated_at = now()
            WHERE id = %s""",
        (closed_at, actor["username"], odo, record_id),
    )
    if before["kind"] == "service":
        if odo is None:
            state = telemetry.get_state(conn, vehicle_id=before["vehicle_id"])
            odo = state["odometer_km"] if state else None
        vehicles.record_service(conn, vehicle_id=before["vehicle_id"], at=closed_at, odometer_km=odo)
    after = get_or_raise(conn, record_id=record_id)
    _audit(conn, actor, "close", record_id, before, after)
    # Listeners (finance books parts and labour) run in this transaction: the cost stands if the close does.
    events.emit(conn, "maintenance.work_order_closed", record=after, actor=actor)
    return after


# A work order on the same vehicle and of the same kind opened this soon after another was closed counts as rework of
# the first (the usual "comeback" window of workshop quality measures).
REWORK_DAYS = 30


def technician_kpis(conn: Conn, *, username: str, start: dt.datetime, end: dt.datetime) -> dict:
    """Work orders a technician closed in [start, end) and how many came back (rework within REWORK_DAYS)."""
    r = one(
        conn.execute(
            """SELECT count(*) AS closed,
                      count(*) FILTER (WHERE EXISTS (
                          SELECT 1 FROM maintenance_records n
                           WHERE n.vehicle_id = m.vehicle_id AND n.kind = m.kind AND n.id <> m.id
                             AND n.opened_at >= m.closed_at AND n.opened_at < m.closed_at + %s)) AS reworked
                 FROM maintenance_records m
                WHERE m.closed_by = %s AND m.closed_at >= %s AND m.closed_at < %s""",
            (dt.timedelta(days=REWORK_DAYS), username, start, end),
        )
    )
    rate = round(r["reworked"] / r["closed"], 4) if r["closed"] else None
    return {"work_orders_closed": r["closed"], "reworked": r["reworked"], "rework_rate": rate}
