"""Periodic order jobs (run from a scheduler process, never inside API workers)."""

from __future__ import annotations

import datetime as dt
import logging

from backoffice.orders import service
from fleetcore.db import Conn, connect
from fleetcore.jobs import Job
from fleetcore.settings import Settings

log = logging.getLogger(__name__)

# A booking is held this long after the booked pickup time before it counts as a no-show (customers delayed by
# traffic or a late flight still find their car); after that the car is released for others.
NO_SHOW_GRACE = dt.timedelta(hours=3)
SYSTEM_ACTOR = {"username": "system"}


def sweep_no_shows(conn: Conn, *, grace: dt.timedelta = NO_SHOW_GRACE) -> list[int]:
    """Record a no-show (fee: one day) for confirmed/assigned orders not picked up `grace` after pickup time."""
    due = conn.execute(
        "SELECT id FROM orders WHERE status IN ('confirmed', 'assigned') AND pickup_at + %s < now() ORDER BY id",
        (grace,),
    ).fetchall()
    done = []
    for row in due:
        with conn.transaction():  # one order at a time: a failure leaves the others alone
            # audited by the service as order.no_show with actor "system"
            service.cancel(
                conn, order_id=row["id"], no_show=True, reason="not picked up (automatic)", actor=SYSTEM_ACTOR
            )
        done.append(row["id"])
    if done:
        log.info("recorded %d no-show(s): %s", len(done), done)
    return done


def _no_show_job(settings: Settings) -> object:
    with connect(settings.require_database_url(), autocommit=True) as conn:
        return sweep_no_shows(conn)


# Pickups are booked to the quarter hour; every 5 min is fine-grained enough.
JOBS = (Job("orders.no_show_sweep", 300, _no_show_job),)
