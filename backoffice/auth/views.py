"""Authentication (OAuth2 password flow), the signed-in user, and the audit log.

Staff user administration lives in backoffice/hr/views.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from backoffice.auth import service
from backoffice.auth.security import hash_password, verify_password
from backoffice.hr.models import UserOut
from fleetcore import audit as audit_log
from fleetcore.api.deps import ALL_ROLES, ConnDep, SettingsDep, require_roles
from fleetcore.audit import audit
from fleetcore.db import one
from fleetcore.errors import Invalid

router = APIRouter(prefix="/api/v1", tags=["auth"])
Admin = Annotated[dict, Depends(require_roles("admin"))]
Staff = Annotated[dict, Depends(require_roles(*ALL_ROLES))]


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class AuditOut(BaseModel):
    id: int
    at: dt.datetime
    actor_id: int | None
    actor: str = Field(description="username, or 'cli' / 'system'")
    action: str
    entity: str
    entity_id: str | None
    before: Any = None
    after: Any = None


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(max_length=256)
    new_password: str = Field(min_length=service.MIN_PASSWORD_LENGTH, max_length=256)


@router.post("/auth/token", response_model=Token)
def login(
    conn: ConnDep, settings: SettingsDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> Token:
    """Exchange username and password (form fields) for a bearer token."""
    user = service.authenticate(conn, username=form.username, password=form.password)
    if user is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = service.TokenSigning.from_settings(settings).issue(user)
    return Token(access_token=token, expires_in=settings.access_token_minutes * 60)


@router.get("/auth/me", response_model=UserOut)
def me(user: Staff) -> dict:
    """The signed-in staff user."""
    return user


@router.post("/auth/password", status_code=204)
def change_own_password(body: PasswordChangeIn, conn: ConnDep, user: Staff) -> None:
    """Change your own password; your other tokens stop working."""
    row = one(conn.execute("SELECT password_hash FROM staff_users WHERE id = %s", (user["id"],)))
    if not verify_password(body.current_password, row["password_hash"]):
        raise Invalid("current password is wrong")
    conn.execute(
        """UPDATE staff_users SET password_hash = %s, tokens_valid_after = now(), token_version = token_version + 1,
                  updated_at = now() WHERE id = %s""",
        (hash_password(body.new_password), user["id"]),
    )
    audit(conn, actor=user, action="user.password_change", entity="staff_users", entity_id=user["username"])


@router.get("/audit", response_model=list[AuditOut])
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
