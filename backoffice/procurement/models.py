"""Procurement request and response schemas (table: procurements, migration 0201)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backoffice.devices.models import DEVICE_ID_PATTERN
from backoffice.stations.models import STATION_CODE_PATTERN, StationCode
from backoffice.vehicles.models import MAX_YEAR, MIN_YEAR, VehicleClass, VehicleOut, check_vin

PROCUREMENT_STATUSES = ("planned", "ordered", "delivered", "cancelled")
ProcurementStatus = Literal["planned", "ordered", "delivered", "cancelled"]
Money = Field(ge=0, max_digits=12, decimal_places=2)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ProcurementIn(_In):
    supplier: str = Field(min_length=1, max_length=200)
    make: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=64)
    year: int = Field(ge=MIN_YEAR, le=MAX_YEAR)
    vehicle_class: VehicleClass = Field(alias="class")
    station: str = StationCode
    price: Decimal = Money
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    planned_on: dt.date | None = None
    expected_on: dt.date | None = None
    note: str = Field(default="", max_length=2000)


class ProcurementPatch(_In):
    supplier: str | None = Field(default=None, min_length=1, max_length=200)
    make: str | None = Field(default=None, min_length=1, max_length=64)
    model: str | None = Field(default=None, min_length=1, max_length=64)
    year: int | None = Field(default=None, ge=MIN_YEAR, le=MAX_YEAR)
    vehicle_class: VehicleClass | None = Field(default=None, alias="class")
    station: str | None = Field(default=None, pattern=STATION_CODE_PATTERN)
    price: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=2)
    expected_on: dt.date | None = None
    note: str | None = Field(default=None, max_length=2000)


class ProcurementOrderIn(_In):
    ordered_on: dt.date | None = None
    expected_on: dt.date | None = None
    price: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=2)


class ProcurementDeliverIn(_In):
    vin: str
    plate: str = Field(min_length=1, max_length=16)
    delivered_on: dt.date | None = None
    device_id: str | None = Field(default=None, pattern=DEVICE_ID_PATTERN)

    _vin = field_validator("vin")(check_vin)


class ProcurementCancelIn(_In):
    reason: str = Field(default="", max_length=500)


class ProcurementOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    status: ProcurementStatus
    supplier: str
    make: str
    model: str
    year: int
    vehicle_class: str = Field(alias="class")
    station: str
    price: Decimal
    currency: str
    planned_on: dt.date
    ordered_on: dt.date | None
    expected_on: dt.date | None
    delivered_on: dt.date | None
    vehicle_id: int | None
    vin: str | None
    note: str
    created_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class ProcurementDeliveredOut(ProcurementOut):
    vehicle: VehicleOut
