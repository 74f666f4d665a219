"""Finance routes: invoices, payments, the revenue report (finance; customer service may read invoices)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query

from backoffice.finance import service, views_ledger, views_reports
from backoffice.finance.models import (
    CreditNoteIn,
    CreditNoteResult,
    InvoiceOut,
    InvoicePage,
    PaymentIn,
    PaymentResult,
    RefundIn,
    RefundResult,
    RevenueOut,
    VoidIn,
)
from backoffice.orders import rental
from fleetcore.api.deps import ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES
from fleetcore.errors import Invalid
from fleetcore.jsonable import to_json

router = APIRouter(prefix="/api/v1/finance", tags=["finance"], responses=ERROR_RESPONSES)
Finance = Annotated[dict, Depends(require_roles("finance"))]
InvoiceReader = Annotated[dict, Depends(require_roles("finance", "customer_service"))]
INVOICE_STATUSES = ("open", "paid", "void")


@router.get("/invoices", response_model=InvoicePage)
def list_invoices(
    user: InvoiceReader,
    conn: ConnDep,
    order_id: int | None = None,
    customer_id: int | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict:
    """A page of invoices: {items, total, limit, offset}."""
    if status is not None and status not in INVOICE_STATUSES:
        raise Invalid(f"status must be one of {', '.join(INVOICE_STATUSES)}")
    return to_json(
        service.list_invoices(
            conn, order_id=order_id, customer_id=customer_id, status=status, limit=limit, offset=offset
        )
    )


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut)
def get_invoice(invoice_id: int, user: InvoiceReader, conn: ConnDep) -> dict:
    """An invoice with line items, payments and the open balance."""
    return to_json(service.get_invoice_or_raise(conn, invoice_id=invoice_id))


@router.post("/invoices/{invoice_id}/payments", status_code=201, response_model=PaymentResult)
def add_payment(
    invoice_id: int,
    body: PaymentIn,
    user: Finance,
    conn: ConnDep,
    idempotency_key: Annotated[str | None, Header(min_length=8, max_length=100)] = None,
) -> dict:
    """Record a payment (booked bank/cash against receivables); paying a rental invoice in full completes and
    archives its order. With an `Idempotency-Key` header a retried request records the payment once."""
    payment, invoice = service.record_payment(
        conn,
        invoice_id=invoice_id,
        amount=body.amount,
        method=body.method,
        reference=body.reference,
        paid_at=body.paid_at,
        actor=user,
        idempotency_key=idempotency_key,
    )
    archived = rental.complete_if_paid(conn, invoice=invoice, actor=user)
    return to_json({"payment": payment, "invoice": invoice, "archived": archived})


@router.post("/invoices/{invoice_id}/void", response_model=InvoiceOut)
def void_invoice(invoice_id: int, body: VoidIn, user: Finance, conn: ConnDep) -> dict:
    """Void an open invoice that has no payments."""
    return to_json(service.void_invoice(conn, invoice_id=invoice_id, reason=body.reason, actor=user))


@router.post("/invoices/{invoice_id}/credit-notes", status_code=201, response_model=CreditNoteResult)
def credit_note(invoice_id: int, body: CreditNoteIn, user: Finance, conn: ConnDep) -> dict:
    """Credit part or all of an invoice (gross); VAT credited in proportion; a paid invoice then owes a refund."""
    return to_json(
        service.issue_credit_note(
            conn, invoice_id=invoice_id, amount=body.amount, reason=body.reason, actor=user
        )
    )


@router.post("/invoices/{invoice_id}/refunds", status_code=201, response_model=RefundResult)
def refund(invoice_id: int, body: RefundIn, user: Finance, conn: ConnDep) -> dict:
    """Pay back what the customer is owed on an invoice (at most the negative balance)."""
    return to_json(
        service.refund(
            conn,
            invoice_id=invoice_id,
            amount=body.amount,
            method=body.method,
            reference=body.reference,
            actor=user,
        )
    )


@router.get("/revenue", response_model=RevenueOut)
def revenue(
    user: Finance,
    conn: ConnDep,
    start: Annotated[dt.datetime, Query(alias="from")],
    end: Annotated[dt.datetime, Query(alias="to")],
) -> dict:
    """Invoiced (net, VAT, gross, by line code) and collected amounts in [from, to)."""
    for t in (start, end):
        if t.tzinfo is None:
            raise Invalid("from/to need a UTC offset, e.g. 2027-01-01T00:00:00Z")
    return to_json(service.revenue(conn, start=start, end=end))


# The ledger's routes (and the reports'), declared on routers of the same prefix in their own modules, join this
# one: one finance router in the app (whose route list the composition root documents the roles of).
for _sub in (views_ledger.router, views_reports.router):
    router.routes.extend(_sub.routes)
