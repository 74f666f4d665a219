"""Read API for vehicles, their live state and telemetry, and ingest health."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import TypeAdapter, ValidationError

from backoffice.telemetry import models as m
from backoffice.telemetry import service
from backoffice.vehicles import service as vehicles
from fleetcore.api.deps import ALL_ROLES, ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES
from fleetcore.errors import Invalid

router = APIRouter(prefix="/api/v1", tags=["telemetry"], responses=ERROR_RESPONSES)
Staff = Annotated[dict, Depends(require_roles(*ALL_ROLES))]
Tech = Annotated[dict, Depends(require_roles("technician", "dispatcher"))]
MAX_WINDOW = dt.timedelta(days=31)


@router.get("/vehicles", response_model=list[m.VehicleListItem])
def list_vehicles(
    conn: ConnDep,
    user: Staff,
    station: str | None = None,
    vehicle_class: Annotated[str | None, Query(alias="class")] = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict]:
    return vehicles.list_(
        conn, station=station, vehicle_class=vehicle_class, status=status, limit=limit, offset=offset
    )


def _state_out(vehicle: dict, state: dict | None) -> dict:
    state = state or {}
    out = {"vin": vehicle["vin"], "plate": vehicle["plate"], "device_id": state.get("device_id")}
    for f in service.STATE_FIELDS:
        out[f] = state.get(f)
    out["ts"] = state.get("ts")
    out["last_seen"] = state.get("last_seen")
    out["online"] = bool(state.get("online", False))
    out["health"] = state.get("health", "ok")
    for extra in ("rentable", "open_alerts"):
        if extra in state:
            out[extra] = state[extra]
    return out


@router.get("/vehicles/{vin}/state", response_model=m.VehicleStateOut, response_model_exclude_unset=True)
def vehicle_state(vin: str, conn: ConnDep, user: Staff) -> dict:
    v = vehicles.get_or_raise(conn, vin=vin.upper())
    return _state_out(v, service.get_state(conn, vehicle_id=v["id"]))


@router.get("/vehicles/{vin}/telemetry", response_model=m.TelemetryOut)
def vehicle_telemetry(
    vin: str,
    conn: ConnDep,
    user: Staff,
    start: Annotated[dt.datetime | None, Query(alias="from")] = None,
    end: Annotated[dt.datetime | None, Query(alias="to")] = None,
    bucket: Annotated[
        str | None, Query(description="bucket width: seconds (60), 30s/5m/1h/1d, or ISO 8601 (PT5M)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_RAW_ROWS)] = service.MAX_RAW_ROWS,
) -> dict:
    v = vehicles.get_or_raise(conn, vin=vin.upper())
    end = end or dt.datetime.now(dt.UTC)
    start = start or end - dt.timedelta(hours=1)
    if start.tzinfo is None or end.tzinfo is None:
        raise Invalid("from and to need a UTC offset (RFC 3339)")
    if start >= end:
        raise Invalid("from must be before to")
    if end - start > MAX_WINDOW:
        raise Invalid(f"window longer than {MAX_WINDOW.days} days; narrow from/to or page")
    width = parse_bucket(bucket) if bucket is not None else None
    rows = service.telemetry(conn, vehicle_id=v["id"], start=start, end=end, bucket=width, limit=limit)
    return {
        "vin": v["vin"],
        "from": start,
        "to": end,
        "bucket_s": width.total_seconds() if width else None,
        "count": len(rows),
        "items": rows,
    }


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_bucket(text: str) -> dt.timedelta:
    """Bucket width from '60', '5m', '1h' or an ISO 8601 duration; at least one second."""
    t = text.strip().lower()
    try:
        if t.isdigit():
            width = dt.timedelta(seconds=int(t))
        elif t[:-1].isdigit() and t[-1:] in _UNITS:
            width = dt.timedelta(seconds=int(t[:-1]) * _UNITS[t[-1]])
        else:
            width = TypeAdapter(dt.timedelta).validate_python(text.strip().upper())
    except (ValidationError, OverflowError):
        raise Invalid(f"bucket {text!r} is not a duration (use 60, 5m, 1h or PT5M)") from None
    if width < dt.timedelta(seconds=1):
        raise Invalid("bucket must be at least 1 second")
    return width


@router.get("/ingest/stats", response_model=m.IngestStatsOut)
def ingest_stats(conn: ConnDep, user: Tech) -> dict:
    return service.ingest_stats(conn)


@router.get("/ingest/rejections", response_model=list[m.RejectionOut])
def ingest_rejections(
    conn: ConnDep,
    user: Tech,
    reason: str | None = None,
    device_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    before_id: Annotated[int | None, Query(ge=1, description="next page: the last id of this one")] = None,
    max_bytes: Annotated[int, Query(ge=1024, le=service.REJECTIONS_MAX_BYTES)] = service.REJECTIONS_MAX_BYTES,
) -> list[dict]:
    return service.list_rejections(
        conn,
        reason=reason,
        device_id=device_id,
        limit=limit,
        offset=offset,
        before_id=before_id,
        max_bytes=max_bytes,
    )
