"""Request dependencies: the database connection and the authenticated staff user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer

from backoffice.auth.security import decode_access_token
from fleetcore.db import Conn
from fleetcore.settings import Settings

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

ALL_ROLES = ("admin", "dispatcher", "customer_service", "finance", "hr", "technician")


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_conn(request: Request) -> Iterator[Conn]:
    """One pooled connection per request; committed when the route returns, rolled back on error."""
    with request.app.state.pool.connection() as conn:
        yield conn


ConnDep = Annotated[Conn, Depends(get_conn)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def user_for_token(app, token: str | None) -> dict | None:
    """The active staff user a bearer token stands for, or None (missing, invalid, expired or revoked token).

    Shared by the HTTP dependency below and WebSocket routes, which cannot use HTTP dependencies for auth.
    """
    if not token:
        return None
    claims = decode_access_token(token, secret=app.state.settings.secret_key)
    if claims is None:
        return None
    with app.state.pool.connection() as conn:
        user = conn.execute(
            """SELECT id, username, full_name, department, role, active, token_version
                 FROM staff_users WHERE username = %s""",
            (claims["sub"],),
        ).fetchone()
    if user is None or not user["active"]:
        return None
    # A password reset or deactivation bumps token_version and so revokes every older token (migration 0203).
    if claims.get("ver", 0) != user.pop("token_version"):
        return None
    return user


def get_current_user(request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]) -> dict:
    """The authenticated staff user; 401 otherwise."""
    user = user_for_token(request.app, token)
    if user is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid access token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


def require_roles(*roles: str):
    """Dependency allowing only the given roles (admin always allowed); 401 without a token, 403 otherwise."""
    allowed = set(roles) | {"admin"}
    unknown = allowed - set(ALL_ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def dep(user: Annotated[dict, Depends(get_current_user)]) -> dict:
        if user["role"] not in allowed:
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"role {user['role']!r} may not use this route (allowed: {', '.join(sorted(allowed))})",
            )
        return user

    dep.allowed_roles = tuple(sorted(allowed))  # type: ignore[attr-defined]
    return dep


CurrentUser = Annotated[dict, Depends(get_current_user)]
AnyStaff = Annotated[dict, Depends(require_roles(*ALL_ROLES))]


def route_roles(dependant: Any) -> tuple[str, ...] | None:
    """Roles a route admits: the intersection of every `require_roles` dependency found in its tree (None if none)."""
    found: list[frozenset[str]] = []

    def walk(d: Any) -> None:
        for sub in d.dependencies:
            roles = getattr(sub.call, "allowed_roles", None)
            if roles is not None:
                found.append(frozenset(roles))
            walk(sub)

    walk(dependant)
    return tuple(sorted(frozenset.intersection(*found))) if found else None
