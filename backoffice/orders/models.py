"""Order request and response schemas."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from backoffice.finance.models import InvoiceOut

VehicleClass = Literal["economy", "compact", "midsize", "fullsize", "suv", "van", "premium", "ev"]
Channel = Literal["phone", "app", "counter"]
ORDER_STATUSES = (
    "pending",
    "confirmed",
    "assigned",
    "active",
    "returned",
    "completed",
    "cancelled",
    "no_show",
)
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
    discount_code: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{6,40}$")


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
    deposit: Literal["apply", "release"] = Field(
        default="apply",
        description="a deposit pays the rental invoice first (apply) or goes back in full (release)",
    )


class PickupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deposit: Decimal | None = Field(default=None, gt=0, max_digits=12, decimal_places=2)
    deposit_method: Literal["card", "cash", "bank_transfer", "paypal"] = "card"


class DamageChargeItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert_id: int = Field(gt=0)
    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    description: str = Field(default="", max_length=200)


class DamageChargeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    charges: list[DamageChargeItem] = Field(min_length=1, max_length=50)


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


class LineOut(BaseModel):
    code: str = Field(
        description="rental_weekday, rental_weekend, one_way, extra_km, fuel, late_return, cancelled, no_show"
    )
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal


class QuoteOut(BaseModel):
    """The price quote: booked days, the rate used, line items and totals (net + VAT = gross)."""

    currency: str
    vehicle_class: VehicleClass
    days: int
    weekend_days: int
    included_km: int
    first_day_price: Decimal
    rate: dict[str, Decimal]
    lines: list[LineOut]
    net: Decimal
    vat_rate: Decimal
    vat: Decimal
    gross: Decimal


class ChargesOut(BaseModel):
    """Final charges at return, computed from the telemetry readings."""

    distance_km: Decimal
    extra_km: Decimal
    fuel_missing_pct: Decimal
    late_hours: int
    lines: list[LineOut]
    net: Decimal
    vat_rate: Decimal
    vat: Decimal
    gross: Decimal
    reading_ts: dt.datetime | None = Field(default=None, description="sample time of the telemetry used")
    stale_reading: bool = Field(default=False, description="no telemetry since pickup: check the car")


class OrderOut(BaseModel):
    id: int
    status: Literal[
        "pending", "confirmed", "assigned", "active", "returned", "completed", "cancelled", "no_show"
    ]
    customer_id: int
    customer_name: str
    vehicle_class: VehicleClass
    channel: Channel
    pickup_station_id: int
    pickup_station: str
    return_station_id: int
    return_station: str
    pickup_at: dt.datetime
    return_at: dt.datetime
    quote: QuoteOut
    quoted_net: Decimal
    reserved_vehicle_id: int | None = Field(description="vehicle held for the period (from confirmation on)")
    vehicle_id: int | None = Field(description="vehicle assigned by dispatch")
    vin: str | None
    plate: str | None
    picked_up_at: dt.datetime | None
    pickup_odometer_km: float | None
    pickup_fuel_pct: float | None
    returned_at: dt.datetime | None
    actual_return_station_id: int | None
    actual_return_station: str | None
    return_odometer_km: float | None
    return_fuel_pct: float | None
    damage: list[dict[str, Any]] = Field(description="crash alerts raised during the rental (damage check)")
    charges: ChargesOut | None
    cancelled_at: dt.datetime | None
    cancellation_fee: Decimal | None
    notes: str
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime


class OrderPage(BaseModel):
    items: list[OrderOut]
    total: int
    limit: int
    offset: int


class ChangeOut(BaseModel):
    id: int
    order_id: int
    at: dt.datetime
    actor: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class CancelOut(BaseModel):
    order: OrderOut
    cancellation_fee: Decimal
    invoice: InvoiceOut | None


class DepositOut(BaseModel):
    id: int
    order_id: int
    amount: Decimal
    method: str
    status: str
    applied: Decimal
    released: Decimal
    held_at: dt.datetime
    settled_at: dt.datetime | None


class ReturnOut(BaseModel):
    order: OrderOut
    invoice: InvoiceOut
    deposit: DepositOut | None = None


class Rejection(BaseModel):
    vin: str
    station: str
    reasons: list[str]


class Proposal(BaseModel):
    from_station: str
    to_station: str
    vin: str
    plate: str
    distance_km: float
    odometer_km: float | None
    fuel_pct: float | None


class AssignOut(BaseModel):
    """Either `assigned` (order, vehicle, optional transfer) or `proposal` (proposal and the body that accepts it)."""

    status: Literal["assigned", "proposal"]
    order: OrderOut | None = None
    order_id: int | None = None
    vehicle: dict[str, Any] | None = None
    transfer: dict[str, Any] | None = None
    proposal: Proposal | None = None
    accept: AssignIn | None = None
    rejected: list[Rejection]


class ArchiveOut(BaseModel):
    order_id: int
    archived_at: dt.datetime
    archived_by: str
    snapshot: dict[str, Any]


class RateOut(BaseModel):
    vehicle_class: VehicleClass
    currency: str
    daily_rate: Decimal
    weekend_daily_rate: Decimal
    included_km_per_day: int
    extra_km_price: Decimal
    fuel_price_per_pct: Decimal
    late_fee_per_hour: Decimal
    late_grace_minutes: int
    one_way_fee: Decimal
    updated_at: dt.datetime
