"""Device routes under /api/v1/fleet/vehicles/{vin}/device(s) (technicians install and remove)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from backoffice.devices import models as m
from backoffice.devices import service
from backoffice.vehicles import service as vehicles
from backoffice.vehicles.models import VehicleOut
from fleetcore.api.deps import ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1/fleet", tags=["fleet"], responses=ERROR_RESPONSES)
Technician = Annotated[dict, Depends(require_roles("technician"))]
DeviceReader = Annotated[dict, Depends(require_roles("technician", "dispatcher"))]


@router.put("/vehicles/{vin}/device", response_model=VehicleOut)
def install_device(vin: str, body: m.DeviceIn, conn: ConnDep, user: Technician) -> dict:
    """Install a device (replacing the vehicle's current one) (technician)."""
    v = vehicles.get_or_raise(conn, vin=vin)
    service.install(conn, vehicle=v, device_id=body.device_id, protocol=body.protocol, actor=user)
    return vehicles.get_by_id_or_raise(conn, vehicle_id=v["id"])


@router.delete("/vehicles/{vin}/device", response_model=m.DeviceInstallOut)
def remove_device(vin: str, conn: ConnDep, user: Technician) -> dict:
    """Remove the installed device (technician)."""
    return service.remove(conn, vehicle=vehicles.get_or_raise(conn, vin=vin), actor=user)


@router.get("/vehicles/{vin}/devices", response_model=list[m.DeviceInstallOut])
def device_history(vin: str, conn: ConnDep, user: DeviceReader) -> list[dict]:
    """Every device binding of the vehicle, newest first."""
    v = vehicles.get_or_raise(conn, vin=vin)
    return service.list_installs(conn, vehicle_id=v["id"])
