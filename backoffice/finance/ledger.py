"""The general ledger: chart of accounts, monthly periods, posting, reversal and journal reads.

The one writer of fin_accounts, fin_periods, fin_journal_entries and fin_journal_lines. The database refuses an
unbalanced entry, a change to a posted one and an entry in a closed period (migration 0500); this module says why in
a 4xx before it gets that far.

Amounts are signed: a debit is positive, a credit negative. Every entry may carry a `source_key` naming the business
event it records (`invoice:17:issued`, `payment:42`, …): posting the same event again returns the first entry and
writes nothing, so a retried or replayed event never posts twice.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from backoffice.finance import profiles
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound

ACCOUNT_TYPES = ("asset", "liability", "equity", "revenue", "expense")
DIMENSIONS = (
    "vehicle_id",
    "station_id",
    "department",
    "order_id",
    "invoice_id",
    "customer_id",
    "payable_id",
)
MAX_LINES = 500
MAX_PAGE = 500
# Dates the books accept (anything outside is a typo, and date arithmetic near year 1 or 9999 overflows).
EARLIEST, LATEST = dt.date(1990, 1, 1), dt.date(2199, 12, 31)


# ---- accounts --------------------------------------------------------------------------------------------------


def list_accounts(conn: Conn, *, include_inactive: bool = False) -> list[dict]:
    """The chart of accounts in code order (a tree through parent_code)."""
    return conn.execute(
        "SELECT * FROM fin_accounts WHERE active OR %s ORDER BY code", (include_inactive,)
    ).fetchall()


def get_account(conn: Conn, *, code: str) -> dict | None:
    return conn.execute("SELECT * FROM fin_accounts WHERE code = %s", (code,)).fetchone()


def create_account(conn: Conn, *, data: dict, actor: dict) -> dict:
    """Extend the chart: a postable account or a group under a group of the same type."""
    code = data["code"]
    if get_account(conn, code=code) is not None:
        raise Conflict(f"account {code} exists already")
    if data["type"] not in ACCOUNT_TYPES:
        raise Invalid(f"type must be one of {', '.join(ACCOUNT_TYPES)}", details={"field": "type"})
    parent = data.get("parent_code")
    if parent is not None:
        p = get_account(conn, code=parent)
        if p is None:
            raise Invalid(f"parent_code: no account {parent}", details={"field": "parent_code"})
        if p["postable"]:
            raise Invalid(
                f"parent_code: {parent} is a postable account, not a group", details={"field": "parent_code"}
            )
        if p["type"] != data["type"]:
            raise Invalid(
                f"parent_code: {parent} is a {p['type']} group; a {data['type']} account cannot sit under it",
                details={"field": "parent_code"},
            )
    if data.get("cash") and data["type"] != "asset":
        raise Invalid("only asset accounts can be cash or bank accounts", details={"field": "cash"})
    row = one(
        conn.execute(
            """INSERT INTO fin_accounts (code, name, name_zh, type, parent_code, postable, cash, cash_flow, created_by)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *""",
            (
                code,
                data["name"],
                data.get("name_zh", ""),
                data["type"],
                parent,
                data.get("postable", True),
                data.get("cash", False),
                data.get("cash_flow"),
                actor["username"],
            ),
        )
    )
    audit(
        conn, actor=actor, action="finance.account.create", entity="fin_accounts", entity_id=code, after=row
    )
    return row


def cash_accounts(conn: Conn) -> list[str]:
    return [r["code"] for r in conn.execute("SELECT code FROM fin_accounts WHERE cash ORDER BY code")]


# ---- periods ---------------------------------------------------------------------------------------------------


def parse_period(text: str) -> dt.date:
    """'YYYY-MM' → the first day of that month; Invalid otherwise."""
    try:
        d = dt.datetime.strptime(text, "%Y-%m").date()
    except (TypeError, ValueError):
        raise Invalid(f"period must be YYYY-MM, got {text!r}", details={"field": "period"}) from None
    if not (EARLIEST.year <= d.year <= LATEST.year):
        raise Invalid(
            f"period must lie between {EARLIEST.year} and {LATEST.year}", details={"field": "period"}
        )
    return d


def month_end(period: dt.date) -> dt.date:
    nxt = (period.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return nxt - dt.timedelta(days=1)


def lock_open_period(conn: Conn, *, on: dt.date) -> dt.date:
    """Share-lock the period of a date and check it is open (409 otherwise); held until the transaction ends.

    A close takes the period row FOR UPDATE: it waits for every posting holding this lock to commit, and a posting
    that arrives after the close has committed reads 'closed' here.
    """
    period = on.replace(day=1)
    conn.execute("INSERT INTO fin_periods (period) VALUES (%s) ON CONFLICT DO NOTHING", (period,))
    st = one(conn.execute("SELECT status FROM fin_periods WHERE period = %s FOR SHARE", (period,)))["status"]
    if st != "open":
        raise Conflict(
            f"period {period:%Y-%m} is closed; post into an open period (a correction goes in as a reversal today)",
            details={"rule": "period_closed", "period": f"{period:%Y-%m}"},
        )
    return period


def list_periods(conn: Conn) -> list[dict]:
    return conn.execute(
        """SELECT p.*, (SELECT count(*) FROM fin_journal_entries e WHERE e.period = p.period) AS entries
             FROM fin_periods p ORDER BY p.period DESC"""
    ).fetchall()


def close_period(conn: Conn, *, period: dt.date, actor: dict, today: dt.date | None = None) -> dict:
    """Close a month that has ended; postings in flight finish first (row lock), later ones get 409."""
    today = today or profiles.local_date(profiles.get(conn), None)
    if month_end(period) >= today:
        raise Conflict(f"period {period:%Y-%m} has not ended yet (it ends {month_end(period)})")
    conn.execute("INSERT INTO fin_periods (period) VALUES (%s) ON CONFLICT DO NOTHING", (period,))
    row = one(conn.execute("SELECT * FROM fin_periods WHERE period = %s FOR UPDATE", (period,)))
    if row["status"] == "closed":
        raise Conflict(f"period {period:%Y-%m} is closed already")
    after = one(
        conn.execute(
            """UPDATE fin_periods SET status = 'closed', closed_at = now(), closed_by = %s WHERE period = %s
               RETURNING *""",
            (actor["username"], period),
        )
    )
    summarise_period(conn, period=period)
    audit(
        conn,
        actor=actor,
        action="finance.period.close",
        entity="fin_periods",
        entity_id=f"{period:%Y-%m}",
        before={"status": "open"},
        after={"status": "closed"},
    )
    return after


def summarise_period(conn: Conn, *, period: dt.date) -> None:
    """Write a closed month's totals per account and its cash movements (runs under the close's row lock, after
    every posting into the month has committed, so the totals are final)."""
    end = month_end(period)
    conn.execute(
        """INSERT INTO fin_period_balances (period, account_code, debit, credit)
           SELECT %s, account_code, coalesce(sum(amount) FILTER (WHERE amount > 0), 0),
                  coalesce(-sum(amount) FILTER (WHERE amount < 0), 0)
             FROM fin_journal_lines WHERE entry_date BETWEEN %s AND %s GROUP BY account_code""",
        (period, period, end),
    )
    conn.execute(
        """INSERT INTO fin_period_cash_flows (period, cash_flow, kind, inflow, outflow)
           SELECT %s, coalesce(l.cash_flow, 'operating'), l.entry_kind,
                  coalesce(sum(l.amount) FILTER (WHERE l.amount > 0), 0),
                  coalesce(-sum(l.amount) FILTER (WHERE l.amount < 0), 0)
             FROM fin_journal_lines l
            WHERE l.entry_date BETWEEN %s AND %s AND l.account_code = ANY(%s) GROUP BY 2, 3""",
        (period, period, end, cash_accounts(conn)),
    )


def reopen_period(conn: Conn, *, period: dt.date, reason: str, actor: dict) -> dict:
    """Reopen a closed month (admins only, audited with the reason)."""
    row = conn.execute("SELECT * FROM fin_periods WHERE period = %s FOR UPDATE", (period,)).fetchone()
    if row is None or row["status"] != "closed":
        raise Conflict(f"period {period:%Y-%m} is not closed")
    conn.execute("DELETE FROM fin_period_balances WHERE period = %s", (period,))
    conn.execute("DELETE FROM fin_period_cash_flows WHERE period = %s", (period,))
    after = one(
        conn.execute(
            """UPDATE fin_periods SET status = 'open', closed_at = NULL, closed_by = NULL WHERE period = %s
               RETURNING *""",
            (period,),
        )
    )
    audit(
        conn,
        actor=actor,
        action="finance.period.reopen",
        entity="fin_periods",
        entity_id=f"{period:%Y-%m}",
        before={"status": "closed"},
        after={"status": "open", "reason": reason},
    )
    return after


# ---- posting ---------------------------------------------------------------------------------------------------


def _normalise(conn: Conn, lines: list[dict], minor_unit: int) -> list[dict]:
    if len(lines) < 2:
        raise Invalid("an entry needs at least two lines", details={"rule": "min_lines"})
    if len(lines) > MAX_LINES:
        raise Invalid(f"an entry has at most {MAX_LINES} lines")
    codes = {ln["account"] for ln in lines}
    known = {
        r["code"]: r
        for r in conn.execute("SELECT * FROM fin_accounts WHERE code = ANY(%s)", (list(codes),)).fetchall()
    }
    out = []
    for i, ln in enumerate(lines, 1):
        acc = known.get(ln["account"])
        if acc is None:
            raise Invalid(
                f"line {i}: unknown account {ln['account']!r}", details={"line": i, "rule": "account"}
            )
        if not acc["postable"] or not acc["active"]:
            raise Invalid(
                f"line {i}: account {acc['code']} ({acc['name']}) is a group or inactive account",
                details={"line": i, "rule": "account"},
            )
        amount = profiles.money(ln["amount"], minor_unit)
        if amount == 0:
            raise Invalid(f"line {i}: amount is zero", details={"line": i, "rule": "zero_line"})
        out.append({**ln, "amount": amount, "cash": acc["cash"], "acc_cash_flow": acc["cash_flow"]})
    diff = sum((ln["amount"] for ln in out), Decimal(0))
    if diff != 0:
        raise Invalid(
            f"the entry is unbalanced: debits - credits = {diff}",
            details={"rule": "balanced", "difference": str(diff)},
        )
    # The cash-flow class of a cash line: given, or the class of the entry's largest non-cash counter-line.
    counters = sorted((ln for ln in out if not ln["cash"]), key=lambda ln: -abs(ln["amount"]))
    derived = next((c["acc_cash_flow"] for c in counters if c["acc_cash_flow"]), "operating")
    for ln in out:
        ln["cash_flow"] = (ln.get("cash_flow") or derived) if ln["cash"] else None
    return out


def _replayed(existing: dict, norm: list[dict], source_key: str) -> dict:
    """The entry already posted for an event; a replay carrying different amounts is a conflict, not a no-op."""
    have = sorted((ln["account_code"], ln["amount"]) for ln in existing["lines"])
    want = sorted((ln["account"], ln["amount"]) for ln in norm)
    if have != want:
        raise Conflict(
            f"event {source_key} was posted already (entry {existing['id']}) with different amounts",
            details={"rule": "idempotency", "entry_id": existing["id"]},
        )
    return {**existing, "replayed": True}


def post(
    conn: Conn,
    *,
    entry_date: dt.date,
    kind: str,
    lines: list[dict],
    actor: dict | None,
    memo: str = "",
    source_key: str | None = None,
    reverses_id: int | None = None,
) -> dict:
    """Post a balanced entry; with a source_key already posted, return that entry (`replayed`: True).

    Runs in the caller's transaction (a savepoint inside it; its own transaction on an autocommit connection, so
    the deferred balance check always sees the whole entry).
    """
    with conn.transaction():
        return _post(conn, entry_date, kind, lines, actor, memo, source_key, reverses_id)


def _post(
    conn: Conn,
    entry_date: dt.date,
    kind: str,
    lines: list[dict],
    actor: dict | None,
    memo: str,
    source_key: str | None,
    reverses_id: int | None,
) -> dict:
    profile = profiles.get(conn)
    if not (EARLIEST <= entry_date <= LATEST):
        raise Invalid(f"entry_date must lie between {EARLIEST} and {LATEST}", details={"field": "entry_date"})
    norm = _normalise(conn, lines, profile["minor_unit"])
    if source_key is not None:
        existing = get_entry_by_key(conn, source_key=source_key)
        if existing is not None:
            return _replayed(existing, norm, source_key)
    lock_open_period(conn, on=entry_date)
    who = (actor or {}).get("username", "system")
    row = conn.execute(
        """INSERT INTO fin_journal_entries (entry_date, kind, memo, currency, source_key, reverses_id, posted_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (source_key) DO NOTHING RETURNING id""",
        (entry_date, kind, memo[:500], profile["currency"], source_key, reverses_id, who),
    ).fetchone()
    if row is None:  # a concurrent transaction posted the same event first (we waited for it to commit)
        existing = get_entry_by_key(conn, source_key=source_key or "")
        if existing is None:
            raise Conflict(f"event {source_key} is being posted concurrently; retry")
        return _replayed(existing, norm, source_key or "")
    entry_id = row["id"]
    with conn.cursor() as cur:
        cur.executemany(
            f"""INSERT INTO fin_journal_lines (entry_id, line_no, entry_date, account_code, amount, cash_flow,
                                               {", ".join(DIMENSIONS)}, memo)
                VALUES (%s, %s, %s, %s, %s, %s, {", ".join(["%s"] * len(DIMENSIONS))}, %s)""",
            [
                (
                    entry_id,
                    i,
                    entry_date,
                    ln["account"],
                    ln["amount"],
                    ln["cash_flow"],
                    *(ln.get(d) for d in DIMENSIONS),
                    (ln.get("memo") or "")[:500],
                )
                for i, ln in enumerate(norm, 1)
            ],
        )
    entry = get_entry_or_raise(conn, entry_id=entry_id)
    audit(
        conn,
        actor=actor,
        action="finance.journal.post",
        entity="fin_journal_entries",
        entity_id=entry_id,
        after={
            "kind": kind,
            "entry_date": str(entry_date),
            "source_key": source_key,
            "reverses_id": reverses_id,
            "lines": len(norm),
            "debits": str(sum((ln["amount"] for ln in norm if ln["amount"] > 0), Decimal(0))),
        },
    )
    return {**entry, "replayed": False}


def reverse(
    conn: Conn,
    *,
    entry_id: int,
    actor: dict | None,
    entry_date: dt.date | None = None,
    memo: str = "",
    source_key: str | None = None,
    operational: bool = False,
) -> dict:
    """Post the mirror image of an entry (dated today unless given), linked to it; an entry is reversed once.

    An entry an operation posted (an invoice, a payment, a deposit…) is corrected by that operation (void, credit
    note, refund), which passes `operational=True`; by hand only manual entries are reversed, so the ledger and its
    sub-ledgers (open invoices, bills, deposits) never drift apart.
    """
    orig = get_entry_or_raise(conn, entry_id=entry_id)
    key = source_key or f"reversal:{entry_id}"
    existing = get_entry_by_key(conn, source_key=key)
    if existing is not None:
        return {**existing, "replayed": True}
    if orig["reverses_id"] is not None:
        raise Conflict(f"entry {entry_id} is itself a reversal; post a new entry instead")
    done = conn.execute("SELECT id FROM fin_journal_entries WHERE reverses_id = %s", (entry_id,)).fetchone()
    if done is not None:
        raise Conflict(f"entry {entry_id} is reversed already (by entry {done['id']})")
    if not operational and orig["kind"] != "manual":
        raise Conflict(
            f"entry {entry_id} records a {orig['kind']}; correct it through its operation (void, credit note, "
            "refund, supplier payment), not by hand",
            details={"rule": "operational_entry"},
        )
    entry_date = entry_date or profiles.local_date(profiles.get(conn), None)
    lines = [
        {
            "account": ln["account_code"],
            "amount": -ln["amount"],
            "cash_flow": ln["cash_flow"],
            "memo": ln["memo"],
            **{d: ln[d] for d in DIMENSIONS},
        }
        for ln in orig["lines"]
    ]
    return post(
        conn,
        entry_date=entry_date,
        kind=orig["kind"] if orig["kind"].endswith("_reversal") else f"{orig['kind']}_reversal"[:40],
        lines=lines,
        actor=actor,
        memo=memo or f"reversal of entry {entry_id}",
        source_key=key,
        reverses_id=entry_id,
    )


# ---- reads -----------------------------------------------------------------------------------------------------


def _with_lines(conn: Conn, entries: list[dict]) -> list[dict]:
    if not entries:
        return entries
    ids = [e["id"] for e in entries]
    by_entry: dict[int, list[dict]] = {i: [] for i in ids}
    for ln in conn.execute(
        """SELECT l.*, a.name AS account_name FROM fin_journal_lines l JOIN fin_accounts a ON a.code = l.account_code
            WHERE l.entry_id = ANY(%s) ORDER BY l.entry_id, l.line_no""",
        (ids,),
    ):
        ln["debit"] = ln["amount"] if ln["amount"] > 0 else Decimal("0.00")
        ln["credit"] = -ln["amount"] if ln["amount"] < 0 else Decimal("0.00")
        by_entry[ln["entry_id"]].append(ln)
    for e in entries:
        e["lines"] = by_entry[e["id"]]
        e["period"] = f"{e['period']:%Y-%m}"
    return entries


_ENTRY_SELECT = """SELECT e.id, e.entry_date, e.period, e.kind, e.memo, e.currency, e.source_key, e.reverses_id,
                          e.posted_by, e.posted_at,
                          (SELECT r.id FROM fin_journal_entries r WHERE r.reverses_id = e.id) AS reversed_by
                     FROM fin_journal_entries e"""


def get_entry(conn: Conn, *, entry_id: int) -> dict | None:
    rows = conn.execute(_ENTRY_SELECT + " WHERE e.id = %s", (entry_id,)).fetchall()
    return _with_lines(conn, rows)[0] if rows else None


def get_entry_or_raise(conn: Conn, *, entry_id: int) -> dict:
    e = get_entry(conn, entry_id=entry_id)
    if e is None:
        raise NotFound(f"no journal entry {entry_id}")
    return e


def get_entry_by_key(conn: Conn, *, source_key: str) -> dict | None:
    rows = conn.execute(_ENTRY_SELECT + " WHERE e.source_key = %s", (source_key,)).fetchall()
    return _with_lines(conn, rows)[0] if rows else None


def list_entries(
    conn: Conn,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    account: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict:
    """Entries dated in [start, end] (inclusive dates), optionally touching an account, with their lines."""
    if start and end and end < start:
        raise Invalid("'to' is before 'from'")
    if account is not None and get_account(conn, code=account) is None:
        raise Invalid(f"account: no account {account!r}", details={"field": "account"})
    p: dict[str, Any] = {
        "f": start,
        "t": end,
        "a": account,
        "k": kind,
        "l": min(limit, MAX_PAGE),
        "o": offset,
    }
    where = """ WHERE (%(f)s::date IS NULL OR e.entry_date >= %(f)s) AND (%(t)s::date IS NULL OR e.entry_date <= %(t)s)
                  AND (%(k)s::text IS NULL OR e.kind = %(k)s)
                  AND (%(a)s::text IS NULL OR EXISTS (SELECT 1 FROM fin_journal_lines l
                                                       WHERE l.entry_id = e.id AND l.account_code = %(a)s))"""
    total = one(conn.execute("SELECT count(*) AS n FROM fin_journal_entries e" + where, p))["n"]
    rows = conn.execute(
        _ENTRY_SELECT + where + " ORDER BY e.entry_date, e.id LIMIT %(l)s OFFSET %(o)s", p
    ).fetchall()
    return {"items": _with_lines(conn, rows), "total": total, "limit": p["l"], "offset": offset}


def balances(
    conn: Conn, *, accounts: list[str] | None = None, upto: dt.date | None = None, **dims: Any
) -> dict[str, Decimal]:
    """Signed balance per account (debit positive) up to a date, optionally for one value of each dimension."""
    where: list[str] = ["(%s::date IS NULL OR entry_date <= %s)"]
    params: list[Any] = [upto, upto]
    if accounts is not None:
        where.append("account_code = ANY(%s)")
        params.append(accounts)
    for d, v in dims.items():
        if d not in DIMENSIONS:
            raise ValueError(d)
        where.append(f"{d} = %s")
        params.append(v)
    return {
        r["account_code"]: r["s"]
        for r in conn.execute(
            f"SELECT account_code, sum(amount) AS s FROM fin_journal_lines WHERE {' AND '.join(where)} "
            "GROUP BY account_code",
            params,
        )
    }


def post_manual(conn: Conn, *, data: dict, actor: dict) -> dict:
    """A manual journal entry from finance: debit/credit columns become signed lines; `reference` posts once."""
    lines = [
        {
            "account": ln["account"],
            "amount": ln["debit"] if ln["debit"] > 0 else -ln["credit"],
            "memo": ln.get("memo", ""),
            "vehicle_id": ln.get("vehicle_id"),
            "station_id": ln.get("station_id"),
            "department": ln.get("department"),
        }
        for ln in data["lines"]
    ]
    ref = data.get("reference")
    return post(
        conn,
        entry_date=data["entry_date"],
        kind="manual",
        lines=lines,
        actor=actor,
        memo=data["memo"],
        source_key=f"manual:{ref}" if ref else None,
    )
