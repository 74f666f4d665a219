"""Training: the one owner of courses, training_sessions, training_attendance, certifications and
certification_requirements.

Passing a session of a course that certifies issues the certification, valid `validity_months` from the session's
end. Maintenance asks `require_certification` before a technician closes a work order; this domain imports no staff
administration (the fleet registry may not know it), users are referred to by id.
"""

from __future__ import annotations

import datetime as dt

from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Forbidden, Invalid, NotFound


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` later (the month's last day when it is shorter)."""
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def create_course(conn: Conn, *, data: dict, actor: dict) -> dict:
    if (data.get("certifies") is None) != (data.get("validity_months") is None):
        raise Invalid(
            "a course that certifies names how many months the certification is valid, and only then"
        )
    if conn.execute("SELECT 1 FROM courses WHERE code = %s", (data["code"],)).fetchone():
        raise Conflict(f"course {data['code']!r} already exists")
    row = one(
        conn.execute(
            "INSERT INTO courses (code, title, certifies, validity_months) VALUES (%s, %s, %s, %s) RETURNING *",
            (data["code"], data["title"], data.get("certifies"), data.get("validity_months")),
        )
    )
    audit(conn, actor=actor, action="course.create", entity="courses", entity_id=row["id"], after=row)
    return row


def list_courses(conn: Conn) -> list[dict]:
    return conn.execute("SELECT * FROM courses ORDER BY code").fetchall()


def create_session(conn: Conn, *, data: dict, actor: dict) -> dict:
    """A planned session of a course (the training plan is the list of sessions)."""
    if conn.execute("SELECT 1 FROM courses WHERE id = %s", (data["course_id"],)).fetchone() is None:
        raise Invalid(f"course_id: no course {data['course_id']}", details={"field": "course_id"})
    if data["ends_at"] <= data["starts_at"]:
        raise Invalid("ends_at must be after starts_at")
    row = one(
        conn.execute(
            """INSERT INTO training_sessions (course_id, department, starts_at, ends_at, trainer, location, capacity)
               VALUES (%(course_id)s, %(department)s, %(starts_at)s, %(ends_at)s, %(trainer)s, %(location)s,
                       %(capacity)s) RETURNING *""",
            data,
        )
    )
    audit(conn, actor=actor, action="training_session.create", entity="training_sessions", entity_id=row["id"],
          after=row)  # fmt: skip
    return row


def list_sessions(
    conn: Conn, *, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> list[dict]:
    return conn.execute(
        """SELECT s.*, c.code AS course_code, c.title AS course_title FROM training_sessions s
             JOIN courses c ON c.id = s.course_id
            WHERE (%(f)s::timestamptz IS NULL OR s.starts_at >= %(f)s) AND (%(t)s::timestamptz IS NULL OR s.starts_at < %(t)s)
            ORDER BY s.starts_at""",
        {"f": start, "t": end},
    ).fetchall()


def record_attendance(
    conn: Conn,
    *,
    session_id: int,
    user_id: int,
    attended: bool,
    passed: bool,
    score: float | None,
    actor: dict,
) -> dict:
    """Who came and who passed; passing a certifying course issues the certification."""
    s = conn.execute(
        """SELECT s.*, c.certifies, c.validity_months FROM training_sessions s JOIN courses c ON c.id = s.course_id
            WHERE s.id = %s""",
        (session_id,),
    ).fetchone()
    if s is None:
        raise NotFound(f"no training session {session_id}")
    if passed and not attended:
        raise Invalid("passed: only an attendee can pass")
    row = one(
        conn.execute(
            """INSERT INTO training_attendance (session_id, user_id, attended, passed, score, recorded_by)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (session_id, user_id) DO UPDATE SET attended = EXCLUDED.attended, passed = EXCLUDED.passed,
                      score = EXCLUDED.score, recorded_by = EXCLUDED.recorded_by, recorded_at = now()
               RETURNING *""",
            (session_id, user_id, attended, passed, score, actor["username"]),
        )
    )
    cert = None
    if passed and s["certifies"]:
        issued = s["ends_at"].date()
        cert = _issue(conn, user_id=user_id, code=s["certifies"], issued_on=issued,
                      expires_on=add_months(issued, s["validity_months"]), source="course", session_id=session_id,
                      actor=actor)  # fmt: skip
    audit(conn, actor=actor, action="training.attendance", entity="training_attendance",
          entity_id=f"{session_id}:{user_id}", after={"attended": attended, "passed": passed})  # fmt: skip
    return {**row, "certification": cert}


def _issue(
    conn: Conn,
    *,
    user_id: int,
    code: str,
    issued_on: dt.date,
    expires_on: dt.date,
    source: str,
    actor: dict,
    session_id: int | None = None,
) -> dict:
    if expires_on <= issued_on:
        raise Invalid("expires_on must be after issued_on")
    row = one(
        conn.execute(
            """INSERT INTO certifications (user_id, code, issued_on, expires_on, source, session_id, created_by)
               VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *""",
            (user_id, code, issued_on, expires_on, source, session_id, actor["username"]),
        )
    )
    audit(conn, actor=actor, action="certification.issue", entity="certifications", entity_id=row["id"],
          after={"user_id": user_id, "code": code, "expires_on": expires_on})  # fmt: skip
    return row


def add_certification(
    conn: Conn, *, user_id: int, code: str, issued_on: dt.date, expires_on: dt.date, actor: dict
) -> dict:
    """A certification earned outside our courses (e.g. a manufacturer's)."""
    return _issue(conn, user_id=user_id, code=code, issued_on=issued_on, expires_on=expires_on, source="external",
                  actor=actor)  # fmt: skip


def revoke_certification(conn: Conn, *, certification_id: int, actor: dict) -> dict:
    row = conn.execute(
        "UPDATE certifications SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL RETURNING *",
        (certification_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no active certification {certification_id}")
    audit(
        conn, actor=actor, action="certification.revoke", entity="certifications", entity_id=certification_id
    )
    return row


def list_certifications(
    conn: Conn, *, user_id: int | None = None, valid_on: dt.date | None = None
) -> list[dict]:
    return conn.execute(
        """SELECT * FROM certifications WHERE (%(u)s::bigint IS NULL OR user_id = %(u)s)
              AND (%(d)s::date IS NULL OR (revoked_at IS NULL AND issued_on <= %(d)s AND expires_on > %(d)s))
            ORDER BY user_id, code, expires_on DESC""",
        {"u": user_id, "d": valid_on},
    ).fetchall()


def set_requirement(conn: Conn, *, task_kind: str, certification: str | None, actor: dict) -> dict:
    """Which certification closing a work order of this kind takes (None: no requirement)."""
    before = conn.execute(
        "SELECT * FROM certification_requirements WHERE task_kind = %s", (task_kind,)
    ).fetchone()
    if certification is None:
        conn.execute("DELETE FROM certification_requirements WHERE task_kind = %s", (task_kind,))
        after = {"task_kind": task_kind, "certification": None}
    else:
        after = one(
            conn.execute(
                """INSERT INTO certification_requirements (task_kind, certification, updated_by) VALUES (%s, %s, %s)
                   ON CONFLICT (task_kind) DO UPDATE SET certification = EXCLUDED.certification,
                          updated_by = EXCLUDED.updated_by, updated_at = now() RETURNING task_kind, certification""",
                (task_kind, certification, actor["username"]),
            )
        )
    audit(conn, actor=actor, action="certification.requirement", entity="certification_requirements",
          entity_id=task_kind, before=before, after=after)  # fmt: skip
    return after


def list_requirements(conn: Conn) -> list[dict]:
    return conn.execute(
        "SELECT task_kind, certification FROM certification_requirements ORDER BY 1"
    ).fetchall()


def require_certification(conn: Conn, *, username: str, task_kind: str, on: dt.date) -> None:
    """Forbidden unless the user holds a valid (unexpired, unrevoked) certification the task kind requires.

    The user is named by username (what every actor carries); the join to staff_users is a read of backoffice.auth's
    table, since this domain may not import staff administration (the fleet registry calls it).
    """
    req = conn.execute(
        "SELECT certification FROM certification_requirements WHERE task_kind = %s", (task_kind,)
    ).fetchone()
    if req is None:
        return
    valid = conn.execute(
        """SELECT 1 FROM certifications c JOIN staff_users u ON u.id = c.user_id
            WHERE u.username = %s AND c.code = %s AND c.revoked_at IS NULL AND c.issued_on <= %s
              AND c.expires_on > %s""",
        (username, req["certification"], on, on),
    ).fetchone()
    if valid is None:
        raise Forbidden(
            f"closing a {task_kind} work order requires a valid {req['certification']!r} certification",
            details={"rule": "certification", "certification": req["certification"]},
        )
