"""Payroll rules and the payslip computation (pure, no I/O).

The China profile (payroll_profiles 'cn', migration 0610, with sources): base pay, allowances, overtime at 150 % of
the hourly wage, an approved KPI bonus, unpaid leave deducted per paid day; social insurance and housing fund on the
contribution base (monthly wage clamped to the city's floor and ceiling); individual income tax by cumulative
withholding: each month the tax on the year-to-date taxable income, less the tax already withheld this year.
Every amount is Decimal, rounded to cents half up where it is paid.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel, Field

CENT = Decimal("0.01")


def money(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


class Rules(BaseModel):
    """A payroll profile's rules (all rates as fractions)."""

    currency: str = Field(min_length=3, max_length=3)
    paid_days_per_month: Decimal = Field(gt=0)
    hours_per_day: Decimal = Field(gt=0)
    overtime_multiplier: Decimal = Field(ge=1)
    contribution_base_min: Decimal = Field(ge=0)
    contribution_base_max: Decimal = Field(gt=0)
    employee_rates: dict[str, Decimal]
    employer_rates: dict[str, Decimal]
    housing_fund_rate: Decimal = Field(ge=0, le=Decimal("0.12"))
    monthly_basic_deduction: Decimal = Field(ge=0)
    iit_brackets: list[tuple[Decimal | None, Decimal, Decimal]] = Field(
        min_length=1, description="(upper bound of cumulative taxable income or null, rate, quick deduction)"
    )


def cumulative_tax(taxable: Decimal, brackets: list[tuple[Decimal | None, Decimal, Decimal]]) -> Decimal:
    """Tax on the year-to-date taxable income by the withholding table (rate × income − quick deduction)."""
    if taxable <= 0:
        return Decimal("0.00")
    for upper, rate, quick in brackets:
        if upper is None or taxable <= upper:
            return money(taxable * rate - quick)
    raise ValueError("the last bracket must be open-ended")


def payslip(
    rules: Rules,
    *,
    base: Decimal,
    allowance: Decimal,
    overtime_hours: Decimal,
    bonus: Decimal,
    unpaid_days: Decimal,
    ytd_taxable: Decimal,
    ytd_tax: Decimal,
) -> dict:
    """One month's payslip lines; `ytd_*` are the year's earlier months (cumulative withholding)."""
    daily = base / rules.paid_days_per_month
    overtime = money(overtime_hours * daily / rules.hours_per_day * rules.overtime_multiplier)
    unpaid = money(daily * unpaid_days)
    gross = money(base + allowance + overtime + bonus - unpaid)
    contribution_base = min(max(base + allowance, rules.contribution_base_min), rules.contribution_base_max)
    employee_social = {k: money(contribution_base * r) for k, r in rules.employee_rates.items()}
    employer_social = {k: money(contribution_base * r) for k, r in rules.employer_rates.items()}
    housing = money(contribution_base * rules.housing_fund_rate)
    social_total = sum(employee_social.values(), Decimal(0))
    taxable = gross - social_total - housing - rules.monthly_basic_deduction
    cum_taxable = ytd_taxable + taxable
    cum_tax = cumulative_tax(cum_taxable, rules.iit_brackets)
    iit = max(Decimal("0.00"), cum_tax - ytd_tax)
    net = gross - social_total - housing - iit
    employer_total = sum(employer_social.values(), Decimal(0))
    return {
        "currency": rules.currency,
        "base": money(base),
        "allowance": money(allowance),
        "overtime_hours": overtime_hours,
        "overtime_pay": overtime,
        "bonus": money(bonus),
        "unpaid_days": unpaid_days,
        "unpaid_deduction": unpaid,
        "gross": gross,
        "contribution_base": money(contribution_base),
        "employee_social": employee_social,
        "employee_social_total": social_total,
        "housing_fund_employee": housing,
        "taxable_this_month": money(taxable),
        "cumulative_taxable": money(cum_taxable),
        "cumulative_tax": cum_tax,
        "income_tax": iit,
        "net": net,
        "employer_social": employer_social,
        "employer_social_total": employer_total,
        "housing_fund_employer": housing,
        "employer_cost": gross + employer_total + housing,
    }
