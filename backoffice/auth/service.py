"""Staff users and the audit log."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from psycopg.types.json import Jsonb

from backoffice.auth.security import hash_password, verify_password
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound

ROLES = ("admin", "dispatcher", "customer_service", "finance", "hr", "technician")
DEPARTMENTS = ("operations", "customer_service", "technology", "finance", "administration")
ROLE_DEPARTMENT = {
    "admin": "administration",
    "dispatcher": "operations",
    "customer_service": "customer_service",
    "finance": "finance",
    "hr": "administration",
    "technician": "technology",
}
MIN_PASSWORD_LENGTH = 8  # NIST SP 800-63B minimum for user-chosen secrets


def create(
    conn: Conn,
    *,
    username: str,
    role: str,
    password: str,
    full_name: str = "",
    department: str | None = None,
) -> dict:
    if role not in ROLES:
        raise Invalid(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    department = department or ROLE_DEPARTMENT[role]
    # Departments are a table since migration 0202 (HR may add them).
    if not conn.execute("SELECT 1 FROM departments WHERE code = %s", (department,)).fetchone():
        raise Invalid(f"unknown department {department!r}")
    if get(conn, username=username):
        raise Conflict(f"user {username!r} already exists")
    return one(
        conn.execute(
            """INSERT INTO staff_users (username, full_name, department, role, password_hash)
           VALUES (%s, %s, %s, %s, %s)
           RETURNING id, username, full_name, department, role, active, created_at""",
            (username.lower(), full_name, department, role, hash_password(password)),
        )
    )


def get(conn: Conn, *, username: str) -> dict | None:
    return conn.execute("SELECT * FROM staff_users WHERE username = %s", (username.lower(),)).fetchone()


def get_or_raise(conn: Conn, *, username: str) -> dict:
    u = get(conn, username=username)
    if u is None:
        raise NotFound(f"no user {username!r}")
    return u


def authenticate(conn: Conn, *, username: str, password: str) -> dict | None:
    u = get(conn, username=username)
    if u is None or not u["active"] or not verify_password(password, u["password_hash"]):
        return None
    return u


def list_(conn: Conn) -> list[dict]:
    return conn.execute(
        "SELECT id, username, full_name, department, role, active, created_at FROM staff_users ORDER BY id"
    ).fetchall()


def _jsonable(v: Any) -> Any:
    return None if v is None else json.loads(json.dumps(v, default=str))


def audit(
    conn: Conn,
    *,
    actor: dict | None,
    action: str,
    entity: str,
    entity_id: object = None,
    before: Any = None,
    after: Any = None,
) -> None:
    """Record a write: who, what, before and after (call inside the write's transaction)."""
    conn.execute(
        """INSERT INTO audit_log (actor_id, actor, action, entity, entity_id, before, after)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (
            actor["id"] if actor and "id" in actor else None,
            actor["username"] if actor else "system",
            action,
            entity,
            None if entity_id is None else str(entity_id),
            Jsonb(_jsonable(before)) if before is not None else None,
            Jsonb(_jsonable(after)) if after is not None else None,
        ),
    )


def list_audit(
    conn: Conn,
    *,
    entity: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict]:
    """Audit records, newest first; `action` ending in '.' or '*' matches a prefix (e.g. 'vehicle.')."""
    prefix = (
        action[:-1]
        if action and action.endswith("*")
        else action
        if action and action.endswith(".")
        else None
    )
    return conn.execute(
        """SELECT * FROM audit_log
            WHERE (%(e)s::text IS NULL OR entity = %(e)s) AND (%(i)s::text IS NULL OR entity_id = %(i)s)
              AND (%(actor)s::text IS NULL OR actor = %(actor)s)
              AND (%(action)s::text IS NULL OR action = %(action)s OR starts_with(action, %(prefix)s))
              AND (%(since)s::timestamptz IS NULL OR at >= %(since)s)
              AND (%(until)s::timestamptz IS NULL OR at < %(until)s)
            ORDER BY id DESC LIMIT %(l)s OFFSET %(o)s""",
        {
            "e": entity,
            "i": entity_id,
            "actor": actor.lower() if actor else None,
            "action": action,
            "prefix": prefix,
            "since": since,
            "until": until,
            "l": limit,
            "o": offset,
        },
    ).fetchall()
