"""Response schemas of the read API for vehicles, live state, telemetry and ingest health.

Tables (read only here): readings, vehicle_state, ingest_* (migration 0002, written by ingest), vehicle_state's
rentable/open_alerts (migration 0100, written by monitor). Field order follows the JSON the routes always sent.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class VehicleListItem(_Out):
    id: int
    vin: str
    plate: str
    make: str
    model: str
    year: int
    vehicle_class: str = Field(alias="class")
    status: str
    station: str | None
    device_id: str | None


class VehicleStateOut(_Out):
    """The latest state; rentable and open_alerts appear once the monitor has written them."""

    vin: str
    plate: str
    device_id: str | None
    lat: float | None
    lon: float | None
    speed_kmh: float | None
    heading_deg: float | None
    alt_m: float | None
    odometer_km: float | None
    engine_hours: float | None
    rpm: float | None
    coolant_c: float | None
    engine_load_pct: float | None
    fuel_pct: float | None
    battery_v: float | None
    ignition: bool | None
    dtc: list[str] | None
    ts: dt.datetime | None = Field(description="sample time of the newest reading applied")
    last_seen: dt.datetime | None = Field(description="arrival time of the newest message")
    online: bool
    health: Literal["ok", "warning", "critical"]
    rentable: bool | None = None
    open_alerts: int | None = None


class Reading(_Out):
    """One stored sample (units in the column names)."""

    model_config = ConfigDict(extra="forbid")

    ts: dt.datetime
    kind: str
    seq: int
    lat: float | None
    lon: float | None
    speed_kmh: float | None
    heading_deg: float | None
    alt_m: float | None
    hdop: float | None
    sats: int | None
    odometer_km: float | None
    engine_hours: float | None
    rpm: float | None
    coolant_c: float | None
    engine_load_pct: float | None
    throttle_pct: float | None
    fuel_pct: float | None
    battery_v: float | None
    ignition: bool | None
    accel_x: float | None
    accel_y: float | None
    accel_z: float | None
    dtc: list[str] | None


class BucketReading(_Out):
    """Averages over one time bucket; odometer is the bucket's maximum, ignition whether it was on at all."""

    model_config = ConfigDict(extra="forbid")

    bucket: dt.datetime
    samples: int
    odometer_km: float | None
    ignition: bool | None
    lat: float | None
    lon: float | None
    speed_kmh: float | None
    alt_m: float | None
    rpm: float | None
    coolant_c: float | None
    engine_load_pct: float | None
    throttle_pct: float | None
    fuel_pct: float | None
    battery_v: float | None


class TelemetryOut(_Out):
    vin: str
    start: dt.datetime = Field(alias="from")
    end: dt.datetime = Field(alias="to")
    bucket_s: float | None = Field(description="bucket width in seconds; null for raw readings")
    count: int
    items: list[Reading] | list[BucketReading]


class IngestStatsOut(_Out):
    readings_stored: int
    events_stored: int
    duplicates_skipped: int
    messages_received: int
    messages_rejected: int
    messages_quarantined: int
    quarantine_pending: int
    rejections_by_reason: dict[str, int]
    vehicles_online: int
    last_message_at: dt.datetime | None


class RejectionOut(_Out):
    id: int
    received_at: dt.datetime
    topic: str
    device_id: str | None
    reason: str
    detail: str
    payload: str = Field(description="the payload as text, or hex when it is not UTF-8")
    payload_encoding: Literal["utf-8", "hex"]
