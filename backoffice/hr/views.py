"""Administration / HR API: staff users (create, list, update, role, deactivate, password reset), departments.

Admin and hr manage users; only an admin may touch admin accounts or grant the admin role.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backoffice.auth import service as auth
from backoffice.auth.models import UserOut
from backoffice.hr import models as m
from backoffice.hr import service
from fleetcore.api.deps import ALL_ROLES, ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["hr"], responses=ERROR_RESPONSES)
AdminOrHr = Annotated[dict, Depends(require_roles("hr"))]
Admin = Annotated[dict, Depends(require_roles("admin"))]
Staff = Annotated[dict, Depends(require_roles(*ALL_ROLES))]


@router.get("/users", response_model=list[UserOut])
def list_users(
    conn: ConnDep,
    user: AdminOrHr,
    role: m.Role | None = None,
    department: str | None = None,
    active: bool | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict]:
    """Staff users (admin, hr)."""
    return auth.list_(conn, role=role, department=department, active=active, q=q, limit=limit, offset=offset)


@router.post("/users", status_code=201, response_model=UserOut)
def create_user(body: m.UserIn, conn: ConnDep, user: AdminOrHr) -> dict:
    """Create a staff user (admin, hr; only admin creates admins)."""
    return service.create(conn, actor=user, **body.model_dump())


@router.get("/users/{username}", response_model=UserOut)
def get_user(username: str, conn: ConnDep, user: AdminOrHr) -> dict:
    """One staff user (admin, hr)."""
    return auth.get_or_raise(conn, username=username)


@router.patch("/users/{username}", response_model=UserOut)
def update_user(username: str, body: m.UserPatch, conn: ConnDep, user: AdminOrHr) -> dict:
    """Change name, department or email (admin, hr)."""
    return service.update(conn, actor=user, username=username, changes=body.model_dump(exclude_unset=True))


@router.post("/users/{username}/role", response_model=UserOut)
def change_role(username: str, body: m.RoleIn, conn: ConnDep, user: Admin) -> dict:
    """Give the user another role (admin only)."""
    return service.change_role(conn, actor=user, username=username, role=body.role)


@router.post("/users/{username}/deactivate", response_model=UserOut)
def deactivate_user(username: str, conn: ConnDep, user: AdminOrHr) -> dict:
    """Deactivate: login and existing tokens stop working (admin, hr)."""
    return service.set_active(conn, actor=user, username=username, active=False)


@router.post("/users/{username}/activate", response_model=UserOut)
def activate_user(username: str, conn: ConnDep, user: AdminOrHr) -> dict:
    """Reactivate a deactivated user (admin, hr)."""
    return service.set_active(conn, actor=user, username=username, active=True)


@router.post("/users/{username}/password", status_code=204)
def reset_password(username: str, body: m.PasswordResetIn, conn: ConnDep, user: Admin) -> None:
    """Set a new password; the user's existing tokens are revoked (admin only). The password is never audited."""
    service.reset_password(conn, actor=user, username=username, password=body.password)


@router.get("/departments", response_model=list[m.DepartmentOut])
def list_departments(conn: ConnDep, user: Staff) -> list[dict]:
    """Departments with their active staff counts (any staff)."""
    return service.list_departments(conn)


@router.post("/departments", status_code=201, response_model=m.DepartmentOut)
def create_department(body: m.DepartmentIn, conn: ConnDep, user: AdminOrHr) -> dict:
    """Add a department (admin, hr)."""
    return service.create_department(conn, code=body.code, name=body.name, actor=user)


@router.patch("/departments/{code}", response_model=m.DepartmentOut)
def rename_department(code: str, body: m.DepartmentPatch, conn: ConnDep, user: AdminOrHr) -> dict:
    """Rename a department (admin, hr)."""
    return service.rename_department(conn, code=code, name=body.name, actor=user)
