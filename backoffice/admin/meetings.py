"""Rooms, bookings (meetings, events), attendees, minutes and action items; facility upkeep requests. The one owner
of rooms, room_bookings, meeting_actions and facility_requests. Overlapping bookings of a room are refused by the
database's exclusion constraint, so two concurrent requests for one slot give exactly one booking."""

from __future__ import annotations

import datetime as dt

import psycopg

from backoffice.auth import service as auth
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Forbidden, Invalid, NotFound
from fleetcore.jsonable import to_json

MAX_BOOKING = dt.timedelta(hours=12)


def create_room(conn: Conn, *, data: dict, actor: dict) -> dict:
    if conn.execute("SELECT 1 FROM rooms WHERE code = %s", (data["code"],)).fetchone():
        raise Conflict(f"room {data['code']} already exists")
    row = one(conn.execute("INSERT INTO rooms (code, name, capacity, location) VALUES (%(code)s, %(name)s, "
                           "%(capacity)s, %(location)s) RETURNING *", data))  # fmt: skip
    audit(conn, actor=actor, action="room.create", entity="rooms", entity_id=row["id"], after=row)
    return row


def list_rooms(conn: Conn) -> list[dict]:
    return conn.execute("SELECT * FROM rooms WHERE active ORDER BY code").fetchall()


def get_booking_or_raise(conn: Conn, *, booking_id: int) -> dict:
    b = conn.execute("SELECT * FROM room_bookings WHERE id = %s", (booking_id,)).fetchone()
    if b is None:
        raise NotFound(f"no booking {booking_id}")
    b["actions"] = conn.execute("SELECT * FROM meeting_actions WHERE booking_id = %s ORDER BY id",
                                (booking_id,)).fetchall()  # fmt: skip
    return b


def _check_people(conn: Conn, usernames: list[str], field: str) -> None:
    for u in usernames:
        if auth.get(conn, username=u) is None:
            raise Invalid(f"{field}: no staff user {u!r}", details={"field": field})


