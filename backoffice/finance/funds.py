"""Funds: cash and bank balances, receivables and payables ageing, bank-statement import with matching, and the
30-day cash forecast.

The one writer of fin_bank_statements and fin_bank_lines.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from decimal import Decimal, InvalidOperation

from backoffice.finance import ledger, payables, profiles
from backoffice.finance import service as invoices
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Invalid, NotFound

ZERO = Decimal("0.00")
BUCKETS = (("0-30", 0, 30), ("31-60", 31, 60), ("61-90", 61, 90), (">90", 91, None))
BANK_COLUMNS = ("date", "amount", "reference")
MAX_BANK_LINES = 20_000
FORECAST_DAYS = 30
TOKEN_RE = re.compile(r"[A-Za-z0-9-]+")


def cash_positions(conn: Conn, *, at: dt.date | None = None) -> list[dict]:
    """Each cash and bank account with its balance (at the end of `at`, or now)."""
    accs = {a["code"]: a for a in ledger.list_accounts(conn) if a["cash"]}
    bal = ledger.balances(conn, accounts=list(accs), upto=at)
    return [
        {"account": c, "name": a["name"], "name_zh": a["name_zh"], "balance": bal.get(c, ZERO)}
        for c, a in accs.items()
    ]


def _bucket(days: int) -> str:
    for name, lo, hi in BUCKETS:
        if days >= lo and (hi is None or days <= hi):
            return name
    return BUCKETS[0][0]


def ageing(conn: Conn, *, side: str, as_of: dt.date | None = None) -> dict:
    """Open receivables (by invoice date) or payables (by bill date) in 0-30, 31-60, 61-90, >90 days, per
    customer or supplier, with each item; the total equals the ledger's receivables / payables account."""
    profile = profiles.get(conn)
    as_of = as_of or profiles.local_date(profile, None)
    if side == "receivable":
        items = [
            {
                "id": r["id"],
                "reference": r["number"],
                "party": f"customer {r['customer_id']}",
                "date": profiles.local_date(profile, r["issued_at"]),
                "open": r["open"],
            }
            for r in conn.execute(
                """SELECT id, number, customer_id, issued_at, gross - coalesce(p.paid, 0) - credited + refunded AS open
                     FROM invoices i LEFT JOIN LATERAL (SELECT sum(amount) AS paid FROM payments WHERE invoice_id = i.id) p
                          ON true
                    WHERE status <> 'void' ORDER BY issued_at, id"""
            )
            if r["open"] != 0
        ]
        account = "1110"
    elif side == "payable":
        items = [
            {
                "id": r["id"],
                "reference": r["reference"],
                "party": r["supplier"],
                "date": r["bill_date"],
                "due_date": r["due_date"],
                "open": r["gross"] - r["paid"],
            }
            for r in conn.execute("SELECT * FROM fin_payables WHERE status = 'open' ORDER BY bill_date, id")
        ]
        account = "2100"
    else:
        raise Invalid("side must be receivable or payable", details={"field": "side"})
    totals = {name: ZERO for name, _, _ in BUCKETS}
    parties: dict[str, dict] = {}
    for it in items:
        it["days"] = max((as_of - it["date"]).days, 0)
        it["bucket"] = _bucket(it["days"])
        totals[it["bucket"]] += it["open"]
        p = parties.setdefault(
            it["party"], {"party": it["party"], **{n: ZERO for n, _, _ in BUCKETS}, "total": ZERO}
        )
        p[it["bucket"]] += it["open"]
        p["total"] += it["open"]
    gl = ledger.balances(conn, accounts=[account]).get(account, ZERO)
    total = sum(totals.values(), ZERO)
    return {
        "side": side,
        "as_of": as_of,
        "currency": profile["currency"],
        "buckets": totals,
        "total": total,
        "ledger_balance": gl if side == "receivable" else -gl,
        "reconciled": total == (gl if side == "receivable" else -gl),
        "parties": sorted(parties.values(), key=lambda p: -p["total"]),
        "items": items,
    }


# ---- bank statements -------------------------------------------------------------------------------------------


