"""Order routes: intake and changes (customer service), dispatch/pickup/return (dispatchers), rates."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import psycopg
from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from backoffice.finance import service as finance
from backoffice.finance.models import InvoiceOut
from backoffice.orders import damage, dispatch, rates, rental, service
from backoffice.orders.models import (
    ORDER_STATUSES,
    ArchiveOut,
    AssignIn,
    AssignOut,
    CancelIn,
    CancelOut,
    ChangeOut,
    DamageChargeIn,
    OrderIn,
    OrderOut,
    OrderPage,
    OrderPatch,
    PickupIn,
    RateIn,
    RateOut,
    ReturnIn,
    ReturnOut,
)
from fleetcore.api.deps import ALL_ROLES, ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES, envelope
from fleetcore.errors import Invalid
from fleetcore.jsonable import to_json

router = APIRouter(prefix="/api/v1", tags=["orders"], responses=ERROR_RESPONSES)
# The user dependency comes before the connection in every signature: it borrows (and returns) a pooled
# connection itself, so resolving it first keeps a request from holding two connections at once.
Intake = Annotated[dict, Depends(require_roles("customer_service"))]
Dispatcher = Annotated[dict, Depends(require_roles("dispatcher"))]
Reader = Annotated[dict, Depends(require_roles("customer_service", "dispatcher", "finance"))]
ArchiveReader = Annotated[dict, Depends(require_roles("customer_service", "finance"))]
Staff = Annotated[dict, Depends(require_roles(*ALL_ROLES))]
Admin = Annotated[dict, Depends(require_roles("admin"))]
DamageBiller = Annotated[dict, Depends(require_roles("dispatcher", "finance"))]


@router.post("/orders", status_code=201, response_model=OrderOut)
def create_order(body: OrderIn, user: Intake, conn: ConnDep) -> dict:
    """Intake → a pending order with a price quote (line items, net, VAT, gross, km allowance)."""
    return to_json(service.create(conn, data=body.model_dump(), actor=user))


@router.get("/orders", response_model=OrderPage)
def list_orders(
    user: Reader,
    conn: ConnDep,
    status: Annotated[str | None, Query(description=f"one of {', '.join(ORDER_STATUSES)}")] = None,
    customer_id: int | None = None,
    station: Annotated[str | None, Query(description="pickup station code")] = None,
    vehicle_class: Annotated[str | None, Query(alias="class")] = None,
    pickup_from: Annotated[dt.datetime | None, Query(alias="from")] = None,
    pickup_to: Annotated[dt.datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict:
    """A page of orders: {items, total, limit, offset}, filtered by status, customer, station, class, pickup time."""
    if status is not None and status not in ORDER_STATUSES:
        raise Invalid(f"status must be one of {', '.join(ORDER_STATUSES)}")
    for t in (pickup_from, pickup_to):
        if t is not None and t.tzinfo is None:
            raise Invalid("from/to need a UTC offset, e.g. 2027-01-01T00:00:00Z")
    return to_json(
        service.list_(
            conn,
            status=status,
            customer_id=customer_id,
            station=station,
            vehicle_class=vehicle_class,
            pickup_from=pickup_from,
            pickup_to=pickup_to,
            limit=limit,
            offset=offset,
        )
    )


@router.get("/orders/{order_id}", response_model=OrderOut)
def get_order(order_id: int, user: Reader, conn: ConnDep) -> dict:
    """One order."""
    return to_json(service.get_or_raise(conn, order_id=order_id))


@router.get("/orders/{order_id}/history", response_model=list[ChangeOut])
def order_history(order_id: int, user: Reader, conn: ConnDep) -> list[dict]:
    """Every change of the order: action, actor, before and after."""
    return to_json(service.history(conn, order_id=order_id))


@router.post("/orders/{order_id}/confirm", response_model=OrderOut)
def confirm_order(order_id: int, user: Intake, conn: ConnDep) -> dict:
    """Qualification (422 naming the failed rule) and a vehicle held for the period (409 when none is left)."""
    return to_json(service.confirm(conn, order_id=order_id, actor=user))


@router.patch("/orders/{order_id}", response_model=OrderOut)
def update_order(order_id: int, body: OrderPatch, user: Intake, conn: ConnDep) -> dict:
    """Change times, class or stations; re-validated, re-priced and re-reserved; history kept."""
    return to_json(
        service.update(conn, order_id=order_id, changes=body.model_dump(exclude_unset=True), actor=user)
    )


@router.post("/orders/{order_id}/cancel", response_model=CancelOut)
def cancel_order(
    order_id: int, user: Intake, conn: ConnDep, body: Annotated[CancelIn | None, Body()] = None
) -> dict:
    """Cancel (free > 48 h before pickup, half the first day within 48 h) or record a no-show (one day)."""
    body = body or CancelIn()
    after, invoice = service.cancel(
        conn, order_id=order_id, no_show=body.no_show, reason=body.reason, actor=user
    )
    return to_json({"order": after, "cancellation_fee": after["cancellation_fee"], "invoice": invoice})


@router.post("/orders/{order_id}/assign", response_model=AssignOut)
def assign_order(
    order_id: int, user: Dispatcher, conn: ConnDep, body: Annotated[AssignIn | None, Body()] = None
) -> dict:
    """Choose the vehicle, or answer {"status": "proposal", "proposal": {...}} to move one from the nearest station."""
    body = body or AssignIn()
    result = dispatch.assign(
        conn, order_id=order_id, vin=body.vin, accept_transfer=body.accept_transfer, actor=user
    )
    return to_json(result)


@router.post("/orders/{order_id}/pickup", response_model=OrderOut)
def pickup_order(
    order_id: int, user: Dispatcher, conn: ConnDep, body: Annotated[PickupIn | None, Body()] = None
) -> dict:
    """Hand over: odometer and fuel come from the vehicle's telemetry state (409 without one); optional deposit."""
    body = body or PickupIn()
    return to_json(
        rental.pickup(
            conn, order_id=order_id, actor=user, deposit=body.deposit, deposit_method=body.deposit_method
        )
    )


