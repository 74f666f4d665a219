"""Auth schemas and constants: tokens, staff users as the API shows them, the audit log (tables: staff_users and
audit_log, migrations 0200, 0202, 0203)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ROLES = ("admin", "dispatcher", "customer_service", "finance", "hr", "technician")
Role = Literal["admin", "dispatcher", "customer_service", "finance", "hr", "technician"]
DEPARTMENTS = ("operations", "customer_service", "technology", "finance", "administration")
ROLE_DEPARTMENT = {
    "admin": "administration",
    "dispatcher": "operations",
    "customer_service": "customer_service",
    "finance": "finance",
    "hr": "administration",
    "technician": "technology",
}
MIN_PASSWORD_LENGTH = 8  # NIST SP 800-63B minimum for user-chosen secrets


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(max_length=256)
    new_password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=256)


class UserOut(BaseModel):
    id: int
    username: str
    full_name: str
    department: str
    role: Role
    email: str | None = None
    active: bool
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


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
