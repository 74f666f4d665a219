"""Rates: the one owner of the rates table (one row per vehicle class; quotes copy the row they used)."""

from __future__ import annotations

from fleetcore.audit import audit
from fleetcore.db import Conn, update_columns
from fleetcore.errors import Invalid


def get(conn: Conn, *, vehicle_class: str) -> dict:
    """The rate row of a vehicle class; Invalid when the class has none (it is named in a request)."""
    r = conn.execute("SELECT * FROM rates WHERE vehicle_class = %s", (vehicle_class,)).fetchone()
    if r is None:
        raise Invalid(f"no rate for vehicle class {vehicle_class!r}")
    return r


def list_(conn: Conn) -> list[dict]:
    """All rate rows, cheapest first."""
    return conn.execute("SELECT * FROM rates ORDER BY daily_rate, vehicle_class").fetchall()


def update(conn: Conn, *, vehicle_class: str, values: dict, actor: dict) -> dict:
    """Replace a class's rate row; new quotes use it, existing orders keep the rate they were quoted."""
    before = get(conn, vehicle_class=vehicle_class)
    after = update_columns(conn, table="rates", key="vehicle_class", key_value=vehicle_class, values=values)
    audit(
        conn,
        actor=actor,
        action="rate.update",
        entity="rates",
        entity_id=vehicle_class,
        before=before,
        after=after,
    )
    return after
