"""Customer routes: CRUD with pagination and filters (customer service writes; operations and finance read)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backoffice.customers import service
from backoffice.customers.models import CustomerIn, CustomerOut, CustomerPage, CustomerPatch
from fleetcore.api.deps import ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1/customers", tags=["customers"], responses=ERROR_RESPONSES)
Writer = Annotated[dict, Depends(require_roles("customer_service"))]
Reader = Annotated[dict, Depends(require_roles("customer_service", "dispatcher", "finance"))]


@router.post("", status_code=201, response_model=CustomerOut)
def create_customer(body: CustomerIn, conn: ConnDep, user: Writer) -> dict:
    """Register a customer."""
    return service.create(conn, data=body.model_dump(), actor=user)


@router.get("", response_model=CustomerPage)
def list_customers(
    conn: ConnDep,
    user: Reader,
    q: Annotated[
        str | None, Query(max_length=100, description="name or email contains, or an exact phone number")
    ] = None,
    blacklisted: bool | None = None,
    licence_number: Annotated[str | None, Query(max_length=40, description="exact licence number")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict:
    """A page of customers: {items, total, limit, offset}. Identity numbers are masked for staff without a need."""
    page = service.list_(
        conn, q=q, blacklisted=blacklisted, licence_number=licence_number, limit=limit, offset=offset
    )
    return {**page, "items": [service.visible_to(c, user["role"]) for c in page["items"]]}


@router.get("/{customer_id}", response_model=CustomerOut)
def get_customer(customer_id: int, conn: ConnDep, user: Reader) -> dict:
    """One customer (identity document and licence numbers masked for dispatchers and finance)."""
    return service.visible_to(service.get_or_raise(conn, customer_id=customer_id), user["role"])


@router.patch("/{customer_id}", response_model=CustomerOut)
def update_customer(customer_id: int, body: CustomerPatch, conn: ConnDep, user: Writer) -> dict:
    """Change fields (blacklisting needs a reason)."""
    return service.update(
        conn, customer_id=customer_id, changes=body.model_dump(exclude_unset=True), actor=user
    )


@router.delete("/{customer_id}", status_code=204)
def delete_customer(customer_id: int, conn: ConnDep, user: Writer) -> None:
    """Delete a customer that has no orders."""
    service.delete(conn, customer_id=customer_id, actor=user)
