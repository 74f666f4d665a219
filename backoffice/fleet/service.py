"""Fleet registry: stations, vehicles, status, devices, procurement, maintenance and service plans."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from fleetcore.contract import DEVICE_ID_RE
from fleetcore.db import Conn, one, update_columns
from fleetcore.errors import Conflict, Invalid, NotFound
from fleetcore.protocol.vin import vin_problem

VEHICLE_CLASSES = ("economy", "compact", "midsize", "fullsize", "suv", "van", "premium", "ev")
VEHICLE_STATUSES = ("available", "reserved", "rented", "maintenance", "out_of_service", "retired")
IMPORT_COLUMNS = ("vin", "plate", "make", "model", "year", "class", "station", "device_id")
# Which status may follow which. Retired is final (also enforced by a trigger, migration 0201).
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    "available": frozenset({"reserved", "rented", "maintenance", "out_of_service", "retired"}),
    "reserved": frozenset({"available", "rented", "maintenance", "out_of_service"}),
    "rented": frozenset({"available", "maintenance", "out_of_service"}),
    "maintenance": frozenset({"available", "out_of_service", "retired"}),
    "out_of_service": frozenset({"available", "maintenance", "retired"}),
    "retired": frozenset(),
}
INITIAL_STATUSES = ("available", "maintenance", "out_of_service")
PROCUREMENT_STATUSES = ("planned", "ordered", "delivered", "cancelled")
MAINTENANCE_KINDS = ("service", "repair", "inspection", "tyres", "damage", "recall")
MIN_YEAR, MAX_YEAR = 1980, 2100  # same bounds as the vehicles table CHECK (migration 0001)
VEHICLE_FIELDS = (
    "plate",
    "make",
    "model",
    "year",
    "vehicle_class",
    "station",
    "service_interval_km",
    "service_interval_days",
)


def like_contains(text: str | None) -> str | None:
    """An ILIKE pattern matching `text` anywhere, with LIKE wildcards in it taken literally."""
    if text is None:
        return None
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# ---- stations -------------------------------------------------------------------------------------------


def create_station(conn: Conn, *, code: str, name: str, lat: float, lon: float) -> dict:
    """Add a station; 409 if the code exists."""
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise Invalid(f"station coordinates out of range: lat={lat}, lon={lon}")
    code = code.strip().upper()
    if not code or len(code) > 16 or not all(c.isalnum() or c in "_-" for c in code) or len(code) < 2:
        raise Invalid(f"station code {code!r} must be 2-16 letters, digits, '-' or '_'")
    if get_station(conn, code=code):
        raise Conflict(f"station {code} already exists")
    return one(
        conn.execute(
            "INSERT INTO stations (code, name, lat, lon) VALUES (%s, %s, %s, %s) RETURNING *",
            (code, name, lat, lon),
        )
    )


def get_station(conn: Conn, *, code: str) -> dict | None:
    """The station with this code, or None."""
    return conn.execute("SELECT * FROM stations WHERE code = %s", (code.upper(),)).fetchone()


def get_station_or_raise(conn: Conn, *, code: str) -> dict:
    """The station with this code; NotFound otherwise."""
    s = get_station(conn, code=code)
    if s is None:
        raise NotFound(f"no station {code.upper()!r}")
    return s


def _station_id_or_invalid(conn: Conn, code: str) -> int:
    """A referenced station (in a request body) that does not exist is a bad request, not a missing resource."""
    s = get_station(conn, code=code)
    if s is None:
        raise Invalid(f"unknown station {code.upper()!r}")
    return s["id"]


def list_stations(
    conn: Conn, *, q: str | None = None, limit: int | None = None, offset: int = 0
) -> list[dict]:
    """Stations by code; `q` matches code or name (case-insensitive substring)."""
    return conn.execute(
        """SELECT s.*, (SELECT count(*) FROM vehicles v WHERE v.home_station_id = s.id AND v.status <> 'retired')
                  AS vehicles
             FROM stations s
            WHERE %(q)s::text IS NULL OR s.code ILIKE %(q)s OR s.name ILIKE %(q)s
            ORDER BY s.code LIMIT %(limit)s OFFSET %(offset)s""",
        {"q": like_contains(q), "limit": limit, "offset": offset},
    ).fetchall()


def update_station(
    conn: Conn,
    *,
    code: str,
    name: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
) -> tuple[dict, dict]:
    """Change a station's name or position; returns (before, after)."""
    before = get_station_or_raise(conn, code=code)
    lat = before["lat"] if lat is None else lat
    lon = before["lon"] if lon is None else lon
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise Invalid(f"station coordinates out of range: lat={lat}, lon={lon}")
    if name is not None and not 1 <= len(name) <= 200:
        raise Invalid("station name must be 1-200 characters")
    after = one(
        conn.execute(
            "UPDATE stations SET name = coalesce(%s, name), lat = %s, lon = %s WHERE id = %s RETURNING *",
            (name, lat, lon, before["id"]),
        )
    )
    return before, after


