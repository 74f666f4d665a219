"""Request and response schemas of the ledger, statements, profile and periods."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Amount = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
AccountCode = Annotated[str, Field(pattern=r"^[0-9]{3,6}$")]
Department = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")]


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: AccountCode
    name: str = Field(min_length=1, max_length=200)
    name_zh: str = Field(default="", max_length=200)
    type: Literal["asset", "liability", "equity", "revenue", "expense"]
    parent_code: AccountCode | None = None
    postable: bool = True
    cash: bool = False
    cash_flow: Literal["operating", "investing", "financing"] | None = None


class AccountOut(BaseModel):
    code: str
    name: str
    name_zh: str
    type: str
    parent_code: str | None
    postable: bool
    cash: bool
    cash_flow: str | None
    active: bool
    created_by: str
    created_at: dt.datetime


class JournalLineIn(BaseModel):
    """One side of a line: a debit or a credit, never both, never negative."""

    model_config = ConfigDict(extra="forbid")

    account: AccountCode
    debit: Amount = Decimal("0")
    credit: Amount = Decimal("0")
    memo: str = Field(default="", max_length=500)
    vehicle_id: int | None = Field(default=None, gt=0)
    station_id: int | None = Field(default=None, gt=0)
    department: Department | None = None

    @model_validator(mode="after")
    def _one_side(self) -> JournalLineIn:
        if (self.debit > 0) == (self.credit > 0):
            raise ValueError("a line has either a debit or a credit (one of them positive, the other zero)")
        return self


class JournalEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entry_date: dt.date
    memo: str = Field(min_length=1, max_length=500)
    lines: list[JournalLineIn] = Field(min_length=2, max_length=500)
    reference: str | None = Field(
        default=None, min_length=1, max_length=120, description="idempotency: the same reference posts once"
    )


class ReverseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entry_date: dt.date | None = None
    memo: str = Field(default="", max_length=500)


class JournalLineOut(BaseModel):
    line_no: int
    account_code: str
    account_name: str
    debit: Decimal
    credit: Decimal
    amount: Decimal = Field(description="signed: debit positive, credit negative")
    cash_flow: str | None
    vehicle_id: int | None
    station_id: int | None
    department: str | None
    order_id: int | None
    invoice_id: int | None
    customer_id: int | None
    payable_id: int | None
    memo: str


class JournalEntryOut(BaseModel):
    id: int
    entry_date: dt.date
    period: str
    kind: str
    memo: str
    currency: str
    source_key: str | None
    reverses_id: int | None
    reversed_by: int | None
    posted_by: str
    posted_at: dt.datetime
    lines: list[JournalLineOut]
    replayed: bool | None = None


class JournalPage(BaseModel):
    items: list[JournalEntryOut]
    total: int
    limit: int
    offset: int


class PeriodOut(BaseModel):
    period: str
    status: Literal["open", "closed"]
    closed_at: dt.datetime | None
    closed_by: str | None
    entries: int | None = None


class ReopenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500)


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    country: Literal["DE", "CN"]
    company_name: str | None = Field(default=None, min_length=1, max_length=200)


class ProfileOut(BaseModel):
    country: str
    company_name: str
    currency: str
    minor_unit: int
    timezone: str
    useful_life_months: int
    residual_pct: Decimal
    tax_rates_today: dict[str, Decimal]


class TaxRateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    country: Literal["DE", "CN"]
    category: str = Field(pattern=r"^[a-z_]{2,32}$")
    rate: Decimal = Field(ge=0, lt=1, max_digits=6, decimal_places=4)
    valid_from: dt.date
    note: str = Field(default="", max_length=300)


class TaxRateOut(BaseModel):
    country: str
    category: str
    rate: Decimal
    valid_from: dt.date
    note: str
    created_by: str


class StatementRow(BaseModel):
    account: str
    name: str
    name_zh: str
    amount: Decimal
    previous: Decimal
    change: Decimal


class TrialBalanceRow(BaseModel):
    account: str
    name: str
    name_zh: str
    type: str
    opening: Decimal
    debit: Decimal
    credit: Decimal
    closing: Decimal
    closing_debit: Decimal
    closing_credit: Decimal


class StatementHeader(BaseModel):
    statement: str
    company: str
    currency: str
    from_: dt.date | None = Field(alias="from")
    to: dt.date


class TrialBalanceOut(StatementHeader):
    rows: list[TrialBalanceRow]
    totals: dict[str, Decimal]
    balanced: bool


class StatementOut(StatementHeader):
    """The income statement, balance sheet or cash-flow statement (fields by statement)."""

    previous_period: dict[str, dt.date | None]
    balanced: bool | None = None
    method: str | None = None
    revenue: list[StatementRow] | None = None
    expenses: list[StatementRow] | None = None
    total_revenue: Decimal | None = None
    total_expenses: Decimal | None = None
    net_income: Decimal | None = None
    assets: list[StatementRow] | None = None
    liabilities: list[StatementRow] | None = None
    equity: list[StatementRow] | None = None
    total_assets: Decimal | None = None
    total_liabilities: Decimal | None = None
    total_equity: Decimal | None = None
    retained_earnings: Decimal | None = None
    opening_cash: Decimal | None = None
    net_change: Decimal | None = None
    closing_cash: Decimal | None = None
    classes: dict[str, Any] | None = None
    previous: dict[str, Any]
