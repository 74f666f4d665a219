"""Administration schemas (tables in migration 0620)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ItemIn(_In):
    sku: str = Field(pattern=r"^[A-Z0-9-]{2,32}$")
    name: str = Field(min_length=1, max_length=200)
    unit: str = Field(default="pcs", min_length=1, max_length=20)
    reorder_point: int = Field(default=0, ge=0, le=1_000_000)
    reorder_qty: int = Field(default=0, ge=0, le=1_000_000)
    unit_cost: Decimal = Field(default=Decimal(0), ge=0, max_digits=12, decimal_places=2)


class ItemOut(BaseModel):
    id: int
    sku: str
    name: str
    unit: str
    stock: int
    reorder_point: int
    reorder_qty: int
    unit_cost: Decimal


class PlanLine(_In):
    item_id: int = Field(gt=0)
    qty: int = Field(gt=0, le=1_000_000)
    unit_cost: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=2)


class PlanIn(_In):
    period: str = Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")
    lines: list[PlanLine] | None = Field(default=None, max_length=500,
                                         description="omit to plan every item at its reorder point")  # fmt: skip
    note: str = Field(default="", max_length=2000)


class PlanOut(BaseModel):
    id: int
    period: str
    status: str
    note: str
    created_by: str
    approved_by: str | None
    received_at: dt.datetime | None
    lines: list[dict[str, Any]]
    total: Decimal


class PlanStatusIn(_In):
    status: Literal["approved", "received", "cancelled"]


class ReqLine(_In):
    item_id: int = Field(gt=0)
    qty: int = Field(gt=0, le=10_000)


class RequisitionIn(_In):
    lines: list[ReqLine] = Field(min_length=1, max_length=100)
    purpose: str = Field(default="", max_length=1000)


class RequisitionOut(BaseModel):
    id: int
    requested_by: str
    department: str
    purpose: str
    status: str
    decided_by: str | None
    issued_by: str | None
    lines: list[dict[str, Any]]


class DecisionIn(_In):
    approve: bool


class CountLine(_In):
    item_id: int = Field(gt=0)
    counted: int = Field(ge=0, le=10_000_000)


class CountIn(_In):
    lines: list[CountLine] = Field(min_length=1, max_length=1000)
    note: str = Field(default="", max_length=1000)


class CountOut(BaseModel):
    id: int
    counted_at: dt.datetime
    counted_by: str
    note: str
    lines: list[dict[str, Any]]


class FacilityIn(_In):
    location: str = Field(min_length=1, max_length=200)
    category: Literal["electrical", "plumbing", "hvac", "cleaning", "it", "furniture", "security", "other"]
    description: str = Field(min_length=1, max_length=4000)
    priority: Literal["low", "normal", "urgent"] = "normal"


class FacilityPatch(_In):
    status: Literal["open", "in_progress", "done", "cancelled"]
    assignee: str | None = Field(default=None, min_length=3, max_length=64)
    note: str = Field(default="", max_length=2000)


class FacilityOut(BaseModel):
    id: int
    location: str
    category: str
    description: str
    priority: str
    status: str
    requested_by: str
    assignee: str | None
    note: str
    created_at: dt.datetime
    done_at: dt.datetime | None


class RoomIn(_In):
    code: str = Field(pattern=r"^[A-Z0-9-]{2,20}$")
    name: str = Field(min_length=1, max_length=200)
    capacity: int = Field(ge=1, le=1000)
    location: str = Field(default="", max_length=200)


class RoomOut(BaseModel):
    id: int
    code: str
    name: str
    capacity: int
    location: str


class BookingIn(_In):
    room_id: int = Field(gt=0)
    kind: Literal["meeting", "event", "training", "interview"] = "meeting"
    title: str = Field(min_length=1, max_length=200)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    attendees: list[str] = Field(default=[], max_length=500)


class ActionIn(_In):
    description: str = Field(min_length=1, max_length=2000)
    owner: str = Field(min_length=3, max_length=64)
    due_on: dt.date


class MinutesIn(_In):
    minutes: str = Field(min_length=1, max_length=20000)
    actions: list[ActionIn] = Field(default=[], max_length=100)


class ActionOut(BaseModel):
    id: int
    booking_id: int
    description: str
    owner: str
    due_on: dt.date
    status: str
    done_at: dt.datetime | None


class BookingOut(BaseModel):
    id: int
    room_id: int
    kind: str
    title: str
    organiser: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    attendees: list[str]
    minutes: str | None
    cancelled_at: dt.datetime | None
    actions: list[ActionOut] = []
