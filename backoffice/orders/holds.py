"""Vehicle holds: the one owner of vehicle_assignments (which car is held for which order and period).

The exclusion constraint on vehicle_assignments (migration 0251) is the guarantee against overbooking; the
vehicles' own status ('reserved' while held for an assigned order) changes through backoffice.vehicles.
"""

from __future__ import annotations

import datetime as dt
import logging

import psycopg

from backoffice.vehicles import service as vehicles
from fleetcore.db import Conn
from fleetcore.errors import Conflict

log = logging.getLogger(__name__)

# A returned car needs cleaning and a check before the next customer; reservations keep this gap.
TURNAROUND = dt.timedelta(hours=1)
# Vehicles that can never count towards capacity.
UNBOOKABLE_STATUSES = ("retired", "out_of_service")


def period_bounds(pickup_at: dt.datetime, return_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The time a vehicle is held for a booking: pickup to return plus the turnaround."""
    return pickup_at, return_at + TURNAROUND


def reserve(
    conn: Conn,
    *,
    order_id: int,
    vehicle_class: str,
    station_id: int,
    pickup_at: dt.datetime,
    return_at: dt.datetime,
    prefer_vehicle_id: int | None = None,
) -> dict:
    """Hold one vehicle of the class at the station for the period; 409 when none is left.

    The exclusion constraint on vehicle_assignments is the guarantee: two transactions that both saw the same
    free car cannot both insert a hold; the loser gets an exclusion violation and tries the next car.
    """
    lo, hi = period_bounds(pickup_at, return_at)
    # Candidates read vehicles (backoffice.vehicles) and their telemetry state in the same query as the holds.
    cands = conn.execute(
        """SELECT v.id, v.vin FROM vehicles v LEFT JOIN vehicle_state s ON s.vehicle_id = v.id
            WHERE v.class = %(cls)s AND v.home_station_id = %(st)s AND v.status <> ALL(%(bad)s)
              AND NOT EXISTS (SELECT 1 FROM vehicle_assignments a
                               WHERE a.vehicle_id = v.id AND a.released_at IS NULL
                                 AND a.period && tstzrange(%(lo)s, %(hi)s, '[)'))
            ORDER BY (v.id = %(prefer)s) DESC NULLS LAST, s.odometer_km ASC NULLS LAST, v.id""",
        {
            "cls": vehicle_class,
            "st": station_id,
            "bad": list(UNBOOKABLE_STATUSES),
            "lo": lo,
            "hi": hi,
            "prefer": prefer_vehicle_id,
        },
    ).fetchall()
    for c in cands:
        try:
            with conn.transaction():  # a savepoint: a lost race must not abort the whole request
                conn.execute(
                    "INSERT INTO vehicle_assignments (order_id, vehicle_id, period) "
                    "VALUES (%s, %s, tstzrange(%s, %s, '[)'))",
                    (order_id, c["id"], lo, hi),
                )
            return c
        except psycopg.errors.ExclusionViolation:
            log.info(
                "order %s lost vehicle %s to a concurrent booking; trying the next one", order_id, c["vin"]
            )
            continue
    raise Conflict(
        f"no {vehicle_class} vehicle left at the pickup station for {lo.isoformat()} .. {return_at.isoformat()}",
        details={"rule": "availability", "vehicle_class": vehicle_class},
    )


def move(conn: Conn, *, order: dict, vehicle_id: int) -> None:
    """Move the order's live hold onto another vehicle, or hold it for the order's period if there is none.

    The exclusion constraint re-checks the overlap (ExclusionViolation if the car is booked meanwhile).
    """
    with conn.transaction():
        cur = conn.execute(
            "UPDATE vehicle_assignments SET vehicle_id = %s WHERE order_id = %s AND released_at IS NULL",
            (vehicle_id, order["id"]),
        )
        if cur.rowcount == 0:
            lo, hi = period_bounds(order["pickup_at"], order["return_at"])
            conn.execute(
                "INSERT INTO vehicle_assignments (order_id, vehicle_id, period) "
                "VALUES (%s, %s, tstzrange(%s, %s, '[)'))",
                (order["id"], vehicle_id, lo, hi),
            )


def start_now(conn: Conn, *, order_id: int) -> None:
    """An early pickup uses the car before its hold starts: stretch the hold back to now.

    ExclusionViolation (in a savepoint) if another booking still has the car then.
    """
    with conn.transaction():
        conn.execute(
            """UPDATE vehicle_assignments SET period = tstzrange(now(), upper(period), '[)')
                WHERE order_id = %s AND released_at IS NULL AND lower(period) > now()""",
            (order_id,),
        )


def close(conn: Conn, *, order_id: int, picked_up_at: dt.datetime, returned_at: dt.datetime) -> None:
    """The rental is over: the hold now covers what actually happened and the car is free for the next booking."""
    conn.execute(
        """UPDATE vehicle_assignments SET period = tstzrange(%s, greatest(%s, %s), '[]'), released_at = %s
            WHERE order_id = %s AND released_at IS NULL""",
        (picked_up_at, picked_up_at, returned_at, returned_at, order_id),
    )


def release(conn: Conn, *, order_id: int) -> None:
    """End the order's live vehicle hold (kept as history)."""
    conn.execute(
        "UPDATE vehicle_assignments SET released_at = now() WHERE order_id = %s AND released_at IS NULL",
        (order_id,),
    )


def release_vehicle_if_idle(conn: Conn, *, vehicle_id: int, actor: dict, note: str) -> None:
    """A 'reserved' vehicle no longer assigned to any open order becomes 'available' again."""
    v = vehicles.get_by_id(conn, vehicle_id=vehicle_id)
    held = conn.execute(
        "SELECT 1 FROM orders WHERE vehicle_id = %s AND status = 'assigned' LIMIT 1", (vehicle_id,)
    ).fetchone()
    if v and v["status"] == "reserved" and not held:
        vehicles.move_status(conn, vehicle_id=vehicle_id, status="available", actor=actor, note=note)
