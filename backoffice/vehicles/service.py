"""Vehicles: the one owner of the vehicles table and of vehicle_status_history.

Every status change goes through here with the transition check (ALLOWED_TRANSITIONS): staff changes through
`change_status` (audited), another domain's lifecycle steps (an order's hold, pickup and return) through
`move_status` (recorded in that domain's own history). The trigger of migration 0201 writes the history rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from backoffice.devices import service as devices
from backoffice.stations import service as stations
from backoffice.vehicles.models import (
    ALLOWED_TRANSITIONS,
    INITIAL_STATUSES,
    MAX_YEAR,
    MIN_YEAR,
    STATUS_TARGETS_BY_ROLE,
    TECHNICIAN_RELEASE_FROM,
    VEHICLE_CLASSES,
    VEHICLE_FIELDS,
    VEHICLE_STATUSES,
)
from fleetcore.audit import audit
from fleetcore.db import Conn, like_contains, one, update_columns
from fleetcore.errors import Conflict, Forbidden, Invalid, NotFound
from fleetcore.protocol.vin import vin_problem

# The installed device comes from device_installs (owned by backoffice.devices): a read, joined for one query.
_SELECT = """SELECT v.*, s.code AS station, di.device_id
             FROM vehicles v
             LEFT JOIN stations s ON s.id = v.home_station_id
             LEFT JOIN device_installs di ON di.vehicle_id = v.id AND di.removed_at IS NULL"""

# ---- reading ----------------------------------------------------------------------------------------------


def get(conn: Conn, *, vin: str) -> dict | None:
    """The vehicle with this VIN (with station code and installed device), or None."""
    return conn.execute(_SELECT + " WHERE v.vin = %s", (vin.upper(),)).fetchone()


def get_by_id(conn: Conn, *, vehicle_id: int) -> dict | None:
    """The vehicle with this id, or None."""
    return conn.execute(_SELECT + " WHERE v.id = %s", (vehicle_id,)).fetchone()


def get_or_raise(conn: Conn, *, vin: str) -> dict:
    """The vehicle with this VIN; NotFound otherwise."""
    v = get(conn, vin=vin)
    if v is None:
        raise NotFound(f"no vehicle with VIN {vin}")
    return v


def get_by_id_or_raise(conn: Conn, *, vehicle_id: int) -> dict:
    """The vehicle with this id; NotFound otherwise."""
    v = get_by_id(conn, vehicle_id=vehicle_id)
    if v is None:
        raise NotFound(f"no vehicle with id {vehicle_id}")
    return v


def list_(
    conn: Conn,
    *,
    station: str | None = None,
    vehicle_class: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict]:
    """Vehicles by id with station code and installed device, filtered by station, class and status."""
    return conn.execute(
        """SELECT v.id, v.vin, v.plate, v.make, v.model, v.year, v.class, v.status,
                  s.code AS station, di.device_id
             FROM vehicles v
             LEFT JOIN stations s ON s.id = v.home_station_id
             LEFT JOIN device_installs di ON di.vehicle_id = v.id AND di.removed_at IS NULL
            WHERE (%(station)s::text IS NULL OR s.code = %(station)s)
              AND (%(cls)s::text IS NULL OR v.class = %(cls)s)
              AND (%(status)s::text IS NULL OR v.status = %(status)s)
            ORDER BY v.id
            LIMIT %(limit)s OFFSET %(offset)s""",
        {"station": station, "cls": vehicle_class, "status": status, "limit": limit, "offset": offset},
    ).fetchall()


def list_by_vins(conn: Conn, *, vins: list[str]) -> list[dict]:
    """id, vin and status of the vehicles with these VINs (those that exist)."""
    return conn.execute(
        "SELECT id, vin, status FROM vehicles WHERE vin = ANY(%s) ORDER BY id", ([v.upper() for v in vins],)
    ).fetchall()


def list_changed(conn: Conn, *, after: dt.datetime) -> list[dict]:
    """id, status and home station of the vehicles whose row changed (a status change, an edit) after `after`."""
    return conn.execute(
        """SELECT v.id, v.status, s.code AS station FROM vehicles v
             LEFT JOIN stations s ON s.id = v.home_station_id
            WHERE v.updated_at > %s ORDER BY v.id""",
        (after,),
    ).fetchall()


def search(conn: Conn, *, q: str, limit: int = 20) -> list[dict]:
    """Vehicles whose plate or VIN contains `q` (case-insensitive; spaces and dashes in plates ignored)."""
    compact = q.replace(" ", "").replace("-", "")
    return conn.execute(
        """SELECT v.id, v.vin, v.plate, v.make, v.model, v.status, s.code AS station
             FROM vehicles v LEFT JOIN stations s ON s.id = v.home_station_id
            WHERE v.vin ILIKE %(q)s OR replace(replace(v.plate, ' ', ''), '-', '') ILIKE %(c)s
            ORDER BY (v.vin ILIKE %(exact)s OR v.plate ILIKE %(exact)s) DESC, v.plate LIMIT %(limit)s""",
        {"q": like_contains(q), "c": like_contains(compact), "exact": q, "limit": limit},
    ).fetchall()


def list_registered(conn: Conn, *, vins: list[str], plates: list[str]) -> list[dict]:
    """vin and plate of the vehicles that already use one of these VINs or plates."""
    return conn.execute(
        "SELECT vin, plate FROM vehicles WHERE vin = ANY(%s) OR plate = ANY(%s)", (vins, plates)
    ).fetchall()


def list_status_history(conn: Conn, *, vehicle_id: int, limit: int = 100, offset: int = 0) -> list[dict]:
    """The vehicle's status changes, newest first."""
    return conn.execute(
        """SELECT id, from_status, status, changed_at, changed_by, note FROM vehicle_status_history
            WHERE vehicle_id = %s ORDER BY changed_at DESC, id DESC LIMIT %s OFFSET %s""",
        (vehicle_id, limit, offset),
    ).fetchall()


