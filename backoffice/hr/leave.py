"""Leave and attendance: the one owner of leave_requests and attendance. Overlapping requests of one employee are
refused by the database (exclusion constraint); annual leave stays within the year's entitlement."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg

from backoffice.hr import employees
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound


def working_days(start: dt.date, end: dt.date) -> int:
    """Monday-Friday days in [start, end] (public holidays are recorded as attendance 'holiday')."""
    return sum(1 for i in range((end - start).days + 1) if (start + dt.timedelta(days=i)).weekday() < 5)


def annual_used(conn: Conn, *, employee_id: int, year: int) -> Decimal:
    return one(
        conn.execute(
            """SELECT coalesce(sum(days), 0) AS d FROM leave_requests WHERE employee_id = %s AND kind = 'annual'
                  AND status IN ('pending', 'approved') AND extract(year FROM start_date) = %s""",
            (employee_id, year),
        )
    )["d"]


def balance(conn: Conn, *, employee_id: int, year: int) -> dict:
    e = employees.get_or_raise(conn, employee_id=employee_id)
    used = annual_used(conn, employee_id=employee_id, year=year)
    return {"employee_id": employee_id, "year": year, "entitlement": e["annual_leave_days"], "used_or_pending": used,
            "remaining": Decimal(e["annual_leave_days"]) - used}  # fmt: skip


def request(
    conn: Conn, *, employee_id: int, kind: str, start: dt.date, end: dt.date, reason: str, actor: dict
) -> dict:
    """A leave request (pending)."""
    employees.get_or_raise(conn, employee_id=employee_id)
    if end < start:
        raise Invalid("end_date must not be before start_date")
    if start.year != end.year:
        raise Invalid("a leave request stays within one calendar year; split it")
    days = working_days(start, end)
    if days == 0:
        raise Invalid("the period has no working days")
    if kind == "annual":
        b = balance(conn, employee_id=employee_id, year=start.year)
        if days > b["remaining"]:
            raise Conflict(
                f"{days} days of annual leave exceed the {b['remaining']} days left in {start.year}"
            )
    try:
        with conn.transaction():
            row = one(
                conn.execute(
                    """INSERT INTO leave_requests (employee_id, kind, start_date, end_date, days, reason)
                       VALUES (%s, %s, %s, %s, %s, %s) RETURNING *""",
                    (employee_id, kind, start, end, days, reason),
                )
            )
    except psycopg.errors.ExclusionViolation:
        raise Conflict("the employee already has leave requested or approved in this period") from None
    audit(conn, actor=actor, action="leave.request", entity="leave_requests", entity_id=row["id"],
          after={"employee_id": employee_id, "kind": kind, "days": days})  # fmt: skip
    return row


def decide(conn: Conn, *, leave_id: int, approve: bool, actor: dict) -> dict:
    before = conn.execute("SELECT * FROM leave_requests WHERE id = %s FOR UPDATE", (leave_id,)).fetchone()
    if before is None:
        raise NotFound(f"no leave request {leave_id}")
    if before["status"] != "pending":
        raise Conflict(f"leave request {leave_id} is already {before['status']}")
    after = one(
        conn.execute(
            """UPDATE leave_requests SET status = %s, decided_by = %s, decided_at = now() WHERE id = %s RETURNING *""",
            ("approved" if approve else "rejected", actor["username"], leave_id),
        )
    )
    audit(conn, actor=actor, action="leave.approve" if approve else "leave.reject", entity="leave_requests",
          entity_id=leave_id, before={"status": "pending"}, after={"status": after["status"]})  # fmt: skip
    return after


def list_(conn: Conn, *, employee_id: int | None = None, status: str | None = None) -> list[dict]:
    return conn.execute(
        """SELECT * FROM leave_requests WHERE (%(e)s::bigint IS NULL OR employee_id = %(e)s)
              AND (%(s)s::text IS NULL OR status = %(s)s) ORDER BY start_date DESC, id DESC LIMIT 500""",
        {"e": employee_id, "s": status},
    ).fetchall()


def unpaid_days(conn: Conn, *, employee_id: int, start: dt.date, end: dt.date) -> Decimal:
    """Approved unpaid-leave working days inside [start, end] (for payroll)."""
    rows = conn.execute(
        """SELECT start_date, end_date FROM leave_requests WHERE employee_id = %s AND kind = 'unpaid'
              AND status = 'approved' AND start_date <= %s AND end_date >= %s""",
        (employee_id, end, start),
    ).fetchall()
    return Decimal(sum(working_days(max(r["start_date"], start), min(r["end_date"], end)) for r in rows))


def record_attendance(conn: Conn, *, employee_id: int, rows: list[dict], actor: dict) -> int:
    """Clock data per day (present, late, absent, leave, holiday; overtime hours); a day recorded again is replaced."""
    employees.get_or_raise(conn, employee_id=employee_id)
    for r in rows:
        conn.execute(
            """INSERT INTO attendance (employee_id, day, status, overtime_hours, note) VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (employee_id, day) DO UPDATE SET status = EXCLUDED.status,
                      overtime_hours = EXCLUDED.overtime_hours, note = EXCLUDED.note""",
            (employee_id, r["day"], r["status"], r["overtime_hours"], r.get("note", "")),
        )
    audit(conn, actor=actor, action="attendance.record", entity="attendance", entity_id=employee_id,
          after={"days": len(rows)})  # fmt: skip
    return len(rows)


def attendance_summary(conn: Conn, *, employee_id: int, start: dt.date, end: dt.date) -> dict:
    """Days by status and overtime hours in [start, end]."""
    rows = conn.execute(
        """SELECT status, count(*) AS n, coalesce(sum(overtime_hours), 0) AS ot FROM attendance
            WHERE employee_id = %s AND day BETWEEN %s AND %s GROUP BY status""",
        (employee_id, start, end),
    ).fetchall()
    return {"days": {r["status"]: r["n"] for r in rows},
            "overtime_hours": sum((r["ot"] for r in rows), Decimal(0))}  # fmt: skip
