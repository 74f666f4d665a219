"""The one place payroll talks to finance: a run is posted through finance's ledger,
`backoffice.finance.service.post_payroll(conn, *, period, lines, actor)`, in the run's own transaction.

Finance takes one line per department (gross wages; withholdings = the employees' social insurance, housing fund
and income tax held back; the employer's contributions) and books wages and employer costs per department against
net wages payable and the dues to the tax office and the social-insurance and housing-fund centres. No employee is
named: the payslips stay in HR's (encrypted) records. Finance posts a period once; asking again returns that entry.
"""

from __future__ import annotations

from decimal import Decimal

from backoffice.finance import service as finance
from fleetcore.db import Conn
from fleetcore.jsonable import to_json


def department_lines(slips: list[tuple[dict, dict]]) -> list[dict]:
    """Per department: gross, withholdings and employer contributions summed over its employees' payslips."""
    by: dict[str, dict[str, Decimal]] = {}
    for employee, slip in slips:
        d = by.setdefault(employee["department"], {"gross": Decimal(0), "withholdings": Decimal(0),
                                                  "employer_contributions": Decimal(0)})  # fmt: skip
        d["gross"] += Decimal(slip["gross"])
        d["withholdings"] += (Decimal(slip["employee_social_total"]) + Decimal(slip["housing_fund_employee"])
                              + Decimal(slip["income_tax"]))  # fmt: skip
        d["employer_contributions"] += Decimal(slip["employer_social_total"]) + Decimal(
            slip["housing_fund_employer"]
        )
    return [{"department": dept, **sums} for dept, sums in sorted(by.items())]


def post(conn: Conn, *, period: str, lines: list[dict], actor: dict) -> dict:
    """Post the run through finance's ledger; returns what finance answered (JSON-ready)."""
    return {
        "status": "posted",
        "entry": to_json(finance.post_payroll(conn, period=period, lines=lines, actor=actor)),
    }
