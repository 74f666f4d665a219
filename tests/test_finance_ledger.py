"""The ledger core against the real database: balance, immutability, reversal, periods, idempotency, the chart,
the company profile (dated rates, China's series) and the period-close race with real concurrent transactions."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import psycopg
import pytest

from backoffice.finance import ledger, profiles, statements
from backoffice.finance import service as finance
from fleetcore.db import connect
from fleetcore.errors import Conflict, Invalid
from tests.waiting import wait_until

ACTOR = {"username": "fin-test"}
D = Decimal


def _last_month() -> dt.date:
    return (dt.date.today().replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def _cash_sale(conn, *, on: dt.date, amount: str = "100.00", key: str | None = None) -> dict:
    return ledger.post(
        conn,
        entry_date=on,
        kind="manual",
        lines=[{"account": "1010", "amount": D(amount)}, {"account": "4900", "amount": -D(amount)}],
        actor=ACTOR,
        source_key=key,
    )


def test_database_refuses_unbalanced_empty_and_changed_entries(conn):
    # Unbalanced lines written straight to the tables: refused at commit by the deferred constraint trigger.
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="unbalanced"), conn.transaction():
        e = conn.execute(
            "INSERT INTO fin_journal_entries (entry_date, kind, currency, posted_by) "
            "VALUES (current_date, 'manual', 'EUR', 'x') RETURNING id"
        ).fetchone()
        conn.execute(
            "INSERT INTO fin_journal_lines (entry_id, line_no, entry_date, account_code, amount) VALUES "
            "(%s, 1, current_date, '1010', 10), (%s, 2, current_date, '4900', -9.99)",
            (e["id"], e["id"]),
        )
    # An entry without lines: refused too.
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation), conn.transaction():
        conn.execute(
            "INSERT INTO fin_journal_entries (entry_date, kind, currency, posted_by) VALUES (current_date, 'manual', 'EUR', 'x')"
        )
    assert conn.execute("SELECT count(*) AS n FROM fin_journal_entries").fetchone()["n"] == 0

    e = _cash_sale(conn, on=dt.date.today())
    for sql in (
        "UPDATE fin_journal_lines SET amount = 1 WHERE entry_id = %s",
        "DELETE FROM fin_journal_lines WHERE entry_id = %s",
        "UPDATE fin_journal_entries SET memo = 'x' WHERE id = %s",
        "DELETE FROM fin_journal_entries WHERE id = %s",
        # a third line into a posted entry, even balanced by a fourth
        "INSERT INTO fin_journal_lines (entry_id, line_no, entry_date, account_code, amount) "
        "VALUES (%s, 9, current_date, '1010', 1)",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(sql, (e["id"],))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("TRUNCATE fin_journal_lines")
    # Posting to a group account is refused by the service and by the database.
    with pytest.raises(Invalid, match="group"):
        ledger.post(
            conn,
            entry_date=dt.date.today(),
            kind="manual",
            lines=[{"account": "1001", "amount": D(1)}, {"account": "4900", "amount": D(-1)}],
            actor=ACTOR,
        )


def test_service_refuses_bad_entries_with_reasons(conn):
    today = dt.date.today()
    cases = [
        ([{"account": "1010", "amount": D(5)}], "at least two lines"),
        ([{"account": "1010", "amount": D(5)}, {"account": "4900", "amount": D(-4)}], "unbalanced"),
        ([{"account": "1010", "amount": D(5)}, {"account": "9999", "amount": D(-5)}], "unknown account"),
        ([{"account": "1010", "amount": D("0.001")}, {"account": "4900", "amount": D(0)}], "zero"),
    ]
    for lines, why in cases:
        with pytest.raises(Invalid, match=why):
            ledger.post(conn, entry_date=today, kind="manual", lines=lines, actor=ACTOR)


def test_reversal_links_and_happens_once(conn):
    e = _cash_sale(conn, on=dt.date.today(), amount="42.50")
    r = ledger.reverse(conn, entry_id=e["id"], actor=ACTOR)
    assert r["reverses_id"] == e["id"] and not r["replayed"]
    assert sorted(ln["amount"] for ln in r["lines"]) == sorted(-ln["amount"] for ln in e["lines"])
    assert ledger.get_entry_or_raise(conn, entry_id=e["id"])["reversed_by"] == r["id"]
    assert ledger.reverse(conn, entry_id=e["id"], actor=ACTOR)["id"] == r["id"]  # replay: the same reversal
    with pytest.raises(Conflict, match="itself a reversal"):
        ledger.reverse(conn, entry_id=r["id"], actor=ACTOR)
    assert ledger.balances(conn) == {"1010": D("0.00"), "4900": D("0.00")}


def test_same_event_posts_once_and_a_different_replay_is_a_conflict(conn):
    a = _cash_sale(conn, on=dt.date.today(), key="test:event:1")
    b = _cash_sale(conn, on=dt.date.today(), key="test:event:1")
    assert b["id"] == a["id"] and b["replayed"] and not a["replayed"]
    with pytest.raises(Conflict, match="different amounts"):
        _cash_sale(conn, on=dt.date.today(), amount="99.00", key="test:event:1")
    assert conn.execute("SELECT count(*) AS n FROM fin_journal_entries").fetchone()["n"] == 1


def test_closed_period_refuses_postings_and_can_be_reopened(conn):
    last = _last_month()
    _cash_sale(conn, on=last + dt.timedelta(days=3))
    with pytest.raises(Conflict, match="not ended"):
        ledger.close_period(conn, period=dt.date.today().replace(day=1), actor=ACTOR)
    ledger.close_period(conn, period=last, actor=ACTOR)
    with pytest.raises(Conflict, match="closed"):
        _cash_sale(conn, on=last + dt.timedelta(days=4))
    # The database refuses too, whatever the path.
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState), conn.transaction():
        conn.execute(
            "INSERT INTO fin_journal_entries (entry_date, kind, currency, posted_by) VALUES (%s, 'manual', 'EUR', 'x')",
            (last,),
        )
    ledger.reopen_period(conn, period=last, reason="late supplier bill", actor=ACTOR)
    _cash_sale(conn, on=last + dt.timedelta(days=4))
    actions = [r["action"] for r in conn.execute("SELECT action FROM audit_log WHERE entity = 'fin_periods'")]
    assert actions == ["finance.period.close", "finance.period.reopen"]


def test_chart_extends_as_a_typed_tree(conn):
    with conn.transaction():
        ledger.create_account(
            conn,
            data={"code": "1030", "name": "PayPal", "type": "asset", "parent_code": "1001", "cash": True},
            actor=ACTOR,
        )
    assert "1030" in ledger.cash_accounts(conn)
    for data, why in (
        ({"code": "1031", "name": "x", "type": "expense", "parent_code": "1001"}, "cannot sit under"),
        ({"code": "1032", "name": "x", "type": "asset", "parent_code": "1010"}, "not a group"),
        ({"code": "1033", "name": "x", "type": "asset", "parent_code": "7777"}, "no account"),
        ({"code": "1034", "name": "x", "type": "revenue", "cash": True}, "cash"),
    ):
        with pytest.raises(Invalid, match=why):
            ledger.create_account(conn, data=data, actor=ACTOR)
    with pytest.raises(Conflict):
        ledger.create_account(conn, data={"code": "1030", "name": "again", "type": "asset"}, actor=ACTOR)


def test_dated_tax_rates_and_the_china_profile(conn):
    de = profiles.get(conn)
    assert (de["currency"], de["country"]) == ("EUR", "DE")
    assert profiles.tax_rate(conn, country="DE", category="standard", on=dt.date(2020, 9, 1)) == D("0.16")
    assert profiles.tax_rate(conn, country="DE", category="standard", on=dt.date(2021, 1, 1)) == D("0.19")
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    with conn.transaction():
        profiles.add_tax_rate(
            conn,
            country="DE",
            category="standard",
            rate=D("0.20"),
            valid_from=tomorrow,
            note="test",
            actor=ACTOR,
        )
    assert profiles.tax_rate(conn, country="DE", category="standard", on=dt.date.today()) == D("0.19")
    assert profiles.tax_rate(conn, country="DE", category="standard", on=tomorrow) == D("0.20")

    with conn.transaction():
        cn = profiles.update(conn, country="CN", company_name=None, actor=ACTOR)
    assert (cn["currency"], cn["timezone"]) == ("CNY", "Asia/Shanghai")
    assert profiles.tax_rate(conn, country="CN", category="leasing", on=dt.date(2019, 3, 31)) == D("0.16")
    assert profiles.tax_rate(conn, country="CN", category="leasing", on=dt.date.today()) == D("0.13")
    t = profiles.invoice_totals(
        conn,
        profile=cn,
        lines=[
            {"code": "rental_weekday", "amount": D("300.00")},
            {"code": "service_cleaning", "amount": D("50.00")},
        ],
        on=dt.date.today(),
    )
    assert (t["net"], t["vat"], t["vat_rate"]) == (D("350.00"), D("39.00") + D("3.00"), None)
    year = profiles.local_date(cn, None).year
    nums = [
        profiles.invoice_number(conn, profile=cn, invoice_id=i, category=c, on=dt.date.today())
        for i, c in ((1, "leasing"), (2, "leasing"), (3, "services"))
    ]
    assert nums == [f"ZL{year}00000001", f"ZL{year}00000002", f"FW{year}00000001"]
    _cash_sale(conn, on=dt.date.today())
    with pytest.raises(Conflict, match="currency"):
        profiles.update(conn, country="DE", company_name=None, actor=ACTOR)


def test_money_rule_rounds_half_up_once():
    assert profiles.money(D("0.005")) == D("0.01")
    assert profiles.money(D("2.675")) == D("2.68")  # a float would give 2.67
    assert profiles.money(D("-0.005")) == D("-0.01")
    assert profiles.money(D("1.5"), 0) == D("2")


def test_payroll_interface_posts_once_per_period_and_run(conn):
    period = dt.date.today().strftime("%Y-%m")
    lines = [
        {
            "department": "operations",
            "gross": "3000.00",
            "withholdings": "1100.00",
            "employer_contributions": "600.00",
        },
        {
            "department": "finance",
            "gross": "4000.00",
            "withholdings": "1500.00",
            "employer_contributions": "800.00",
        },
    ]
    with conn.transaction():
        e = finance.post_payroll(conn, period=period, lines=lines, actor=ACTOR)
    with conn.transaction():
        again = finance.post_payroll(conn, period=period, lines=lines, actor=ACTOR)
    assert again["id"] == e["id"] and again["replayed"]
    b = ledger.balances(conn)
    assert b["6100"] == D("7000.00") and b["6200"] == D("1400.00")
    assert b["2410"] == D("-4400.00") and b["2420"] == D("-4000.00")
    assert ledger.balances(conn, department="finance")["6100"] == D("4000.00")
    with pytest.raises(Invalid, match="exceed gross"):
        finance.post_payroll(
            conn,
            period=period,
            run="bonus",
            lines=[{"department": "finance", "gross": "1", "withholdings": "2"}],
            actor=ACTOR,
        )
    with pytest.raises(Invalid, match="YYYY-MM"):
        finance.post_payroll(conn, period="2027-13", lines=lines, actor=ACTOR)


# ---- the period-close race, with real concurrent transactions -------------------------------------------------


def _waiting_for_lock(conn, pid: int) -> bool:
    row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return bool(row and row["wait_event_type"] == "Lock")


def test_close_waits_for_a_posting_in_flight_and_later_postings_are_refused(conn, db_url):
    last = _last_month()
    poster = connect(db_url)  # a transaction left open: the posting is in flight
    poster.execute("SELECT 1")  # (begins the transaction; the posting is a savepoint inside it)
    _cash_sale(poster, on=last + dt.timedelta(days=1), amount="10.00")
    closed: dict = {}

    def close() -> None:
        with connect(db_url) as c:
            closed["pid"] = c.info.backend_pid
            with c.transaction():
                closed["row"] = ledger.close_period(c, period=last, actor=ACTOR)

    t = threading.Thread(target=close)
    t.start()
    wait_until(lambda: "pid" in closed and _waiting_for_lock(conn, closed["pid"]), timeout=10)
    assert "row" not in closed  # the close waits for the posting
    poster.commit()
    poster.close()
    t.join(10)
    assert closed["row"]["status"] == "closed"
    with pytest.raises(Conflict, match="closed"):
        _cash_sale(conn, on=last + dt.timedelta(days=2))
    n = conn.execute("SELECT count(*) AS n FROM fin_journal_entries WHERE period = %s", (last,)).fetchone()[
        "n"
    ]
    assert n == 1  # the posting in flight got in; nothing after the close did


def test_a_posting_waiting_on_a_close_in_flight_is_refused(conn, db_url):
    last = _last_month()
    closer = connect(db_url)
    closer.execute("SELECT 1")
    ledger.close_period(closer, period=last, actor=ACTOR)  # not committed yet
    result: dict = {}

    def post() -> None:
        with connect(db_url) as c:
            result["pid"] = c.info.backend_pid
            try:
                with c.transaction():
                    _cash_sale(c, on=last + dt.timedelta(days=5))
                result["ok"] = True
            except Conflict as exc:
                result["refused"] = str(exc)

    t = threading.Thread(target=post)
    t.start()
    wait_until(lambda: "pid" in result and _waiting_for_lock(conn, result["pid"]), timeout=10)
    closer.commit()
    closer.close()
    t.join(10)
    assert "closed" in result.get("refused", "") and "ok" not in result


def test_close_under_a_stream_of_concurrent_postings(conn, db_url):
    """Four writers post into last month as fast as they can while the month is closed: each posting either
    committed before the close or was refused; none lands after it."""
    last = _last_month()
    stop = threading.Event()
    outcomes: list[str] = []

    def writer() -> None:
        with connect(db_url) as c:
            while not stop.is_set():
                try:
                    with c.transaction():
                        _cash_sale(c, on=last + dt.timedelta(days=7), amount="1.00")
                    outcomes.append("ok")
                except Conflict:
                    outcomes.append("refused")
                    return

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: outcomes.count("ok") >= 20, timeout=20)
    with connect(db_url) as c, c.transaction():
        ledger.close_period(c, period=last, actor=ACTOR)
    at_close = conn.execute(
        "SELECT count(*) AS n FROM fin_journal_entries WHERE period = %s", (last,)
    ).fetchone()["n"]
    wait_until(lambda: outcomes.count("refused") == 4, timeout=20)
    stop.set()
    for t in threads:
        t.join(10)
    after = conn.execute(
        "SELECT count(*) AS n FROM fin_journal_entries WHERE period = %s", (last,)
    ).fetchone()["n"]
    assert after == at_close == outcomes.count("ok")
    assert ledger.balances(conn)["1010"] == D(outcomes.count("ok"))


def test_statements_read_closed_months_from_their_summary_with_the_same_result(conn):
    """Closing a month writes its totals; every statement over it gives the same figures as from the lines."""
    last, this = _last_month(), dt.date.today().replace(day=1)
    for i, (on, amount, acc) in enumerate(
        [
            (last + dt.timedelta(days=2), "120.00", "4900"),
            (last + dt.timedelta(days=9), "30.05", "2900"),
            (this, "7.10", "4900"),
        ]
    ):
        ledger.post(
            conn,
            entry_date=on,
            kind="manual",
            lines=[{"account": "1020", "amount": D(amount)}, {"account": acc, "amount": -D(amount)}],
            actor=ACTOR,
            source_key=f"snap:{i}",
        )
    ranges = [(last, ledger.month_end(this)), (this, ledger.month_end(this)), (last, ledger.month_end(last)),
              (last + dt.timedelta(days=5), ledger.month_end(this))]  # fmt: skip

    def figures() -> list:
        out = []
        for a, b in ranges:
            out.append(statements.trial_balance(conn, start=a, end=b)["rows"])
            out.append(statements.income_statement(conn, start=a, end=b)["net_income"])
            out.append(statements.balance_sheet(conn, start=a, end=b)["total_assets"])
            cf = statements.cash_flow(conn, start=a, end=b)
            out.append((cf["opening_cash"], cf["classes"], cf["closing_cash"], cf["balanced"]))
        return out

    before = figures()
    with conn.transaction():
        ledger.close_period(conn, period=last, actor=ACTOR)
    assert conn.execute("SELECT count(*) AS n FROM fin_period_balances").fetchone()["n"] == 3
    assert figures() == before
    with conn.transaction():
        ledger.reopen_period(conn, period=last, reason="check", actor=ACTOR)
    assert conn.execute("SELECT count(*) AS n FROM fin_period_balances").fetchone()["n"] == 0
    assert figures() == before
