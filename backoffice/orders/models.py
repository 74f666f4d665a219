"""Order request schemas."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

VehicleClass = Literal["economy", "compact", "midsize", "fullsize", "suv", "van", "premium", "ev"]
Channel = Literal["phone", "app", "counter"]
ORDER_STATUSES = ("pending", "confirmed", "assigned", "active", "returned", "completed", "cancelled", "no_show")
StationCode = Annotated[str, Field(min_length=2, max_length=16, pattern=r"^[A-Za-z0-9_-]+$")]


class OrderIn(BaseModel):
    """Intake: who, what class, where and when, through which channel."""

    model_config = ConfigDict(extra="forbid")

    customer_id: int = Field(gt=0)
    vehicle_class: VehicleClass
    pickup_station: StationCode
    return_station: StationCode
    pickup_at: AwareDatetime
    return_at: AwareDatetime
    channel: Channel
    notes: str = Field(default="", max_length=2000)


class OrderPatch(BaseModel):
    """Changes to times, class or stations; the order is re-validated and re-priced."""

    model_config = ConfigDict(extra="forbid")

    vehicle_class: VehicleClass | None = None
    pickup_station: StationCode | None = None
    return_station: StationCode | None = None
    pickup_at: AwareDatetime | None = None
    return_at: AwareDatetime | None = None
    notes: str | None = Field(default=None, max_length=2000)


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    no_show: bool = False
    reason: str = Field(default="", max_length=500)


class AssignIn(BaseModel):
    """Empty: choose automatically. `vin`: this vehicle. `accept_transfer`: accept a proposed move."""

    model_config = ConfigDict(extra="forbid")

    vin: str | None = Field(default=None, pattern=r"^[A-HJ-NPR-Za-hj-npr-z0-9]{17}$")
    accept_transfer: bool = False


class ReturnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    return_station: StationCode


class RateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    daily_rate: float = Field(ge=0, le=100000)
    weekend_daily_rate: float = Field(ge=0, le=100000)
    included_km_per_day: int = Field(ge=0, le=10000)
    extra_km_price: float = Field(ge=0, le=1000)
    fuel_price_per_pct: float = Field(ge=0, le=1000)
    late_fee_per_hour: float = Field(ge=0, le=10000)
    late_grace_minutes: int = Field(ge=0, le=1440)
    one_way_fee: float = Field(ge=0, le=100000)
