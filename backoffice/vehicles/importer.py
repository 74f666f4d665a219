"""The vehicles CSV importer (`fleet vehicles import`): every line checked, then all-or-nothing."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import psycopg

from backoffice.devices import service as devices
from backoffice.stations import service as stations
from backoffice.vehicles import service as vehicles
from backoffice.vehicles.models import MAX_YEAR, MIN_YEAR, VEHICLE_CLASSES
from fleetcore.audit import audit
from fleetcore.contract import DEVICE_ID_RE
from fleetcore.db import Conn, one
from fleetcore.errors import Invalid
from fleetcore.protocol.vin import vin_problem

IMPORT_COLUMNS = ("vin", "plate", "make", "model", "year", "class", "station", "device_id")


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


class ImportFailed(Invalid):
    """A vehicle import failed; `details` lists (line, problem)."""


def parse_csv(text: str) -> tuple[list[VehicleRow], list[tuple[int, str]]]:
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
            if not MIN_YEAR <= year_i <= MAX_YEAR:
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


def import_csv(conn: Conn, *, text: str, actor: dict | None = None) -> int:
    """Import a vehicles CSV all-or-nothing; raises ImportError_ listing every bad line."""
    rows, problems = parse_csv(text)
    seen: dict[str, dict[str, int]] = {"vin": {}, "plate": {}, "device_id": {}}
    station_ids = {s["code"]: s["id"] for s in stations.list_(conn)}
    for r in rows:
        for key, value in (("vin", r.vin), ("plate", r.plate), ("device_id", r.device_id)):
            if not value:
                continue
            if value in seen[key]:
                problems.append((r.line, f"duplicate {key} {value!r} (also on line {seen[key][value]})"))
            seen[key].setdefault(value, r.line)
        if r.station not in station_ids:
            problems.append((r.line, f"unknown station {r.station!r}"))
    if rows:
        existing = vehicles.list_registered(conn, vins=[r.vin for r in rows], plates=[r.plate for r in rows])
        ex_vins = {e["vin"] for e in existing}
        ex_plates = {e["plate"] for e in existing}
        busy = set(devices.list_active(conn, device_ids=[r.device_id for r in rows if r.device_id]))
        for r in rows:
            if r.vin in ex_vins:
                problems.append((r.line, f"vehicle with VIN {r.vin} already exists"))
            if r.plate in ex_plates:
                problems.append((r.line, f"duplicate plate {r.plate!r}: already registered"))
            if r.device_id in busy:
                problems.append((r.line, f"device {r.device_id!r} is already installed in another vehicle"))
    if problems:
        problems.sort()
        raise ImportFailed(
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
                        (r.vin, r.plate, r.make, r.model, r.year, r.vehicle_class, station_ids[r.station]),
                    )
                )["id"]
                conn.execute(
                    "INSERT INTO vehicle_status_history (vehicle_id, status, changed_by, note) VALUES (%s, 'available', 'import', 'imported')",
                    (vid,),
                )
                if r.device_id:
                    devices.bind(conn, device_id=r.device_id, vehicle_id=vid)
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
        raise ImportFailed(f"line {line}: {problem}", details=[{"line": line, "problem": problem}]) from None
    return len(rows)
