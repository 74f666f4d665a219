"""Request and response schemas of profitability, cost analysis, budgets, funds, payables and payroll."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backoffice.finance.models_ledger import AccountCode, Amount, Department


class ProfitabilityRow(BaseModel):
    key: Any = Field(description="vehicle id, station code or vehicle class")
    rank: int = Field(description="1 = least profitable")
    vin: str | None = None
    plate: str | None = None
    vehicle_class: str | None = None
    station: str | None = None
    vehicles: int
    vehicle_days: int
    km: Decimal
    engine_hours: Decimal
    revenue: Decimal
    damage_recoveries: Decimal
    maintenance: Decimal
    fuel: Decimal
    depreciation: Decimal
    other_costs: Decimal
    costs: Decimal
    margin: Decimal
    cost_per_km: Decimal | None
    revenue_per_km: Decimal | None
    margin_per_vehicle_day: Decimal | None


class ProfitabilityOut(BaseModel):
    by: str
    from_: dt.date = Field(alias="from")
    to: dt.date
    currency: str
    rows: list[ProfitabilityRow]
    totals: dict[str, Decimal]
    least_profitable: list[Any]


class CostAnalysisOut(BaseModel):
    from_: dt.date = Field(alias="from")
    to: dt.date
    previous_period: dict[str, dt.date]
    currency: str
    total: Decimal
    previous_total: Decimal
    categories: list[dict[str, Any]]
    trend: list[dict[str, Any]]
    top_drivers: list[dict[str, Any]]


class BudgetLineOut(BaseModel):
    account_code: str
    department: str
    period: dt.date
    version: int
    amount: Decimal
    request_id: int | None
    created_by: str
    created_at: dt.datetime


class ImportResult(BaseModel):
    imported: int


class BudgetRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: AccountCode
    department: Department
    period: str = Field(pattern=r"^\d{4}-\d{2}$")
    amount: Amount
    reason: str = Field(min_length=3, max_length=1000)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=1000)


class BudgetRequestOut(BaseModel):
    id: int
    account_code: str
    department: str
    period: dt.date
    base_version: int
    amount: Decimal
    reason: str
    status: Literal["pending", "approved", "rejected"]
    requested_by: str
    requested_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    note: str
    version: int | None = None


class VarianceRow(BaseModel):
    account: str
    department: str
    type: str
    budget: Decimal | None
    version: int | None
    actual: Decimal
    variance: Decimal
    variance_pct: Decimal | None
    over_threshold: bool = Field(description="|variance %| beyond the threshold")
    adverse: bool = Field(
        description="beyond it the wrong way: cost over budget, revenue under it after month end"
    )


class VarianceOut(BaseModel):
    period: str
    threshold_pct: Decimal
    rows: list[VarianceRow]


class VarianceNoticeOut(BaseModel):
    id: int
    account_code: str
    department: str
    period: dt.date
    version: int
    budget: Decimal
    actual: Decimal
    variance_pct: Decimal | None
    notification_id: int | None


class AgeingOut(BaseModel):
    side: str
    as_of: dt.date
    currency: str
    buckets: dict[str, Decimal]
    total: Decimal
    ledger_balance: Decimal
    reconciled: bool
    parties: list[dict[str, Any]]
    items: list[dict[str, Any]]


class BankImportOut(BaseModel):
    statement_id: int
    lines: int
    matched: int
    unmatched: int
    duplicates: int
    paid_invoices: list[int]


class BankLineOut(BaseModel):
    id: int
    statement_id: int
    line_no: int
    booked_on: dt.date
    amount: Decimal
    reference: str
    counterparty: str
    status: str
    payment_id: int | None
    supplier_payment_id: int | None
    note: str


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=3, max_length=500)


class CashPositionOut(BaseModel):
    account: str
    name: str
    name_zh: str
    balance: Decimal


class ForecastOut(BaseModel):
    as_of: dt.date
    currency: str
    opening: Decimal
    inflow: Decimal
    outflow: Decimal
    closing: Decimal
    lowest: dict[str, Any]
    negative_on: dt.date | None
    days: list[dict[str, Any]]


class PayableIn(BaseModel):
    """A supplier bill entered by finance: net per expense or asset account; VAT at the profile's rate unless given."""

    model_config = ConfigDict(extra="forbid")

    supplier: str = Field(min_length=1, max_length=200)
    reference: str = Field(min_length=1, max_length=200)
    bill_date: dt.date
    due_date: dt.date | None = None
    lines: list[dict[str, Any]] = Field(min_length=1, max_length=50, description="[{account, net}]")
    vat: Amount | None = None
    vehicle_id: int | None = Field(default=None, gt=0)


class PayableOut(BaseModel):
    id: int
    supplier: str
    reference: str
    source: str
    cash_flow: str
    net: Decimal
    vat: Decimal
    gross: Decimal
    paid: Decimal
    bill_date: dt.date
    due_date: dt.date
    status: str
    vehicle_id: int | None
    created_by: str
    created_at: dt.datetime


class SupplierPaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    paid_on: dt.date
    reference: str = Field(default="", max_length=200)


class SupplierPaymentOut(BaseModel):
    payment: dict[str, Any]
    payable: PayableOut


class FuelCostIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vehicle_id: int = Field(gt=0)
    net: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    vat: Amount | None = None
    on: dt.date
    supplier: str = Field(min_length=1, max_length=200)
    reference: str = Field(min_length=1, max_length=200)
    paid: bool = Field(default=True, description="paid by card now (bank) or billed later (payable)")
    quantity: Decimal | None = Field(default=None, gt=0, max_digits=10, decimal_places=3)
    unit: Literal["l", "kWh"] = "l"


class FuelCostOut(BaseModel):
    payable: PayableOut | None
    entry: dict[str, Any] | None


class PayrollLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    department: Department
    gross: Amount
    withholdings: Amount = Decimal("0")
    employer_contributions: Amount = Decimal("0")
    employee_ref: str = Field(default="", max_length=64, description="a reference, never a name")


class PayrollIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: str = Field(pattern=r"^\d{4}-\d{2}$")
    run: str = Field(default="main", pattern=r"^[a-z0-9_-]{1,32}$")
    lines: list[PayrollLineIn] = Field(min_length=1, max_length=5000)


class DepreciationOut(BaseModel):
    posted: list[dict[str, Any]]


class AssetOut(BaseModel):
    id: int
    vehicle_id: int
    cost: Decimal
    residual_value: Decimal
    useful_life_months: int
    first_month: dt.date
    accumulated_depreciation: Decimal
    book_value: Decimal