# ---- registration and updates -------------------------------------------------------------------------------


def check_year(year: int) -> None:
    """Invalid unless the model year is within the table's bounds."""
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise Invalid(f"year {year} outside {MIN_YEAR}-{MAX_YEAR}")


def check_class(vehicle_class: str) -> None:
    """Invalid unless the vehicle class is one we rent out."""
    if vehicle_class not in VEHICLE_CLASSES:
        raise Invalid(f"unknown class {vehicle_class!r} (one of {', '.join(VEHICLE_CLASSES)})")


def _normalise_plate(plate: str) -> str:
    plate = plate.strip().upper()
    if not 1 <= len(plate) <= 16:
        raise Invalid(f"invalid plate {plate!r}: 1-16 characters")
    return plate


def _check_plate_free(conn: Conn, plate: str, *, except_id: int | None = None) -> None:
    row = conn.execute(
        "SELECT vin FROM vehicles WHERE plate = %s AND id IS DISTINCT FROM %s", (plate, except_id)
    ).fetchone()
    if row:
        raise Conflict(f"plate {plate!r} is already registered to {row['vin']}")


def _checked_new(conn: Conn, v: dict, station_ids: dict[str, int]) -> dict:
    """One new vehicle's fields, normalised and checked (VIN check digit, plate, year, class, status, station)."""
    vin = v["vin"].strip().upper()
    if p := vin_problem(vin):
        raise Invalid(f"invalid VIN {vin!r}: {p}")
    plate = _normalise_plate(v["plate"])
    if not v["make"].strip() or not v["model"].strip():
        raise Invalid("make and model are required")
    check_year(v["year"])
    check_class(v["vehicle_class"])
    status = v.get("status", "available")
    if status not in INITIAL_STATUSES:
        raise Invalid(f"a new vehicle starts as one of {', '.join(INITIAL_STATUSES)}, not {status!r}")
    code = v["station"].upper()
    if code not in station_ids:
        station_ids[code] = stations.referenced_id(conn, code=code)
    return {
        "vin": vin,
        "plate": plate,
        "make": v["make"].strip(),
        "model": v["model"].strip(),
        "year": v["year"],
        "class": v["vehicle_class"],
        "home_station_id": station_ids[code],
        "status": status,
        "service_interval_km": v.get("service_interval_km"),
        "service_interval_days": v.get("service_interval_days"),
        "last_service_at": v.get("last_service_at"),
    }


def create_many(conn: Conn, *, vehicles: list[dict], actor: dict, note: str = "registered") -> list[dict]:
    """Register vehicles in a few statements with the rules of `create`; returns their id, vin and status.

    Each item has the keyword arguments of `create` (without device and actor). Bulk registration is a setup
    path (the simulator's fleet); it writes status history but no audit records.
    """
    station_ids: dict[str, int] = {}
    rows = [_checked_new(conn, v, station_ids) for v in vehicles]
    for key in ("vin", "plate"):
        seen: set[str] = set()
        for r in rows:
            if r[key] in seen:
                raise Invalid(f"{key} {r[key]!r} appears twice")
            seen.add(r[key])
    taken = list_registered(conn, vins=[r["vin"] for r in rows], plates=[r["plate"] for r in rows])
    vins_taken = {t["vin"] for t in taken}
    plates_taken = {t["plate"]: t["vin"] for t in taken}
    for r in rows:
        if r["vin"] in vins_taken:
            raise Conflict(f"vehicle with VIN {r['vin']} already exists")
        if r["plate"] in plates_taken:
            raise Conflict(f"plate {r['plate']!r} is already registered to {plates_taken[r['plate']]}")
    if not rows:
        return []
    cols = list(rows[0])
    created = conn.execute(
        """INSERT INTO vehicles (vin, plate, make, model, year, class, home_station_id, status,
                                 service_interval_km, service_interval_days, last_service_at)
           SELECT vin, plate, make, model, year, class, home_station_id, status, coalesce(sikm, 15000),
                  coalesce(sid, 365), lsa
             FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::int[], %s::text[], %s::bigint[],
                         %s::text[], %s::int[], %s::int[], %s::timestamptz[])
                  WITH ORDINALITY AS t(vin, plate, make, model, year, class, home_station_id, status, sikm, sid, lsa, n)
            ORDER BY n
           RETURNING id, vin, status""",
        [[r[c] for r in rows] for c in cols],
    ).fetchall()
    conn.execute(
        """INSERT INTO vehicle_status_history (vehicle_id, status, changed_by, note)
           SELECT unnest(%s::bigint[]), unnest(%s::text[]), %s, %s""",
        ([c["id"] for c in created], [c["status"] for c in created], actor["username"], note),
    )
    by_vin = {c["vin"]: c for c in created}
    return [by_vin[r["vin"]] for r in rows]


