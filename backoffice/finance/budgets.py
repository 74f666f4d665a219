"""Budgets per account x department x month: CSV import and export, versions through request -> approve (admin)
-> new version (every version kept, immutable), actual versus budget, and variance notices to finance.

The one writer of fin_budget_lines, fin_budget_requests and fin_budget_alerts.
Actuals come from the journal. A line's department is its own; operational postings that name none (rentals,
maintenance, fuel, depreciation) belong to `operations`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal, InvalidOperation

from backoffice.finance import ledger, profiles
from backoffice.notifications import service as notifications
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.documents import to_csv
from fleetcore.errors import Conflict, Invalid, NotFound

CSV_COLUMNS = ("account", "department", "period", "amount")
DEPARTMENT_RE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
DEFAULT_DEPARTMENT = "operations"
MAX_CSV_LINES = 20_000

_CURRENT = """SELECT DISTINCT ON (account_code, department, period) *
                FROM fin_budget_lines ORDER BY account_code, department, period, version DESC"""


def _current(conn: Conn, account: str, department: str, period: dt.date) -> dict | None:
    return conn.execute(
        """SELECT * FROM fin_budget_lines WHERE account_code = %s AND department = %s AND period = %s
            ORDER BY version DESC LIMIT 1""",
        (account, department, period),
    ).fetchone()


def list_(conn: Conn, *, start: dt.date | None = None, end: dt.date | None = None) -> list[dict]:
    """The current version of every budget line in [start, end] (months)."""
    return conn.execute(
        f"""SELECT * FROM ({_CURRENT}) b WHERE (%(s)s::date IS NULL OR period >= %(s)s)
              AND (%(e)s::date IS NULL OR period <= %(e)s) ORDER BY period, account_code, department""",
        {"s": start, "e": end},
    ).fetchall()


def history(conn: Conn, *, account: str, department: str, period: dt.date) -> list[dict]:
    """Every version of one budget line, the original first."""
    return conn.execute(
        """SELECT * FROM fin_budget_lines WHERE account_code = %s AND department = %s AND period = %s
            ORDER BY version""",
        (account, department, period),
    ).fetchall()


def _parse_csv(text: str, postable: set[str]) -> list[dict]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header] != list(CSV_COLUMNS):
        raise Invalid(f"line 1: the header must be {','.join(CSV_COLUMNS)}", details={"line": 1})
    rows, seen = [], set()
    for n, rec in enumerate(reader, 2):
        if not rec or all(not c.strip() for c in rec):
            continue
        if n > MAX_CSV_LINES:
            raise Invalid(f"at most {MAX_CSV_LINES} lines per import")
        if len(rec) != len(CSV_COLUMNS):
            raise Invalid(f"line {n}: {len(rec)} fields, expected {len(CSV_COLUMNS)}", details={"line": n})
        account, dept, period, amount = (c.strip() for c in rec)
        if account not in postable:
            raise Invalid(f"line {n}: unknown or non-postable account {account!r}", details={"line": n})
        if not DEPARTMENT_RE.match(dept):
            raise Invalid(f"line {n}: department {dept!r} is not a department code", details={"line": n})
        try:
            p = ledger.parse_period(period)
        except Invalid:
            raise Invalid(f"line {n}: period {period!r} is not YYYY-MM", details={"line": n}) from None
        try:
            value = profiles.money(Decimal(amount))
        except (InvalidOperation, ValueError):
            raise Invalid(f"line {n}: amount {amount!r} is not a number", details={"line": n}) from None
        if value < 0 or not value.is_finite():
            raise Invalid(f"line {n}: amount may not be negative", details={"line": n})
        if (account, dept, p) in seen:
            raise Invalid(f"line {n}: {account}/{dept}/{period} appears twice", details={"line": n})
        seen.add((account, dept, p))
        rows.append({"line": n, "account": account, "department": dept, "period": p, "amount": value})
    if not rows:
        raise Invalid("the file has no budget lines")
    return rows


def import_csv(conn: Conn, *, text: str, actor: dict) -> dict:
    """Import original budgets (version 1); every line is checked before any is written (all or nothing).

    A line that has a budget already is refused: changes go through an adjustment request.
    """
    postable = {a["code"] for a in ledger.list_accounts(conn) if a["postable"]}
    rows = _parse_csv(text, postable)
    for r in rows:
        cur = _current(conn, r["account"], r["department"], r["period"])
        if cur is not None:
            raise Conflict(
                f"line {r['line']}: {r['account']}/{r['department']}/{r['period']:%Y-%m} has a budget already "
                f"(version {cur['version']}); change it through an adjustment request",
                details={"line": r["line"]},
            )
    with conn.cursor() as c:
        c.executemany(
            """INSERT INTO fin_budget_lines (account_code, department, period, version, amount, created_by)
               VALUES (%s, %s, %s, 1, %s, %s)""",
            [(r["account"], r["department"], r["period"], r["amount"], actor["username"]) for r in rows],
        )
    audit(
        conn,
        actor=actor,
        action="finance.budget.import",
        entity="fin_budget_lines",
        after={"lines": len(rows)},
    )
    return {"imported": len(rows)}


def export_csv(conn: Conn, *, start: dt.date | None = None, end: dt.date | None = None) -> bytes:
    rows = list_(conn, start=start, end=end)
    return to_csv(
        (*CSV_COLUMNS, "version"),
        [
            (r["account_code"], r["department"], f"{r['period']:%Y-%m}", r["amount"], r["version"])
            for r in rows
        ],
    )


def request_adjustment(
    conn: Conn, *, account: str, department: str, period: dt.date, amount: Decimal, reason: str, actor: dict
) -> dict:
    """Ask to change a budget line (or add one); an admin approves it into a new version."""
    acc = ledger.get_account(conn, code=account)
    if acc is None or not acc["postable"]:
        raise Invalid(f"account: unknown or non-postable account {account!r}", details={"field": "account"})
    cur = _current(conn, account, department, period)
    req = one(
        conn.execute(
            """INSERT INTO fin_budget_requests (account_code, department, period, base_version, amount, reason,
                                                requested_by)
               VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *""",
            (account, department, period, cur["version"] if cur else 0, amount, reason, actor["username"]),
        )
    )
    audit(
        conn,
        actor=actor,
        action="finance.budget.request",
        entity="fin_budget_requests",
        entity_id=req["id"],
        after={"amount": str(amount), "base_version": req["base_version"]},
    )
    return req


def get_request(conn: Conn, *, request_id: int, for_update: bool = False) -> dict:
    r = conn.execute(
        "SELECT * FROM fin_budget_requests WHERE id = %s" + (" FOR UPDATE" if for_update else ""),
        (request_id,),
    ).fetchone()
    if r is None:
        raise NotFound(f"no budget request {request_id}")
    return r


def list_requests(conn: Conn, *, status: str | None = None) -> list[dict]:
    return conn.execute(
        "SELECT * FROM fin_budget_requests WHERE %(s)s::text IS NULL OR status = %(s)s ORDER BY id DESC",
        {"s": status},
    ).fetchall()


def decide(conn: Conn, *, request_id: int, approve: bool, note: str, actor: dict) -> dict:
    """Approve (a new version of the line) or reject a pending request; the requester cannot approve their own."""
    req = get_request(conn, request_id=request_id, for_update=True)
    if req["status"] != "pending":
        raise Conflict(f"budget request {request_id} is {req['status']} already")
    if approve and req["requested_by"] == actor["username"]:
        raise Conflict("a request is approved by someone other than its requester (four-eyes principle)")
    version = None
    if approve:
        cur = _current(conn, req["account_code"], req["department"], req["period"])
        now = cur["version"] if cur else 0
        if now != req["base_version"]:
            raise Conflict(
                f"the budget line changed since the request (version {now}, requested on {req['base_version']})"
            )
        version = now + 1
        conn.execute(
            """INSERT INTO fin_budget_lines (account_code, department, period, version, amount, request_id, created_by)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (
                req["account_code"],
                req["department"],
                req["period"],
                version,
                req["amount"],
                request_id,
                actor["username"],
            ),
        )
    after = one(
        conn.execute(
            """UPDATE fin_budget_requests SET status = %s, decided_by = %s, decided_at = now(), note = %s
                WHERE id = %s RETURNING *""",
            ("approved" if approve else "rejected", actor["username"], note, request_id),
        )
    )
    audit(
        conn,
        actor=actor,
        action="finance.budget.approve" if approve else "finance.budget.reject",
        entity="fin_budget_requests",
        entity_id=request_id,
        before={"status": "pending"},
        after={"status": after["status"], "version": version},
    )
    return {**after, "version": version}


