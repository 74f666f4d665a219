"""Payroll runs: the one owner of payroll_profiles, payroll_runs and payslips.

A run is one month (`YYYY-MM`) for every employee employed that month, with pay from their encrypted record,
overtime from attendance, unpaid leave, bonuses approved that month (reviews) and the year's earlier payslips for
cumulative tax withholding. Runs are idempotent per month: asking again for a month that has a run returns it
unchanged (the unique period and a transaction-scoped advisory lock make two concurrent requests produce one run).
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from decimal import Decimal

from psycopg.types.json import Jsonb
from pydantic import ValidationError

from backoffice.hr import employees, leave
from backoffice.payroll import ledger
from backoffice.payroll.rules import Rules, money, payslip
from backoffice.performance import service as performance
from fleetcore.audit import audit
from fleetcore.crypto import FieldCipher
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound
from fleetcore.jsonable import to_json

TOTAL_KEYS = (
    "base", "allowance", "overtime_pay", "bonus", "unpaid_deduction", "gross", "employee_social_total",
    "housing_fund_employee", "income_tax", "net", "employer_social_total", "housing_fund_employer", "employer_cost",
)  # fmt: skip


def payslip_context(run_id: int, employee_id: int) -> str:
    return f"payslips.detail_enc:{run_id}:{employee_id}"


def month_bounds(period: str) -> tuple[dt.date, dt.date]:
    """First and last day of 'YYYY-MM'."""
    try:
        first = dt.date(int(period[:4]), int(period[5:7]), 1)
    except (ValueError, IndexError):
        raise Invalid(f"period: {period!r} is not YYYY-MM", details={"field": "period"}) from None
    nxt = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, nxt - dt.timedelta(days=1)


def get_profile(conn: Conn, *, code: str) -> Rules:
    row = conn.execute("SELECT rules FROM payroll_profiles WHERE code = %s", (code,)).fetchone()
    if row is None:
        raise NotFound(f"no payroll profile {code!r}")
    return Rules.model_validate(row["rules"])


def list_profiles(conn: Conn) -> list[dict]:
    return conn.execute(
        "SELECT code, name, rules, updated_by, updated_at FROM payroll_profiles ORDER BY code"
    ).fetchall()


def set_profile(conn: Conn, *, code: str, name: str, rules: dict, actor: dict) -> dict:
    """Create or change a profile's rules (validated)."""
    try:
        parsed = Rules.model_validate(rules)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Invalid(f"rules.{where}: {first['msg']}", details={"field": f"rules.{where}"}) from None
    before = conn.execute("SELECT rules FROM payroll_profiles WHERE code = %s", (code,)).fetchone()
    row = one(
        conn.execute(
            """INSERT INTO payroll_profiles (code, name, rules, updated_by) VALUES (%s, %s, %s, %s)
               ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, rules = EXCLUDED.rules,
                      updated_by = EXCLUDED.updated_by, updated_at = now()
               RETURNING code, name, rules, updated_by, updated_at""",
            (code, name, Jsonb(to_json(parsed.model_dump())), actor["username"]),
        )
    )
    audit(conn, actor=actor, action="payroll_profile.set", entity="payroll_profiles", entity_id=code,
          before=before, after={"rules": row["rules"]})  # fmt: skip
    return row


def _year_to_date(
    conn: Conn, *, employee_id: int, period: str, cipher: FieldCipher
) -> tuple[Decimal, Decimal]:
    """Taxable income and tax withheld in the employee's earlier payslips of the same year."""
    rows = conn.execute(
        "SELECT run_id, detail_enc FROM payslips WHERE employee_id = %s AND period >= %s AND period < %s",
        (employee_id, period[:4] + "-01", period),
    ).fetchall()
    taxable, tax = Decimal(0), Decimal(0)
    for r in rows:
        d = json.loads(
            cipher.decrypt(r["detail_enc"], context=payslip_context(r["run_id"], employee_id)) or "{}"
        )
        taxable += Decimal(d["taxable_this_month"])
        tax += Decimal(d["income_tax"])
    return taxable, tax


def get_run(conn: Conn, *, period: str) -> dict | None:
    return conn.execute("SELECT * FROM payroll_runs WHERE period = %s", (period,)).fetchone()


def get_run_or_raise(conn: Conn, *, period: str) -> dict:
    r = get_run(conn, period=period)
    if r is None:
        raise NotFound(f"no payroll run for {period}")
    return r


def list_runs(conn: Conn) -> list[dict]:
    return conn.execute("SELECT * FROM payroll_runs ORDER BY period DESC").fetchall()


