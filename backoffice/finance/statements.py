"""Financial statements for any period from the journal: trial balance, income statement, balance sheet and the
cash-flow statement (direct method), each with the previous period of the same length beside it.

Closed months are read from the summaries the close writes (fin_period_balances, fin_period_cash_flows: a closed
month takes no postings, so they are exact); only open months are summed from fin_journal_lines (entry_date is on
the line, with an index that covers the amount). bench/finance_statements.md has the times over a million lines.
Signs: the journal stores debits positive; statements show each section in its natural sign (assets and expenses
debit-positive, liabilities, equity and revenue credit-positive).
"""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import Decimal
from typing import Any

from backoffice.finance import ledger, profiles
from fleetcore.db import Conn
from fleetcore.errors import Invalid

ZERO = Decimal("0.00")
CREDIT_NATURE = ("liability", "equity", "revenue")
CASH_FLOW_CLASSES = ("operating", "investing", "financing")
# Beyond this a statement is a data export, not a statement: ten years.
MAX_SPAN = dt.timedelta(days=3660)


def check_range(start: dt.date, end: dt.date) -> None:
    if start < ledger.EARLIEST or end > ledger.LATEST:
        raise Invalid(
            f"dates must lie between {ledger.EARLIEST} and {ledger.LATEST}", details={"field": "from"}
        )
    if end < start:
        raise Invalid("'to' is before 'from'", details={"field": "to"})
    if end - start > MAX_SPAN:
        raise Invalid("a statement covers at most ten years", details={"field": "from"})


