"""Procurement routes under /api/v1/fleet/procurements (admin plans and receives; finance reads)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backoffice.procurement import models as m
from backoffice.procurement import service
from fleetcore.api.deps import ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1/fleet", tags=["fleet"], responses=ERROR_RESPONSES)
Admin = Annotated[dict, Depends(require_roles("admin"))]
ProcurementReader = Annotated[dict, Depends(require_roles("finance"))]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


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
    return service.list_(
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
    return service.create(conn, **body.model_dump(), actor=user)


@router.get("/procurements/{procurement_id}", response_model=m.ProcurementOut)
def get_procurement(procurement_id: int, conn: ConnDep, user: ProcurementReader) -> dict:
    """One procurement (admin, finance)."""
    return service.get_or_raise(conn, procurement_id=procurement_id)


@router.patch("/procurements/{procurement_id}", response_model=m.ProcurementOut)
def update_procurement(procurement_id: int, body: m.ProcurementPatch, conn: ConnDep, user: Admin) -> dict:
    """Edit a procurement before delivery (admin)."""
    return service.update(
        conn, procurement_id=procurement_id, changes=body.model_dump(exclude_unset=True), actor=user
    )


@router.post("/procurements/{procurement_id}/order", response_model=m.ProcurementOut)
def order_procurement(procurement_id: int, body: m.ProcurementOrderIn, conn: ConnDep, user: Admin) -> dict:
    """planned -> ordered (admin)."""
    return service.order(conn, procurement_id=procurement_id, **body.model_dump(), actor=user)


@router.post("/procurements/{procurement_id}/deliver", response_model=m.ProcurementDeliveredOut)
def deliver_procurement(
    procurement_id: int, body: m.ProcurementDeliverIn, conn: ConnDep, user: Admin
) -> dict:
    """ordered -> delivered; registers the vehicle (admin)."""
    after, vehicle = service.deliver(conn, procurement_id=procurement_id, **body.model_dump(), actor=user)
    return {**after, "vehicle": vehicle}


@router.post("/procurements/{procurement_id}/cancel", response_model=m.ProcurementOut)
def cancel_procurement(procurement_id: int, body: m.ProcurementCancelIn, conn: ConnDep, user: Admin) -> dict:
    """planned/ordered -> cancelled (admin)."""
    return service.cancel(conn, procurement_id=procurement_id, reason=body.reason, actor=user)
