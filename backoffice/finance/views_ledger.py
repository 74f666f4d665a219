"""Ledger routes: chart of accounts, journal, periods, company profile and tax rates, statements (finance, admin).

Included in the finance router (backoffice.finance.views); thin like every view: parse, call the service, answer.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from backoffice.finance import exports, ledger, profiles, statements
from backoffice.finance.models_ledger import (
    AccountIn,
    AccountOut,
    JournalEntryIn,
    JournalEntryOut,
    JournalPage,
    PeriodOut,
    ProfileIn,
    ProfileOut,
    ReopenIn,
    ReverseIn,
    StatementOut,
    TaxRateIn,
    TaxRateOut,
    TrialBalanceOut,
)
from fleetcore.api.deps import ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES
from fleetcore.jsonable import to_json

router = APIRouter(prefix="/api/v1/finance", tags=["finance"], responses=ERROR_RESPONSES)
Finance = Annotated[dict, Depends(require_roles("finance"))]
Admin = Annotated[dict, Depends(require_roles("admin"))]
From = Annotated[dt.date, Query(alias="from", description="first day, YYYY-MM-DD")]
To = Annotated[dt.date, Query(alias="to", description="last day (inclusive), YYYY-MM-DD")]
Format = Annotated[Literal["json", "csv", "pdf"], Query(description="json, csv or pdf")]
MEDIA = {"csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}


def render(st: dict, fmt: str, name: str) -> dict | Response:
    """The statement as JSON, or as a CSV / PDF download."""
    if fmt == "json":
        return to_json(st)
    body = exports.csv_bytes(st) if fmt == "csv" else exports.pdf_bytes(st)
    filename = f"{name}_{st['from'] or ''}_{st['to']}.{fmt}".replace("__", "_")
    return Response(
        body, media_type=MEDIA[fmt], headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.get("/accounts", response_model=list[AccountOut])
def list_accounts(user: Finance, conn: ConnDep, include_inactive: bool = False) -> list[dict]:
    """The chart of accounts (a tree through parent_code), in code order."""
    return to_json(ledger.list_accounts(conn, include_inactive=include_inactive))


@router.post("/accounts", status_code=201, response_model=AccountOut)
def create_account(body: AccountIn, user: Finance, conn: ConnDep) -> dict:
    """Extend the chart under a group account of the same type."""
    return to_json(ledger.create_account(conn, data=body.model_dump(), actor=user))


@router.post("/journal", status_code=201, response_model=JournalEntryOut)
def post_journal(body: JournalEntryIn, user: Finance, conn: ConnDep) -> dict:
    """A manual entry: balanced (422 otherwise), known postable accounts, an open period (409 otherwise)."""
    return to_json(ledger.post_manual(conn, data=body.model_dump(), actor=user))


@router.get("/journal", response_model=JournalPage)
def list_journal(
    user: Finance,
    conn: ConnDep,
    start: Annotated[dt.date | None, Query(alias="from")] = None,
    end: Annotated[dt.date | None, Query(alias="to")] = None,
    account: Annotated[str | None, Query(pattern=r"^[0-9]{3,6}$")] = None,
    kind: Annotated[str | None, Query(pattern=r"^[a-z_]{2,40}$")] = None,
    limit: Annotated[int, Query(ge=1, le=ledger.MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict:
    """Entries dated in [from, to] with their lines, optionally touching one account or of one kind."""
    return to_json(
        ledger.list_entries(
            conn, start=start, end=end, account=account, kind=kind, limit=limit, offset=offset
        )
    )


@router.get("/journal/{entry_id}", response_model=JournalEntryOut)
def get_journal_entry(entry_id: int, user: Finance, conn: ConnDep) -> dict:
    """One entry with its lines and what reversed it, if anything."""
    return to_json(ledger.get_entry_or_raise(conn, entry_id=entry_id))


@router.post("/journal/{entry_id}/reverse", status_code=201, response_model=JournalEntryOut)
def reverse_journal_entry(entry_id: int, user: Finance, conn: ConnDep, body: ReverseIn | None = None) -> dict:
    """Correct a posted entry by its mirror image (dated today unless given); an entry is reversed once."""
    body = body or ReverseIn()
    return to_json(
        ledger.reverse(conn, entry_id=entry_id, actor=user, entry_date=body.entry_date, memo=body.memo)
    )


@router.get("/periods", response_model=list[PeriodOut])
def list_periods(user: Finance, conn: ConnDep) -> list[dict]:
    """Accounting periods (months) with their status and number of entries, newest first."""
    return [{**to_json(p), "period": f"{p['period']:%Y-%m}"} for p in ledger.list_periods(conn)]


@router.post("/periods/{period}/close", response_model=PeriodOut)
def close_period(period: str, user: Finance, conn: ConnDep) -> dict:
    """Close a month that has ended: postings in flight finish first, later ones into it get 409."""
    p = ledger.close_period(conn, period=ledger.parse_period(period), actor=user)
    return {**to_json(p), "period": f"{p['period']:%Y-%m}"}


@router.post("/periods/{period}/reopen", response_model=PeriodOut)
def reopen_period(period: str, body: ReopenIn, user: Admin, conn: ConnDep) -> dict:
    """Reopen a closed month (admin), with the reason in the audit log."""
    p = ledger.reopen_period(conn, period=ledger.parse_period(period), reason=body.reason, actor=user)
    return {**to_json(p), "period": f"{p['period']:%Y-%m}"}


def _profile_out(conn: ConnDep) -> dict:
    p = profiles.get(conn)
    today = profiles.local_date(p, None)
    cats = sorted({r["category"] for r in profiles.list_tax_rates(conn, country=p["country"])})
    rates = {c: profiles.tax_rate(conn, country=p["country"], category=c, on=today) for c in cats}
    return to_json({**p, "tax_rates_today": rates})


@router.get("/profile", response_model=ProfileOut)
def get_profile(user: Finance, conn: ConnDep) -> dict:
    """The company profile: country, currency, time zone, depreciation policy and today's tax rates."""
    return _profile_out(conn)


