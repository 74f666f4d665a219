"""Request schemas of the fleet API (tables live in fleetcore/migrations/0001 and 0201)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from fleetcore.protocol.vin import vin_problem

VehicleClass = Literal["economy", "compact", "midsize", "fullsize", "suv", "van", "premium", "ev"]
VehicleStatus = Literal["available", "reserved", "rented", "maintenance", "out_of_service", "retired"]
MaintenanceKind = Literal["service", "repair", "inspection", "tyres", "damage", "recall"]
ProcurementStatus = Literal["planned", "ordered", "delivered", "cancelled"]
StationCode = Field(pattern=r"^[A-Za-z0-9_-]{2,16}$", description="station code, e.g. BER-HBF")
Year = Field(ge=1980, le=2100)
Money = Field(ge=0, max_digits=12, decimal_places=2)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class StationIn(_In):
    code: str = StationCode
    name: str = Field(min_length=1, max_length=200)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class StationPatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class VehicleIn(_In):
    vin: str = Field(description="17 characters with a valid check digit (49 CFR 565.15)")
    plate: str = Field(min_length=1, max_length=16)
    make: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=64)
    year: int = Year
    vehicle_class: VehicleClass = Field(alias="class")
    station: str = StationCode
    status: Literal["available", "maintenance", "out_of_service"] = "available"
    service_interval_km: int | None = Field(default=None, ge=1000, le=100000)
    service_interval_days: int | None = Field(default=None, ge=30, le=1095)
    device_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")

    @field_validator("vin")
    @classmethod
    def _vin(cls, v: str) -> str:
        v = v.upper()
        if p := vin_problem(v):
            raise ValueError(p)
        return v


class VehiclePatch(_In):
    plate: str | None = Field(default=None, min_length=1, max_length=16)
    make: str | None = Field(default=None, min_length=1, max_length=64)
    model: str | None = Field(default=None, min_length=1, max_length=64)
    year: int | None = Field(default=None, ge=1980, le=2100)
    vehicle_class: VehicleClass | None = Field(default=None, alias="class")
    station: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{2,16}$")
    service_interval_km: int | None = Field(default=None, ge=1000, le=100000)
    service_interval_days: int | None = Field(default=None, ge=30, le=1095)


class StatusIn(_In):
    status: VehicleStatus
    note: str | None = Field(default=None, max_length=500)


class DeviceIn(_In):
    device_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    protocol: Literal["json", "obd", "nmea"] | None = None


class ProcurementIn(_In):
    supplier: str = Field(min_length=1, max_length=200)
    make: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=64)
    year: int = Year
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
    year: int | None = Field(default=None, ge=1980, le=2100)
    vehicle_class: VehicleClass | None = Field(default=None, alias="class")
    station: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{2,16}$")
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
    device_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")

    _vin = field_validator("vin")(VehicleIn._vin.__func__)  # type: ignore[attr-defined]


class ProcurementCancelIn(_In):
    reason: str = Field(default="", max_length=500)


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


# ---- responses (documented in OpenAPI; money is serialised as a decimal string) ---------------------------


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class StationOut(_Out):
    id: int
    code: str
    name: str
    lat: float
    lon: float
    created_at: dt.datetime
    vehicles: int | None = Field(
        default=None, description="vehicles based here, retired excluded (lists only)"
    )


class ServiceInfo(_Out):
    service_interval_km: int
    service_interval_days: int
    last_service_at: dt.datetime | None
    last_service_odometer_km: float
    odometer_km: float | None = Field(description="latest telemetry reading")
    next_service_km: float
    next_service_at: dt.datetime
    km_remaining: float | None
    due_now: bool


class ServiceInfoOut(ServiceInfo):
    vin: str


class VehicleOut(_Out):
    id: int
    vin: str
    plate: str
    make: str
    model: str
    year: int
    vehicle_class: str = Field(alias="class")
    status: VehicleStatus
    station: str | None
    home_station_id: int | None
    device_id: str | None
    service_interval_km: int
    service_interval_days: int
    last_service_at: dt.datetime | None
    last_service_odometer_km: float
    created_at: dt.datetime
    updated_at: dt.datetime
    service: ServiceInfo | None = None


class StatusChangeOut(_Out):
    id: int
    from_status: str | None
    status: str
    changed_at: dt.datetime
    changed_by: str | None
    note: str | None


class DeviceInstallOut(_Out):
    id: int
    device_id: str
    protocol: str | None = None
    installed_at: dt.datetime
    removed_at: dt.datetime | None


class ProcurementOut(_Out):
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
