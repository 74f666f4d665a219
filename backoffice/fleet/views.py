"""Fleet API: stations, vehicle registration and status, devices, procurement, maintenance, service plans.

The vehicle list and live state stay in backoffice/telemetry/views.py (`GET /api/v1/vehicles...`); everything
here lives under `/api/v1/fleet/`. Every write names its roles and writes an audit record in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from backoffice.fleet import models as m
from backoffice.fleet import service
from fleetcore.api.deps import ALL_ROLES, ConnDep, require_roles
from fleetcore.audit import audit
from fleetcore.errors import Conflict, Forbidden, Invalid

router = APIRouter(prefix="/api/v1/fleet", tags=["fleet"])

Staff = Annotated[dict, Depends(require_roles(*ALL_ROLES))]
Admin = Annotated[dict, Depends(require_roles("admin"))]
AdminOrDispatcher = Annotated[dict, Depends(require_roles("dispatcher"))]
StatusChanger = Annotated[dict, Depends(require_roles("dispatcher", "technician"))]
Technician = Annotated[dict, Depends(require_roles("technician"))]
DeviceReader = Annotated[dict, Depends(require_roles("technician", "dispatcher"))]
ProcurementReader = Annotated[dict, Depends(require_roles("finance"))]
MaintenanceReader = Annotated[dict, Depends(require_roles("technician", "dispatcher", "finance"))]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]

# Which target statuses each role may set (admin: any). Retiring is a fleet-management decision, so admin only;
# technicians take cars in and out of the workshop, dispatchers run the operational cycle.
STATUS_TARGETS_BY_ROLE = {
    "dispatcher": frozenset({"available", "reserved", "rented", "maintenance", "out_of_service"}),
    "technician": frozenset({"available", "maintenance", "out_of_service"}),
}
# A technician may release a car to `available` only from the workshop states.
TECHNICIAN_RELEASE_FROM = frozenset({"maintenance", "out_of_service"})


def _range(start: dt.datetime | None, end: dt.datetime | None) -> None:
    if start is not None and end is not None and start >= end:
        raise Invalid("from must be before to")


# ---- stations -------------------------------------------------------------------------------------------


@router.get("/stations", response_model=list[m.StationOut])
def list_stations(
    conn: ConnDep, user: Staff, q: str | None = None, limit: Limit = 100, offset: Offset = 0
) -> list[dict]:
    """Stations by code; `q` matches code or name."""
    return service.list_stations(conn, q=q, limit=limit, offset=offset)


@router.post("/stations", status_code=201, response_model=m.StationOut)
def create_station(body: m.StationIn, conn: ConnDep, user: Admin) -> dict:
    """Open a station (admin)."""
    s = service.create_station(conn, code=body.code, name=body.name, lat=body.lat, lon=body.lon)
    audit(conn, actor=user, action="station.create", entity="stations", entity_id=s["code"], after=s)
    return s


@router.get("/stations/{code}", response_model=m.StationOut)
def get_station(code: str, conn: ConnDep, user: Staff) -> dict:
    """One station."""
    return service.get_station_or_raise(conn, code=code)


@router.patch("/stations/{code}", response_model=m.StationOut)
def update_station(code: str, body: m.StationPatch, conn: ConnDep, user: Admin) -> dict:
    """Rename or move a station (admin)."""
    before, after = service.update_station(conn, code=code, **body.model_dump())
    audit(
        conn,
        actor=user,
        action="station.update",
        entity="stations",
        entity_id=after["code"],
        before=before,
        after=after,
    )
    return after


@router.delete("/stations/{code}", status_code=204)
def delete_station(code: str, conn: ConnDep, user: Admin) -> Response:
    """Close a station nothing refers to (admin); 409 while vehicles or bookings use it."""
    before = service.delete_station(conn, code=code)
    audit(
        conn, actor=user, action="station.delete", entity="stations", entity_id=before["code"], before=before
    )
    return Response(status_code=204)


# ---- vehicles -------------------------------------------------------------------------------------------


@router.post("/vehicles", status_code=201, response_model=m.VehicleOut)
def create_vehicle(body: m.VehicleIn, conn: ConnDep, user: Admin) -> dict:
    """Register a vehicle outside procurement (admin); optional device binding."""
    data = body.model_dump(exclude={"device_id"})
    v = service.create_vehicle(conn, **data, actor=user["username"])
    if body.device_id:
        _check_device_free(conn, body.device_id, v["id"])
        service.install_device(conn, device_id=body.device_id, vehicle_id=v["id"])
        v = service.get_vehicle_by_id_or_raise(conn, vehicle_id=v["id"])
    audit(conn, actor=user, action="vehicle.create", entity="vehicles", entity_id=v["vin"], after=v)
    return v


@router.get("/vehicles/{vin}", response_model=m.VehicleOut)
def get_vehicle(vin: str, conn: ConnDep, user: Staff) -> dict:
    """One vehicle with its station, device and service plan."""
    v = service.get_vehicle_or_raise(conn, vin=vin)
    v["service"] = service.service_info(conn, vehicle_id=v["id"])
    return v


@router.patch("/vehicles/{vin}", response_model=m.VehicleOut)
def update_vehicle(vin: str, body: m.VehiclePatch, conn: ConnDep, user: AdminOrDispatcher) -> dict:
    """Change plate, model data, class, home station or service intervals (admin, dispatcher)."""
    before, after = service.update_vehicle(conn, vin=vin, changes=body.model_dump(exclude_unset=True))
    audit(
        conn,
        actor=user,
        action="vehicle.update",
        entity="vehicles",
        entity_id=after["vin"],
        before=before,
        after=after,
    )
    return after


@router.post("/vehicles/{vin}/status", response_model=m.VehicleOut)
def change_status(vin: str, body: m.StatusIn, conn: ConnDep, user: StatusChanger) -> dict:
    """Move the vehicle to another status along the allowed transitions (see docs/backoffice-fleet.md)."""
    if user["role"] != "admin":
        targets = STATUS_TARGETS_BY_ROLE.get(user["role"], frozenset())
        if body.status not in targets:
            raise Forbidden(f"role {user['role']!r} may not set status {body.status!r}")
        if user["role"] == "technician" and body.status == "available":
            current = service.get_vehicle_or_raise(conn, vin=vin)["status"]
            if current not in TECHNICIAN_RELEASE_FROM:
                raise Forbidden(
                    f"a technician may release a vehicle only from {', '.join(sorted(TECHNICIAN_RELEASE_FROM))}"
                )
    before, after = service.change_status(
        conn, vin=vin, status=body.status, actor=user["username"], note=body.note
    )
    audit(
        conn,
        actor=user,
        action="vehicle.status",
        entity="vehicles",
        entity_id=after["vin"],
        before={"status": before["status"]},
        after={"status": after["status"], "note": body.note},
    )
    return after


@router.get("/vehicles/{vin}/status-history", response_model=list[m.StatusChangeOut])
def status_history(
    vin: str, conn: ConnDep, user: Staff, limit: Limit = 100, offset: Offset = 0
) -> list[dict]:
    """Status changes, newest first."""
    v = service.get_vehicle_or_raise(conn, vin=vin)
    return service.status_history(conn, vehicle_id=v["id"], limit=limit, offset=offset)


@router.get("/vehicles/{vin}/service", response_model=m.ServiceInfoOut)
def service_info(vin: str, conn: ConnDep, user: Staff) -> dict:
    """Next service by distance and date."""
    v = service.get_vehicle_or_raise(conn, vin=vin)
    return {"vin": v["vin"], **service.service_info(conn, vehicle_id=v["id"])}


# ---- devices --------------------------------------------------------------------------------------------


def _check_device_free(conn: ConnDep, device_id: str, vehicle_id: int) -> None:
    row = conn.execute(
        """SELECT v.vin FROM device_installs di JOIN vehicles v ON v.id = di.vehicle_id
            WHERE di.device_id = %s AND di.removed_at IS NULL AND di.vehicle_id <> %s""",
        (device_id, vehicle_id),
    ).fetchone()
    if row:
        raise Conflict(f"device {device_id!r} is installed in {row['vin']}; remove it there first")


@router.put("/vehicles/{vin}/device", response_model=m.VehicleOut)
def install_device(vin: str, body: m.DeviceIn, conn: ConnDep, user: Technician) -> dict:
    """Install a device (replacing the vehicle's current one) (technician)."""
    v = service.get_vehicle_or_raise(conn, vin=vin)
    if v["status"] == "retired":
        raise Invalid(f"vehicle {v['vin']} is retired")
    _check_device_free(conn, body.device_id, v["id"])
    service.install_device(conn, device_id=body.device_id, vehicle_id=v["id"], protocol=body.protocol)
    after = service.get_vehicle_by_id_or_raise(conn, vehicle_id=v["id"])
    audit(
        conn,
        actor=user,
        action="vehicle.device.install",
        entity="vehicles",
        entity_id=v["vin"],
        before={"device_id": v["device_id"]},
        after={"device_id": body.device_id, "protocol": body.protocol},
    )
    return after


@router.delete("/vehicles/{vin}/device", response_model=m.DeviceInstallOut)
def remove_device(vin: str, conn: ConnDep, user: Technician) -> dict:
    """Remove the installed device (technician)."""
    v = service.get_vehicle_or_raise(conn, vin=vin)
    ended = service.remove_device(conn, vehicle_id=v["id"])
    audit(
        conn,
        actor=user,
        action="vehicle.device.remove",
        entity="vehicles",
        entity_id=v["vin"],
        before={"device_id": ended["device_id"]},
        after={"device_id": None},
    )
    return ended


@router.get("/vehicles/{vin}/devices", response_model=list[m.DeviceInstallOut])
def device_history(vin: str, conn: ConnDep, user: DeviceReader) -> list[dict]:
    """Every device binding of the vehicle, newest first."""
    v = service.get_vehicle_or_raise(conn, vin=vin)
    return service.device_history(conn, vehicle_id=v["id"])


# ---- procurement ----------------------------------------------------------------------------------------


@router.get("/procurements", response_model=list[m.ProcurementOut])
def list_procurements(
    conn: ConnDep,
    user: ProcurementReader,
    status: m.ProcurementStatus | None = None,
    supplier: str | None = None,
    planned_from: dt.date | None = None,
    planned_to: dt.date | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict]:
    """Procurements, newest first (admin, finance)."""
    if planned_from and planned_to and planned_from > planned_to:
        raise Invalid("planned_from is after planned_to")
    return service.list_procurements(
        conn,
        status=status,
        supplier=supplier,
        planned_from=planned_from,
        planned_to=planned_to,
        limit=limit,
        offset=offset,
    )


@router.post("/procurements", status_code=201, response_model=m.ProcurementOut)
def create_procurement(body: m.ProcurementIn, conn: ConnDep, user: Admin) -> dict:
    """Plan a vehicle purchase (admin)."""
    p = service.create_procurement(conn, **body.model_dump(), actor=user["username"])
    audit(conn, actor=user, action="procurement.create", entity="procurements", entity_id=p["id"], after=p)
    return p


@router.get("/procurements/{procurement_id}", response_model=m.ProcurementOut)
def get_procurement(procurement_id: int, conn: ConnDep, user: ProcurementReader) -> dict:
    """One procurement (admin, finance)."""
    return service.get_procurement_or_raise(conn, procurement_id=procurement_id)


@router.patch("/procurements/{procurement_id}", response_model=m.ProcurementOut)
def update_procurement(procurement_id: int, body: m.ProcurementPatch, conn: ConnDep, user: Admin) -> dict:
    """Edit a procurement before delivery (admin)."""
    before, after = service.update_procurement(
        conn, procurement_id=procurement_id, changes=body.model_dump(exclude_unset=True)
    )
    audit(
        conn,
        actor=user,
        action="procurement.update",
        entity="procurements",
        entity_id=procurement_id,
        before=before,
        after=after,
    )
    return after


@router.post("/procurements/{procurement_id}/order", response_model=m.ProcurementOut)
def order_procurement(procurement_id: int, body: m.ProcurementOrderIn, conn: ConnDep, user: Admin) -> dict:
    """planned -> ordered (admin)."""
    before, after = service.order_procurement(conn, procurement_id=procurement_id, **body.model_dump())
    audit(
        conn,
        actor=user,
        action="procurement.order",
        entity="procurements",
        entity_id=procurement_id,
        before=before,
        after=after,
    )
    return after


@router.post("/procurements/{procurement_id}/deliver", response_model=m.ProcurementDeliveredOut)
def deliver_procurement(
    procurement_id: int, body: m.ProcurementDeliverIn, conn: ConnDep, user: Admin
) -> dict:
    """ordered -> delivered; registers the vehicle (admin)."""
    before, after, vehicle = service.deliver_procurement(
        conn, procurement_id=procurement_id, **body.model_dump(), actor=user["username"]
    )
    audit(
        conn,
        actor=user,
        action="procurement.deliver",
        entity="procurements",
        entity_id=procurement_id,
        before=before,
        after=after,
    )
    audit(
        conn, actor=user, action="vehicle.create", entity="vehicles", entity_id=vehicle["vin"], after=vehicle
    )
    return {**after, "vehicle": vehicle}


@router.post("/procurements/{procurement_id}/cancel", response_model=m.ProcurementOut)
def cancel_procurement(procurement_id: int, body: m.ProcurementCancelIn, conn: ConnDep, user: Admin) -> dict:
    """planned/ordered -> cancelled (admin)."""
    before, after = service.cancel_procurement(conn, procurement_id=procurement_id, reason=body.reason)
    audit(
        conn,
        actor=user,
        action="procurement.cancel",
        entity="procurements",
        entity_id=procurement_id,
        before=before,
        after=after,
    )
    return after


# ---- maintenance ----------------------------------------------------------------------------------------


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
    _range(start, end)
    vehicle_id = service.get_vehicle_or_raise(conn, vin=vin)["id"] if vin else None
    return service.list_maintenance(
        conn,
        vehicle_id=vehicle_id,
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
    _range(start, end)
    v = service.get_vehicle_or_raise(conn, vin=vin)
    return service.list_maintenance(
        conn, vehicle_id=v["id"], q=q, opened_from=start, opened_to=end, limit=limit, offset=offset
    )


@router.post("/vehicles/{vin}/maintenance", status_code=201, response_model=m.MaintenanceOut)
def open_maintenance(vin: str, body: m.MaintenanceIn, conn: ConnDep, user: Technician) -> dict:
    """Open a work order (technician)."""
    v = service.get_vehicle_or_raise(conn, vin=vin)
    if v["status"] == "retired":
        raise Invalid(f"vehicle {v['vin']} is retired")
    data = body.model_dump()
    data["parts"] = [p.model_dump(mode="json") for p in body.parts]
    rec = service.create_maintenance(conn, vehicle_id=v["id"], **data, actor=user["username"])
    audit(
        conn,
        actor=user,
        action="maintenance.open",
        entity="maintenance_records",
        entity_id=rec["id"],
        after=rec,
    )
    return rec


@router.get("/maintenance/{record_id}", response_model=m.MaintenanceOut)
def get_maintenance(record_id: int, conn: ConnDep, user: MaintenanceReader) -> dict:
    """One maintenance record."""
    return service.get_maintenance_or_raise(conn, record_id=record_id)


@router.patch("/maintenance/{record_id}", response_model=m.MaintenanceOut)
def update_maintenance(record_id: int, body: m.MaintenancePatch, conn: ConnDep, user: Technician) -> dict:
    """Edit an open work order (technician); closed ones are immutable."""
    changes = body.model_dump(exclude_unset=True)
    if body.parts is not None:
        changes["parts"] = [p.model_dump(mode="json") for p in body.parts]
    before, after = service.update_maintenance(conn, record_id=record_id, changes=changes)
    audit(
        conn,
        actor=user,
        action="maintenance.update",
        entity="maintenance_records",
        entity_id=record_id,
        before=before,
        after=after,
    )
    return after


@router.post("/maintenance/{record_id}/close", response_model=m.MaintenanceOut)
def close_maintenance(record_id: int, body: m.MaintenanceCloseIn, conn: ConnDep, user: Technician) -> dict:
    """Close a work order (technician); a closed service resets the service plan."""
    before, after = service.close_maintenance(
        conn, record_id=record_id, **body.model_dump(), actor=user["username"]
    )
    audit(
        conn,
        actor=user,
        action="maintenance.close",
        entity="maintenance_records",
        entity_id=record_id,
        before=before,
        after=after,
    )
    return after
