"""Vehicle request and response schemas and the status rules' constants (tables: vehicles and
vehicle_status_history, migrations 0001 and 0201)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backoffice.devices.models import DEVICE_ID_PATTERN
from backoffice.stations.models import STATION_CODE_PATTERN, StationCode
from fleetcore.protocol.vin import vin_problem

VEHICLE_CLASSES = ("economy", "compact", "midsize", "fullsize", "suv", "van", "premium", "ev")
VEHICLE_STATUSES = ("available", "reserved", "rented", "maintenance", "out_of_service", "retired")
VehicleClass = Literal["economy", "compact", "midsize", "fullsize", "suv", "van", "premium", "ev"]
VehicleStatus = Literal["available", "reserved", "rented", "maintenance", "out_of_service", "retired"]
# Which status may follow which. Retired is final (also enforced by a trigger, migration 0201). Orders move cars
# available/reserved -> rented at pickup and rented -> available/maintenance at return, all listed here.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    "available": frozenset({"reserved", "rented", "maintenance", "out_of_service", "retired"}),
    "reserved": frozenset({"available", "rented", "maintenance", "out_of_service"}),
    "rented": frozenset({"available", "maintenance", "out_of_service"}),
    "maintenance": frozenset({"available", "out_of_service", "retired"}),
    "out_of_service": frozenset({"available", "maintenance", "retired"}),
    "retired": frozenset(),
}
INITIAL_STATUSES = ("available", "maintenance", "out_of_service")
# Which target statuses each role may set (admin: any). Retiring is a fleet-management decision, so admin only;
# technicians take cars in and out of the workshop, dispatchers run the operational cycle.
STATUS_TARGETS_BY_ROLE = {
    "dispatcher": frozenset({"available", "reserved", "rented", "maintenance", "out_of_service"}),
    "technician": frozenset({"available", "maintenance", "out_of_service"}),
}
# A technician may release a car to `available` only from the workshop states.
TECHNICIAN_RELEASE_FROM = frozenset({"maintenance", "out_of_service"})
MIN_YEAR, MAX_YEAR = 1980, 2100  # same bounds as the vehicles table CHECK (migration 0001)
VEHICLE_FIELDS = (
    "plate",
    "make",
    "model",
    "year",
    "vehicle_class",
    "station",
    "service_interval_km",
    "service_interval_days",
)
Year = Field(ge=MIN_YEAR, le=MAX_YEAR)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def check_vin(v: str) -> str:
    """A pydantic validator body: upper-case VIN with a valid check digit."""
    v = v.upper()
    if p := vin_problem(v):
        raise ValueError(p)
    return v


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
    device_id: str | None = Field(default=None, pattern=DEVICE_ID_PATTERN)

    _vin = field_validator("vin")(check_vin)


class VehiclePatch(_In):
    plate: str | None = Field(default=None, min_length=1, max_length=16)
    make: str | None = Field(default=None, min_length=1, max_length=64)
    model: str | None = Field(default=None, min_length=1, max_length=64)
    year: int | None = Field(default=None, ge=MIN_YEAR, le=MAX_YEAR)
    vehicle_class: VehicleClass | None = Field(default=None, alias="class")
    station: str | None = Field(default=None, pattern=STATION_CODE_PATTERN)
    service_interval_km: int | None = Field(default=None, ge=1000, le=100000)
    service_interval_days: int | None = Field(default=None, ge=30, le=1095)


class StatusIn(_In):
    status: VehicleStatus
    note: str | None = Field(default=None, max_length=500)


# ---- responses ----------------------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class ServiceInfo(_Out):
    """The vehicle's service plan and when the next service is due (computed by backoffice.maintenance)."""

    service_interval_km: int
    service_interval_days: int
    last_service_at: dt.datetime | None
    last_service_odometer_km: float
    odometer_km: float | None = Field(description="latest telemetry reading")
    next_service_km: float
    next_service_at: dt.datetime
    km_remaining: float | None
    due_now: bool


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
