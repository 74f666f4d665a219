"""Finance statements over 1,000,000 journal lines: each statement's time (`make bench-finance`).

A scratch database with 200 vehicles gets 375,000 balanced entries over two years (rental invoices: receivable /
revenue / VAT; payments: bank / receivable; workshop bills: parts / input VAT / payables), 1,000,000 lines with
vehicle and station dimensions. They are bulk-loaded in the server with triggers off (session_replication_role =
replica: the per-line balance check is what posting does, not what a statement reads; the totals are checked after
loading instead). Then each statement runs through the service the API calls, 5 times, and the median is kept.
Results: bench/finance_statements.md and .json.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from backoffice.finance import analysis, ledger, statements
from bench.common import drop_database, log, make_database
from fleetcore.db import one

HERE = Path(__file__).resolve().parent
LINES = int(os.environ.get("FLEET_BENCH_FINANCE_LINES", "1000000"))
RUNS = 5
TARGET_S = 2.0
FIRST_DAY, DAYS = dt.date(2025, 1, 1), 730

LOAD = """
SET session_replication_role = replica;
INSERT INTO fin_journal_entries (id, entry_date, period, kind, memo, currency, source_key, posted_by)
SELECT i, d, date_trunc('month', d)::date, (ARRAY['invoice', 'payment', 'maintenance'])[i %% 3 + 1], '', 'EUR',
       'bench:' || i, 'bench'
  FROM (SELECT i, %(first)s::date + (i::bigint * 7919 %% %(days)s)::int AS d FROM generate_series(1, %(entries)s) AS i) s;
INSERT INTO fin_journal_lines (entry_id, line_no, entry_date, entry_kind, account_code, amount, cash_flow, vehicle_id,
                               station_id)
SELECT e.id, l.n, e.entry_date, e.kind, l.account, l.amount, l.cf, 1 + e.id %% 200, %(station)s
  FROM (SELECT id, entry_date, kind, (40 + id %% 160)::numeric(14, 2) AS net FROM fin_journal_entries) e
  CROSS JOIN LATERAL (VALUES
      (1, CASE e.kind WHEN 'invoice' THEN '1110' WHEN 'payment' THEN '1020' ELSE '5100' END,
          CASE e.kind WHEN 'maintenance' THEN e.net ELSE round(e.net * 1.19, 2) END,
          CASE e.kind WHEN 'payment' THEN 'operating' END),
      (2, CASE e.kind WHEN 'invoice' THEN '4100' WHEN 'payment' THEN '1110' ELSE '1200' END,
          CASE e.kind WHEN 'invoice' THEN -e.net WHEN 'payment' THEN -round(e.net * 1.19, 2)
               ELSE round(e.net * 0.19, 2) END, NULL),
      (3, CASE e.kind WHEN 'invoice' THEN '2200' ELSE '2100' END,
          CASE e.kind WHEN 'invoice' THEN -round(e.net * 0.19, 2) ELSE -round(e.net * 1.19, 2) END, NULL)
  ) AS l(n, account, amount, cf)
 WHERE NOT (e.kind = 'payment' AND l.n = 3);
