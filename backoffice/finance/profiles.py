"""The company profile (country, currency, time zone), dated tax rates, invoice numbering and the money rule.

One profile is active (fin_company_profile has one row). Germany is the default: EUR, 19 % VAT. China: CNY, VAT 13 %
on leasing of movable property (car rental), 6 % on services, 13 % on goods and repairs bought in, and gap-free
invoice numbers per series (one series per tax category, one for credit notes), as fapiao are issued per series.

**The money rule** (one, everywhere): every amount is a Decimal, rounded half up (commercial rounding, as § 14 UStG
practice and China's 四舍五入 both do) to the currency's minor unit at the moment it is created — a line amount, the
VAT of one rate group, one month's depreciation — and never again: sums of rounded amounts are exact.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid

# ISO 4217 minor units of the currencies a profile may use.
MINOR_UNITS = {"EUR": 2, "CNY": 2}

# Presets per country. Depreciation: Germany's AfA table for general assets (BMF 2000, 4.2.1: cars 6 years,
# straight line, no residual, from the month of acquisition, § 7 (1) EStG); China's Enterprise Income Tax Law
# implementing regulations Art. 60 (vehicles other than aircraft, trains and ships: at least 4 years) with the usual
# 5 % residual, from the month after the asset is put in use.
PRESETS: dict[str, dict] = {
    "DE": {
        "country": "DE",
        "company_name": "Fleet Mobility GmbH",
        "currency": "EUR",
        "minor_unit": 2,
        "timezone": "Europe/Berlin",
        "useful_life_months": 72,
        "residual_pct": Decimal("0"),
        "depreciation_from_next_month": False,
        "purchase_tax_category": "standard",
    },
    "CN": {
        "country": "CN",
        "company_name": "弗利特汽车租赁有限公司",
        "currency": "CNY",
        "minor_unit": 2,
        "timezone": "Asia/Shanghai",
        "useful_life_months": 48,
        "residual_pct": Decimal("0.05"),
        "depreciation_from_next_month": True,
        "purchase_tax_category": "goods",
    },
}
# China: invoice series per tax category (租赁 leasing, 服务 services, 不征税 non-taxable) and credit notes (红字).
CN_SERIES = {"leasing": "ZL", "services": "FW", "non_taxable": "BZ", "credit_note": "HZ"}


def money(x: Decimal | int | str, minor_unit: int = 2) -> Decimal:
    """The money rule: half up to the currency's minor unit."""
    return Decimal(str(x)).quantize(Decimal(1).scaleb(-minor_unit), rounding=ROUND_HALF_UP)


def get(conn: Conn) -> dict:
    """The active company profile with its preset (currency, time zone, depreciation policy)."""
    row = one(conn.execute("SELECT * FROM fin_company_profile WHERE id = 1"))
    return {**PRESETS[row["country"]], **row}


def local_date(profile: dict, ts: dt.datetime | None) -> dt.date:
    """The business date of a moment in the company's time zone (today when None)."""
    ts = ts or dt.datetime.now(dt.UTC)
    return ts.astimezone(ZoneInfo(profile["timezone"])).date()


def update(conn: Conn, *, country: str, company_name: str | None, actor: dict) -> dict:
    """Switch the profile; the currency may change only while the ledger is empty (amounts are never converted)."""
    if country not in PRESETS:
        raise Invalid(f"country must be one of {', '.join(PRESETS)}", details={"field": "country"})
    before = get(conn)
    preset = PRESETS[country]
    if (
        preset["currency"] != before["currency"]
        and conn.execute("SELECT 1 FROM fin_journal_entries LIMIT 1").fetchone()
    ):
        raise Conflict(
            f"the ledger holds {before['currency']} entries; the company currency cannot change to {preset['currency']}"
        )
    conn.execute(
        """UPDATE fin_company_profile SET country = %s, company_name = %s, currency = %s, minor_unit = %s,
                  timezone = %s, updated_at = now() WHERE id = 1""",
        (
            country,
            company_name or preset["company_name"],
            preset["currency"],
            preset["minor_unit"],
            preset["timezone"],
        ),
    )
    after = get(conn)
    audit(
        conn,
        actor=actor,
        action="finance.profile.update",
        entity="fin_company_profile",
        entity_id=1,
        before={"country": before["country"], "currency": before["currency"]},
        after={"country": after["country"], "currency": after["currency"]},
    )
    return after


# ---- tax -------------------------------------------------------------------------------------------------------


def tax_category(country: str, line_code: str) -> str:
    """The VAT category of an invoice line.

    Damages are compensation without a supply (no VAT in either country). China: what the customer pays with the
    rental (days, km, fuel, late and one-way fees, cancellation fees) is a price-external charge of the leasing and
    follows its 13 % (Caishui [2016] 36, Annex 1 Art. 37); lines coded `service_*` are separate services at 6 %.
    """
    if line_code == "damage":
        return "non_taxable"
    if country == "DE":
        return "standard"
    return "services" if line_code.startswith("service_") else "leasing"


