"""Request schemas of the HR API (tables: staff_users in migration 0200, departments in 0202)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from backoffice.auth.models import MIN_PASSWORD_LENGTH, Role

DepartmentCode = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")
Password = Field(min_length=MIN_PASSWORD_LENGTH, max_length=256)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UserIn(_In):
    username: str = Field(pattern=r"^[a-z0-9_.@-]{3,64}$")
    password: str = Password
    role: Role
    full_name: str = Field(default="", max_length=200)
    department: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{1,31}$")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)


class UserPatch(_In):
    full_name: str | None = Field(default=None, max_length=200)
    department: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{1,31}$")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)


class RoleIn(_In):
    role: Role


class PasswordResetIn(_In):
    password: str = Password


class DepartmentIn(_In):
    code: str = DepartmentCode
    name: str = Field(min_length=1, max_length=200)


class DepartmentPatch(_In):
    name: str = Field(min_length=1, max_length=200)


class SupervisorIn(_In):
    supervisor: str | None = Field(min_length=3, max_length=64, description="username, or null to clear")


class DepartmentOut(BaseModel):
    code: str
    name: str
    created_at: dt.datetime
    supervisor_user_id: int | None = None
    active_staff: int | None = Field(default=None, description="active users in the department (lists only)")
