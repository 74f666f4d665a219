"""Stations: the one owner of the stations table."""

from __future__ import annotations

import psycopg

from fleetcore.audit import audit
from fleetcore.db import Conn, like_contains, one
from fleetcore.errors import Conflict, Invalid, NotFound


def _check_position(lat: float, lon: float) -> None:
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise Invalid(f"station coordinates out of range: lat={lat}, lon={lon}")


def get(conn: Conn, *, code: str) -> dict | None:
    """The station with this code, or None."""
    return conn.execute("SELECT * FROM stations WHERE code = %s", (code.upper(),)).fetchone()


def get_by_id(conn: Conn, *, station_id: int) -> dict | None:
    """The station with this id, or None."""
    return conn.execute("SELECT * FROM stations WHERE id = %s", (station_id,)).fetchone()


def get_or_raise(conn: Conn, *, code: str) -> dict:
    """The station with this code; NotFound otherwise."""
    s = get(conn, code=code)
    if s is None:
        raise NotFound(f"no station {code.upper()!r}")
    return s


def referenced_id(conn: Conn, *, code: str) -> int:
    """The id of a station named in a request body: an unknown one is a bad request (Invalid), not a 404."""
    s = get(conn, code=code)
    if s is None:
        raise Invalid(f"unknown station {code.upper()!r}")
    return s["id"]


def list_(conn: Conn, *, q: str | None = None, limit: int | None = None, offset: int = 0) -> list[dict]:
    """Stations by code with their number of vehicles; `q` matches code or name (case-insensitive substring)."""
    # The vehicle count is a read of the vehicles table (owned by backoffice.vehicles), kept in this one query.
    return conn.execute(
        """SELECT s.*, (SELECT count(*) FROM vehicles v WHERE v.home_station_id = s.id AND v.status <> 'retired')
                  AS vehicles
             FROM stations s
            WHERE %(q)s::text IS NULL OR s.code ILIKE %(q)s OR s.name ILIKE %(q)s
            ORDER BY s.code LIMIT %(limit)s OFFSET %(offset)s""",
        {"q": like_contains(q), "limit": limit, "offset": offset},
    ).fetchall()


def create(conn: Conn, *, code: str, name: str, lat: float, lon: float, actor: dict | None) -> dict:
    """Add a station; 409 if the code exists. `actor` None (seeding, test data) leaves no audit record."""
    _check_position(lat, lon)
    code = code.strip().upper()
    if not code or len(code) > 16 or not all(c.isalnum() or c in "_-" for c in code) or len(code) < 2:
        raise Invalid(f"station code {code!r} must be 2-16 letters, digits, '-' or '_'")
    if get(conn, code=code):
        raise Conflict(f"station {code} already exists")
    s = one(
        conn.execute(
            "INSERT INTO stations (code, name, lat, lon) VALUES (%s, %s, %s, %s) RETURNING *",
            (code, name, lat, lon),
        )
    )
    if actor is not None:
        audit(conn, actor=actor, action="station.create", entity="stations", entity_id=s["code"], after=s)
    return s


def update(
    conn: Conn,
    *,
    code: str,
    actor: dict,
    name: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
) -> dict:
    """Change a station's name or position."""
    before = get_or_raise(conn, code=code)
    lat = before["lat"] if lat is None else lat
    lon = before["lon"] if lon is None else lon
    _check_position(lat, lon)
    if name is not None and not 1 <= len(name) <= 200:
        raise Invalid("station name must be 1-200 characters")
    after = one(
        conn.execute(
            "UPDATE stations SET name = coalesce(%s, name), lat = %s, lon = %s WHERE id = %s RETURNING *",
            (name, lat, lon, before["id"]),
        )
    )
    audit(
        conn,
        actor=actor,
        action="station.update",
        entity="stations",
        entity_id=after["code"],
        before=before,
        after=after,
    )
    return after


def delete(conn: Conn, *, code: str, actor: dict) -> dict:
    """Remove a station nothing refers to; Conflict while vehicles, procurements or orders still use it."""
    before = get_or_raise(conn, code=code)
    try:
        with conn.transaction():
            conn.execute("DELETE FROM stations WHERE id = %s", (before["id"],))
    except psycopg.errors.ForeignKeyViolation as exc:
        raise Conflict(
            f"station {before['code']} is still referenced ({exc.diag.table_name or 'another record'}); "
            "move its vehicles first",
            details={"table": exc.diag.table_name},
        ) from None
    audit(
        conn, actor=actor, action="station.delete", entity="stations", entity_id=before["code"], before=before
    )
    return before
