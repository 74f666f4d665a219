"""Response schemas of the dispatcher console's API (it owns no table: every read goes through another domain's
service). Only what a dispatcher needs: a customer appears with name, phone and e-mail, never with identity or
licence numbers, date of birth or address."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

Health = Literal["ok", "warning", "critical"]


class StationOut(BaseModel):
    code: str
    name: str
    lat: float
    lon: float
    vehicles: int


class GeofenceOut(BaseModel):
    code: str
    name: str
    kind: str = Field(description="station, permitted or restricted")
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon (lon/lat)")


class FleetVehicle(BaseModel):
    """A vehicle on the map: identity, registry status and its latest state."""

    id: int
    vin: str
    plate: str
    make: str
    model: str
    vehicle_class: str
    status: str = Field(
        description="registry status: available, reserved, rented, maintenance, out_of_service, retired"
    )
    station: str | None = Field(description="home station code")
    lat: float | None
    lon: float | None
    heading: int | None
    speed: int | None
    online: bool
    health: Health
    open_alerts: int
    ts: int | None = Field(description="sample time of the position, epoch milliseconds")


class FleetOut(BaseModel):
    """Everything the map starts from; `cursor` is the `since` of the first positions call."""

    cursor: dt.datetime
    vehicles: list[FleetVehicle]
    stations: list[StationOut]
    geofences: list[GeofenceOut]
    station_radius_m: float = Field(description="radius of a station's default circular geofence")


class StatusChange(BaseModel):
    id: int
    status: str
    station: str | None


class PositionsOut(BaseModel):
    """Vehicles whose state changed since the cursor, as parallel arrays (index i of each list is one vehicle)."""

    cursor: dt.datetime = Field(description="pass as `since` on the next call")
    id: list[int]
    lat: list[float | None]
    lon: list[float | None]
    heading: list[int | None]
    speed: list[int | None]
    online: list[bool]
    health: list[Health]
    open_alerts: list[int]
    ts: list[int | None] = Field(description="sample times, epoch milliseconds")
    status: list[StatusChange] = Field(description="vehicles whose registry status or home station changed")


class DtcOut(BaseModel):
    code: str
    description: str
    severity: str


class PanelState(BaseModel):
    lat: float | None = None
    lon: float | None = None
    speed_kmh: float | None = None
    heading_deg: float | None = None
    fuel_pct: float | None = None
    battery_v: float | None = None
    coolant_c: float | None = None
    odometer_km: float | None = None
    rpm: float | None = None
    ignition: bool | None = None
    online: bool = False
    ts: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    health: Health = "ok"
    rentable: bool | None = None
    open_alerts: int | None = None
    dtc: list[DtcOut] = []


class CustomerContact(BaseModel):
    """A dispatcher's view of the renter: who to call."""

    id: int
    name: str
    phone: str | None
    email: str | None


class PanelOrder(BaseModel):
    id: int
    status: str
    pickup_station: str
    return_station: str
    pickup_at: dt.datetime
    return_at: dt.datetime
    picked_up_at: dt.datetime | None
    customer: CustomerContact


class PanelAlert(BaseModel):
    id: int
    kind: str
    severity: str
    status: str
    message: str
    opened_at: dt.datetime
    last_seen_at: dt.datetime
    occurrences: int


class ServicePlan(BaseModel):
    next_service_km: float
    next_service_at: dt.datetime
    km_remaining: float | None
    due_now: bool


class VehiclePanel(BaseModel):
    id: int
    vin: str
    plate: str
    make: str
    model: str
    year: int
    vehicle_class: str
    status: str
    station: str | None
    device_id: str | None
    state: PanelState
    order: PanelOrder | None
    alerts: list[PanelAlert]
    service: ServicePlan


class BoardOrder(BaseModel):
    id: int
    status: str
    at: dt.datetime = Field(description="planned pickup (pickups) or planned return (returns)")
    done: bool = Field(description="picked up / returned already")
    plate: str | None
    vehicle_class: str
    customer: str = Field(description="customer's name")


class BoardStation(BaseModel):
    code: str
    name: str
    available: int = Field(description="vehicles at home here with status available")
    pickups: list[BoardOrder]
    returns: list[BoardOrder]
    pickups_open: int = Field(description="pickups not yet handed over")
    balance: int = Field(description="available + returns still expected - pickups still open")


class Relocation(BaseModel):
    from_station: str
    to_station: str
    vehicles: list[str] = Field(description="plates of available cars to move")


class BlockedVehicle(BaseModel):
    id: int
    vin: str
    plate: str
    station: str | None
    status: str
    reason: Literal["alert", "service"]
    detail: str = Field(description="the alert kinds, or the registry status")


class BoardOut(BaseModel):
    day: dt.date
    timezone: str
    stations: list[BoardStation]
    relocations: list[Relocation]
    blocked: list[BlockedVehicle]


class SearchVehicle(BaseModel):
    id: int
    vin: str
    plate: str
    make: str
    model: str
    status: str
    station: str | None


class SearchCustomer(BaseModel):
    id: int
    name: str
    phone: str | None
    order_id: int | None = Field(description="the customer's running or next order")
    order_status: str | None
    vin: str | None = Field(description="the vehicle of that order, when one is held or handed over")
    plate: str | None


class SearchOut(BaseModel):
    q: str
    vehicles: list[SearchVehicle]
    customers: list[SearchCustomer]