def _parse_bank_csv(text: str) -> list[dict]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in (next(reader, None) or [])]
    if (
        header[:3] != list(BANK_COLUMNS)
        or len(header) > 4
        or (len(header) == 4 and header[3] != "counterparty")
    ):
        raise Invalid("line 1: the header must be date,amount,reference[,counterparty]", details={"line": 1})
    out: list[dict] = []
    seen: dict[str, int] = {}
    for n, rec in enumerate(reader, 2):
        if not rec or all(not c.strip() for c in rec):
            continue
        if n > MAX_BANK_LINES:
            raise Invalid(f"at most {MAX_BANK_LINES} lines per statement")
        if len(rec) != len(header):
            raise Invalid(f"line {n}: {len(rec)} fields, expected {len(header)}", details={"line": n})
        date_s, amount_s, ref = rec[0].strip(), rec[1].strip(), rec[2].strip()
        try:
            booked = dt.date.fromisoformat(date_s)
        except ValueError:
            raise Invalid(f"line {n}: date {date_s!r} is not YYYY-MM-DD", details={"line": n}) from None
        try:
            amount = Decimal(amount_s)
        except InvalidOperation:
            raise Invalid(f"line {n}: amount {amount_s!r} is not a number", details={"line": n}) from None
        if not amount.is_finite() or amount == 0 or amount != profiles.money(amount):
            raise Invalid(
                f"line {n}: amount {amount_s!r} must be non-zero with at most 2 decimals", details={"line": n}
            )
        if not ref:
            raise Invalid(f"line {n}: reference is empty", details={"line": n})
        counterparty = rec[3].strip() if len(rec) > 3 else ""
        base = f"{booked}|{amount}|{ref}|{counterparty}"
        seen[base] = seen.get(base, 0) + 1  # identical lines in one statement stay distinct
        out.append(
            {
                "line_no": n,
                "booked_on": booked,
                "amount": amount,
                "reference": ref[:200],
                "counterparty": counterparty[:200],
                "base": base,
                "occurrence": seen[base],
            }
        )
    if not out:
        raise Invalid("the statement has no lines")
    return out


def _match_incoming(conn: Conn, line: dict, actor: dict) -> dict:
    pay = conn.execute(
        """SELECT id FROM payments WHERE reference = %s AND amount = %s AND reconciled_at IS NULL
            ORDER BY id LIMIT 1 FOR UPDATE""",
        (line["reference"], line["amount"]),
    ).fetchone()
    if pay is not None:
        conn.execute("UPDATE payments SET reconciled_at = now() WHERE id = %s", (pay["id"],))
        return {"status": "matched", "payment_id": pay["id"], "note": "recorded payment"}
    tokens = TOKEN_RE.findall(line["reference"])
    inv = conn.execute(
        "SELECT id FROM invoices WHERE number = ANY(%s) AND status = 'open' ORDER BY id LIMIT 1", (tokens,)
    ).fetchone()
    if inv is not None:
        balance = invoices.get_invoice_or_raise(conn, invoice_id=inv["id"])["balance"]
        if balance == line["amount"]:
            tz_noon = dt.datetime.combine(line["booked_on"], dt.time(12), tzinfo=dt.UTC)
            p, _ = invoices.record_payment(
                conn,
                invoice_id=inv["id"],
                amount=line["amount"],
                method="bank_transfer",
                reference=line["reference"],
                paid_at=tz_noon,
                actor=actor,
            )
            conn.execute("UPDATE payments SET reconciled_at = now() WHERE id = %s", (p["id"],))
            return {
                "status": "matched",
                "payment_id": p["id"],
                "invoice_id": inv["id"],
                "note": "invoice paid",
            }
    return {"status": "unmatched", "note": "no payment or open invoice with this reference and amount"}


def _match_outgoing(conn: Conn, line: dict, actor: dict) -> dict:
    for p in conn.execute(
        "SELECT * FROM fin_payables WHERE status = 'open' ORDER BY due_date, id"
    ).fetchall():
        if p["reference"] in line["reference"] and p["gross"] - p["paid"] == -line["amount"]:
            r = payables.pay_supplier(
                conn,
                payable_id=p["id"],
                amount=-line["amount"],
                paid_on=line["booked_on"],
                reference=line["reference"],
                actor=actor,
            )
            return {
                "status": "matched",
                "supplier_payment_id": r["payment"]["id"],
                "note": "supplier bill paid",
            }
    return {"status": "unmatched", "note": "no open supplier bill with this reference and amount"}


