"""Schemas and constants of notifications: outbox e-mails and notices to staff."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from fleetcore.api.deps import ALL_ROLES

ROLES = ALL_ROLES
# After this many failed attempts (about 2 h of back-off) a message is marked failed and kept for a person.
MAX_ATTEMPTS = 8
# How long a claimed message is reserved for the sender that claimed it.
CLAIM_LEASE = dt.timedelta(minutes=10)
OUTBOX_STATUSES = ("queued", "sending", "sent", "failed", "cancelled")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class Email:
    """One message as a sender gets it."""

    id: int
    recipient: str
    subject: str
    body_text: str
    body_html: str | None = None
    attempts: int = 1
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)


class OutboxOut(BaseModel):
    id: int
    recipient: str
    subject: str
    source: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None


class NotificationOut(BaseModel):
    id: int
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: dt.datetime
    read_at: dt.datetime | None