def delete_station(conn: Conn, *, code: str) -> dict:
    """Remove a station nothing refers to; Conflict while vehicles, procurements or orders still use it."""
    before = get_station_or_raise(conn, code=code)
    try:
        with conn.transaction():
            conn.execute("DELETE FROM stations WHERE id = %s", (before["id"],))
    except psycopg.errors.ForeignKeyViolation as exc:
        raise Conflict(
            f"station {before['code']} is still referenced ({exc.diag.table_name or 'another record'}); "
            "move its vehicles first",
            details={"table": exc.diag.table_name},
        ) from None
    return before


# ---- vehicles -------------------------------------------------------------------------------------------


_VEHICLE_SELECT = """SELECT v.*, s.code AS station, di.device_id
             FROM vehicles v
             LEFT JOIN stations s ON s.id = v.home_station_id
             LEFT JOIN device_installs di ON di.vehicle_id = v.id AND di.removed_at IS NULL"""


def get_vehicle(conn: Conn, *, vin: str) -> dict | None:
    """The vehicle with this VIN (with station code and installed device), or None."""
    return conn.execute(_VEHICLE_SELECT + " WHERE v.vin = %s", (vin.upper(),)).fetchone()


def get_vehicle_by_id(conn: Conn, *, vehicle_id: int) -> dict | None:
    """The vehicle with this id, or None."""
    return conn.execute(_VEHICLE_SELECT + " WHERE v.id = %s", (vehicle_id,)).fetchone()


def get_vehicle_by_id_or_raise(conn: Conn, *, vehicle_id: int) -> dict:
    """The vehicle with this id; NotFound if there is none."""
    v = get_vehicle_by_id(conn, vehicle_id=vehicle_id)
    if v is None:
        raise NotFound(f"no vehicle with id {vehicle_id}")
    return v


def get_vehicle_or_raise(conn: Conn, *, vin: str) -> dict:
    v = get_vehicle(conn, vin=vin)
    if v is None:
        raise NotFound(f"no vehicle with VIN {vin}")
    return v


def list_vehicles(
    conn: Conn,
    *,
    station: str | None = None,
    vehicle_class: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict]:
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


@dataclass
class VehicleRow:
    line: int
    vin: str
    plate: str
    make: str
    model: str
    year: int
    vehicle_class: str
    station: str
    device_id: str


class ImportError_(Invalid):
    """A vehicle import failed; `details` lists (line, problem)."""


