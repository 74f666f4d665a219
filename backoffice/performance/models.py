"""Performance-review schemas (table reviews, migration 0610)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReviewIn(_In):
    employee_id: int = Field(gt=0)
    period_start: dt.date
    period_end: dt.date


class RatingIn(_In):
    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=4000)
    outcome: Literal["none", "pay_change", "promotion", "bonus"]
    amount: Decimal | None = Field(default=None, gt=0, max_digits=12, decimal_places=2,
                                   description="pay change/promotion: new monthly base; bonus: the amount")  # fmt: skip
    note: str = Field(default="", max_length=500, description="promotion: the new position")


class ReviewOut(BaseModel):
    id: int
    employee_id: int
    period_start: dt.date
    period_end: dt.date
    role: str
    kpis: dict[str, Any]
    manager_rating: int | None
    manager_comment: str
    outcome: str | None
    outcome_amount: Decimal | None = Field(default=None, description="hr and admin only")
    outcome_note: str
    status: str
    approved_by: str | None
    approved_at: dt.datetime | None
    created_by: str
    created_at: dt.datetime