@router.put("/profile", response_model=ProfileOut)
def put_profile(body: ProfileIn, user: Admin, conn: ConnDep) -> dict:
    """Switch the company profile (admin); the currency changes only while the ledger is empty."""
    profiles.update(conn, country=body.country, company_name=body.company_name, actor=user)
    return _profile_out(conn)


@router.get("/tax-rates", response_model=list[TaxRateOut])
def list_tax_rates(user: Finance, conn: ConnDep, country: Literal["DE", "CN"] | None = None) -> list[dict]:
    """Every dated tax rate (a rate applies from valid_from until the next one of its category)."""
    return to_json(profiles.list_tax_rates(conn, country=country))


@router.post("/tax-rates", status_code=201, response_model=TaxRateOut)
def add_tax_rate(body: TaxRateIn, user: Admin, conn: ConnDep) -> dict:
    """A legislated rate change from a date on (admin); invoices before it keep the old rate."""
    return to_json(profiles.add_tax_rate(conn, **body.model_dump(), actor=user))


@router.get("/trial-balance", response_model=TrialBalanceOut)
def trial_balance(user: Finance, conn: ConnDep, start: From, end: To, format: Format = "json") -> object:
    """Opening, debits, credits and closing per account; `balanced` when debits equal credits."""
    return render(statements.trial_balance(conn, start=start, end=end), format, "trial_balance")


@router.get("/statements/{kind}", response_model=StatementOut)
def statement(
    kind: Literal["income", "balance-sheet", "cash-flow"],
    user: Finance,
    conn: ConnDep,
    start: From,
    end: To,
    format: Format = "json",
) -> object:
    """Income statement, balance sheet (at `to`) or cash-flow statement (direct method), with the previous period."""
    if kind == "income":
        st = statements.income_statement(conn, start=start, end=end)
    elif kind == "balance-sheet":
        statements.check_range(start, end)
        st = statements.balance_sheet(conn, start=start, end=end)
    else:
        st = statements.cash_flow(conn, start=start, end=end)
    return render(st, format, kind.replace("-", "_"))