def previous_range(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The period before: the same number of whole months when the range is whole months, else the same days."""
    whole = start.day == 1 and end == ledger.month_end(end)
    if whole:
        months = (end.year - start.year) * 12 + end.month - start.month + 1
        y, m = divmod(start.year * 12 + start.month - 1 - months, 12)
        p_start = dt.date(y, m + 1, 1)
        p_end = start - dt.timedelta(days=1)
        return p_start, p_end
    days = (end - start).days + 1
    return start - dt.timedelta(days=days), start - dt.timedelta(days=1)


def _accounts(conn: Conn) -> dict[str, dict]:
    return {a["code"]: a for a in ledger.list_accounts(conn, include_inactive=True)}


EPOCH = dt.date(1900, 1, 1)


def _closed_months(conn: Conn, start: dt.date, end: dt.date) -> list[dt.date]:
    """Closed months lying wholly inside [start, end]: their totals are read from the close's summary."""
    return [
        r["period"]
        for r in conn.execute(
            "SELECT period FROM fin_periods WHERE status = 'closed' AND period >= %s AND period <= %s ORDER BY period",
            (start, end),
        )
        if ledger.month_end(r["period"]) <= end
    ]


def _gaps(start: dt.date, end: dt.date, closed: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """The parts of [start, end] not covered by the closed months (ascending, non-overlapping)."""
    out, cur = [], start
    for p in closed:
        if p > cur:
            out.append((cur, p - dt.timedelta(days=1)))
        cur = max(cur, ledger.month_end(p) + dt.timedelta(days=1))
    if cur <= end:
        out.append((cur, end))
    return out


def _date_filter(col: str, gaps: list[tuple[dt.date, dt.date]]) -> tuple[str, list]:
    if not gaps:
        return "false", []
    cond = " OR ".join(f"{col} BETWEEN %s AND %s" for _ in gaps)
    return f"({cond})", [d for g in gaps for d in g]


def account_sums(
    conn: Conn, start: dt.date | None, end: dt.date, accounts: list[str] | None = None
) -> dict[str, tuple[Decimal, Decimal]]:
    """(debits, credits) per account (all, or the given ones) for the dates [start, end] (start None: from the
    beginning): closed months from their summaries, the open rest from the lines."""
    start = start or EPOCH
    acc_cond = "account_code = ANY(%s)" if accounts is not None else "true"
    acc_params = [accounts] if accounts is not None else []
    if end < start:
        return {}
    closed = _closed_months(conn, start, end)
    out: dict[str, tuple[Decimal, Decimal]] = {}
    if closed:
        for r in conn.execute(
            f"""SELECT account_code, sum(debit) AS d, sum(credit) AS c FROM fin_period_balances
                WHERE period = ANY(%s) AND {acc_cond} GROUP BY account_code""",
            [closed, *acc_params],
        ):
            out[r["account_code"]] = (r["d"], r["c"])
    cond, params = _date_filter("entry_date", _gaps(start, end, closed))
    for r in conn.execute(
        f"""SELECT account_code, coalesce(sum(amount) FILTER (WHERE amount > 0), 0) AS d,
                   coalesce(-sum(amount) FILTER (WHERE amount < 0), 0) AS c
              FROM fin_journal_lines WHERE {cond} AND {acc_cond} GROUP BY account_code""",
        [*params, *acc_params],
    ):
        d, c = out.get(r["account_code"], (ZERO, ZERO))
        out[r["account_code"]] = (d + r["d"], c + r["c"])
    return out


def _net(sums: dict[str, tuple[Decimal, Decimal]]) -> dict[str, Decimal]:
    return {k: d - c for k, (d, c) in sums.items()}


def _natural(acc: dict, amount: Decimal) -> Decimal:
    return -amount if acc["type"] in CREDIT_NATURE else amount


def _header(conn: Conn, kind: str, start: dt.date | None, end: dt.date) -> dict:
    p = profiles.get(conn)
    return {
        "statement": kind,
        "company": p["company_name"],
        "currency": p["currency"],
        "from": start,
        "to": end,
    }


# ---- trial balance ---------------------------------------------------------------------------------------------


def trial_balance(conn: Conn, *, start: dt.date, end: dt.date) -> dict:
    """Per account: opening balance, debits and credits in [start, end], closing balance; balanced when the
    debits equal the credits (and so the closing balances sum to zero)."""
    check_range(start, end)
    accs = _accounts(conn)
    opening = _net(account_sums(conn, None, start - dt.timedelta(days=1)))
    moves = account_sums(conn, start, end)
    rows: list[dict[str, Any]] = [
        {
            "account_code": code,
            "opening": opening.get(code, ZERO),
            "debit": moves.get(code, (ZERO, ZERO))[0],
            "credit": moves.get(code, (ZERO, ZERO))[1],
        }
        for code in sorted(set(opening) | set(moves))
    ]
    out = []
    for r in rows:
        a = accs[r["account_code"]]
        closing = r["opening"] + r["debit"] - r["credit"]
        out.append(
            {
                "account": a["code"],
                "name": a["name"],
                "name_zh": a["name_zh"],
                "type": a["type"],
                "opening": r["opening"],
                "debit": r["debit"],
                "credit": r["credit"],
                "closing": closing,
                "closing_debit": closing if closing > 0 else ZERO,
                "closing_credit": -closing if closing < 0 else ZERO,
            }
        )
    debits = sum((r["debit"] for r in out), ZERO)
    credits = sum((r["credit"] for r in out), ZERO)
    closing_dr = sum((r["closing_debit"] for r in out), ZERO)
    closing_cr = sum((r["closing_credit"] for r in out), ZERO)
    return {
        **_header(conn, "trial_balance", start, end),
        "rows": out,
        "totals": {
            "debit": debits,
            "credit": credits,
            "closing_debit": closing_dr,
            "closing_credit": closing_cr,
        },
        "balanced": debits == credits and closing_dr == closing_cr,
    }


# ---- income statement ------------------------------------------------------------------------------------------


def _period_sums(conn: Conn, start: dt.date, end: dt.date, types: tuple[str, ...]) -> dict[str, Decimal]:
    accs = _accounts(conn)
    return {k: v for k, v in _net(account_sums(conn, start, end)).items() if accs[k]["type"] in types}


def _income(conn: Conn, start: dt.date, end: dt.date, accs: dict[str, dict]) -> dict:
    sums = _period_sums(conn, start, end, ("revenue", "expense"))
    sections: dict[str, list[dict]] = {"revenue": [], "expense": []}
    for code in sorted(sums):
        a = accs[code]
        sections[a["type"]].append(
            {"account": code, "name": a["name"], "name_zh": a["name_zh"], "amount": _natural(a, sums[code])}
        )
    revenue = sum((r["amount"] for r in sections["revenue"]), ZERO)
    expense = sum((r["amount"] for r in sections["expense"]), ZERO)
    return {
        "revenue": sections["revenue"],
        "expenses": sections["expense"],
        "total_revenue": revenue,
        "total_expenses": expense,
        "net_income": revenue - expense,
    }


def _compare(cur: list[dict], prev: list[dict]) -> list[dict]:
    """Current rows with the previous period's amount and the change beside each (accounts in either period)."""
    p = {r["account"]: r["amount"] for r in prev}
    seen = {r["account"] for r in cur}
    rows = [
        {**r, "previous": p.get(r["account"], ZERO), "change": r["amount"] - p.get(r["account"], ZERO)}
        for r in cur
    ]
    rows += [
        {**r, "amount": ZERO, "previous": r["amount"], "change": -r["amount"]}
        for r in prev
        if r["account"] not in seen
    ]
    return sorted(rows, key=lambda r: r["account"])


def income_statement(conn: Conn, *, start: dt.date, end: dt.date) -> dict:
    """Revenue and expenses in [start, end] by account, net income, and the previous period beside them."""
    check_range(start, end)
    accs = _accounts(conn)
    cur = _income(conn, start, end, accs)
    ps, pe = previous_range(start, end)
    prev = _income(conn, ps, pe, accs)
    return {
        **_header(conn, "income", start, end),
        "previous_period": {"from": ps, "to": pe},
        "revenue": _compare(cur["revenue"], prev["revenue"]),
        "expenses": _compare(cur["expenses"], prev["expenses"]),
        "total_revenue": cur["total_revenue"],
        "total_expenses": cur["total_expenses"],
        "net_income": cur["net_income"],
        "previous": {k: prev[k] for k in ("total_revenue", "total_expenses", "net_income")},
    }


# ---- balance sheet ---------------------------------------------------------------------------------------------


def _position(conn: Conn, at: dt.date, accs: dict[str, dict], bal: dict[str, Decimal] | None = None) -> dict:
    bal = _net(account_sums(conn, None, at)) if bal is None else bal
    sections: dict[str, list[dict]] = {"asset": [], "liability": [], "equity": []}
    result = ZERO  # revenue - expense to date, not yet closed into retained earnings
    for code in sorted(bal):
        a = accs[code]
        if a["type"] in ("revenue", "expense"):
            result += -bal[code]
            continue
        sections[a["type"]].append(
            {"account": code, "name": a["name"], "name_zh": a["name_zh"], "amount": _natural(a, bal[code])}
        )
    retained = next((r["amount"] for r in sections["equity"] if r["account"] == "3200"), ZERO)
    sections["equity"].append(
        {"account": "result", "name": "Result not yet appropriated", "name_zh": "本年利润", "amount": result}
    )
    assets = sum((r["amount"] for r in sections["asset"]), ZERO)
    liabilities = sum((r["amount"] for r in sections["liability"]), ZERO)
    equity = sum((r["amount"] for r in sections["equity"]), ZERO)
    return {
        "assets": sections["asset"],
        "liabilities": sections["liability"],
        "equity": sections["equity"],
        "total_assets": assets,
        "total_liabilities": liabilities,
        "total_equity": equity,
        # retained earnings as the balance sheet shows them: posted ones plus the result to date
        "retained_earnings": retained + result,
    }


def balance_sheet(conn: Conn, *, end: dt.date, start: dt.date | None = None) -> dict:
    """Assets, liabilities and equity at the end of `end`, beside the end of the previous period; checked:
    assets = liabilities + equity (equity includes the result not yet appropriated)."""
    if start is None and not (ledger.EARLIEST <= end <= ledger.LATEST):
        raise Invalid(
            f"dates must lie between {ledger.EARLIEST} and {ledger.LATEST}", details={"field": "to"}
        )
    accs = _accounts(conn)
    ps, pe = previous_range(start, end) if start else (None, end.replace(day=1) - dt.timedelta(days=1))
    # history once (to the previous period's end), then only the lines since
    at_prev = _net(account_sums(conn, None, pe))
    delta = _net(account_sums(conn, pe + dt.timedelta(days=1), end))
    at_end = {k: at_prev.get(k, ZERO) + delta.get(k, ZERO) for k in set(at_prev) | set(delta)}
    cur = _position(conn, end, accs, at_end)
    prev = _position(conn, pe, accs, at_prev)
    return {
        **_header(conn, "balance_sheet", start, end),
        "previous_period": {"from": ps, "to": pe},
        "assets": _compare(cur["assets"], prev["assets"]),
        "liabilities": _compare(cur["liabilities"], prev["liabilities"]),
        "equity": _compare(cur["equity"], prev["equity"]),
        "total_assets": cur["total_assets"],
        "total_liabilities": cur["total_liabilities"],
        "total_equity": cur["total_equity"],
        "retained_earnings": cur["retained_earnings"],
        "previous": {
            k: prev[k] for k in ("total_assets", "total_liabilities", "total_equity", "retained_earnings")
        },
        "balanced": cur["total_assets"] == cur["total_liabilities"] + cur["total_equity"],
    }


# ---- cash flow -------------------------------------------------------------------------------------------------


def _cash(conn: Conn, start: dt.date, end: dt.date, opening: Decimal) -> dict:
    # The cash accounts as a literal list: the planner then reads their lines through the (account, date) index.
    cash = ledger.cash_accounts(conn)
    r = {"opening": opening}
    closed = _closed_months(conn, start, end)
    cond, params = _date_filter("l.entry_date", _gaps(start, end, closed))
    lines = conn.execute(
        f"""SELECT class, kind, sum(inflow) AS inflow, sum(outflow) AS outflow FROM (
              SELECT cash_flow AS class, kind, inflow, outflow FROM fin_period_cash_flows WHERE period = ANY(%s)
              UNION ALL
              SELECT coalesce(l.cash_flow, 'operating'), l.entry_kind,
                     coalesce(sum(l.amount) FILTER (WHERE l.amount > 0), 0),
                     coalesce(-sum(l.amount) FILTER (WHERE l.amount < 0), 0)
                FROM fin_journal_lines l
               WHERE {cond} AND l.account_code = ANY(%s) GROUP BY 1, 2) x
            GROUP BY 1, 2 ORDER BY 1, 2""",
        [closed, *params, cash],
    ).fetchall()
    classes: dict[str, dict[str, Any]] = {
        c: {"inflow": ZERO, "outflow": ZERO, "net": ZERO, "by_kind": []} for c in CASH_FLOW_CLASSES
    }
    for ln in lines:
        c = classes[ln["class"]]
        c["inflow"] += ln["inflow"]
        c["outflow"] += ln["outflow"]
        c["net"] += ln["inflow"] - ln["outflow"]
        c["by_kind"].append({"kind": ln["kind"], "inflow": ln["inflow"], "outflow": ln["outflow"]})
    net = sum((c["net"] for c in classes.values()), ZERO)
    return {
        "opening_cash": r["opening"],
        "classes": classes,
        "net_change": net,
        "closing_cash": r["opening"] + net,
    }


def _cash_shift(flows: dict, opening: Decimal) -> dict:
    return {**flows, "opening_cash": opening, "closing_cash": opening + flows["net_change"]}


def cash_flow(conn: Conn, *, start: dt.date, end: dt.date) -> dict:
    """Direct method: every movement on the cash and bank accounts in [start, end], classed as operating, investing
    or financing (the class is fixed when the line is posted, from the counter-account or the payable's purpose);
    checked: opening cash + net change = closing cash (the accounts' balance)."""
    check_range(start, end)
    cash = ledger.cash_accounts(conn)
    opening = sum(_net(account_sums(conn, None, start - dt.timedelta(days=1), cash)).values(), ZERO)
    cur = _cash(conn, start, end, opening)
    ps, pe = previous_range(start, end)
    # the previous period ends where this one opens: its opening is this opening less its own flows
    prev = _cash(conn, ps, pe, ZERO)
    prev = _cash_shift(prev, opening - prev["net_change"])
    # checked against the accounts' own movement (a different sum than the flows by class and kind)
    closing_ledger = opening + sum(_net(account_sums(conn, start, end, cash)).values(), ZERO)
    return {
        **_header(conn, "cash_flow", start, end),
        "method": "direct",
        "previous_period": {"from": ps, "to": pe},
        **cur,
        "previous": {k: prev[k] for k in ("opening_cash", "net_change", "closing_cash")}
        | {"classes": {c: prev["classes"][c]["net"] for c in CASH_FLOW_CLASSES}},
        "balanced": cur["closing_cash"] == closing_ledger,
    }


def month_range(period: dt.date) -> tuple[dt.date, dt.date]:
    return period, period.replace(day=calendar.monthrange(period.year, period.month)[1])
