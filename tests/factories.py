"""Factories for test data: valid VINs, stations, vehicles with devices, staff users."""

from __future__ import annotations

import itertools
import random
import uuid

from backoffice.auth import service as users
from backoffice.devices import service as devices
from backoffice.stations import service as stations
from fleetcore.db import Conn, one
from fleetcore.protocol.vin import with_check_digit

_counter = itertools.count(1)
_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def vin(rng: random.Random | None = None) -> str:
    """A random VIN with a correct check digit."""
    rng = rng or random.Random()
    body = "WVW" + "".join(rng.choice(_VIN_CHARS) for _ in range(14))
    return with_check_digit(body)


def station(
    conn: Conn,
    *,
    code: str | None = None,
    lat: float = 52.52,
    lon: float = 13.405,
    name: str = "",
) -> dict:
    code = code or f"S{next(_counter):04d}"
    return stations.create(conn, code=code, name=name or f"Station {code}", lat=lat, lon=lon, actor=None)


def vehicle(
    conn: Conn,
    *,
    station_code: str | None = None,
    vehicle_class: str = "compact",
    device_id: str | None = None,
    protocol: str = "json",
    status: str = "available",
) -> dict:
    """A registered vehicle with an installed device (a unique device id unless given).

    Inserted directly, without a status-history row: tests need any status (rented, reserved), which registration
    refuses, and the status-trigger tests count history rows from a clean start.
    """
    if station_code is None:
        station_code = station(conn)["code"]
    st = stations.get_or_raise(conn, code=station_code)
    device_id = device_id or f"dev-{uuid.uuid4().hex[:12]}"
    n = next(_counter)
    v = one(
        conn.execute(
            """INSERT INTO vehicles (vin, plate, make, model, year, class, home_station_id, status)
           VALUES (%s, %s, 'Volkswagen', 'Golf', 2023, %s, %s, %s) RETURNING *""",
            (vin(), f"B-T{n:05d}{uuid.uuid4().hex[:3].upper()}", vehicle_class, st["id"], status),
        )
    )
    devices.bind(conn, device_id=device_id, vehicle_id=v["id"], protocol=protocol)
    v["device_id"] = device_id
    v["station"] = station_code
    return v


def user(conn: Conn, *, role: str, username: str | None = None, password: str = "correct-horse-9") -> dict:
    username = username or f"{role}-{uuid.uuid4().hex[:6]}"
    u = users.create(conn, username=username, role=role, password=password, actor=None)
    u["password"] = password
    return u