def parse_vehicle_csv(text: str) -> tuple[list[VehicleRow], list[tuple[int, str]]]:
    """Parse and check the form of every line of a vehicles CSV; returns rows and (line, problem) pairs."""
    rows: list[VehicleRow] = []
    problems: list[tuple[int, str]] = []
    # strict: an unclosed quote is an error on its line rather than silently swallowing the rest of the file.
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        return [], [(1, f"malformed CSV: {exc}")]
    if header is None:
        return [], [(1, "file is empty")]
    header = [h.strip().lower() for h in header]
    if tuple(header) != IMPORT_COLUMNS:
        return [], [(1, f"header must be {','.join(IMPORT_COLUMNS)}, got {','.join(header)}")]
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append((reader.line_num, f"malformed CSV: {exc}"))
            break  # the reader cannot resynchronise after a quoting error
        line = reader.line_num
        if not fields or all(not f.strip() for f in fields):
            continue
        if any("\x00" in f for f in fields):
            problems.append((line, "malformed CSV: line contains a NUL byte"))
            continue
        if len(fields) != len(IMPORT_COLUMNS):
            problems.append((line, f"expected {len(IMPORT_COLUMNS)} fields, got {len(fields)}"))
            continue
        vin, plate, make, model, year, cls, station, device_id = (f.strip() for f in fields)
        vin = vin.upper()
        if p := vin_problem(vin):
            problems.append((line, f"invalid VIN {vin!r}: {p}"))
        if not plate or len(plate) > 16:
            problems.append((line, f"invalid plate {plate!r}"))
        if not make or not model:
            problems.append((line, "make and model are required"))
        try:
            year_i = int(year)
            if not 1980 <= year_i <= 2100:
                raise ValueError
        except ValueError:
            problems.append((line, f"invalid year {year!r}"))
            year_i = 0
        if cls.lower() not in VEHICLE_CLASSES:
            problems.append((line, f"unknown class {cls!r} (one of {', '.join(VEHICLE_CLASSES)})"))
        if device_id and not DEVICE_ID_RE.match(device_id):
            problems.append((line, f"invalid device_id {device_id!r}"))
        rows.append(
            VehicleRow(line, vin, plate.upper(), make, model, year_i, cls.lower(), station.upper(), device_id)
        )
    return rows, problems


