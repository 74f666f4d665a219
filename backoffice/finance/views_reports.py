"""Finance routes for cost and profit, budgets, funds, payables, fuel, assets and payroll (finance, admin; payroll
also HR). Joined to the finance router by backoffice.finance.views.

Two answers compose the orders domain (the composition a route may do, like the payment route): a bank statement
that settles a rental invoice completes its order, and the cash forecast reads the booked rentals.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import Response

from backoffice.finance import analysis, budgets, funds, ledger, payables, profiles
from backoffice.finance import service as finance
from backoffice.finance.models_ledger import JournalEntryOut
from backoffice.finance.models_reports import (
    AgeingOut,
    AssetOut,
    BankImportOut,
    BankLineOut,
    BudgetLineOut,
    BudgetRequestIn,
    BudgetRequestOut,
    CashPositionOut,
    CostAnalysisOut,
    DecisionIn,
    DepreciationOut,
    ForecastOut,
    FuelCostIn,
    FuelCostOut,
    ImportResult,
    PayableIn,
    PayableOut,
    PayrollIn,
    ProfitabilityOut,
    ProfitabilityRow,
    ResolveIn,
    SupplierPaymentIn,
    SupplierPaymentOut,
    VarianceNoticeOut,
    VarianceOut,
)
from backoffice.finance.views_ledger import MEDIA, Format, From, To
from backoffice.orders import rental
from backoffice.orders import service as orders
from fleetcore.api.deps import ConnDep, SettingsDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES
from fleetcore.documents import to_csv
from fleetcore.jsonable import to_json

router = APIRouter(prefix="/api/v1/finance", tags=["finance"], responses=ERROR_RESPONSES)
Finance = Annotated[dict, Depends(require_roles("finance"))]
Admin = Annotated[dict, Depends(require_roles("admin"))]
Payroll = Annotated[dict, Depends(require_roles("finance", "hr"))]
Period = Annotated[str, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")]
CsvBody = Annotated[str, Body(media_type="text/csv", max_length=2_000_000)]


def _download(columns: list[str], rows: list[list], name: str, fmt: str) -> Response:
    return Response(
        to_csv(columns, rows),
        media_type=MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("/profitability", response_model=ProfitabilityOut)
def profitability(
    user: Finance,
    conn: ConnDep,
    start: From,
    end: To,
    by: Literal["vehicle", "station", "class"] = "vehicle",
    format: Literal["json", "csv"] = "json",
) -> object:
    """Revenue, damage recoveries, maintenance, fuel, depreciation, margin; km and engine hours from telemetry,
    cost per km and margin per vehicle-day; ranked least profitable first."""
    p = finance.profitability(conn, by=by, start=start, end=end)
    if format == "csv":
        cols = list(ProfitabilityRow.model_fields)
        return _download(
            cols, [[r.get(c) for c in cols] for r in p["rows"]], f"profitability_{by}_{start}_{end}", "csv"
        )
    return to_json(p)


@router.get("/cost-analysis", response_model=CostAnalysisOut)
def cost_analysis(
    user: Finance, conn: ConnDep, start: From, end: To, top: Annotated[int, Query(ge=1, le=100)] = 10
) -> dict:
    """Cost structure by category with shares and change, the monthly trend, and the top cost drivers."""
    return to_json(analysis.cost_by_category(conn, start=start, end=end, top=top))


# ---- budgets ---------------------------------------------------------------------------------------------------


@router.get("/budgets", response_model=list[BudgetLineOut])
def list_budgets(
    user: Finance,
    conn: ConnDep,
    start: Annotated[str | None, Query(alias="from", pattern=r"^\d{4}-\d{2}$")] = None,
    end: Annotated[str | None, Query(alias="to", pattern=r"^\d{4}-\d{2}$")] = None,
    format: Literal["json", "csv"] = "json",
) -> object:
    """The current version of each budget line (account x department x month); `format=csv` exports them."""
    s = ledger.parse_period(start) if start else None
    e = ledger.parse_period(end) if end else None
    if format == "csv":
        return Response(budgets.export_csv(conn, start=s, end=e), media_type=MEDIA["csv"])
    return to_json(budgets.list_(conn, start=s, end=e))


@router.post("/budgets", status_code=201, response_model=ImportResult)
def import_budgets(body: CsvBody, user: Finance, conn: ConnDep) -> dict:
    """Import original budgets from CSV (account,department,period,amount); all lines or none (422 names the line)."""
    return budgets.import_csv(conn, text=body, actor=user)


@router.get("/budgets/history", response_model=list[BudgetLineOut])
def budget_history(
    user: Finance,
    conn: ConnDep,
    account: Annotated[str, Query(pattern=r"^[0-9]{3,6}$")],
    department: Annotated[str, Query(pattern=r"^[a-z][a-z0-9_]{1,31}$")],
    period: Period,
) -> list[dict]:
    """Every version of one budget line, the original first."""
    return to_json(
        budgets.history(conn, account=account, department=department, period=ledger.parse_period(period))
    )


@router.post("/budgets/requests", status_code=201, response_model=BudgetRequestOut)
def request_budget_change(body: BudgetRequestIn, user: Finance, conn: ConnDep) -> dict:
    """Ask for a budget change; an admin approves it into a new version."""
    return to_json(
        budgets.request_adjustment(
            conn,
            account=body.account,
            department=body.department,
            period=ledger.parse_period(body.period),
            amount=body.amount,
            reason=body.reason,
            actor=user,
        )
    )


@router.get("/budgets/requests", response_model=list[BudgetRequestOut])
def list_budget_requests(
    user: Finance, conn: ConnDep, status: Literal["pending", "approved", "rejected"] | None = None
) -> list[dict]:
    """Adjustment requests, newest first."""
    return to_json(budgets.list_requests(conn, status=status))


@router.post("/budgets/requests/{request_id}/approve", response_model=BudgetRequestOut)
def approve_budget_request(
    request_id: int, user: Admin, conn: ConnDep, body: DecisionIn | None = None
) -> dict:
    """Approve (admin): the line gets a new version; the original and every version stay."""
    note = body.note if body else ""
    return to_json(budgets.decide(conn, request_id=request_id, approve=True, note=note, actor=user))


@router.post("/budgets/requests/{request_id}/reject", response_model=BudgetRequestOut)
def reject_budget_request(
    request_id: int, user: Admin, conn: ConnDep, body: DecisionIn | None = None
) -> dict:
    """Reject (admin)."""
    note = body.note if body else ""
    return to_json(budgets.decide(conn, request_id=request_id, approve=False, note=note, actor=user))


@router.get("/budgets/variance", response_model=VarianceOut)
def budget_variance(user: Finance, conn: ConnDep, settings: SettingsDep, period: Period) -> dict:
    """Actual versus budget per account x department for a month, variance in amount and %."""
    return to_json(
        budgets.variance(
            conn,
            period=ledger.parse_period(period),
            threshold_pct=Decimal(str(settings.finance_budget_variance_pct)),
        )
    )


@router.post("/budgets/variance/notify", response_model=list[VarianceNoticeOut])
def budget_variance_notify(user: Finance, conn: ConnDep, settings: SettingsDep, period: Period) -> list[dict]:
    """Raise the finance notices for lines beyond the threshold now (the scheduler does it daily); once each."""
    return to_json(
        budgets.raise_variance_notices(
            conn,
            period=ledger.parse_period(period),
            threshold_pct=Decimal(str(settings.finance_budget_variance_pct)),
            actor=user,
        )
    )


# ---- funds -----------------------------------------------------------------------------------------------------


@router.get("/funds", response_model=list[CashPositionOut])
def cash_positions(user: Finance, conn: ConnDep) -> list[dict]:
    """The bank and cash accounts with their balances."""
    return to_json(funds.cash_positions(conn))


@router.get("/ageing", response_model=AgeingOut)
def ageing(
    user: Finance,
    conn: ConnDep,
    side: Literal["receivable", "payable"],
    as_of: dt.date | None = None,
    format: Format = "json",
) -> object:
    """Open receivables or payables in 0-30, 31-60, 61-90, >90 days, per party; reconciled with the ledger."""
    a = funds.ageing(conn, side=side, as_of=as_of)
    if format == "json":
        return to_json(a)
    cols = ["party", "0-30", "31-60", "61-90", ">90", "total"]
    return _download(cols, [[p[c] for c in cols] for p in a["parties"]], f"ageing_{side}_{a['as_of']}", "csv")


@router.post("/bank-statements", status_code=201, response_model=BankImportOut)
def import_bank_statement(
    body: CsvBody,
    user: Finance,
    conn: ConnDep,
    account: Annotated[str, Query(pattern=r"^[0-9]{3,6}$")] = "1020",
    filename: Annotated[str, Query(max_length=200)] = "",
) -> dict:
    """Import a statement CSV (date,amount,reference[,counterparty]); match payments and bills by reference and
    amount; list the rest. A malformed line is named and nothing is imported."""
    result = funds.import_bank_statement(conn, text=body, account=account, filename=filename, actor=user)
    for invoice_id in result["paid_invoices"]:
        rental.complete_if_paid(
            conn, invoice=finance.get_invoice_or_raise(conn, invoice_id=invoice_id), actor=user
        )
    return to_json(result)


@router.get("/bank-statements/unmatched", response_model=list[BankLineOut])
def unmatched_bank_lines(user: Finance, conn: ConnDep) -> list[dict]:
    """Statement lines no payment or bill matched: for a person to book or dismiss."""
    return to_json(funds.unmatched_lines(conn))


@router.post("/bank-statements/lines/{line_id}/resolve", response_model=BankLineOut)
def resolve_bank_line(line_id: int, body: ResolveIn, user: Finance, conn: ConnDep) -> dict:
    """Mark an unmatched line as dealt with, with a note."""
    return to_json(funds.resolve_line(conn, line_id=line_id, note=body.note, actor=user))


@router.get("/cash-forecast", response_model=ForecastOut)
def cash_forecast(user: Finance, conn: ConnDep, days: Annotated[int, Query(ge=1, le=90)] = 30) -> dict:
    """Cash day by day for the next days: booked rentals in (at their return), open supplier bills out (due date)."""
    now = dt.datetime.now(dt.UTC)
    receipts = orders.expected_receipts(conn, start=now, end=now + dt.timedelta(days=days))
    return to_json(funds.cash_forecast(conn, expected_receipts=receipts, days=days))


# ---- payables, fuel, assets, payroll ---------------------------------------------------------------------------


@router.get("/payables", response_model=list[PayableOut])
def list_payables(user: Finance, conn: ConnDep, status: Literal["open", "paid"] | None = None) -> list[dict]:
    """Supplier bills by due date."""
    return to_json(payables.list_payables(conn, status=status))


@router.post("/payables", status_code=201, response_model=PayableOut)
def create_payable(body: PayableIn, user: Finance, conn: ConnDep) -> dict:
    """Enter a supplier bill: lines [{account, net}], VAT at the profile's rate unless given."""
    return to_json(payables.create_manual_bill(conn, data=body.model_dump(), actor=user))


