"""Statements as CSV and as a PDF for management, through fleetcore.documents (titles in English and Chinese)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from fleetcore.documents import Document, to_csv

TITLES = {
    "trial_balance": "Trial balance · 试算平衡表",
    "income": "Income statement · 利润表",
    "balance_sheet": "Balance sheet · 资产负债表",
    "cash_flow": "Cash-flow statement (direct method) · 现金流量表（直接法）",
    "profitability": "Profitability · 盈利分析",
    "cost_analysis": "Cost analysis · 成本分析",
    "ageing": "Ageing · 账龄分析",
    "budget_variance": "Budget versus actual · 预算执行差异",
}


def _period(st: dict) -> str:
    cur = st.get("currency", "")
    if st.get("from") is None:
        return f"as of {st['to']} · {cur}"
    return f"{st['from']} – {st['to']} · {cur}"


def table(st: dict) -> tuple[list[str], list[list[Any]]]:
    """The statement as one table (the CSV, and the PDF's body)."""
    kind = st["statement"]
    if kind == "trial_balance":
        cols = ["account", "name", "name_zh", "type", "opening", "debit", "credit", "closing"]
        rows = [[r[c] for c in cols] for r in st["rows"]]
        rows.append(["", "Total", "合计", "", "", st["totals"]["debit"], st["totals"]["credit"], ""])
        return cols, rows
    if kind in ("income", "balance_sheet"):
        cols = ["section", "account", "name", "name_zh", "amount", "previous", "change"]
        sections = (
            (("revenue", "revenue"), ("expenses", "expense"))
            if kind == "income"
            else (("assets", "asset"), ("liabilities", "liability"), ("equity", "equity"))
        )
        rows = [
            [label, r["account"], r["name"], r["name_zh"], r["amount"], r["previous"], r["change"]]
            for key, label in sections
            for r in st[key]
        ]
        if kind == "income":
            rows.append(
                ["total", "", "Net income", "净利润", st["net_income"], st["previous"]["net_income"], ""]
            )
        else:
            rows.append(
                [
                    "total",
                    "",
                    "Total assets",
                    "资产总计",
                    st["total_assets"],
                    st["previous"]["total_assets"],
                    "",
                ]
            )
            rows.append(
                [
                    "total",
                    "",
                    "Total liabilities and equity",
                    "负债和所有者权益总计",
                    st["total_liabilities"] + st["total_equity"],
                    st["previous"]["total_liabilities"] + st["previous"]["total_equity"],
                    "",
                ]
            )
        return cols, rows
    if kind == "cash_flow":
        cols = ["class", "kind", "inflow", "outflow", "net"]
        cf: list[list[Any]] = [["opening cash", "", "", "", st["opening_cash"]]]
        for c, v in st["classes"].items():
            cf += [
                [c, k["kind"], k["inflow"], k["outflow"], k["inflow"] - k["outflow"]] for k in v["by_kind"]
            ]
            cf.append([c, "total", v["inflow"], v["outflow"], v["net"]])
        cf.append(["closing cash", "", "", "", st["closing_cash"]])
        return cols, cf
    if "columns" in st and "rows" in st:
        return list(st["columns"]), [list(r) for r in st["rows"]]
    raise ValueError(kind)


def csv_bytes(st: dict) -> bytes:
    cols, rows = table(st)
    return to_csv(cols, rows)


def pdf_bytes(st: dict) -> bytes:
    """A PDF a person hands to management: title, company, period, key figures, the table (page-numbered)."""
    kind = st["statement"]
    doc = Document(title=TITLES.get(kind, kind), company=st["company"], period=_period(st))
    kpis: list[tuple[str, Any]] = []
    if kind == "trial_balance":
        kpis = [
            ("Debits = credits", "yes" if st["balanced"] else "NO"),
            ("Total debits", st["totals"]["debit"]),
        ]
    elif kind == "income":
        kpis = [
            ("Revenue · 收入", st["total_revenue"]),
            ("Expenses · 费用", st["total_expenses"]),
            ("Net income · 净利润", st["net_income"]),
            ("Previous period · 上期净利润", st["previous"]["net_income"]),
        ]
    elif kind == "balance_sheet":
        kpis = [
            ("Total assets · 资产总计", st["total_assets"]),
            ("Liabilities · 负债", st["total_liabilities"]),
            ("Equity · 所有者权益", st["total_equity"]),
            ("Assets = liabilities + equity", "yes" if st["balanced"] else "NO"),
        ]
    elif kind == "cash_flow":
        kpis = [
            ("Opening cash · 期初现金", st["opening_cash"]),
            ("Net change · 现金净增加额", st["net_change"]),
            ("Closing cash · 期末现金", st["closing_cash"]),
        ]
    if kpis:
        doc.kpis(kpis)
    cols, rows = table(st)
    doc.heading("Detail · 明细")
    doc.table(cols, _printable(rows))
    if kind == "cash_flow":
        doc.bar_chart(
            "Net cash flow by class",
            list(st["classes"]),
            [float(v["net"]) for v in st["classes"].values()],
            unit=st["currency"],
        )
    return doc.pdf()


def _printable(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    return [
        ["" if v is None else v if isinstance(v, Decimal | int | float) else str(v) for v in r] for r in rows
    ]