def import_vehicles(conn: Conn, *, text: str, actor: dict | None = None) -> int:
    """Import a vehicles CSV all-or-nothing; raises ImportError_ listing every bad line."""
    from fleetcore.audit import audit

    rows, problems = parse_vehicle_csv(text)
    seen: dict[str, dict[str, int]] = {"vin": {}, "plate": {}, "device_id": {}}
    stations = {s["code"]: s["id"] for s in list_stations(conn)}
    for r in rows:
        for key, value in (("vin", r.vin), ("plate", r.plate), ("device_id", r.device_id)):
            if not value:
                continue
            if value in seen[key]:
                problems.append((r.line, f"duplicate {key} {value!r} (also on line {seen[key][value]})"))
            seen[key].setdefault(value, r.line)
        if r.station not in stations:
            problems.append((r.line, f"unknown station {r.station!r}"))
    if rows:
        existing = conn.execute(
            "SELECT vin, plate FROM vehicles WHERE vin = ANY(%s) OR plate = ANY(%s)",
            ([r.vin for r in rows], [r.plate for r in rows]),
        ).fetchall()
        ex_vins = {e["vin"] for e in existing}
        ex_plates = {e["plate"] for e in existing}
        busy = {
            d["device_id"]
            for d in conn.execute(
                "SELECT device_id FROM device_installs WHERE removed_at IS NULL AND device_id = ANY(%s)",
                ([r.device_id for r in rows if r.device_id],),
            ).fetchall()
        }
        for r in rows:
            if r.vin in ex_vins:
                problems.append((r.line, f"vehicle with VIN {r.vin} already exists"))
            if r.plate in ex_plates:
                problems.append((r.line, f"duplicate plate {r.plate!r}: already registered"))
            if r.device_id in busy:
                problems.append((r.line, f"device {r.device_id!r} is already installed in another vehicle"))
    if problems:
        problems.sort()
        raise ImportError_(
            "; ".join(f"line {ln}: {msg}" for ln, msg in problems),
            details=[{"line": ln, "problem": m} for ln, m in problems],
        )
    current: VehicleRow | None = None
    try:
        with conn.transaction():
            for r in rows:
                current = r
                vid = one(
                    conn.execute(
                        """INSERT INTO vehicles (vin, plate, make, model, year, class, home_station_id)
                           VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                        (r.vin, r.plate, r.make, r.model, r.year, r.vehicle_class, stations[r.station]),
                    )
                )["id"]
                conn.execute(
                    "INSERT INTO vehicle_status_history (vehicle_id, status, changed_by, note) VALUES (%s, 'available', 'import', 'imported')",
                    (vid,),
                )
                if r.device_id:
                    install_device(conn, device_id=r.device_id, vehicle_id=vid)
                audit(
                    conn,
                    actor=actor or {"username": "cli"},
                    action="vehicle.import",
                    entity="vehicles",
                    entity_id=r.vin,
                    after={
                        "vin": r.vin,
                        "plate": r.plate,
                        "station": r.station,
                        "device_id": r.device_id or None,
                    },
                )
    except psycopg.errors.IntegrityError as exc:
        # Another writer registered the same VIN, plate or device after our checks: still nothing imported.
        line = current.line if current else 0
        problem = f"conflicts with a record written meanwhile ({exc.diag.message_detail or exc.diag.constraint_name})"
        raise ImportError_(f"line {line}: {problem}", details=[{"line": line, "problem": problem}]) from None
    return len(rows)


def install_device(conn: Conn, *, device_id: str, vehicle_id: int, protocol: str | None = None) -> None:
    """Bind a device to a vehicle, ending any previous binding of either."""
    conn.execute(
        "INSERT INTO devices (device_id, protocol) VALUES (%s, coalesce(%s, 'json')) "
        "ON CONFLICT (device_id) DO UPDATE SET protocol = coalesce(%s, devices.protocol)",
        (device_id, protocol, protocol),
    )
    conn.execute(
        "UPDATE device_installs SET removed_at = now() WHERE removed_at IS NULL AND (device_id = %s OR vehicle_id = %s)",
        (device_id, vehicle_id),
    )
    conn.execute(
        "INSERT INTO device_installs (device_id, vehicle_id) VALUES (%s, %s)", (device_id, vehicle_id)
    )
    conn.execute(
        "INSERT INTO vehicle_state (vehicle_id, device_id) VALUES (%s, %s) "
        "ON CONFLICT (vehicle_id) DO UPDATE SET device_id = EXCLUDED.device_id",
        (vehicle_id, device_id),
    )


def remove_device(conn: Conn, *, vehicle_id: int) -> dict:
    """End the vehicle's current device binding; returns the ended install. NotFound if none."""
    row = conn.execute(
        "UPDATE device_installs SET removed_at = now() WHERE vehicle_id = %s AND removed_at IS NULL RETURNING *",
        (vehicle_id,),
    ).fetchone()
    if row is None:
        raise NotFound("the vehicle has no device installed")
    conn.execute("UPDATE vehicle_state SET device_id = NULL WHERE vehicle_id = %s", (vehicle_id,))
    return row


def device_history(conn: Conn, *, vehicle_id: int) -> list[dict]:
    """Every device binding of the vehicle, newest first."""
    return conn.execute(
        """SELECT di.id, di.device_id, d.protocol, di.installed_at, di.removed_at
             FROM device_installs di JOIN devices d USING (device_id)
            WHERE di.vehicle_id = %s ORDER BY di.installed_at DESC, di.id DESC""",
        (vehicle_id,),
    ).fetchall()


# ---- vehicle registration, updates and status ------------------------------------------------------------


def _check_year(year: int) -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise Invalid(f"year {year} outside {MIN_YEAR}-{MAX_YEAR}")


def _check_class(vehicle_class: str) -> None:
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


def _set_writer(conn: Conn, actor: str, note: str | None) -> None:
    """Name the writer for the status-history trigger (transaction-local)."""
    conn.execute(
        "SELECT set_config('fleet.actor', %s, true), set_config('fleet.status_note', %s, true)",
        (actor, note or ""),
    )


def create_vehicle(
    conn: Conn,
    *,
    vin: str,
    plate: str,
    make: str,
    model: str,
    year: int,
    vehicle_class: str,
    station: str,
    status: str = "available",
    service_interval_km: int | None = None,
    service_interval_days: int | None = None,
    last_service_at: dt.datetime | None = None,
    actor: str = "system",
) -> dict:
    """Register a vehicle: VIN with a valid check digit, unique VIN and plate, a known station."""
    vin = vin.strip().upper()
    if p := vin_problem(vin):
        raise Invalid(f"invalid VIN {vin!r}: {p}")
    plate = _normalise_plate(plate)
    if not make.strip() or not model.strip():
        raise Invalid("make and model are required")
    _check_year(year)
    _check_class(vehicle_class)
    if status not in INITIAL_STATUSES:
        raise Invalid(f"a new vehicle starts as one of {', '.join(INITIAL_STATUSES)}, not {status!r}")
    station_id = _station_id_or_invalid(conn, station)
    if get_vehicle(conn, vin=vin):
        raise Conflict(f"vehicle with VIN {vin} already exists")
    _check_plate_free(conn, plate)
    vid = one(
        conn.execute(
            """INSERT INTO vehicles (vin, plate, make, model, year, class, home_station_id, status,
                                 service_interval_km, service_interval_days, last_service_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, 15000), coalesce(%s, 365), %s) RETURNING id""",
            (
                vin,
                plate,
                make.strip(),
                model.strip(),
                year,
                vehicle_class,
                station_id,
                status,
                service_interval_km,
                service_interval_days,
                last_service_at,
            ),
        )
    )["id"]
    conn.execute(
        "INSERT INTO vehicle_status_history (vehicle_id, status, changed_by, note) VALUES (%s, %s, %s, 'registered')",
        (vid, status, actor),
    )
    return get_vehicle_by_id_or_raise(conn, vehicle_id=vid)


def update_vehicle(conn: Conn, *, vin: str, changes: dict[str, Any]) -> tuple[dict, dict]:
    """Change registration data (plate, make, model, year, class, home station, service intervals); (before, after)."""
    before = get_vehicle_or_raise(conn, vin=vin)
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
        _check_year(changes["year"])
        cols["year"] = changes["year"]
    if changes.get("vehicle_class") is not None:
        _check_class(changes["vehicle_class"])
        cols["class"] = changes["vehicle_class"]
    if changes.get("station") is not None:
        cols["home_station_id"] = _station_id_or_invalid(conn, changes["station"])
    for f in ("service_interval_km", "service_interval_days"):
        if changes.get(f) is not None:
            cols[f] = changes[f]
    if cols:
        update_columns(conn, table="vehicles", key="id", key_value=before["id"], values=cols)
    return before, get_vehicle_by_id_or_raise(conn, vehicle_id=before["id"])


def change_status(
    conn: Conn,
    *,
    status: str,
    actor: str,
    vin: str | None = None,
    vehicle_id: int | None = None,
    note: str | None = None,
) -> tuple[dict, dict]:
    """Move a vehicle to `status` if ALLOWED_TRANSITIONS permits; the trigger records history. (before, after)."""
    if status not in VEHICLE_STATUSES:
        raise Invalid(f"unknown status {status!r} (one of {', '.join(VEHICLE_STATUSES)})")
    if vin is not None:
        before = get_vehicle_or_raise(conn, vin=vin)
    elif vehicle_id is not None:
        before = get_vehicle_by_id_or_raise(conn, vehicle_id=vehicle_id)
    else:
        raise ValueError("pass vin or vehicle_id")
    # Lock the row so two concurrent changes are checked against the same current status.
    locked = one(conn.execute("SELECT status FROM vehicles WHERE id = %s FOR UPDATE", (before["id"],)))
    current = locked["status"]
    before["status"] = current
    if status == current:
        raise Conflict(f"vehicle {before['vin']} is already {status}")
    if status not in ALLOWED_TRANSITIONS[current]:
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[current])) or "none: retirement is final"
        raise Conflict(
            f"vehicle {before['vin']} cannot go from {current} to {status} (allowed: {allowed})",
            details={"from": current, "to": status, "allowed": sorted(ALLOWED_TRANSITIONS[current])},
        )
    with conn.transaction():
        _set_writer(conn, actor, note)
        conn.execute("UPDATE vehicles SET status = %s WHERE id = %s", (status, before["id"]))
        _set_writer(conn, "", None)
    return before, get_vehicle_by_id_or_raise(conn, vehicle_id=before["id"])