@router.post("/payables/{payable_id}/payments", status_code=201, response_model=SupplierPaymentOut)
def pay_supplier(payable_id: int, body: SupplierPaymentIn, user: Finance, conn: ConnDep) -> dict:
    """Pay (part of) a supplier bill from the bank."""
    return to_json(
        payables.pay_supplier(
            conn,
            payable_id=payable_id,
            amount=body.amount,
            paid_on=body.paid_on,
            reference=body.reference,
            actor=user,
        )
    )


@router.post("/fuel-costs", status_code=201, response_model=FuelCostOut)
def fuel_cost(body: FuelCostIn, user: Finance, conn: ConnDep) -> dict:
    """Fuel or charging bought for a vehicle: paid by card now, or billed by a fuel-card supplier."""
    return to_json(payables.record_fuel_cost(conn, **body.model_dump(), actor=user))


@router.get("/assets", response_model=list[AssetOut])
def list_assets(user: Finance, conn: ConnDep) -> list[dict]:
    """The vehicle asset register with accumulated depreciation and book value."""
    return to_json(payables.list_assets(conn))


@router.post("/depreciation/run", response_model=DepreciationOut)
def run_depreciation(user: Finance, conn: ConnDep, period: Period | None = None) -> dict:
    """Post depreciation up to a month (default: this month); what is posted already is not posted again."""
    upto = ledger.parse_period(period) if period else profiles.local_date(profiles.get(conn), None)
    return to_json({"posted": payables.run_depreciation(conn, upto=upto, actor=user)})


@router.post("/payroll", status_code=201, response_model=JournalEntryOut)
def post_payroll(body: PayrollIn, user: Payroll, conn: ConnDep) -> dict:
    """Post a payroll run (HR or finance): wages and employer contributions per department; once per period and run."""
    lines = [ln.model_dump() for ln in body.lines]
    return to_json(finance.post_payroll(conn, period=body.period, lines=lines, actor=user, run=body.run))
