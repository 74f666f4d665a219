"""Authentication (OAuth2 password flow), the signed-in user, and the audit log.

Staff user administration lives in backoffice/hr/views.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import AwareDatetime

from backoffice.auth import models as m
from backoffice.auth import service
from fleetcore import audit as audit_log
from fleetcore.api.deps import ALL_ROLES, ConnDep, SettingsDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES, ErrorEnvelope, envelope
from fleetcore.errors import Invalid

router = APIRouter(prefix="/api/v1", tags=["auth"], responses=ERROR_RESPONSES)
Admin = Annotated[dict, Depends(require_roles("admin"))]
Staff = Annotated[dict, Depends(require_roles(*ALL_ROLES))]


@router.post(
    "/auth/token",
    response_model=m.Token,
    responses={
        429: {"model": ErrorEnvelope, "description": "too many failed logins; retry after Retry-After"}
    },
)
def login(
    request: Request,
    conn: ConnDep,
    settings: SettingsDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> m.Token | JSONResponse:
    """Exchange username and password (form fields) for a bearer token.

    After too many failures for the username or from the address, logins are refused with 429 and Retry-After
    (without checking the password) until the lockout ends.
    """
    address = request.client.host if request.client else None
    # Answers are returned, not raised, so the failure count commits with the request's transaction.
    wait = service.locked_for(conn, username=form.username, address=address)
    if wait is not None:
        return _too_many(wait)
    user = service.authenticate(conn, username=form.username, password=form.password)
    if user is None:
        locked = service.record_failure(
            conn,
            username=form.username,
            address=address,
            policy=service.ThrottlePolicy.from_settings(settings),
        )
        if locked is not None:
            return _too_many(locked)
        return envelope(
            401, "unauthorized", "wrong username or password", headers={"WWW-Authenticate": "Bearer"}
        )
    service.record_success(conn, username=form.username)
    token = service.TokenSigning.from_settings(settings).issue(user)
    return m.Token(access_token=token, expires_in=settings.access_token_minutes * 60)


def _too_many(retry_after_s: int) -> JSONResponse:
    return envelope(
        429,
        "too_many_attempts",
        f"too many failed logins; try again in {retry_after_s} s",
        headers={"Retry-After": str(retry_after_s)},
    )


@router.get("/auth/me", response_model=m.UserOut)
def me(user: Staff) -> dict:
    """The signed-in staff user."""
    return user


@router.post("/auth/password", status_code=204)
def change_own_password(body: m.PasswordChangeIn, conn: ConnDep, user: Staff) -> None:
    """Change your own password; your other tokens stop working."""
    service.change_password(
        conn, user=user, current_password=body.current_password, new_password=body.new_password
    )


@router.get("/audit", response_model=list[m.AuditOut])
def list_audit(
    conn: ConnDep,
    user: Admin,
    entity: str | None = None,
    entity_id: str | None = None,
    actor: Annotated[str | None, Query(description="username, 'cli' or 'system'")] = None,
    action: Annotated[str | None, Query(description="exact action, or a prefix ending in '.' or '*'")] = None,
    since: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    until: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict]:
    """The audit log, newest first (admin)."""
    if since is not None and until is not None and since >= until:
        raise Invalid("from must be before to")
    return audit_log.list_(
        conn,
        entity=entity,
        entity_id=entity_id,
        actor=actor,
        action=action,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