def status_history(conn: Conn, *, vehicle_id: int, limit: int = 100, offset: int = 0) -> list[dict]:
    """The vehicle's status changes, newest first."""
    return conn.execute(
        """SELECT id, from_status, status, changed_at, changed_by, note FROM vehicle_status_history
            WHERE vehicle_id = %s ORDER BY changed_at DESC, id DESC LIMIT %s OFFSET %s""",
        (vehicle_id, limit, offset),
    ).fetchall()


# ---- service plan -----------------------------------------------------------------------------------------


def service_info(conn: Conn, *, vehicle_id: int, now: dt.datetime | None = None) -> dict:
    """When the next service is due, by distance and by date, from the vehicle's plan and last service."""
    now = now or dt.datetime.now(dt.UTC)
    row = conn.execute(
        """SELECT v.service_interval_km, v.service_interval_days, v.last_service_odometer_km,
                  coalesce(v.last_service_at, p.delivered_on::timestamptz, v.created_at) AS baseline_at,
                  v.last_service_at, vs.odometer_km
             FROM vehicles v
             LEFT JOIN vehicle_state vs ON vs.vehicle_id = v.id
             LEFT JOIN procurements p ON p.vehicle_id = v.id
            WHERE v.id = %s""",
        (vehicle_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no vehicle with id {vehicle_id}")
    next_km = row["last_service_odometer_km"] + row["service_interval_km"]
    next_at = row["baseline_at"] + dt.timedelta(days=row["service_interval_days"])
    odo = row["odometer_km"]
    return {
        "service_interval_km": row["service_interval_km"],
        "service_interval_days": row["service_interval_days"],
        "last_service_at": row["last_service_at"],
        "last_service_odometer_km": row["last_service_odometer_km"],
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


# ---- procurement ------------------------------------------------------------------------------------------


def get_procurement(conn: Conn, *, procurement_id: int) -> dict | None:
    """One procurement with its station code and delivered VIN, or None."""
    return conn.execute(
        """SELECT p.*, s.code AS station, v.vin FROM procurements p
             JOIN stations s ON s.id = p.station_id LEFT JOIN vehicles v ON v.id = p.vehicle_id
            WHERE p.id = %s""",
        (procurement_id,),
    ).fetchone()


def get_procurement_or_raise(conn: Conn, *, procurement_id: int) -> dict:
    """One procurement; NotFound otherwise."""
    p = get_procurement(conn, procurement_id=procurement_id)
    if p is None:
        raise NotFound(f"no procurement {procurement_id}")
    return p


def list_procurements(
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
    return conn.execute(
        """SELECT p.*, s.code AS station, v.vin FROM procurements p
             JOIN stations s ON s.id = p.station_id LEFT JOIN vehicles v ON v.id = p.vehicle_id
            WHERE (%(st)s::text IS NULL OR p.status = %(st)s)
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


def create_procurement(
    conn: Conn,
    *,
    supplier: str,
    make: str,
    model: str,
    year: int,
    vehicle_class: str,
    station: str,
    price: Decimal,
    currency: str = "EUR",
    planned_on: dt.date | None = None,
    expected_on: dt.date | None = None,
    note: str = "",
    actor: str = "system",
) -> dict:
    """Plan the purchase of one vehicle."""
    if not supplier.strip():
        raise Invalid("supplier is required")
    _check_year(year)
    _check_class(vehicle_class)
    if price < 0:
        raise Invalid("price may not be negative")
    planned_on = planned_on or dt.date.today()
    if expected_on is not None and expected_on < planned_on:
        raise Invalid("expected_on is before planned_on")
    station_id = _station_id_or_invalid(conn, station)
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
                actor,
            ),
        )
    )["id"]
    return get_procurement_or_raise(conn, procurement_id=pid)


def _procurement_for_update(conn: Conn, procurement_id: int) -> dict:
    p = get_procurement_or_raise(conn, procurement_id=procurement_id)
    conn.execute("SELECT 1 FROM procurements WHERE id = %s FOR UPDATE", (procurement_id,))
    return p


def update_procurement(conn: Conn, *, procurement_id: int, changes: dict[str, Any]) -> tuple[dict, dict]:
    """Edit a procurement that is not yet delivered or cancelled; (before, after)."""
    before = _procurement_for_update(conn, procurement_id)
    if before["status"] in ("delivered", "cancelled"):
        raise Conflict(f"procurement {procurement_id} is {before['status']}; it can no longer change")
    cols: dict[str, Any] = {}
    for f in ("supplier", "make", "model", "note", "price", "expected_on", "year"):
        if changes.get(f) is not None:
            cols[f] = changes[f]
    if "year" in cols:
        _check_year(cols["year"])
    if changes.get("vehicle_class") is not None:
        _check_class(changes["vehicle_class"])
        cols["class"] = changes["vehicle_class"]
    if changes.get("station") is not None:
        cols["station_id"] = _station_id_or_invalid(conn, changes["station"])
    if cols.get("price", 0) < 0:
        raise Invalid("price may not be negative")
    if cols:
        update_columns(conn, table="procurements", key="id", key_value=procurement_id, values=cols)
    return before, get_procurement_or_raise(conn, procurement_id=procurement_id)


def order_procurement(
    conn: Conn,
    *,
    procurement_id: int,
    ordered_on: dt.date | None = None,
    expected_on: dt.date | None = None,
    price: Decimal | None = None,
) -> tuple[dict, dict]:
    """planned -> ordered (the purchase order went to the supplier)."""
    before = _procurement_for_update(conn, procurement_id)
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
    return before, get_procurement_or_raise(conn, procurement_id=procurement_id)


def deliver_procurement(
    conn: Conn,
    *,
    procurement_id: int,
    vin: str,
    plate: str,
    delivered_on: dt.date | None = None,
    device_id: str | None = None,
    actor: str = "system",
) -> tuple[dict, dict, dict]:
    """ordered -> delivered: registers the vehicle (and installs its device). (before, after, vehicle)."""
    before = _procurement_for_update(conn, procurement_id)
    if before["status"] != "ordered":
        raise Conflict(
            f"procurement {procurement_id} is {before['status']}; only an ordered one can be delivered"
        )
    delivered_on = delivered_on or dt.date.today()
    if delivered_on < before["ordered_on"]:
        raise Invalid(f"delivered_on {delivered_on} is before ordered_on {before['ordered_on']}")
    if device_id is not None and not DEVICE_ID_RE.match(device_id):
        raise Invalid(f"invalid device_id {device_id!r}")
    vehicle = create_vehicle(
        conn,
        vin=vin,
        plate=plate,
        make=before["make"],
        model=before["model"],
        year=before["year"],
        vehicle_class=before["class"],
        station=before["station"],
        last_service_at=dt.datetime.combine(delivered_on, dt.time(), tzinfo=dt.UTC),
        actor=actor,
    )
    if device_id:
        if conn.execute(
            "SELECT 1 FROM device_installs WHERE device_id = %s AND removed_at IS NULL", (device_id,)
        ).fetchone():
            raise Conflict(f"device {device_id!r} is installed in another vehicle; remove it there first")
        install_device(conn, device_id=device_id, vehicle_id=vehicle["id"])
        vehicle = get_vehicle_by_id_or_raise(conn, vehicle_id=vehicle["id"])
    conn.execute(
        "UPDATE procurements SET status = 'delivered', delivered_on = %s, vehicle_id = %s, updated_at = now() WHERE id = %s",
        (delivered_on, vehicle["id"], procurement_id),
    )
    return before, get_procurement_or_raise(conn, procurement_id=procurement_id), vehicle


def cancel_procurement(conn: Conn, *, procurement_id: int, reason: str = "") -> tuple[dict, dict]:
    """planned/ordered -> cancelled."""
    before = _procurement_for_update(conn, procurement_id)
    if before["status"] not in ("planned", "ordered"):
        raise Conflict(f"procurement {procurement_id} is {before['status']}; it cannot be cancelled")
    conn.execute(
        """UPDATE procurements SET status = 'cancelled', note = trim(note || ' ' || %s), updated_at = now()
            WHERE id = %s""",
        (f"cancelled: {reason}" if reason else "cancelled", procurement_id),
    )
    return before, get_procurement_or_raise(conn, procurement_id=procurement_id)


# ---- maintenance archive -------------------------------------------------------------------------------------


def _parts_cost(parts: list[dict]) -> Decimal:
    return sum(
        (Decimal(str(p.get("qty", 1))) * Decimal(str(p.get("unit_cost", 0))) for p in parts), Decimal("0")
    )


def get_maintenance(conn: Conn, *, record_id: int) -> dict | None:
    """One maintenance record with the vehicle's VIN and plate, or None."""
    return conn.execute(
        """SELECT m.*, v.vin, v.plate, m.labour_cost + m.parts_cost AS total_cost
             FROM maintenance_records m JOIN vehicles v ON v.id = m.vehicle_id WHERE m.id = %s""",
        (record_id,),
    ).fetchone()


def get_maintenance_or_raise(conn: Conn, *, record_id: int) -> dict:
    """One maintenance record; NotFound otherwise."""
    m = get_maintenance(conn, record_id=record_id)
    if m is None:
        raise NotFound(f"no maintenance record {record_id}")
    return m


def create_maintenance(
    conn: Conn,
    *,
    vehicle_id: int,
    work_order: str,
    description: str,
    kind: str = "repair",
    parts: list[dict] | None = None,
    labour_cost: Decimal = Decimal("0"),
    parts_cost: Decimal | None = None,
    odometer_km: float | None = None,
    opened_at: dt.datetime | None = None,
    actor: str = "system",
) -> dict:
    """Open a work order for a vehicle; parts_cost defaults to the sum of the parts' qty x unit_cost."""
    if kind not in MAINTENANCE_KINDS:
        raise Invalid(f"unknown maintenance kind {kind!r} (one of {', '.join(MAINTENANCE_KINDS)})")
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
                actor,
            ),
        )
    )["id"]
    return get_maintenance_or_raise(conn, record_id=rid)


def update_maintenance(conn: Conn, *, record_id: int, changes: dict[str, Any]) -> tuple[dict, dict]:
    """Edit an open work order (a closed one is archived and immutable); (before, after)."""
    before = get_maintenance_or_raise(conn, record_id=record_id)
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
    return before, get_maintenance_or_raise(conn, record_id=record_id)


def close_maintenance(
    conn: Conn,
    *,
    record_id: int,
    closed_at: dt.datetime | None = None,
    odometer_km: float | None = None,
    actor: str = "system",
) -> tuple[dict, dict]:
    """Close a work order; a closed `service` resets the vehicle's service plan baseline. (before, after)."""
    before = get_maintenance_or_raise(conn, record_id=record_id)
    if before["closed_at"] is not None:
        raise Conflict(f"work order {before['work_order']} is already closed")
    closed_at = closed_at or dt.datetime.now(dt.UTC)
    if closed_at < before["opened_at"]:
        raise Invalid(
            f"closed_at {closed_at.isoformat()} is before opened_at {before['opened_at'].isoformat()}"
        )
    odo = odometer_km if odometer_km is not None else before["odometer_km"]
    conn.execute(
        """UPDATE maintenance_records SET closed_at = %s, closed_by = %s, odometer_km = %s, updated_at = now()
            WHERE id = %s""",
        (closed_at, actor, odo, record_id),
    )
    if before["kind"] == "service":
        if odo is None:
            odo = conn.execute(
                "SELECT odometer_km FROM vehicle_state WHERE vehicle_id = %s", (before["vehicle_id"],)
            ).fetchone()
            odo = odo["odometer_km"] if odo else None
        conn.execute(
            """UPDATE vehicles SET last_service_at = %s,
                      last_service_odometer_km = coalesce(%s, last_service_odometer_km), updated_at = now()
                WHERE id = %s""",
            (closed_at, odo, before["vehicle_id"]),
        )
    return before, get_maintenance_or_raise(conn, record_id=record_id)


def list_maintenance(
    conn: Conn,
    *,
    vehicle_id: int | None = None,
    q: str | None = None,
    kind: str | None = None,
    opened_from: dt.datetime | None = None,
    opened_to: dt.datetime | None = None,
    open_only: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> list[dict]:
    """The maintenance archive, newest first; `q` searches work order, description and parts (substring)."""
    return conn.execute(
        """SELECT m.*, v.vin, v.plate, m.labour_cost + m.parts_cost AS total_cost
             FROM maintenance_records m JOIN vehicles v ON v.id = m.vehicle_id
            WHERE (%(vid)s::bigint IS NULL OR m.vehicle_id = %(vid)s)
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
