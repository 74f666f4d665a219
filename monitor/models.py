"""The monitor's domain constants and API schemas (tables: fleetcore/migrations/0100_alerts.sql, 0101_geofences.sql).

Table ownership: the monitor owns `alerts`, `geofences`, `monitor_thresholds` and the health columns of
`vehicle_state` (`health`, `rentable`, `open_alerts`); ingest owns the rest of `vehicle_state`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The one list of severities, lowest first: the order is the rank (a repeat never lowers an alert's severity,
# and the SQL rank in monitor.service is derived from this tuple).
SEVERITIES = ("low", "medium", "high", "critical")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
STATUSES = ("open", "acknowledged", "resolved")
# vehicle_state.health from the active alerts: critical with a critical one, warning with a high or medium one.
HEALTH_CRITICAL_SEVERITIES = ("critical",)
HEALTH_WARNING_SEVERITIES = ("medium", "high")

KINDS = (
    "crash", "harsh_brake", "harsh_accel", "harsh_turn", "overheating", "low_battery", "charging_fault", "dtc",
    "low_fuel", "overspeed", "geofence_exit", "geofence_enter", "unauthorized_movement", "tow",
    "device_offline", "gps_jump",
)  # fmt: skip
# Kinds resolved automatically when the condition clears: conditions with a measurable "healthy again"
# state. Episodes (crash, harsh_*, tow, unauthorized_movement, overspeed, gps_jump, geofence_enter, dtc)
# stay open until a person acknowledges and resolves them: someone has to look at what happened.
AUTO_RESOLVE = frozenset(
    {"device_offline", "low_battery", "charging_fault", "overheating", "low_fuel", "geofence_exit"}
)


class ResolveIn(BaseModel):
    note: str = Field(default="", max_length=2000)


class AlertOut(BaseModel):
    """An alert with its vehicle's VIN and plate."""

    id: int
    vehicle_id: int
    vin: str
    plate: str
    kind: str = Field(description=", ".join(KINDS))
    severity: str = Field(description=", ".join(SEVERITIES), json_schema_extra={"enum": list(SEVERITIES)})
    status: str = Field(description=", ".join(STATUSES), json_schema_extra={"enum": list(STATUSES)})
    message: str
    opened_at: dt.datetime = Field(description="sample time of the first trigger")
    last_seen_at: dt.datetime = Field(description="sample time of the latest trigger")
    occurrences: int
    evidence: list[Any] = Field(description="the readings or events that triggered it (first 20)")
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    resolved_at: dt.datetime | None
    resolved_by: str | None = Field(description="a username, or 'auto' when the condition cleared")
    resolution_note: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    model_config = ConfigDict(extra="ignore")


class AlertPage(BaseModel):
    items: list[AlertOut]
    total: int
    limit: int
    offset: int
