"""Vehicle registration and status routes under /api/v1/fleet/vehicles.

The vehicle list and live state are read routes of backoffice/telemetry (`GET /api/v1/vehicles...`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backoffice.maintenance import service as maintenance
from backoffice.vehicles import models as m
from backoffice.vehicles import service
from fleetcore.api.deps import ALL_ROLES, ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1/fleet", tags=["fleet"], responses=ERROR_RESPONSES)
Staff = Annotated[dict, Depends(require_roles(*ALL_ROLES))]
Admin = Annotated[dict, Depends(require_roles("admin"))]
AdminOrDispatcher = Annotated[dict, Depends(require_roles("dispatcher"))]
StatusChanger = Annotated[dict, Depends(require_roles("dispatcher", "technician"))]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


@router.post("/vehicles", status_code=201, response_model=m.VehicleOut)
def create_vehicle(body: m.VehicleIn, conn: ConnDep, user: Admin) -> dict:
    """Register a vehicle outside procurement (admin); optional device binding."""
    return service.create(conn, **body.model_dump(), actor=user)


@router.get("/vehicles/{vin}", response_model=m.VehicleOut)
def get_vehicle(vin: str, conn: ConnDep, user: Staff) -> dict:
    """One vehicle with its station, device and service plan."""
    v = service.get_or_raise(conn, vin=vin)
    return {**v, "service": maintenance.service_info(conn, vehicle_id=v["id"])}


@router.patch("/vehicles/{vin}", response_model=m.VehicleOut)
def update_vehicle(vin: str, body: m.VehiclePatch, conn: ConnDep, user: AdminOrDispatcher) -> dict:
    """Change plate, model data, class, home station or service intervals (admin, dispatcher)."""
    return service.update(conn, vin=vin, changes=body.model_dump(exclude_unset=True), actor=user)


@router.post("/vehicles/{vin}/status", response_model=m.VehicleOut)
def change_status(vin: str, body: m.StatusIn, conn: ConnDep, user: StatusChanger) -> dict:
    """Move the vehicle to another status along the allowed transitions (see docs/backoffice-fleet.md)."""
    return service.change_status(conn, vin=vin, status=body.status, note=body.note, actor=user)


@router.get("/vehicles/{vin}/status-history", response_model=list[m.StatusChangeOut])
def status_history(
    vin: str, conn: ConnDep, user: Staff, limit: Limit = 100, offset: Offset = 0
) -> list[dict]:
    """Status changes, newest first."""
    v = service.get_or_raise(conn, vin=vin)
    return service.list_status_history(conn, vehicle_id=v["id"], limit=limit, offset=offset)