@router.post("/orders/{order_id}/return", response_model=ReturnOut)
def return_order(order_id: int, body: ReturnIn, user: Dispatcher, conn: ConnDep) -> dict:
    """Take back: readings from telemetry → charges and invoice; crash alerts attached as damage check; the
    deposit applied to the invoice or released."""
    after, invoice = rental.return_(
        conn, order_id=order_id, return_station=body.return_station, actor=user, deposit=body.deposit
    )
    return to_json(
        {"order": after, "invoice": invoice, "deposit": finance.get_deposit(conn, order_id=order_id)}
    )


@router.post("/orders/{order_id}/damage-charge", status_code=201, response_model=InvoiceOut)
def damage_charge(order_id: int, body: DamageChargeIn, user: DamageBiller, conn: ConnDep) -> dict:
    """Bill damage from the rental's crash alerts (found at return) to the customer: a damage invoice."""
    return to_json(
        damage.charge(conn, order_id=order_id, charges=[c.model_dump() for c in body.charges], actor=user)
    )


@router.get("/orders/{order_id}/archive", response_model=ArchiveOut)
def get_archive(order_id: int, user: ArchiveReader, conn: ConnDep) -> dict:
    """The immutable record of a completed order."""
    return to_json(rental.get_archive_or_raise(conn, order_id=order_id))


@router.get("/rates", response_model=list[RateOut])
def list_rates(user: Staff, conn: ConnDep) -> list[dict]:
    """The rate table per vehicle class."""
    return to_json(rates.list_(conn))


@router.put("/rates/{vehicle_class}", response_model=RateOut)
def put_rate(vehicle_class: str, body: RateIn, user: Admin, conn: ConnDep) -> dict:
    """Change a class's rates (admin); existing orders keep the rates they were quoted."""
    return to_json(rates.update(conn, vehicle_class=vehicle_class, values=body.model_dump(), actor=user))


def setup(app: FastAPI) -> None:
    """Concurrency losers answer 409 (retry), never 500."""

    async def _retryable(request: Request, exc: Exception) -> JSONResponse:
        return envelope(409, "conflict", "a concurrent change got there first; retry the request")

    for exc in (
        psycopg.errors.SerializationFailure,
        psycopg.errors.DeadlockDetected,
        psycopg.errors.LockNotAvailable,
    ):
        app.add_exception_handler(exc, _retryable)
