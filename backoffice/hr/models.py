"""Request schemas of the HR API (tables: staff_users in migration 0200, departments in 0202)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backoffice.auth.models import MIN_PASSWORD_LENGTH, Role, UserOut

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


# ---- employees, recruitment, leave (migration 0610) ------------------------------------------------------------

ContractType = Literal["permanent", "fixed_term", "part_time", "intern"]
Money = Field(gt=0, max_digits=12, decimal_places=2)
NationalId = Field(
    default=None, pattern=r"^[0-9A-Za-z]{6,32}$", description="identity card number (hr and admin only)"
)


class SalaryOut(BaseModel):
    base: Decimal
    allowance: Decimal


class EmployeeIn(_In):
    username: str = Field(min_length=3, max_length=64, description="the existing staff user")
    position: str = Field(min_length=1, max_length=200)
    department: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{1,31}$")
    manager_id: int | None = Field(default=None, gt=0)
    hire_date: dt.date
    contract_type: ContractType
    contract_end: dt.date | None = None
    annual_leave_days: int = Field(default=10, ge=0, le=60)
    base_salary: Decimal = Money
    allowance: Decimal = Field(default=Decimal(0), ge=0, max_digits=12, decimal_places=2)
    national_id: str | None = NationalId


class EmployeePatch(_In):
    department: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{1,31}$")
    position: str | None = Field(default=None, min_length=1, max_length=200)
    manager_id: int | None = Field(default=None, gt=0)
    contract_type: ContractType | None = None
    contract_end: dt.date | None = None
    status: Literal["active", "on_leave", "terminated"] | None = None
    annual_leave_days: int | None = Field(default=None, ge=0, le=60)


class PayIn(_In):
    base_salary: Decimal = Money
    allowance: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=2)


class EmployeeOut(BaseModel):
    id: int
    user_id: int
    username: str
    employee_no: str
    full_name: str
    department: str
    position: str
    manager_id: int | None
    hire_date: dt.date
    contract_type: str
    contract_end: dt.date | None
    status: str
    annual_leave_days: int
    payroll_profile: str
    salary: SalaryOut | None = Field(default=None, description="hr and admin only; null for other roles")
    national_id: str | None = Field(default=None, description="hr and admin only; null for other roles")


class RequisitionIn(_In):
    department: str = DepartmentCode
    position: str = Field(min_length=1, max_length=200)
    role: Role
    headcount: int = Field(default=1, ge=1, le=100)
    reason: str = Field(default="", max_length=2000)


class RequisitionOut(BaseModel):
    id: int
    department: str
    position: str
    role: str
    headcount: int
    reason: str
    status: str
    created_by: str
    created_at: dt.datetime


class CandidateIn(_In):
    full_name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()/-]{5,32}$")
    notes: str = Field(default="", max_length=4000)


class CandidateOut(BaseModel):
    id: int
    requisition_id: int
    full_name: str
    email: str
    phone: str | None
    stage: str
    interview_score: Decimal | None
    written_test_score: Decimal | None
    background_check: str | None
    offer_start_date: dt.date | None
    employee_id: int | None
    notes: str


class ScoreIn(_In):
    score: Decimal = Field(ge=0, le=100, max_digits=5, decimal_places=2)


class CheckIn(_In):
    result: Literal["clear", "flagged"]


class OfferIn(_In):
    base_salary: Decimal = Money
    allowance: Decimal = Field(default=Decimal(0), ge=0, max_digits=12, decimal_places=2)
    start_date: dt.date


class HireIn(_In):
    username: str = Field(pattern=r"^[a-z0-9_.@-]{3,64}$")
    password: str = Password
    contract_type: ContractType
    contract_end: dt.date | None = None
    manager_id: int | None = Field(default=None, gt=0)
    national_id: str | None = NationalId


class HireOut(BaseModel):
    candidate: CandidateOut
    employee: EmployeeOut
    user: UserOut


class RejectIn(_In):
    withdrawn: bool = False


class LeaveIn(_In):
    kind: Literal["annual", "sick", "personal", "marriage", "maternity", "unpaid"]
    start_date: dt.date
    end_date: dt.date
    reason: str = Field(default="", max_length=2000)


class LeaveOut(BaseModel):
    id: int
    employee_id: int
    kind: str
    start_date: dt.date
    end_date: dt.date
    days: Decimal
    reason: str
    status: str
    decided_by: str | None
    decided_at: dt.datetime | None


class DecisionIn(_In):
    approve: bool


class BalanceOut(BaseModel):
    employee_id: int
    year: int
    entitlement: int
    used_or_pending: Decimal
    remaining: Decimal


class AttendanceDay(_In):
    day: dt.date
    status: Literal["present", "late", "absent", "leave", "holiday"]
    overtime_hours: Decimal = Field(default=Decimal(0), ge=0, le=16, max_digits=4, decimal_places=1)
    note: str = Field(default="", max_length=500)


class AttendanceIn(_In):
    days: list[AttendanceDay] = Field(min_length=1, max_length=62)


class AttendanceSummaryOut(BaseModel):
    days: dict[str, int]
    overtime_hours: Decimal