def variance(conn: Conn, *, period: dt.date, threshold_pct: Decimal, today: dt.date | None = None) -> dict:
    """Actual against the current budget per account x department for a month: variance in amount and %.

    Actual is in the account's natural sign (expenses and assets debit, revenue and liabilities credit); a budget
    line without any actual shows -100 %; revenue or cost without a budget is listed with no %.
    `over_threshold`: |variance %| beyond the threshold. `adverse`: beyond it the wrong way — a cost over budget (at
    any time), revenue under budget (once the month has ended: early in a month every revenue line is "under").
    """
    start, end = period, ledger.month_end(period)
    today = today or profiles.local_date(profiles.get(conn), None)
    types = {a["code"]: a["type"] for a in ledger.list_accounts(conn, include_inactive=True)}
    actual = conn.execute(
        """SELECT account_code, coalesce(department, %s) AS department, sum(amount) AS s
             FROM fin_journal_lines WHERE entry_date BETWEEN %s AND %s GROUP BY 1, 2""",
        (DEFAULT_DEPARTMENT, start, end),
    ).fetchall()
    budget = {(b["account_code"], b["department"]): b for b in list_(conn, start=start, end=start)}
    acts = {
        (r["account_code"], r["department"]): (
            -r["s"] if types[r["account_code"]] in ("liability", "equity", "revenue") else r["s"]
        )
        for r in actual
    }
    keys = set(budget) | {k for k in acts if types[k[0]] in ("revenue", "expense")}
    rows = []
    for key in sorted(keys):
        b = budget.get(key)
        amount_b = b["amount"] if b else None
        act = acts.get(key, Decimal("0.00"))
        var = act - (amount_b or Decimal(0))
        pct = profiles.money(var * 100 / amount_b) if amount_b else None
        beyond = b is not None and (
            (pct is not None and abs(pct) > threshold_pct) or (amount_b == 0 and act != 0)
        )
        revenue = types[key[0]] == "revenue"
        adverse = beyond and ((var < 0 and today > end) if revenue else var > 0)
        rows.append(
            {
                "account": key[0],
                "department": key[1],
                "type": types[key[0]],
                "budget": amount_b,
                "version": b["version"] if b else None,
                "actual": act,
                "variance": var,
                "variance_pct": pct,
                "over_threshold": bool(beyond),
                "adverse": bool(adverse),
            }
        )
    return {"period": f"{period:%Y-%m}", "threshold_pct": threshold_pct, "rows": rows}