def book(conn: Conn, *, data: dict, actor: dict) -> dict:
    """Book a room; 409 naming the clash when the slot is taken (decided by the database)."""
    room = conn.execute("SELECT * FROM rooms WHERE id = %s AND active", (data["room_id"],)).fetchone()
    if room is None:
        raise Invalid(f"room_id: no room {data['room_id']}", details={"field": "room_id"})
    if data["ends_at"] <= data["starts_at"] or data["ends_at"] - data["starts_at"] > MAX_BOOKING:
        raise Invalid(f"a booking ends after it starts and lasts at most {MAX_BOOKING.seconds // 3600} h")
    attendees = sorted(set(data.get("attendees", [])))
    if len(attendees) + 1 > room["capacity"]:
        raise Invalid(f"attendees: room {room['code']} seats {room['capacity']}")
    _check_people(conn, attendees, "attendees")
    try:
        with conn.transaction():
            row = one(conn.execute(
                """INSERT INTO room_bookings (room_id, kind, title, organiser, starts_at, ends_at, attendees)
                   VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                (room["id"], data.get("kind", "meeting"), data["title"], actor["username"], data["starts_at"],
                 data["ends_at"], attendees)))  # fmt: skip
    except psycopg.errors.ExclusionViolation:
        clash = conn.execute(
            """SELECT id, title, starts_at, ends_at FROM room_bookings WHERE room_id = %s AND cancelled_at IS NULL
                  AND tstzrange(starts_at, ends_at) && tstzrange(%s, %s) ORDER BY starts_at LIMIT 1""",
            (room["id"], data["starts_at"], data["ends_at"]),
        ).fetchone()
        raise Conflict(f"room {room['code']} is already booked then",
                       details={"rule": "room_overlap", "booking": to_json(clash)}) from None  # fmt: skip
    audit(conn, actor=actor, action="booking.create", entity="room_bookings", entity_id=row["id"],
          after={"room_id": room["id"], "starts_at": data["starts_at"], "ends_at": data["ends_at"]})  # fmt: skip
    return get_booking_or_raise(conn, booking_id=row["id"])


def list_bookings(conn: Conn, *, room_id: int | None, start: dt.datetime, end: dt.datetime) -> list[dict]:
    return conn.execute(
        """SELECT *, '[]'::json AS actions FROM room_bookings WHERE cancelled_at IS NULL
              AND (%(r)s::bigint IS NULL OR room_id = %(r)s) AND starts_at < %(t)s AND ends_at > %(f)s
            ORDER BY starts_at""",
        {"r": room_id, "f": start, "t": end},
    ).fetchall()


def _own(b: dict, actor: dict) -> None:
    if b["organiser"] != actor["username"] and actor.get("role") != "admin":
        raise Forbidden("only the organiser or an admin changes a booking")


def cancel(conn: Conn, *, booking_id: int, actor: dict) -> dict:
    b = get_booking_or_raise(conn, booking_id=booking_id)
    _own(b, actor)
    if b["cancelled_at"] is not None:
        raise Conflict(f"booking {booking_id} is already cancelled")
    conn.execute("UPDATE room_bookings SET cancelled_at = now() WHERE id = %s", (booking_id,))
    audit(conn, actor=actor, action="booking.cancel", entity="room_bookings", entity_id=booking_id)
    return get_booking_or_raise(conn, booking_id=booking_id)


def record_minutes(conn: Conn, *, booking_id: int, minutes: str, actions: list[dict], actor: dict) -> dict:
    """The meeting's minutes and its action items (owner, due date)."""
    b = get_booking_or_raise(conn, booking_id=booking_id)
    _own(b, actor)
    if b["cancelled_at"] is not None:
        raise Conflict(f"booking {booking_id} was cancelled")
    _check_people(conn, [a["owner"] for a in actions], "actions.owner")
    conn.execute("UPDATE room_bookings SET minutes = %s WHERE id = %s", (minutes, booking_id))
    for a in actions:
        conn.execute("INSERT INTO meeting_actions (booking_id, description, owner, due_on) VALUES (%s, %s, %s, %s)",
                     (booking_id, a["description"], a["owner"], a["due_on"]))  # fmt: skip
    audit(conn, actor=actor, action="booking.minutes", entity="room_bookings", entity_id=booking_id,
          after={"actions": len(actions)})  # fmt: skip
    return get_booking_or_raise(conn, booking_id=booking_id)


def my_actions(conn: Conn, *, owner: str, open_only: bool = True) -> list[dict]:
    return conn.execute(
        "SELECT * FROM meeting_actions WHERE owner = %s AND (NOT %s OR status = 'open') ORDER BY due_on, id",
        (owner, open_only),
    ).fetchall()


def complete_action(conn: Conn, *, action_id: int, actor: dict) -> dict:
    a = conn.execute("SELECT * FROM meeting_actions WHERE id = %s", (action_id,)).fetchone()
    if a is None:
        raise NotFound(f"no action item {action_id}")
    if a["owner"] != actor["username"] and actor.get("role") != "admin":
        raise Forbidden("only the owner or an admin completes an action item")
    if a["status"] == "done":
        raise Conflict(f"action item {action_id} is already done")
    row = one(conn.execute("UPDATE meeting_actions SET status = 'done', done_at = now() WHERE id = %s RETURNING *",
                           (action_id,)))  # fmt: skip
    audit(conn, actor=actor, action="meeting_action.done", entity="meeting_actions", entity_id=action_id)
    return row


# ---- facility upkeep -------------------------------------------------------------------------------------------------


def facility_request(conn: Conn, *, data: dict, actor: dict) -> dict:
    row = one(conn.execute(
        """INSERT INTO facility_requests (location, category, description, priority, requested_by)
           VALUES (%s, %s, %s, %s, %s) RETURNING *""",
        (data["location"], data["category"], data["description"], data["priority"], actor["username"])))  # fmt: skip
    audit(conn, actor=actor, action="facility_request.create", entity="facility_requests", entity_id=row["id"],
          after={"category": row["category"], "priority": row["priority"]})  # fmt: skip
    return row


def update_facility_request(conn: Conn, *, request_id: int, status: str, assignee: str | None, note: str,
                            actor: dict) -> dict:  # fmt: skip
    before = conn.execute(
        "SELECT * FROM facility_requests WHERE id = %s FOR UPDATE", (request_id,)
    ).fetchone()
    if before is None:
        raise NotFound(f"no facility request {request_id}")
    if before["status"] in ("done", "cancelled"):
        raise Conflict(f"facility request {request_id} is {before['status']}")
    if assignee is not None:
        _check_people(conn, [assignee], "assignee")
    row = one(conn.execute(
        """UPDATE facility_requests SET status = %s, assignee = coalesce(%s, assignee), note = %s,
                  done_at = CASE WHEN %s = 'done' THEN now() END WHERE id = %s RETURNING *""",
        (status, assignee, note, status, request_id)))  # fmt: skip
    audit(conn, actor=actor, action="facility_request.update", entity="facility_requests", entity_id=request_id,
          before={"status": before["status"]}, after={"status": status, "assignee": row["assignee"]})  # fmt: skip
    return row


def list_facility_requests(conn: Conn, *, status: str | None = None) -> list[dict]:
    return conn.execute(
        """SELECT * FROM facility_requests WHERE (%(s)s::text IS NULL OR status = %(s)s)
            ORDER BY CASE priority WHEN 'urgent' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END, created_at LIMIT 500""",
        {"s": status},
    ).fetchall()
