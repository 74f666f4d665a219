"""Notifications: the one owner of `outbox` (+ attachments) and `staff_notifications` (+ reads).

Every domain that must tell someone something calls this service in its own transaction:
- `enqueue_email` puts a message (with attachments) in the outbox; `dispatch` (a scheduled job) hands due messages
  to a `Sender` outside any transaction and records the result, retrying with back-off. A message is claimed with
  FOR UPDATE SKIP LOCKED, so several schedulers never send it twice.
- `notify_staff` leaves a notice for one user or for everyone with a role; users list and mark their own.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from psycopg.types.json import Jsonb

from backoffice.notifications.models import CLAIM_LEASE, MAX_ATTEMPTS, ROLES, Attachment, Email
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound

log = logging.getLogger(__name__)


class Sender(Protocol):
    """Delivers one e-mail or raises (any exception is a failed attempt, retried later)."""

    def send(self, email: Email) -> None: ...


def backoff(attempts: int) -> dt.timedelta:
    """Wait before the next attempt: 1, 2, 4, … minutes, at most an hour."""
    return dt.timedelta(minutes=min(2 ** max(attempts - 1, 0), 60))


# ---- the outbox ----------------------------------------------------------------------------------------------


def enqueue_email(
    conn: Conn,
    *,
    recipient: str,
    subject: str,
    body_text: str,
    source: str,
    actor: dict | None,
    body_html: str | None = None,
    locale: str | None = None,
    attachments: Sequence[Attachment] = (),
    dedupe_key: str | None = None,
) -> dict:
    """Queue an e-mail; with a dedupe key already used, return that message instead of queueing another."""
    if "@" not in recipient or len(recipient) > 254:
        raise Invalid(f"not an e-mail address: {recipient!r}")
    row = conn.execute(
        """INSERT INTO outbox (recipient, subject, body_text, body_html, locale, source, dedupe_key, created_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (dedupe_key) DO NOTHING
           RETURNING id, status, created_at""",
        (
            recipient,
            subject,
            body_text,
            body_html,
            locale,
            source,
            dedupe_key,
            (actor or {}).get("username", "system"),
        ),
    ).fetchone()
    if row is None:  # already queued under this key
        return one(
            conn.execute("SELECT id, status, created_at FROM outbox WHERE dedupe_key = %s", (dedupe_key,))
        )
    for a in attachments:
        conn.execute(
            "INSERT INTO outbox_attachments (outbox_id, filename, content_type, content) VALUES (%s, %s, %s, %s)",
            (row["id"], a.filename, a.content_type, a.content),
        )
    audit(
        conn,
        actor=actor,
        action="outbox.enqueue",
        entity="outbox",
        entity_id=row["id"],
        after={"source": source},
    )
    return row


def get(conn: Conn, *, message_id: int) -> dict | None:
    return conn.execute(
        """SELECT o.*, coalesce((SELECT json_agg(json_build_object('filename', a.filename,
                  'content_type', a.content_type, 'bytes', length(a.content)) ORDER BY a.id)
                  FROM outbox_attachments a WHERE a.outbox_id = o.id), '[]') AS attachments
             FROM outbox o WHERE o.id = %s""",
        (message_id,),
    ).fetchone()


def get_or_raise(conn: Conn, *, message_id: int) -> dict:
    row = get(conn, message_id=message_id)
    if row is None:
        raise NotFound(f"outbox message {message_id} not found")
    return row


def list_(
    conn: Conn, *, status: str | None = None, source: str | None = None, limit: int = 100
) -> list[dict]:
    return conn.execute(
        """SELECT id, recipient, subject, source, status, attempts, next_attempt_at, last_error, created_at, sent_at
             FROM outbox WHERE (%(s)s::text IS NULL OR status = %(s)s)
              AND (%(src)s::text IS NULL OR starts_with(source, %(src)s))
            ORDER BY id DESC LIMIT %(l)s""",
        {"s": status, "src": source, "l": limit},
    ).fetchall()


def retry(conn: Conn, *, message_id: int, actor: dict) -> dict:
    """Queue a failed or cancelled message again, now."""
    before = get_or_raise(conn, message_id=message_id)
    if before["status"] not in ("failed", "cancelled"):
        raise Conflict(
            f"outbox message {message_id} is {before['status']}; only failed or cancelled ones are retried"
        )
    conn.execute(
        "UPDATE outbox SET status = 'queued', attempts = 0, next_attempt_at = now() WHERE id = %s",
        (message_id,),
    )
    audit(conn, actor=actor, action="outbox.retry", entity="outbox", entity_id=message_id)
    return get_or_raise(conn, message_id=message_id)


@dataclass
class DispatchResult:
    sent: int = 0
    failed: int = 0
    given_up: int = 0


def _claim(conn: Conn, limit: int) -> list[Email]:
    with conn.transaction():
        rows = conn.execute(
            # A claim is a lease: a sender that dies mid-batch leaves 'sending' rows that are claimed again once the
            # lease ends (so delivery is at least once; receivers see a duplicate in that rare case).
            """UPDATE outbox SET status = 'sending', attempts = attempts + 1, next_attempt_at = now() + %s
                WHERE id IN (SELECT id FROM outbox WHERE status IN ('queued', 'sending') AND next_attempt_at <= now()
                              ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED)
            RETURNING id, recipient, subject, body_text, body_html, attempts""",
            (CLAIM_LEASE, limit),
        ).fetchall()
        out = []
        for r in rows:
            atts = conn.execute(
                "SELECT filename, content_type, content FROM outbox_attachments WHERE outbox_id = %s ORDER BY id",
                (r["id"],),
            ).fetchall()
            out.append(
                Email(
                    id=r["id"],
                    recipient=r["recipient"],
                    subject=r["subject"],
                    body_text=r["body_text"],
                    body_html=r["body_html"],
                    attempts=r["attempts"],
                    attachments=tuple(
                        Attachment(a["filename"], a["content_type"], bytes(a["content"])) for a in atts
                    ),
                )
            )
    return out


def dispatch(connect: Callable[[], Conn], *, sender: Sender, limit: int = 100) -> DispatchResult:
    """Send what is due: claim (committed), send outside any transaction, record each result."""
    result = DispatchResult()
    with connect() as conn:
        batch = _claim(conn, limit)
        for email in batch:
            try:
                sender.send(email)
            except Exception as exc:  # any failure is one failed attempt; the message is kept with the error
                give_up = email.attempts >= MAX_ATTEMPTS
                with conn.transaction():
                    conn.execute(
                        """UPDATE outbox SET status = %s, last_error = %s, next_attempt_at = now() + %s
                            WHERE id = %s""",
                        (
                            "failed" if give_up else "queued",
                            str(exc)[:1000],
                            backoff(email.attempts),
                            email.id,
                        ),
                    )
                result.failed += 1
                result.given_up += int(give_up)
                log.warning("outbox message %d not sent (attempt %d): %s", email.id, email.attempts, exc)
                continue
            with conn.transaction():
                conn.execute(
                    "UPDATE outbox SET status = 'sent', sent_at = now(), last_error = NULL WHERE id = %s",
                    (email.id,),
                )
            result.sent += 1
    return result


# ---- notices to staff ----------------------------------------------------------------------------------------


def notify_staff(
    conn: Conn,
    *,
    kind: str,
    title: str,
    body: str = "",
    user_id: int | None = None,
    role: str | None = None,
    data: dict | None = None,
) -> dict:
    """A notice for one user or for every user with `role` (exactly one of the two)."""
    if (user_id is None) == (role is None):
        raise Invalid("a notification goes to one user or to one role")
    if role is not None and role not in ROLES:
        raise Invalid(f"unknown role {role!r}")
    return one(
        conn.execute(
            """INSERT INTO staff_notifications (recipient_user_id, recipient_role, kind, title, body, data)
               VALUES (%s, %s, %s, %s, %s, %s) RETURNING *""",
            (user_id, role, kind, title, body, Jsonb(data or {})),
        )
    )


def list_for_user(conn: Conn, *, user: dict, unread_only: bool = False, limit: int = 100) -> list[dict]:
    """The user's own notices and their role's, newest first, each with whether this user has read it."""
    return conn.execute(
        """SELECT n.id, n.kind, n.title, n.body, n.data, n.created_at, r.read_at
             FROM staff_notifications n
             LEFT JOIN staff_notification_reads r ON r.notification_id = n.id AND r.user_id = %(u)s
            WHERE (n.recipient_user_id = %(u)s OR n.recipient_role = %(role)s)
              AND (NOT %(unread)s OR r.read_at IS NULL)
            ORDER BY n.created_at DESC, n.id DESC LIMIT %(l)s""",
        {"u": user["id"], "role": user["role"], "unread": unread_only, "l": limit},
    ).fetchall()


def mark_read(conn: Conn, *, notification_id: int, user: dict) -> None:
    visible = conn.execute(
        """SELECT 1 FROM staff_notifications WHERE id = %s AND (recipient_user_id = %s OR recipient_role = %s)""",
        (notification_id, user["id"], user["role"]),
    ).fetchone()
    if visible is None:
        raise NotFound(f"notification {notification_id} not found")
    conn.execute(
        """INSERT INTO staff_notification_reads (notification_id, user_id) VALUES (%s, %s)
           ON CONFLICT DO NOTHING""",
        (notification_id, user["id"]),
    )
