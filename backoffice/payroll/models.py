"""Payroll schemas (tables in migration 0610)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Period = Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: str = Period


class RunOut(BaseModel):
    id: int
    period: str
    status: str
    employees: int
    totals: dict[str, Any]
    posting: Any = None
    created_by: str
    created_at: dt.datetime
    created: bool | None = Field(default=None, description="false when the month already had this run")


class PayslipOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    employee_id: int
    period: str
    gross: str
    net: str
    income_tax: str


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    rules: dict[str, Any]


class ProfileOut(BaseModel):
    code: str
    name: str
    rules: dict[str, Any]
    updated_by: str
    updated_at: dt.datetime