def create(
    conn: Conn,
    *,
    vin: str,
    plate: str,
    make: str,
    model: str,
    year: int,
    vehicle_class: str,
    station: str,
    actor: dict,
    status: str = "available",
    service_interval_km: int | None = None,
    service_interval_days: int | None = None,
    last_service_at: dt.datetime | None = None,
    device_id: str | None = None,
) -> dict:
    """Register a vehicle (VIN with a valid check digit, unique VIN and plate, a known station), optionally with
    its device; audited as vehicle.create."""
    (new,) = create_many(
        conn,
        vehicles=[
            {
                "vin": vin,
                "plate": plate,
                "make": make,
                "model": model,
                "year": year,
                "vehicle_class": vehicle_class,
                "station": station,
                "status": status,
                "service_interval_km": service_interval_km,
                "service_interval_days": service_interval_days,
                "last_service_at": last_service_at,
            }
        ],
        actor=actor,
    )
    if device_id:
        devices.check_free(conn, device_id=device_id, vehicle_id=new["id"])
        devices.bind(conn, device_id=device_id, vehicle_id=new["id"])
    v = get_by_id_or_raise(conn, vehicle_id=new["id"])
    audit(conn, actor=actor, action="vehicle.create", entity="vehicles", entity_id=v["vin"], after=v)
    return v


def update(conn: Conn, *, vin: str, changes: dict[str, Any], actor: dict) -> dict:
    """Change registration data (plate, make, model, year, class, home station, service intervals)."""
    before = get_or_raise(conn, vin=vin)
    unknown = set(changes) - set(VEHICLE_FIELDS)
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))} here")
    if before["status"] == "retired":
        raise Conflict(f"vehicle {before['vin']} is retired; its record is closed")
    cols: dict[str, Any] = {}
    if changes.get("plate") is not None:
        cols["plate"] = _normalise_plate(changes["plate"])
        _check_plate_free(conn, cols["plate"], except_id=before["id"])
    for f in ("make", "model"):
        if changes.get(f) is not None:
            if not changes[f].strip():
                raise Invalid(f"{f} may not be empty")
            cols[f] = changes[f].strip()
    if changes.get("year") is not None:
        check_year(changes["year"])
        cols["year"] = changes["year"]
    if changes.get("vehicle_class") is not None:
        check_class(changes["vehicle_class"])
        cols["class"] = changes["vehicle_class"]
    if changes.get("station") is not None:
        cols["home_station_id"] = stations.referenced_id(conn, code=changes["station"])
    for f in ("service_interval_km", "service_interval_days"):
        if changes.get(f) is not None:
            cols[f] = changes[f]
    if cols:
        update_columns(conn, table="vehicles", key="id", key_value=before["id"], values=cols)
    after = get_by_id_or_raise(conn, vehicle_id=before["id"])
    audit(
        conn,
        actor=actor,
        action="vehicle.update",
        entity="vehicles",
        entity_id=after["vin"],
        before=before,
        after=after,
    )
    return after


def relocate(conn: Conn, *, vehicle_id: int, home_station_id: int) -> None:
    """Base the vehicle at another station (a transfer, or a one-way return)."""
    conn.execute(
        "UPDATE vehicles SET home_station_id = %s, updated_at = now() WHERE id = %s",
        (home_station_id, vehicle_id),
    )


def record_service(conn: Conn, *, vehicle_id: int, at: dt.datetime, odometer_km: float | None) -> None:
    """A service was done: the plan's baseline (date, and odometer when known) moves to it."""
    conn.execute(
        """UPDATE vehicles SET last_service_at = %s,
                  last_service_odometer_km = coalesce(%s, last_service_odometer_km), updated_at = now()
            WHERE id = %s""",
        (at, odometer_km, vehicle_id),
    )


