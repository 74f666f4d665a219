"""`GET /api/v1/customers/{id}/export` and `POST /api/v1/customers/{id}/erase`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder

from backoffice.customers.models import CustomerOut
from backoffice.privacy import service
from backoffice.privacy.models import CustomerExport
from fleetcore.api.deps import ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1/customers", tags=["customers"], responses=ERROR_RESPONSES)
# Customer service answers a person's request; an erasure is irreversible, so only an admin carries it out.
Service = Annotated[dict, Depends(require_roles("customer_service"))]
Admin = Annotated[dict, Depends(require_roles("admin"))]


@router.get("/{customer_id}/export", response_model=CustomerExport)
def export_customer(customer_id: int, conn: ConnDep, user: Service) -> dict:
    """Everything held about the customer (a person's right of access and portability), as JSON."""
    return jsonable_encoder(service.export_customer(conn, customer_id=customer_id, actor=user))


@router.post("/{customer_id}/erase", response_model=CustomerOut)
def erase_customer(customer_id: int, conn: ConnDep, user: Admin) -> dict:
    """Erase the person: personal fields anonymised; orders, invoices and payments kept as the law requires."""
    return service.erase_customer(conn, customer_id=customer_id, actor=user)
