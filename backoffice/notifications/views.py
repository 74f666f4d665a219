"""Staff notices (`/api/v1/notifications`) and the outbox for administrators (`/api/v1/outbox`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backoffice.notifications import service
from backoffice.notifications.models import OUTBOX_STATUSES, NotificationOut, OutboxOut
from fleetcore.api.deps import ALL_ROLES, ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["notifications"], responses=ERROR_RESPONSES)
Staff = Annotated[dict, Depends(require_roles(*ALL_ROLES))]
Admin = Annotated[dict, Depends(require_roles("admin"))]


@router.get("/notifications", response_model=list[NotificationOut])
def my_notifications(
    conn: ConnDep,
    user: Staff,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict]:
    """Your notices and your role's, newest first."""
    return service.list_for_user(conn, user=user, unread_only=unread, limit=limit)


@router.post("/notifications/{notification_id}/read", status_code=204)
def mark_read(notification_id: int, conn: ConnDep, user: Staff) -> None:
    """Mark one of your notices read."""
    service.mark_read(conn, notification_id=notification_id, user=user)


@router.get("/outbox", response_model=list[OutboxOut])
def list_outbox(
    conn: ConnDep,
    user: Admin,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(OUTBOX_STATUSES) + ")$")] = None,
    source: Annotated[str | None, Query(max_length=100, description="prefix, e.g. 'reports'")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict]:
    """Messages to people outside the platform: queued, sent and failed ones, with their last error."""
    return service.list_(conn, status=status, source=source, limit=limit)


@router.post("/outbox/{message_id}/retry", response_model=OutboxOut)
def retry_message(message_id: int, conn: ConnDep, user: Admin) -> dict:
    """Queue a failed message again."""
    return service.retry(conn, message_id=message_id, actor=user)
