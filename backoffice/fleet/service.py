"""Fleet registry: stations, vehicles and device installs (data access and rules)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import psycopg

from backoffice.fleet.vin import vin_problem
from fleetcore.contract import DEVICE_ID_RE
from fleetcore.errors import Conflict, Invalid, NotFound

VEHICLE_CLASSES = ("economy", "compact", "midsize", "fullsize", "suv", "van", "premium", "ev")
VEHICLE_STATUSES = ("available", "reserved", "rented", "maintenance", "out_of_service", "retired")
IMPORT_COLUMNS = ("vin", "plate", "make", "model", "year", "class", "station", "device_id")


# ---- stations -------------------------------------------------------------------------------------------


def create_station(conn: psycopg.Connection, *, code: str, name: str, lat: float, lon: float) -> dict:
    """Add a station; 409 if the code exists."""
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise Invalid(f"station coordinates out of range: lat={lat}, lon={lon}")
    code = code.strip().upper()
    if not code or len(code) > 16 or not all(c.isalnum() or c in "_-" for c in code) or len(code) < 2:
        raise Invalid(f"station code {code!r} must be 2-16 letters, digits, '-' or '_'")
    if get_station(conn, code=code):
        raise Conflict(f"station {code} already exists")
    return conn.execute(
        "INSERT INTO stations (code, name, lat, lon) VALUES (%s, %s, %s, %s) RETURNING *",
        (code, name, lat, lon),
    ).fetchone()


def get_station(conn: psycopg.Connection, *, code: str) -> dict | None:
    return conn.execute("SELECT * FROM stations WHERE code = %s", (code.upper(),)).fetchone()


def list_stations(conn: psycopg.Connection) -> list[dict]:
    return conn.execute("SELECT * FROM stations ORDER BY code").fetchall()


# ---- vehicles -------------------------------------------------------------------------------------------


def get_vehicle(conn: psycopg.Connection, *, vin: str) -> dict | None:
    return conn.execute(
        """SELECT v.*, s.code AS station, di.device_id
             FROM vehicles v
             LEFT JOIN stations s ON s.id = v.home_station_id
             LEFT JOIN device_installs di ON di.vehicle_id = v.id AND di.removed_at IS NULL
            WHERE v.vin = %s""",
        (vin,),
    ).fetchone()


def get_vehicle_or_raise(conn: psycopg.Connection, *, vin: str) -> dict:
    v = get_vehicle(conn, vin=vin)
    if v is None:
        raise NotFound(f"no vehicle with VIN {vin}")
    return v


def list_vehicles(
    conn: psycopg.Connection,
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
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return [], [(1, "file is empty")]
    header = [h.strip().lower() for h in header]
    if tuple(header) != IMPORT_COLUMNS:
        return [], [(1, f"header must be {','.join(IMPORT_COLUMNS)}, got {','.join(header)}")]
    for fields in reader:
        line = reader.line_num
        if not fields or all(not f.strip() for f in fields):
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
        rows.append(VehicleRow(line, vin, plate.upper(), make, model, year_i, cls.lower(), station.upper(), device_id))
    return rows, problems


def import_vehicles(conn: psycopg.Connection, *, text: str) -> int:
    """Import a vehicles CSV all-or-nothing; raises ImportError_ listing every bad line."""
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
            "; ".join(f"line {ln}: {msg}" for ln, msg in problems), details=[{"line": ln, "problem": m} for ln, m in problems]
        )
    with conn.transaction():
        for r in rows:
            vid = conn.execute(
                """INSERT INTO vehicles (vin, plate, make, model, year, class, home_station_id)
                   VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                (r.vin, r.plate, r.make, r.model, r.year, r.vehicle_class, stations[r.station]),
            ).fetchone()["id"]
            conn.execute(
                "INSERT INTO vehicle_status_history (vehicle_id, status, changed_by, note) VALUES (%s, 'available', 'import', 'imported')",
                (vid,),
            )
            if r.device_id:
                install_device(conn, device_id=r.device_id, vehicle_id=vid)
    return len(rows)


def install_device(conn: psycopg.Connection, *, device_id: str, vehicle_id: int, protocol: str | None = None) -> None:
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
    conn.execute("INSERT INTO device_installs (device_id, vehicle_id) VALUES (%s, %s)", (device_id, vehicle_id))
    conn.execute(
        "INSERT INTO vehicle_state (vehicle_id, device_id) VALUES (%s, %s) "
        "ON CONFLICT (vehicle_id) DO UPDATE SET device_id = EXCLUDED.device_id",
        (vehicle_id, device_id),
    )
