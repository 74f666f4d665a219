"""Maintenance request and response schemas (table: maintenance_records, migration 0201; the service plan lives
in the vehicles table's service_* columns)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from backoffice.vehicles.models import ServiceInfo

MAINTENANCE_KINDS = ("service", "repair", "inspection", "tyres", "damage", "recall")
MaintenanceKind = Literal["service", "repair", "inspection", "tyres", "damage", "recall"]
Money = Field(ge=0, max_digits=12, decimal_places=2)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Part(_In):
    name: str = Field(min_length=1, max_length=200)
    part_no: str | None = Field(default=None, max_length=64)
    qty: Decimal = Field(default=Decimal("1"), gt=0, max_digits=10, decimal_places=3)
    unit_cost: Decimal = Money


class MaintenanceIn(_In):
    work_order: str = Field(min_length=1, max_length=64)
    kind: MaintenanceKind = "repair"
    description: str = Field(min_length=1, max_length=4000)
    parts: list[Part] = Field(default_factory=list, max_length=200)
    labour_cost: Decimal = Field(default=Decimal("0"), ge=0, max_digits=12, decimal_places=2)
    parts_cost: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=2)
    odometer_km: float | None = Field(default=None, ge=0, le=5_000_000)
    opened_at: AwareDatetime | None = None


class MaintenancePatch(_In):
    kind: MaintenanceKind | None = None
    description: str | None = Field(default=None, min_length=1, max_length=4000)
    parts: list[Part] | None = Field(default=None, max_length=200)
    labour_cost: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=2)
    parts_cost: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=2)
    odometer_km: float | None = Field(default=None, ge=0, le=5_000_000)


class MaintenanceCloseIn(_In):
    closed_at: AwareDatetime | None = None
    odometer_km: float | None = Field(default=None, ge=0, le=5_000_000)


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class ServiceInfoOut(ServiceInfo):
    vin: str


class MaintenanceOut(_Out):
    id: int
    vehicle_id: int
    vin: str
    plate: str
    work_order: str
    kind: MaintenanceKind
    description: str
    parts: list[dict]
    labour_cost: Decimal
    parts_cost: Decimal
    total_cost: Decimal
    odometer_km: float | None
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    opened_by: str | None
    closed_by: str | None
    updated_at: dt.datetime