def raise_variance_notices(
    conn: Conn, *, period: dt.date, threshold_pct: Decimal, actor: dict | None
) -> list[dict]:
    """A finance notice (kept in fin_budget_alerts, audited) for each budget line beyond the threshold the adverse
    way (a cost overrun; a revenue shortfall once the month is over); once per line, version and month."""
    raised = []
    for r in variance(conn, period=period, threshold_pct=threshold_pct)["rows"]:
        if not r["adverse"]:
            continue
        alert = conn.execute(
            """INSERT INTO fin_budget_alerts (account_code, department, period, version, budget, actual, variance_pct)
               VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING *""",
            (
                r["account"],
                r["department"],
                period,
                r["version"],
                r["budget"],
                r["actual"],
                r["variance_pct"],
            ),
        ).fetchone()
        if alert is None:
            continue
        pct = f"{r['variance_pct']} %" if r["variance_pct"] is not None else "n/a"
        note = notifications.notify_staff(
            conn,
            role="finance",
            kind="budget_variance",
            title=f"Budget variance {r['account']}/{r['department']} {period:%Y-%m}: {pct} · 预算偏差",
            body=f"budget {r['budget']}, actual {r['actual']}, variance {r['variance']} ({pct}); "
            f"threshold {threshold_pct} %",
            data={k: str(v) for k, v in r.items()},
        )
        conn.execute(
            "UPDATE fin_budget_alerts SET notification_id = %s WHERE id = %s", (note["id"], alert["id"])
        )
        audit(
            conn,
            actor=actor,
            action="finance.budget.variance_notice",
            entity="fin_budget_alerts",
            entity_id=alert["id"],
            after={
                "account": r["account"],
                "department": r["department"],
                "variance_pct": str(r["variance_pct"]),
            },
        )
        raised.append({**alert, "notification_id": note["id"]})
    return raised