def tax_rate(conn: Conn, *, country: str, category: str, on: dt.date) -> Decimal:
    """The rate in force on a date (the latest row valid from on or before it)."""
    row = conn.execute(
        """SELECT rate FROM fin_tax_rates WHERE country = %s AND category = %s AND valid_from <= %s
            ORDER BY valid_from DESC LIMIT 1""",
        (country, category, on),
    ).fetchone()
    if row is None:
        raise Invalid(f"no {country} tax rate for category {category!r} on {on}")
    return row["rate"]


def list_tax_rates(conn: Conn, *, country: str | None = None) -> list[dict]:
    return conn.execute(
        """SELECT * FROM fin_tax_rates WHERE %(c)s::text IS NULL OR country = %(c)s
            ORDER BY country, category, valid_from""",
        {"c": country},
    ).fetchall()


def add_tax_rate(
    conn: Conn, *, country: str, category: str, rate: Decimal, valid_from: dt.date, note: str, actor: dict
) -> dict:
    """A new rate from a date on (e.g. a legislated change); earlier invoices keep the rate of their date."""
    if country not in PRESETS:
        raise Invalid(f"country must be one of {', '.join(PRESETS)}")
    if not (Decimal(0) <= rate < 1):
        raise Invalid("rate is a fraction between 0 and 1, e.g. 0.19")
    if conn.execute(
        "SELECT 1 FROM fin_tax_rates WHERE country = %s AND category = %s AND valid_from = %s",
        (country, category, valid_from),
    ).fetchone():
        raise Conflict(f"a {country} {category} rate from {valid_from} exists already")
    row = one(
        conn.execute(
            """INSERT INTO fin_tax_rates (country, category, rate, valid_from, note, created_by)
               VALUES (%s, %s, %s, %s, %s, %s) RETURNING *""",
            (country, category, rate, valid_from, note, actor["username"]),
        )
    )
    audit(
        conn,
        actor=actor,
        action="finance.tax_rate.create",
        entity="fin_tax_rates",
        entity_id=f"{country}/{category}/{valid_from}",
        after={"rate": str(rate)},
    )
    return row


def invoice_totals(conn: Conn, *, profile: dict, lines: list[dict], on: dt.date) -> dict:
    """Net, VAT and gross of invoice lines: VAT per rate group, each group's VAT rounded once.

    Returns the lines with their tax_category and vat_rate, and `vat_rate` of the invoice (None when lines differ).
    """
    mu = profile["minor_unit"]
    out: list[dict] = []
    groups: dict[Decimal, Decimal] = {}
    for ln in lines:
        cat = tax_category(profile["country"], ln["code"])
        rate = tax_rate(conn, country=profile["country"], category=cat, on=on)
        amount = money(ln["amount"], mu)
        out.append({**ln, "amount": amount, "tax_category": cat, "vat_rate": rate})
        groups[rate] = groups.get(rate, Decimal(0)) + amount
    net = sum(groups.values(), Decimal(0))
    vat = sum((money(n * r, mu) for r, n in groups.items()), Decimal(0))
    rates = set(groups)
    single = next(iter(rates)) if len(rates) == 1 else None
    if not rates:
        single = tax_rate(
            conn, country=profile["country"], category=tax_category(profile["country"], ""), on=on
        )
    return {"lines": out, "net": net, "vat": vat, "gross": net + vat, "vat_rate": single}


# ---- numbering -------------------------------------------------------------------------------------------------


def _next_in_series(conn: Conn, *, country: str, series: str, year: int) -> int:
    """The next number of a series (gap-free: the counter row is locked until the transaction ends)."""
    return one(
        conn.execute(
            """INSERT INTO fin_invoice_series (country, series, year, last_no) VALUES (%s, %s, %s, 1)
               ON CONFLICT (country, series, year) DO UPDATE SET last_no = fin_invoice_series.last_no + 1
               RETURNING last_no""",
            (country, series, year),
        )
    )["last_no"]


def invoice_number(conn: Conn, *, profile: dict, invoice_id: int, category: str, on: dt.date) -> str:
    """Germany: INV-<year>-<id> (as before). China: <series><year><8-digit number>, series by tax category."""
    if profile["country"] == "DE":
        return f"INV-{on.year}-{invoice_id:06d}"
    series = CN_SERIES.get(category, "ZL")
    n = _next_in_series(conn, country="CN", series=series, year=on.year)
    return f"{series}{on.year}{n:08d}"


def credit_note_number(conn: Conn, *, profile: dict, on: dt.date) -> str:
    """Credit notes have their own gap-free series in both countries."""
    if profile["country"] == "DE":
        n = _next_in_series(conn, country="DE", series="CN", year=on.year)
        return f"CN-{on.year}-{n:06d}"
    series = CN_SERIES["credit_note"]
    n = _next_in_series(conn, country="CN", series=series, year=on.year)
    return f"{series}{on.year}{n:08d}"
