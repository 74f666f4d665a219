"""The one place payroll talks to finance. Finance's ledger (`post_payroll(conn, *, period, lines, actor)`) is being
built in parallel: when backoffice.finance.service offers it, a run's journal lines are posted there; until then the
run keeps them with status `pending_finance` for finance to post."""

from __future__ import annotations

from decimal import Decimal

from backoffice.finance import service as finance
from fleetcore.db import Conn
from fleetcore.jsonable import to_json

POST_FUNCTION = "post_payroll"


def finance_posts_payroll() -> bool:
    return callable(getattr(finance, POST_FUNCTION, None))


def journal(totals: dict) -> list[dict]:
    """Balanced journal lines of a run: expenses on the debit side, what is owed to staff, the tax office and the
    social-insurance and housing-fund centres on the credit side."""
    t = {k: Decimal(str(v)) for k, v in totals.items() if k != "currency"}
    lines = [
        ("debit", "salary_expense", t["gross"]),
        ("debit", "employer_social_insurance_expense", t["employer_social_total"]),
        ("debit", "employer_housing_fund_expense", t["housing_fund_employer"]),
        ("credit", "net_pay_payable", t["net"]),
        ("credit", "income_tax_payable", t["income_tax"]),
        ("credit", "social_insurance_payable", t["employee_social_total"] + t["employer_social_total"]),
        ("credit", "housing_fund_payable", t["housing_fund_employee"] + t["housing_fund_employer"]),
    ]
    return [{"side": s, "account": a, "amount": amt, "currency": totals["currency"]} for s, a, amt in lines]


def post(conn: Conn, *, period: str, lines: list[dict], actor: dict) -> dict:
    """Post the run through finance when it can; otherwise say it waits for finance."""
    fn = getattr(finance, POST_FUNCTION, None)
    if callable(fn):
        return {"status": "posted", "result": to_json(fn(conn, period=period, lines=lines, actor=actor))}
    return {"status": "pending_finance", "lines": to_json(lines)}
