"""Request dependencies shared by every domain's routes: the database connection and the signed-in staff user.

A request holds at most one pooled connection, and waits for it without holding a worker thread:

- `get_conn` is async. It first takes a slot of `app.state.db_gate`, an asyncio semaphore as large as the pool, and
  only then takes a connection from the pool (which then has one free). Requests beyond the pool size queue on the
  semaphore in the event loop instead of blocking threads of the thread pool, which the requests that hold a
  connection need in order to finish (the deadlock past 10 concurrent requests: psycopg_pool's docs warn against
  taking a second connection while holding one, and sync waiters filled the thread pool).
- Authentication reuses that same connection: `get_current_user` depends on `ConnDep`, which FastAPI resolves once
  per request, and calls `app.state.authenticate(conn, token)`, the hook the composition root sets to the auth
  service. The base layer knows no staff table.
- A connection that cannot be had within `api_db_wait_s` answers 503 with Retry-After (fleetcore.api.errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer
from psycopg_pool import ConnectionPool

from fleetcore import crypto
from fleetcore.crypto import FieldCipher
from fleetcore.db import Conn
from fleetcore.errors import ServiceUnavailable
from fleetcore.settings import Settings

log = logging.getLogger(__name__)

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

ALL_ROLES = ("admin", "dispatcher", "customer_service", "finance", "hr", "technician")

# (connection, bearer token) -> the active staff user, or None; set by the composition root on app.state.
Authenticator = Callable[[Conn, str], dict | None]


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def install_pool(app: FastAPI, pool: ConnectionPool, *, wait_s: float) -> None:
    """Attach the pool and its gate (one slot per connection) to the app."""
    app.state.pool = pool
    app.state.db_gate = asyncio.Semaphore(pool.max_size)
    app.state.db_wait_s = wait_s


@contextlib.asynccontextmanager
async def borrow(app: FastAPI) -> AsyncIterator[Conn]:
    """One pooled connection, waited for in the event loop; committed on success, rolled back on error."""
    gate: asyncio.Semaphore = app.state.db_gate
    wait_s: float = app.state.db_wait_s
    try:
        await asyncio.wait_for(gate.acquire(), timeout=wait_s)
    except TimeoutError:
        raise ServiceUnavailable(
            f"no database connection free within {wait_s:g} s", retry_after_s=1
        ) from None
    try:
        pool: ConnectionPool = app.state.pool
        # The gate leaves a connection free, so this returns at once unless the pool is reconnecting.
        conn = await run_in_threadpool(pool.getconn, wait_s)
        ok = False
        try:
            yield conn
            ok = True
        finally:
            await run_in_threadpool(_give_back, pool, conn, ok)
    finally:
        gate.release()


def _give_back(pool: ConnectionPool, conn: Conn, commit: bool) -> None:
    """Commit (or roll back) and return the connection to the pool, in one trip to a worker thread."""
    try:
        if commit:
            conn.commit()
        else:
            conn.rollback()
    except Exception:  # a broken connection: the pool discards it on putconn
        log.warning("connection failed to %s; the pool replaces it", "commit" if commit else "roll back")
        if commit:
            pool.putconn(conn)
            raise
    pool.putconn(conn)


async def get_conn(request: Request) -> AsyncIterator[Conn]:
    """The request's one pooled connection; committed when the route returns, rolled back on error."""
    async with borrow(request.app) as conn:
        yield conn


ConnDep = Annotated[Conn, Depends(get_conn)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_cipher() -> FieldCipher:
    """The process's cipher for personal fields at rest (fleetcore.crypto; configured by the app at start)."""
    return crypto.cipher()


CipherDep = Annotated[FieldCipher, Depends(get_cipher)]


def get_current_user(
    request: Request, conn: ConnDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> dict:
    """The authenticated staff user, read on the request's own connection; 401 otherwise."""
    authenticate: Authenticator = request.app.state.authenticate
    user = authenticate(conn, token) if token else None
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

    async def dep(user: Annotated[dict, Depends(get_current_user)]) -> dict:  # pure: no worker thread needed
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