# ---- status -------------------------------------------------------------------------------------------------


def _set_writer(conn: Conn, actor: str, note: str | None) -> None:
    """Name the writer for the status-history trigger (transaction-local)."""
    conn.execute(
        "SELECT set_config('fleet.actor', %s, true), set_config('fleet.status_note', %s, true)",
        (actor, note or ""),
    )


def _check_transition(vin: str, current: str, status: str) -> None:
    if status not in ALLOWED_TRANSITIONS[current]:
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[current])) or "none: retirement is final"
        raise Conflict(
            f"vehicle {vin} cannot go from {current} to {status} (allowed: {allowed})",
            details={"from": current, "to": status, "allowed": sorted(ALLOWED_TRANSITIONS[current])},
        )


def _write_status(conn: Conn, *, vehicle_ids: list[int], status: str, actor: dict, note: str | None) -> None:
    with conn.transaction():
        _set_writer(conn, actor["username"], note)
        conn.execute("UPDATE vehicles SET status = %s WHERE id = ANY(%s)", (status, vehicle_ids))
        _set_writer(conn, "", None)


def _check_role_may_set(actor: dict, status: str) -> None:
    """Staff roles other than admin may set only some statuses (STATUS_TARGETS_BY_ROLE)."""
    role = actor.get("role")
    if role is None or role == "admin":
        return  # the CLI, jobs and admins
    if status not in STATUS_TARGETS_BY_ROLE.get(role, frozenset()):
        raise Forbidden(f"role {role!r} may not set status {status!r}")


def change_status(
    conn: Conn,
    *,
    status: str,
    actor: dict,
    vin: str | None = None,
    vehicle_id: int | None = None,
    note: str | None = None,
) -> dict:
    """A staff member moves a vehicle to `status`: the role's allowed targets, ALLOWED_TRANSITIONS, a row lock,
    history through the trigger, audited as vehicle.status. Returns the vehicle after the change."""
    if status not in VEHICLE_STATUSES:
        raise Invalid(f"unknown status {status!r} (one of {', '.join(VEHICLE_STATUSES)})")
    _check_role_may_set(actor, status)
    if vin is not None:
        before = get_or_raise(conn, vin=vin)
    elif vehicle_id is not None:
        before = get_by_id_or_raise(conn, vehicle_id=vehicle_id)
    else:
        raise ValueError("pass vin or vehicle_id")
    # Lock the row so two concurrent changes are checked against the same current status.
    current = one(conn.execute("SELECT status FROM vehicles WHERE id = %s FOR UPDATE", (before["id"],)))[
        "status"
    ]
    if actor.get("role") == "technician" and status == "available" and current not in TECHNICIAN_RELEASE_FROM:
        raise Forbidden(
            f"a technician may release a vehicle only from {', '.join(sorted(TECHNICIAN_RELEASE_FROM))}"
        )
    if status == current:
        raise Conflict(f"vehicle {before['vin']} is already {status}")
    _check_transition(before["vin"], current, status)
    _write_status(conn, vehicle_ids=[before["id"]], status=status, actor=actor, note=note)
    after = get_by_id_or_raise(conn, vehicle_id=before["id"])
    audit(
        conn,
        actor=actor,
        action="vehicle.status",
        entity="vehicles",
        entity_id=after["vin"],
        before={"status": current},
        after={"status": after["status"], "note": note},
    )
    return after


def move_status_many(conn: Conn, *, vehicle_ids: list[int], status: str, actor: dict, note: str) -> None:
    """Another domain's lifecycle step moves vehicles to `status` along ALLOWED_TRANSITIONS (Conflict otherwise).

    Vehicles already in `status` stay as they are. Not audited: the calling domain records the step in its own
    history (an order's changes); the status history names `actor` and `note`.
    """
    if status not in VEHICLE_STATUSES:
        raise Invalid(f"unknown status {status!r} (one of {', '.join(VEHICLE_STATUSES)})")
    locked = conn.execute(
        "SELECT id, vin, status FROM vehicles WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (vehicle_ids,)
    ).fetchall()
    if len(locked) != len(set(vehicle_ids)):
        missing = sorted(set(vehicle_ids) - {r["id"] for r in locked})
        raise NotFound(f"no vehicle with id {missing[0]}")
    moving = [r for r in locked if r["status"] != status]
    for r in moving:
        _check_transition(r["vin"], r["status"], status)
    if moving:
        _write_status(conn, vehicle_ids=[r["id"] for r in moving], status=status, actor=actor, note=note)


def move_status(conn: Conn, *, vehicle_id: int, status: str, actor: dict, note: str) -> None:
    """`move_status_many` for one vehicle."""
    move_status_many(conn, vehicle_ids=[vehicle_id], status=status, actor=actor, note=note)