SELECT setval('fin_journal_entries_id_seq', %(entries)s::bigint);
SET session_replication_role = origin;
"""


def _median(fn: Callable[[], object]) -> tuple[float, list[float]]:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def main() -> int:
    entries = LINES * 3 // 8  # 8 lines per 3 entries
    url, _ = make_database(200)
    try:
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            station = one(conn.execute("SELECT id FROM stations LIMIT 1"))["id"]
            t0 = time.perf_counter()
            params = {"first": FIRST_DAY, "days": DAYS, "entries": entries, "station": station}
            for stmt in (x.strip() for x in LOAD.split(";")):
                if stmt:
                    used = {k: v for k, v in params.items() if f"%({k})s" in stmt}
                    conn.execute(stmt, used or None)
            conn.execute("VACUUM ANALYZE fin_journal_lines")
            conn.execute("VACUUM ANALYZE fin_journal_entries")
            load_s = time.perf_counter() - t0
            n = one(conn.execute("SELECT count(*) AS n, sum(amount) AS s FROM fin_journal_lines"))
            unbalanced = one(
                conn.execute(
                    "SELECT count(*) AS n FROM (SELECT entry_id FROM fin_journal_lines GROUP BY 1 HAVING sum(amount) <> 0) x"
                )
            )["n"]
            log(
                f"loaded {n['n']:,} lines in {entries:,} entries in {load_s:.1f} s (sum {n['s']}, unbalanced {unbalanced})"
            )
            assert n["s"] == 0 and unbalanced == 0
            year = (dt.date(2026, 1, 1), dt.date(2026, 12, 31))
            month = (dt.date(2026, 6, 1), dt.date(2026, 6, 30))
            cases: dict[str, Callable[[], dict]] = {
                "trial balance (year 2026)": lambda: statements.trial_balance(
                    conn, start=year[0], end=year[1]
                ),
                "income statement (June 2026 + May)": lambda: statements.income_statement(
                    conn, start=month[0], end=month[1]
                ),
                "income statement (year 2026 + 2025)": lambda: statements.income_statement(
                    conn, start=year[0], end=year[1]
                ),
                "balance sheet (31 Dec 2026 + 30 Nov)": lambda: statements.balance_sheet(conn, end=year[1]),
                "cash flow (year 2026 + 2025)": lambda: statements.cash_flow(
                    conn, start=year[0], end=year[1]
                ),
            }
            results: dict[str, list[dict]] = {}
            for scenario in ("history closed", "all months open"):
                if scenario == "history closed":
                    # the usual state of the books: every month closed but the last (December 2026)
                    t0 = time.perf_counter()
                    m = FIRST_DAY
                    while m < dt.date(2026, 12, 1):
                        with conn.transaction():
                            ledger.close_period(
                                conn, period=m, actor={"username": "bench"}, today=dt.date(2027, 1, 1)
                            )
                        m = (m + dt.timedelta(days=32)).replace(day=1)
                    log(f"closed 23 months in {time.perf_counter() - t0:.1f} s")
                else:
                    for p in reversed(ledger.list_periods(conn)):
                        if p["status"] == "closed":
                            with conn.transaction():
                                ledger.reopen_period(
                                    conn, period=p["period"], reason="bench", actor={"username": "bench"}
                                )
                all_cases = dict(cases)
                all_cases["profitability by vehicle (year 2026, informational)"] = lambda: (
                    analysis.profitability(conn, by="vehicle", start=year[0], end=year[1])
                )
                results[scenario] = []
                for name, fn in all_cases.items():
                    out = fn()
                    ok = out.get("balanced", True)
                    med, times = _median(fn)
                    log(
                        f"[{scenario}] {name}: median {med * 1000:.0f} ms ({', '.join(f'{t * 1000:.0f}' for t in times)})"
                    )
                    results[scenario].append(
                        {
                            "statement": name,
                            "median_s": round(med, 3),
                            "runs_s": [round(t, 3) for t in times],
                            "balanced": ok,
                        }
                    )
        load = os.getloadavg()
    finally:
        drop_database(url)
    report: dict[str, Any] = {
        "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "lines": int(n["n"]),
        "entries": entries,
        "load_s": round(load_s, 1),
        "target_s": TARGET_S,
        "loadavg": [round(x, 2) for x in load],
        "results": results,
    }
    (HERE / "finance_statements.json").write_text(json.dumps(report, indent=2) + "\n")

    def table(rs: list[dict]) -> str:
        return "\n".join(
            f"| {r['statement']} | {r['median_s'] * 1000:.0f} ms | {' / '.join(f'{t * 1000:.0f}' for t in r['runs_s'])} | "
            f"{'yes' if r['median_s'] < TARGET_S else 'NO'} |"
            for r in rs
        )

    (HERE / "finance_statements.md").write_text(
        f"""# Finance statements over {report["lines"]:,} journal lines

`make bench-finance` (bench/finance_statements.py), run {report["run_at"]} on this 2-core machine shared with other
work (load average {report["loadavg"][0]} / {report["loadavg"][1]} / {report["loadavg"][2]}). {entries:,} balanced entries
over two years (2025-2026: invoices, payments, workshop bills) with vehicle and station dimensions, bulk-loaded in
{report["load_s"]} s; each statement through the service the API calls, {RUNS} runs, median. Target: under
{TARGET_S:.0f} s each. Every statement checked `balanced`.

## History closed (January 2025 - November 2026 closed, December open)

The usual state of the books. A close writes the month's totals per account and its cash movements; statements read
closed months from there and sum only the open month's lines.

| statement | median | runs (ms) | < {TARGET_S:.0f} s |
|---|---|---|---|
{table(results["history closed"])}

## All months open (every line summed)

The worst case: nothing closed in two years, every statement sums the lines (one or two grouped scans of
`fin_journal_lines`; entry_date is on the line, the `(entry_date, account_code) INCLUDE (amount)` index serves date
ranges).

| statement | median | runs (ms) | < {TARGET_S:.0f} s |
|---|---|---|---|
{table(results["all months open"])}

Profitability is listed for information: it reads the lines of its range with their vehicle dimension (closed or not)
and the telemetry readings of the range.
"""
    )
    return 0 if all(r["median_s"] < TARGET_S for r in results["history closed"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
