"""Station routes under /api/v1/fleet/stations (any staff reads; admin writes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from backoffice.stations import models as m
from backoffice.stations import service
from fleetcore.api.deps import ALL_ROLES, ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1/fleet", tags=["fleet"], responses=ERROR_RESPONSES)
Staff = Annotated[dict, Depends(require_roles(*ALL_ROLES))]
Admin = Annotated[dict, Depends(require_roles("admin"))]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


@router.get("/stations", response_model=list[m.StationOut])
def list_stations(
    conn: ConnDep, user: Staff, q: str | None = None, limit: Limit = 100, offset: Offset = 0
) -> list[dict]:
    """Stations by code; `q` matches code or name."""
    return service.list_(conn, q=q, limit=limit, offset=offset)


@router.post("/stations", status_code=201, response_model=m.StationOut)
def create_station(body: m.StationIn, conn: ConnDep, user: Admin) -> dict:
    """Open a station (admin)."""
    return service.create(conn, code=body.code, name=body.name, lat=body.lat, lon=body.lon, actor=user)


@router.get("/stations/{code}", response_model=m.StationOut)
def get_station(code: str, conn: ConnDep, user: Staff) -> dict:
    """One station."""
    return service.get_or_raise(conn, code=code)


@router.patch("/stations/{code}", response_model=m.StationOut)
def update_station(code: str, body: m.StationPatch, conn: ConnDep, user: Admin) -> dict:
    """Rename or move a station (admin)."""
    return service.update(conn, code=code, actor=user, **body.model_dump())


@router.delete("/stations/{code}", status_code=204)
def delete_station(code: str, conn: ConnDep, user: Admin) -> Response:
    """Close a station nothing refers to (admin); 409 while vehicles or bookings use it."""
    service.delete(conn, code=code, actor=user)
    return Response(status_code=204)