def run(conn: Conn, *, period: str, actor: dict, cipher: FieldCipher) -> tuple[dict, bool]:
    """The month's run (calculated, payslips stored, posted through finance when it can); (run, created)."""
    first, last = month_bounds(period)
    # Serialise concurrent requests for the same month; the second then finds the first's run.
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(f"payroll:{period}".encode()),))
    existing = get_run(conn, period=period)
    if existing is not None:
        return existing, False
    later = conn.execute(
        "SELECT period FROM payroll_runs WHERE period > %s AND period <= %s ORDER BY period LIMIT 1",
        (period, period[:4] + "-12"),
    ).fetchone()
    if later is not None:
        # Its cumulative withholding was computed without this month; running this one now would leave it wrong.
        raise Conflict(f"the {later['period']} run exists; months of a year run in order")
    staff = [
        e for e in employees.list_(conn, limit=100_000)
        if e["hire_date"] <= last and e["status"] != "terminated"
    ]  # fmt: skip
    start, end = (
        dt.datetime.combine(d, dt.time(), tzinfo=dt.UTC) for d in (first, last + dt.timedelta(days=1))
    )
    slips = []
    for e in staff:
        pay = employees.pay(e, cipher=cipher)
        ytd_taxable, ytd_tax = _year_to_date(conn, employee_id=e["id"], period=period, cipher=cipher)
        slip = payslip(
            get_profile(conn, code=e["payroll_profile"]),
            base=pay["base"],
            allowance=pay["allowance"],
            overtime_hours=leave.attendance_summary(conn, employee_id=e["id"], start=first, end=last)[
                "overtime_hours"
            ],
            bonus=performance.bonuses(conn, employee_id=e["id"], start=start, end=end, cipher=cipher),
            unpaid_days=leave.unpaid_days(conn, employee_id=e["id"], start=first, end=last),
            ytd_taxable=ytd_taxable,
            ytd_tax=ytd_tax,
        )
        slips.append((e, slip))
    currencies = {s["currency"] for _, s in slips} or {"CNY"}
    if len(currencies) > 1:
        raise Invalid(f"one run pays in one currency; profiles give {sorted(currencies)}")
    totals: dict = {k: money(sum((Decimal(s[k]) for _, s in slips), Decimal(0))) for k in TOTAL_KEYS}
    totals["currency"] = currencies.pop()
    row = one(
        conn.execute(
            """INSERT INTO payroll_runs (period, employees, totals, created_by) VALUES (%s, %s, %s, %s)
               RETURNING id""",
            (period, len(slips), Jsonb(to_json(totals)), actor["username"]),
        )
    )
    for e, slip in slips:
        conn.execute(
            "INSERT INTO payslips (run_id, employee_id, period, detail_enc) VALUES (%s, %s, %s, %s)",
            (
                row["id"],
                e["id"],
                period,
                cipher.encrypt(json.dumps(to_json(slip)), context=payslip_context(row["id"], e["id"])),
            ),  # fmt: skip
        )
    posting = ledger.post(conn, period=period, lines=ledger.department_lines(slips), actor=actor)
    conn.execute(
        "UPDATE payroll_runs SET posting = %s, status = %s WHERE id = %s",
        (Jsonb(posting), "posted" if posting["status"] == "posted" else "calculated", row["id"]),
    )
    audit(conn, actor=actor, action="payroll.run", entity="payroll_runs", entity_id=period,
          after={"employees": len(slips), "gross": totals["gross"], "posting": posting["status"]})  # fmt: skip
    return get_run_or_raise(conn, period=period), True


def payslips(conn: Conn, *, period: str, cipher: FieldCipher) -> list[dict]:
    """The run's payslips, decrypted (hr and admin only: the route says so)."""
    run_row = get_run_or_raise(conn, period=period)
    rows = conn.execute(
        "SELECT employee_id, detail_enc FROM payslips WHERE run_id = %s ORDER BY employee_id",
        (run_row["id"],),
    ).fetchall()
    return [{"employee_id": r["employee_id"], "period": period,
             **json.loads(cipher.decrypt(r["detail_enc"], context=payslip_context(run_row["id"], r["employee_id"]))
                          or "{}")} for r in rows]  # fmt: skip


def rotate_keys(conn: Conn, *, cipher: FieldCipher, actor: dict | None) -> int:
    """Re-encrypt payslips written under an older field key; returns how many."""
    n = 0
    for r in conn.execute("SELECT run_id, employee_id, detail_enc FROM payslips FOR UPDATE").fetchall():
        if cipher.needs_rotation(r["detail_enc"]):
            ctx = payslip_context(r["run_id"], r["employee_id"])
            conn.execute(
                "UPDATE payslips SET detail_enc = %s WHERE run_id = %s AND employee_id = %s",
                (cipher.encrypt(cipher.decrypt(r["detail_enc"], context=ctx), context=ctx), r["run_id"],
                 r["employee_id"]),
            )  # fmt: skip
            n += 1
    audit(conn, actor=actor, action="payslip.rotate_keys", entity="payslips", after={"rows": n})
    return n
