"""The audit log: who changed what, written by the service that makes the change, in the same transaction.

The one owner of `audit_log`; every domain calls `audit()` and the admin route reads it through `list_()`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from psycopg.types.json import Jsonb

from fleetcore.db import Conn


def _jsonable(v: Any) -> Any:
    return None if v is None else json.loads(json.dumps(v, default=str))


# Fields that carry a person's data wherever they appear in a snapshot (an order row with the customer's name, a
# user row with an e-mail): the audit log keeps that the field was there, never the value. Services should pass
# field names and references in the first place; this is the guard for snapshots that still carry them.
PERSONAL_FIELDS = frozenset(
    {
        "customer_name", "first_name", "last_name", "full_name", "email", "phone", "address", "date_of_birth",
        "id_document_number", "licence_number", "password", "password_hash", "salary", "bank_account",
    }
)  # fmt: skip
PERSONAL = "[personal]"


def _without_personal(v: Any) -> Any:
    if isinstance(v, dict):
        return {
            k: (PERSONAL if k in PERSONAL_FIELDS and x is not None else _without_personal(x))
            for k, x in v.items()
        }
    if isinstance(v, list):
        return [_without_personal(x) for x in v]
    return v


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
            Jsonb(_without_personal(_jsonable(before))) if before is not None else None,
            Jsonb(_without_personal(_jsonable(after))) if after is not None else None,
        ),
    )


def list_(
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


def redact(conn: Conn, *, entity: str, entity_id: object) -> int:
    """Drop the before/after values of an entity's audit entries (erasure of a person), keeping who did what and
    when; returns how many entries were redacted."""
    cur = conn.execute(
        """UPDATE audit_log SET before = NULL, after = jsonb_build_object('redacted', true)
            WHERE entity = %s AND entity_id = %s AND (before IS NOT NULL OR after IS NOT NULL)
              AND after IS DISTINCT FROM jsonb_build_object('redacted', true)""",
        (entity, str(entity_id)),
    )
    return cur.rowcount
