"""Authentication (OAuth2 password flow), staff users and the audit log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from backoffice.auth import service
from backoffice.auth.security import create_access_token
from backoffice.deps import ConnDep, CurrentUser, SettingsDep, require_roles

router = APIRouter(prefix="/api/v1", tags=["auth"])
AdminOrHr = Annotated[dict, Depends(require_roles("hr"))]
Admin = Annotated[dict, Depends(require_roles("admin"))]


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class UserIn(BaseModel):
    username: str = Field(pattern=r"^[a-z0-9_.@-]{3,64}$")
    password: str = Field(min_length=service.MIN_PASSWORD_LENGTH, max_length=256)
    role: Literal["admin", "dispatcher", "customer_service", "finance", "hr", "technician"]
    full_name: str = ""
    department: Literal["operations", "customer_service", "technology", "finance", "administration"] | None = None


@router.post("/auth/token", response_model=Token)
def login(conn: ConnDep, settings: SettingsDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    user = service.authenticate(conn, username=form.username, password=form.password)
    if user is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = create_access_token(
        subject=user["username"], role=user["role"], secret=settings.secret_key, minutes=settings.access_token_minutes
    )
    return Token(access_token=token, expires_in=settings.access_token_minutes * 60)


@router.get("/auth/me")
def me(user: CurrentUser) -> dict:
    return user


@router.get("/users")
def list_users(conn: ConnDep, user: AdminOrHr) -> list[dict]:
    return service.list_(conn)


@router.post("/users", status_code=201)
def create_user(body: UserIn, conn: ConnDep, user: AdminOrHr) -> dict:
    created = service.create(conn, **body.model_dump())
    service.audit(conn, actor=user, action="user.create", entity="staff_users", entity_id=created["id"], after=created)
    return created


@router.get("/audit")
def list_audit(
    conn: ConnDep,
    user: Admin,
    entity: str | None = None,
    entity_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict]:
    return service.list_audit(conn, entity=entity, entity_id=entity_id, limit=limit, offset=offset)
