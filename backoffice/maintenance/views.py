"""Maintenance and service-plan routes under /api/v1/fleet (technicians write; dispatch and finance read)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backoffice.maintenance import models as m
from backoffice.maintenance import service
from backoffice.vehicles import service as vehicles
from fleetcore.api.deps import ALL_ROLES, ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1/fleet", tags=["fleet"], responses=ERROR_RESPONSES)
Staff = Annotated[dict, Depends(require_roles(*ALL_ROLES))]
Technician = Annotated[dict, Depends(require_roles("technician"))]
MaintenanceReader = Annotated[dict, Depends(require_roles("technician", "dispatcher", "finance"))]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


@router.get("/vehicles/{vin}/service", response_model=m.ServiceInfoOut)
def service_info(vin: str, conn: ConnDep, user: Staff) -> dict:
    """Next service by distance and date."""
    v = vehicles.get_or_raise(conn, vin=vin)
    return {"vin": v["vin"], **service.service_info(conn, vehicle_id=v["id"])}


@router.get("/maintenance", response_model=list[m.MaintenanceOut])
def search_maintenance(
    conn: ConnDep,
    user: MaintenanceReader,
    vin: str | None = None,
    q: Annotated[
        str | None, Query(max_length=200, description="text in work order, description or parts")
    ] = None,
    kind: m.MaintenanceKind | None = None,
    start: Annotated[dt.datetime | None, Query(alias="from")] = None,
    end: Annotated[dt.datetime | None, Query(alias="to")] = None,
    open_only: bool = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict]:
    """Search the maintenance archive (technician, dispatcher, finance)."""
    return service.list_(
        conn,
        vin=vin,
        q=q,
        kind=kind,
        opened_from=start,
        opened_to=end,
        open_only=open_only,
        limit=limit,
        offset=offset,
    )


@router.get("/vehicles/{vin}/maintenance", response_model=list[m.MaintenanceOut])
def vehicle_maintenance(
    vin: str,
    conn: ConnDep,
    user: MaintenanceReader,
    q: Annotated[str | None, Query(max_length=200)] = None,
    start: Annotated[dt.datetime | None, Query(alias="from")] = None,
    end: Annotated[dt.datetime | None, Query(alias="to")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict]:
    """The vehicle's maintenance archive (technician, dispatcher, finance)."""
    return service.list_(conn, vin=vin, q=q, opened_from=start, opened_to=end, limit=limit, offset=offset)


@router.post("/vehicles/{vin}/maintenance", status_code=201, response_model=m.MaintenanceOut)
def open_maintenance(vin: str, body: m.MaintenanceIn, conn: ConnDep, user: Technician) -> dict:
    """Open a work order (technician)."""
    v = vehicles.get_or_raise(conn, vin=vin)
    data = body.model_dump()
    data["parts"] = [p.model_dump(mode="json") for p in body.parts]
    return service.create(conn, vehicle_id=v["id"], **data, actor=user)


@router.get("/maintenance/{record_id}", response_model=m.MaintenanceOut)
def get_maintenance(record_id: int, conn: ConnDep, user: MaintenanceReader) -> dict:
    """One maintenance record."""
    return service.get_or_raise(conn, record_id=record_id)


@router.patch("/maintenance/{record_id}", response_model=m.MaintenanceOut)
def update_maintenance(record_id: int, body: m.MaintenancePatch, conn: ConnDep, user: Technician) -> dict:
    """Edit an open work order (technician); closed ones are immutable."""
    changes = body.model_dump(exclude_unset=True)
    if body.parts is not None:
        changes["parts"] = [p.model_dump(mode="json") for p in body.parts]
    return service.update(conn, record_id=record_id, changes=changes, actor=user)


@router.post("/maintenance/{record_id}/close", response_model=m.MaintenanceOut)
def close_maintenance(record_id: int, body: m.MaintenanceCloseIn, conn: ConnDep, user: Technician) -> dict:
    """Close a work order (technician); a closed service resets the service plan."""
    return service.close(conn, record_id=record_id, **body.model_dump(), actor=user)
