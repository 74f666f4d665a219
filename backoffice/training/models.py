"""Training schemas (tables in migration 0611)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

CertCode = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")
TASK_KIND_PATTERN = r"^(service|repair|inspection|tyres|damage|recall)$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CourseIn(_In):
    code: str = CertCode
    title: str = Field(min_length=1, max_length=200)
    certifies: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{1,39}$")
    validity_months: int | None = Field(default=None, ge=1, le=120)


class CourseOut(BaseModel):
    id: int
    code: str
    title: str
    certifies: str | None
    validity_months: int | None


class SessionIn(_In):
    course_id: int = Field(gt=0)
    department: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{1,31}$")
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    trainer: str = Field(default="", max_length=200)
    location: str = Field(default="", max_length=200)
    capacity: int = Field(default=20, ge=1, le=500)


class SessionOut(BaseModel):
    id: int
    course_id: int
    course_code: str | None = None
    department: str | None
    starts_at: dt.datetime
    ends_at: dt.datetime
    trainer: str
    location: str
    capacity: int


class AttendanceIn(_In):
    username: str = Field(min_length=3, max_length=64)
    attended: bool
    passed: bool = False
    score: Decimal | None = Field(default=None, ge=0, le=100, max_digits=5, decimal_places=2)


class CertificationIn(_In):
    username: str = Field(min_length=3, max_length=64)
    code: str = CertCode
    issued_on: dt.date
    expires_on: dt.date


class CertificationOut(BaseModel):
    id: int
    user_id: int
    code: str
    issued_on: dt.date
    expires_on: dt.date
    source: str
    session_id: int | None
    revoked_at: dt.datetime | None


class AttendanceOut(BaseModel):
    session_id: int
    user_id: int
    attended: bool
    passed: bool
    score: Decimal | None
    certification: CertificationOut | None = None


class RequirementIn(_In):
    certification: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{1,39}$")


class RequirementOut(BaseModel):
    task_kind: str
    certification: str | None
