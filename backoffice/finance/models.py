"""Finance request and response schemas."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# German standard VAT rate, § 12 (1) UStG: what quotes show. Invoices take the rate in force on their date from the
# company profile (backoffice.finance.profiles).
VAT_RATE = Decimal("0.19")
CENT = Decimal("0.01")
PaymentMethod = Literal["card", "cash", "bank_transfer", "paypal"]


def money(x: Decimal | float | int | str) -> Decimal:
    """Round to cents, half up (commercial rounding): the money rule of profiles.money for two-decimal currencies."""
    return Decimal(str(x)).quantize(CENT, rounding=ROUND_HALF_UP)


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    method: PaymentMethod
    reference: str = Field(default="", max_length=200)
    paid_at: AwareDatetime | None = None


class CreditNoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2, description="gross amount credited")
    reason: str = Field(min_length=3, max_length=500)


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    method: Literal["card", "cash", "bank_transfer", "paypal"]
    reference: str = Field(default="", max_length=200)


class VoidIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500)


class InvoiceLineOut(BaseModel):
    position: int
    code: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    tax_category: str | None = None
    vat_rate: Decimal | None = None


class CreditNoteOut(BaseModel):
    id: int
    number: str
    net: Decimal
    vat: Decimal
    gross: Decimal
    reason: str
    issued_at: dt.datetime
    issued_by: str


class RefundOut(BaseModel):
    id: int
    amount: Decimal
    method: str
    reference: str
    refunded_at: dt.datetime
    recorded_by: str


class PaymentOut(BaseModel):
    id: int
    amount: Decimal
    method: str
    reference: str
    paid_at: dt.datetime
    recorded_by: str


class InvoiceOut(BaseModel):
    """An invoice; `lines`, `payments`, `paid` and `balance` are present on single-invoice answers."""

    id: int
    number: str
    order_id: int
    customer_id: int
    kind: Literal["rental", "cancellation", "damage"]
    currency: str
    net: Decimal
    vat_rate: Decimal | None = Field(description="None when the lines carry different rates (see each line)")
    vat: Decimal
    gross: Decimal
    status: Literal["open", "paid", "void"]
    issued_at: dt.datetime
    paid_at: dt.datetime | None
    voided_at: dt.datetime | None
    void_reason: str | None
    lines: list[InvoiceLineOut] | None = None
    payments: list[PaymentOut] | None = None
    paid: Decimal | None = None
    credited: Decimal | None = None
    refunded: Decimal | None = None
    credit_notes: list[CreditNoteOut] | None = None
    refunds: list[RefundOut] | None = None
    balance: Decimal | None = Field(
        default=None, description="owed by the customer; negative: owed to the customer"
    )
    vehicle_id: int | None = None
    station_id: int | None = None


class InvoicePage(BaseModel):
    items: list[InvoiceOut]
    total: int
    limit: int
    offset: int


class ArchivedRef(BaseModel):
    order_id: int
    archived_at: dt.datetime


class PaymentResult(BaseModel):
    payment: PaymentOut
    invoice: InvoiceOut
    archived: ArchivedRef | None = Field(description="set when this payment completed and archived the order")


class RevenueOut(BaseModel):
    from_: dt.datetime = Field(alias="from")
    to: dt.datetime
    currency: str
    invoices: int
    net: Decimal
    vat: Decimal
    gross: Decimal
    open_gross: Decimal
    net_by_line_code: dict[str, Decimal]
    payments: int
    collected: Decimal


class CreditNoteResult(BaseModel):
    credit_note: CreditNoteOut
    invoice: InvoiceOut


class RefundResult(BaseModel):
    refund: RefundOut
    invoice: InvoiceOut