def import_bank_statement(conn: Conn, *, text: str, account: str, filename: str, actor: dict) -> dict:
    """Import a bank statement CSV (date,amount,reference[,counterparty]; incoming positive): every line is
    checked before any is stored (a bad line is named by its number, nothing is imported); lines already imported
    are skipped; incoming money is matched to a recorded payment or an open invoice by reference and amount,
    outgoing money to an open supplier bill; the rest is listed for a person."""
    acc = ledger.get_account(conn, code=account)
    if acc is None or not acc["cash"]:
        raise Invalid(f"account: {account!r} is not a bank or cash account", details={"field": "account"})
    lines = _parse_bank_csv(text)
    stmt = one(
        conn.execute(
            """INSERT INTO fin_bank_statements (account_code, filename, lines, imported_by) VALUES (%s, %s, %s, %s)
               RETURNING *""",
            (account, filename[:200], len(lines), actor["username"]),
        )
    )
    result = {
        "statement_id": stmt["id"],
        "lines": len(lines),
        "matched": 0,
        "unmatched": 0,
        "duplicates": 0,
        "paid_invoices": [],
    }
    for ln in lines:
        fp = hashlib.sha256(f"{account}|{ln['base']}|{ln['occurrence']}".encode()).hexdigest()
        if conn.execute("SELECT 1 FROM fin_bank_lines WHERE fingerprint = %s", (fp,)).fetchone():
            result["duplicates"] += 1
            continue
        m = _match_incoming(conn, ln, actor) if ln["amount"] > 0 else _match_outgoing(conn, ln, actor)
        conn.execute(
            """INSERT INTO fin_bank_lines (statement_id, line_no, booked_on, amount, reference, counterparty,
                                           fingerprint, status, payment_id, supplier_payment_id, note)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                stmt["id"],
                ln["line_no"],
                ln["booked_on"],
                ln["amount"],
                ln["reference"],
                ln["counterparty"],
                fp,
                m["status"],
                m.get("payment_id"),
                m.get("supplier_payment_id"),
                m["note"],
            ),
        )
        result[m["status"]] += 1
        if m.get("invoice_id"):
            result["paid_invoices"].append(m["invoice_id"])
    audit(
        conn,
        actor=actor,
        action="finance.bank_statement.import",
        entity="fin_bank_statements",
        entity_id=stmt["id"],
        after={k: v for k, v in result.items() if k != "paid_invoices"},
    )
    return result


def unmatched_lines(conn: Conn) -> list[dict]:
    return conn.execute(
        "SELECT * FROM fin_bank_lines WHERE status = 'unmatched' ORDER BY booked_on, id"
    ).fetchall()


def resolve_line(conn: Conn, *, line_id: int, note: str, actor: dict) -> dict:
    """A person dealt with an unmatched line (booked by hand, or not ours): it leaves the list, with the note."""
    row = conn.execute(
        "UPDATE fin_bank_lines SET status = 'resolved', note = %s WHERE id = %s AND status = 'unmatched' RETURNING *",
        (note, line_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"no unmatched bank line {line_id}")
    audit(
        conn,
        actor=actor,
        action="finance.bank_line.resolve",
        entity="fin_bank_lines",
        entity_id=line_id,
        after={"note": note},
    )
    return row


# ---- cash forecast ---------------------------------------------------------------------------------------------


def cash_forecast(conn: Conn, *, expected_receipts: list[dict], days: int = FORECAST_DAYS) -> dict:
    """Cash and bank today, then day by day: money expected from confirmed orders (`expected_receipts`, each
    {date, amount, order_id}, from backoffice.orders) in, open supplier bills out on their due date (overdue ones
    today); the lowest point and the day it falls below zero, if it does."""
    profile = profiles.get(conn)
    today = profiles.local_date(profile, None)
    horizon = today + dt.timedelta(days=days - 1)
    opening = sum((p["balance"] for p in cash_positions(conn)), ZERO)
    inflow = {today + dt.timedelta(days=i): ZERO for i in range(days)}
    outflow = dict.fromkeys(inflow, ZERO)
    for r in expected_receipts:
        d = max(r["date"], today)
        if d <= horizon:
            inflow[d] += r["amount"]
    for p in conn.execute("SELECT due_date, gross - paid AS open FROM fin_payables WHERE status = 'open'"):
        d = max(p["due_date"], today)
        if d <= horizon:
            outflow[d] += p["open"]
    bal, series, low, negative_on = opening, [], (opening, today), None
    for d in sorted(inflow):
        bal += inflow[d] - outflow[d]
        series.append({"date": d, "inflow": inflow[d], "outflow": outflow[d], "balance": bal})
        if bal < low[0]:
            low = (bal, d)
        if bal < 0 and negative_on is None:
            negative_on = d
    return {
        "as_of": today,
        "currency": profile["currency"],
        "opening": opening,
        "inflow": sum(inflow.values(), ZERO),
        "outflow": sum(outflow.values(), ZERO),
        "closing": bal,
        "lowest": {"balance": low[0], "date": low[1]},
        "negative_on": negative_on,
        "days": series,
    }
